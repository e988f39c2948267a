import * as tf from "@tensorflow/tfjs";
import { processState } from "./process-state";

/**
 * Replaces two of tfjs-core's chained ops where they change no value: `t.sum()` of a single value (a
 * rank-0 tensor) and `t.cast(dtype)` to the tensor's own dtype. d2l's `Accumulator` (metrics.ts) sums
 * every tensor it is given, and trainEpochCh3 gives it two scalars a step (the step's summed loss and
 * its count of correct predictions: two Sum kernels of one value each), then casts every kept sum to
 * float32 when it reads the total (two same-dtype Casts a step, at the epoch's end). Each went through
 * `runKernel` (the registry, a scope, a kernel-depth bracket, a new buffer or a shared one, the
 * tensor's tracking): 2-3 µs each of a softmax-regression step's 400-500 µs on the calling thread (Zen 5, loaded).
 * On the wasm backend, outside gradient tapes, these make the result as a new tensor on the input's
 * buffer (one more reference, tracked in the active scope, as lean-clone.ts makes a saved tensor),
 * without a kernel.
 *
 * Same bits: a same-dtype Cast is the identity (wasm-share.ts already shares its buffer). The wasm Sum
 * kernel computes 0 + x, which is x except for −0 (0 + −0 = +0) and a NaN (a signalling NaN comes back
 * quiet): for those a float32 sum runs the kernel as before (the value is read from the backend's
 * memory first); an int32 sum is always x. Anything else (an axis or keepDims given, other dtypes,
 * another backend, a tape recording, tfjs's profiler or debug mode) runs tfjs's op.
 *
 * Interrupt safety (interrupt.ts): as lean-clone.ts, the reference and the tracking are taken inside
 * a kernel-depth bracket, as a kernel that shares its input takes them inside `runKernel`.
 *
 * On wasm, from `useSpeedups(true)`; `useSpeedups(false)` (or `useLeanScalarOps(false)`) makes them
 * run tfjs's chained ops again.
 */

interface EngineInternals {
  backendName: string | null;
  backendInstance?: WasmBackendInternals;
  state: { gradientDepth: number; kernelDepth: number; profiling: boolean; tensorInfo: WeakMap<tf.DataId, { backend: unknown }> };
  makeTensorFromTensorInfo(info: tf.TensorInfo, backend?: unknown): tf.Tensor;
}

interface WasmBackendInternals {
  incRef?(dataId: tf.DataId): void;
  getMemoryOffset?(dataId: tf.DataId): number;
  wasm?: { HEAPF32?: Float32Array };
}

type Sum = (this: tf.Tensor, axis?: number | number[], keepDims?: boolean) => tf.Tensor;
type Cast = (this: tf.Tensor, dtype: tf.DataType) => tf.Tensor;

/** tfjs's own chained ops, kept on the prototype under these keys while ours are installed. */
const OWN_SUM = Symbol.for("d2l.leanScalarOps.sum");
const OWN_CAST = Symbol.for("d2l.leanScalarOps.cast");
type Proto = { sum: Sum; cast: Cast; [OWN_SUM]?: Sum; [OWN_CAST]?: Cast };

/** The wasm backend, if `x`'s buffer is on it and nothing (a tape, the profiler, debug mode) needs the kernel to run. */
function shareableOn(engine: EngineInternals, x: tf.Tensor): WasmBackendInternals | undefined {
  const backend = engine.backendInstance;
  if (engine.backendName !== "wasm" || backend?.incRef === undefined || engine.state.gradientDepth !== 0 || engine.state.profiling) return undefined;
  if (engine.state.tensorInfo.get(x.dataId)?.backend !== backend || tf.env().getBool("DEBUG")) return undefined;
  return backend;
}

/** A new tensor of `shape` on x's buffer, made as a kernel that shares its input would make it (see above). */
function share(engine: EngineInternals, backend: WasmBackendInternals, x: tf.Tensor, shape: number[]): tf.Tensor {
  const state = engine.state;
  state.kernelDepth++;
  try {
    backend.incRef!(x.dataId);
    return engine.makeTensorFromTensorInfo({ dataId: x.dataId, shape, dtype: x.dtype }, backend);
  } finally {
    state.kernelDepth--;
  }
}

/** Whether the wasm Sum of this one value is the value itself: int32, or a float32 that is not −0 or NaN. */
function sumIsItself(backend: WasmBackendInternals, x: tf.Tensor): boolean {
  if (x.dtype === "int32") return true;
  if (x.dtype !== "float32") return false;
  const heap = backend.wasm?.HEAPF32;
  const offset = backend.getMemoryOffset?.(x.dataId);
  if (heap === undefined || offset === undefined || offset % 4 !== 0) return false;
  const v = heap[offset >> 2];
  return v === v && !Object.is(v, -0);
}

/** On or off, shared by every copy of this module (tsx and tslab can load a lib module twice). */
const state = processState("d2l.useLeanScalarOps", () => ({ enabled: false }));

/**
 * Makes a rank-0 tensor's `sum()` and a same-dtype `cast()` share the buffer on wasm (`true`, see
 * above) or run tfjs's ops (`false`). The wrappers go on tfjs's Tensor prototype once and stay (each
 * change of the prototype would make V8 drop the optimised code of every caller of a tensor method);
 * switched off, they call tfjs's own at once.
 */
export function useLeanScalarOps(on: boolean): void {
  state.enabled = on;
  const proto = tf.Tensor.prototype as unknown as Proto;
  if (!on || proto[OWN_SUM] !== undefined) return;
  const ownSum = proto.sum;
  const ownCast = proto.cast;
  const engine = tf.engine() as unknown as EngineInternals;
  proto[OWN_SUM] = ownSum;
  proto[OWN_CAST] = ownCast;
  proto.sum = function (this: tf.Tensor, axis?: number | number[], keepDims?: boolean): tf.Tensor {
    if (state.enabled && this.rank === 0 && axis == null && !keepDims && !this.isDisposed) {
      const backend = shareableOn(engine, this);
      if (backend !== undefined && sumIsItself(backend, this)) return share(engine, backend, this, []);
    }
    return ownSum.call(this, axis, keepDims);
  };
  proto.cast = function (this: tf.Tensor, dtype: tf.DataType): tf.Tensor {
    if (state.enabled && dtype === this.dtype && dtype !== "string" && !this.isDisposed) {
      const backend = shareableOn(engine, this);
      if (backend !== undefined) return share(engine, backend, this, this.shape);
    }
    return ownCast.call(this, dtype);
  };
}
