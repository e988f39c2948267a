import * as tf from "@tensorflow/tfjs";
import { findWasmReplacement, replaceWasmKernel, restoreWasmKernel } from "./wasm-kernels";

/**
 * tfjs clones (the Identity kernel) every tensor an op saves for its gradient, and many gradients
 * cast float32 tensors to float32 (the Cast kernel). The cpu and webgl backends answer both by
 * sharing the input's buffer and counting one more reference to it; the wasm backend (4.x)
 * allocates and copies instead: some 25 to 35 copies per training step of softmax regression,
 * the 256×784 batch among them.
 *
 * Sharing is safe on wasm for the same reasons it is on cpu: no kernel writes into an input's
 * buffer (outputs come from `makeOutput`), a variable's `assign` swaps its buffer for the new
 * value's rather than writing into it, and the backend frees a buffer only when its reference
 * count reaches zero. The wasm backend's own Reshape kernel shares buffers exactly this way.
 */

const MARK = Symbol.for("d2l.useSharedWasmBuffers");
const KERNELS = [tf.Identity, tf.Cast] as const;

interface RefCountingBackend {
  incRef(dataId: tf.DataId): void;
}

/** The kernel that shares x's buffer where the original would copy it unchanged, else runs the original. */
function sharing(original: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const x = args.inputs.x as tf.TensorInfo;
    const dtype = (args.attrs?.dtype as tf.DataType | undefined) ?? x.dtype; // Identity has no attrs; Cast has its target dtype
    // String tensors live in JavaScript, not in the heap; a real cast converts: leave both to the original.
    if (x.dtype === "string" || dtype !== x.dtype) return original(args);
    (args.backend as unknown as RefCountingBackend).incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  };
}

/**
 * Makes the wasm backend's Identity kernel (tensor.clone(), and the copies tfjs keeps for
 * gradients) and its Cast kernel to the same dtype share the input's buffer instead of copying
 * it, as the cpu backend does. Values are unchanged; a clone still outlives its source.
 * Idempotent. Returns false when the wasm backend's kernels are not registered.
 * Not in d2l: it works around @tensorflow/tfjs-backend-wasm 4.x, see lib/src/wasm-share.ts.
 */
export function useSharedWasmBuffers(): boolean {
  for (const name of KERNELS) {
    if (findWasmReplacement(name, MARK) !== undefined) continue;
    if (!replaceWasmKernel(name, MARK, undefined, sharing)) return false;
  }
  return true;
}

/** Puts the copying wasm Identity and Cast kernels back (for tests and benchmarks); returns whether anything changed. */
export function restoreWasmBuffers(): boolean {
  return KERNELS.map((name) => restoreWasmKernel(name, MARK)).some(Boolean);
}
