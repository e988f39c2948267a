import * as tf from "@tensorflow/tfjs";
import { type WasmBackendLike, findWasmReplacement, replaceWasmKernel, restoreWasmKernel } from "./wasm-kernels";

/**
 * The wasm backend's OneHot kernel (@tensorflow/tfjs-backend-wasm 4.x) takes its on and off values
 * as int32 and writes int32 bits whatever the dtype asked for: `tf.oneHot(y, 10, 1, 0, "float32")`
 * comes out as denormals that print as 0, and an on value of 0.9 becomes 0. The cpu backend gets
 * both right. This replacement writes any dtype other than int32 itself, straight into the
 * backend's memory (the mask is small: a batch by the number of classes).
 */

const MARK = Symbol.for("d2l.useWasmOneHotFix");

const ARRAYS: Partial<Record<tf.DataType, Float32ArrayConstructor | Uint8ArrayConstructor>> = {
  float32: Float32Array,
  bool: Uint8Array,
};

function oneHotAnyDtype(original: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const indices = args.inputs.indices as tf.TensorInfo;
    const { depth, onValue, offValue, dtype } = args.attrs as unknown as tf.OneHotAttrs;
    const Values = ARRAYS[dtype];
    const backend = args.backend as unknown as WasmBackendLike;
    if (Values === undefined || indices.dtype !== "int32" || backend.wasm?.HEAPU8 === undefined) return original(args);
    const out = backend.makeOutput([...indices.shape, depth], dtype);
    // views are made after the allocation, which may have grown (replaced) the memory's buffer
    const heap = backend.wasm.HEAPU8.buffer;
    const rows = tf.util.sizeFromShape(indices.shape);
    const index = new Int32Array(heap, backend.getMemoryOffset(indices.dataId), rows);
    const values = new Values(heap as ArrayBuffer, backend.getMemoryOffset(out.dataId), rows * depth);
    values.fill(offValue);
    for (let i = 0; i < rows; i++) {
      const j = index[i];
      if (j >= 0 && j < depth) values[i * depth + j] = onValue; // out-of-range indices give a row of offValue, as on cpu
    }
    return out;
  };
}

/**
 * Makes the wasm backend's one-hot encoding honour float32 (and bool) dtypes and fractional on and
 * off values, as the cpu backend does; int32 one-hots keep the original kernel. Idempotent; false
 * when the wasm backend's kernels are not registered.
 * Not in d2l: it works around @tensorflow/tfjs-backend-wasm 4.x, see lib/src/wasm-onehot.ts.
 */
export function useWasmOneHotFix(): boolean {
  if (findWasmReplacement(tf.OneHot, MARK) !== undefined) return true;
  return replaceWasmKernel(tf.OneHot, MARK, undefined, oneHotAnyDtype);
}

/** Puts the original wasm OneHot kernel back (for tests); returns whether it was replaced. */
export function restoreWasmOneHot(): boolean {
  return restoreWasmKernel(tf.OneHot, MARK);
}
