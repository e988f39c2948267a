import * as tf from "@tensorflow/tfjs";
import { type WasmBackendLike, findWasmReplacement, heapF32, heapI32, replaceWasmKernel, restoreWasmKernel } from "./wasm-kernels";

/**
 * The wasm backend's reductions (@tensorflow/tfjs-backend-wasm 4.x) read memory they never wrote
 * when the axes they reduce are empty: `tf.sum(tf.tensor1d([]))` gives 3.6e-41 (whatever the
 * allocator left there), as do prod, mean, max and min, and `tf.any` of nothing gives 128 for a
 * bool. This replacement answers what the reduction of nothing is, as TensorFlow and PyTorch do:
 * a sum 0, a product 1, a mean NaN (0 / 0), `any` false and `all` true; a maximum, minimum, argMax
 * or argMin of nothing has no answer, so it throws an error naming the op, the shape and the axis
 * (PyTorch raises there too). Reductions of non-empty axes, and empty results, keep the original
 * kernel (the check is a product of the reduced dimensions). A fix of wrong results: on whatever
 * {@link useSpeedups} says; {@link restoreWasmEmptyReductions} takes it out (for tests).
 */

const MARK = Symbol.for("d2l.useWasmEmptyReductions");

/** What the reduction of no elements gives, or undefined where there is none (an error then). */
const EMPTY_VALUE: Record<string, number | undefined> = {
  [tf.Sum]: 0,
  [tf.Prod]: 1,
  [tf.Mean]: NaN,
  [tf.Any]: 0,
  [tf.All]: 1,
  [tf.Max]: undefined,
  [tf.Min]: undefined,
  [tf.ArgMax]: undefined,
  [tf.ArgMin]: undefined,
};

/** The ops' names as a learner calls them, for the error. */
const OP_NAME: Record<string, string> = {
  [tf.Max]: "tf.max",
  [tf.Min]: "tf.min",
  [tf.ArgMax]: "tf.argMax",
  [tf.ArgMin]: "tf.argMin",
};

/** The output dtype of the reduction of x: as the original kernels give it (a mean is float32, any/all bool, argMax int32). */
function outputDtype(name: string, x: tf.TensorInfo): tf.DataType {
  if (name === tf.Mean) return "float32";
  if (name === tf.Any || name === tf.All) return "bool";
  if (name === tf.ArgMax || name === tf.ArgMin) return "int32";
  return x.dtype;
}

function emptyAware(name: string, original: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const x = args.inputs.x as tf.TensorInfo;
    const shape = x.shape;
    // the common case first: a tensor with elements has no empty axis
    if (tf.util.sizeFromShape(shape) !== 0) return original(args);
    const attrs = args.attrs as { axis?: number | number[] | null; keepDims?: boolean };
    // a missing axis is every axis (the reductions) or axis 0 (argMax, argMin)
    const axis = attrs.axis ?? (name === tf.ArgMax || name === tf.ArgMin ? 0 : shape.map((_, i) => i));
    const axes = tf.util.parseAxisParam(axis, shape);
    const reduced = axes.reduce((size, axis) => size * shape[axis], 1);
    const [kept] = tf.backend_util.computeOutAndReduceShapes(shape, axes);
    // nothing was reduced away, or nothing comes out: the original kernel writes no garbage
    if (reduced !== 0 || tf.util.sizeFromShape(kept) === 0) return original(args);
    const value = EMPTY_VALUE[name];
    if (value === undefined) {
      throw new Error(
        `${OP_NAME[name]}: x of shape [${shape.join(", ")}] has no elements along axis ${axes.join(", ")}, ` +
          `and the ${name === tf.Max || name === tf.ArgMax ? "maximum" : "minimum"} of nothing is undefined`,
      );
    }
    const outShape = attrs.keepDims ? tf.backend_util.expandShapeToKeepDim(kept, axes) : kept;
    const backend = args.backend as unknown as WasmBackendLike;
    const out = backend.makeOutput(outShape, outputDtype(name, x));
    if (out.dtype === "bool") new Uint8Array(backend.wasm!.HEAPU8!.buffer, backend.getMemoryOffset(out.dataId), tf.util.sizeFromShape(outShape)).fill(value);
    else (out.dtype === "int32" ? heapI32 : heapF32)(backend, out).fill(value);
    return out;
  };
}

/**
 * Makes the wasm backend's reductions of empty axes give what the reduction of nothing is (sum 0,
 * prod 1, mean NaN, any false, all true) and max, min, argMax and argMin of nothing an error
 * naming the shape and axis, instead of whatever was in memory. Idempotent; false when the wasm
 * backend's kernels are not registered.
 * Not in d2l: it works around @tensorflow/tfjs-backend-wasm 4.x, see lib/src/engine/wasm-empty-reductions.ts.
 */
export function useWasmEmptyReductions(): boolean {
  for (const name of Object.keys(EMPTY_VALUE)) {
    if (findWasmReplacement(name, MARK) !== undefined) continue;
    if (!replaceWasmKernel(name, MARK, undefined, (original) => emptyAware(name, original))) return false;
  }
  return true;
}

/** Puts the original wasm reductions back (for tests); returns whether any was replaced. */
export function restoreWasmEmptyReductions(): boolean {
  let restored = false;
  for (const name of Object.keys(EMPTY_VALUE)) restored = restoreWasmKernel(name, MARK) || restored;
  return restored;
}
