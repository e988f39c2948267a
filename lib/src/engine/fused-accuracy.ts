import * as tf from "@tensorflow/tfjs";
import { type WasmBackendLike, heapF32, heapI32 } from "./wasm-kernels";
import { accuracy as bookAccuracy } from "../metrics";
import { rowLoops } from "./row-loops";
import { getBackend, getKernel, tfEngine } from "./tf-direct";
import { processState } from "./process-state";

/**
 * Replaces the ops of `accuracy` (metrics.ts: ArgMax, Cast, Equal, Cast, Sum: five passes through
 * tfjs's engine, each ~5-10 µs of bookkeeping for 256 rows of 10 values) on the wasm backend by one
 * kernel that counts the rows whose largest score sits at the label. Every training step and every
 * evaluated batch of chapters 3-6 calls it.
 *
 * How it is reached: `d2l.accuracy` (lib/src/index.ts), trainEpochCh3 and trainCh6 are {@link accuracy}
 * below, which counts with the kernel where it applies and with the book's helper of metrics.ts
 * otherwise; the helper itself stays as the book writes it (a notebook's `// @save` copy must match it).
 *
 * Same value: a count (exact in float32 up to 2²⁴ rows), and the same argmax as the wasm backend's
 * ArgMax kernel: the first index of the largest value, comparing with `>` from index 0 (so a row
 * whose first value is NaN picks 0, and a NaN later is never picked); test/unit/fused-accuracy.test.ts
 * compares it with the ops. Where: the wasm backend, float32 scores [n, K] with K ≥ 2, int32 labels
 * [n]; anything else takes the ops. `useSpeedups(false)` switches it off.
 */

const KERNEL = "D2lCorrectCount";

/** On or off, shared by every copy of this module (tsx and tslab can load a lib module twice). */
const state = processState("d2l.useFusedAccuracy", () => ({ enabled: false }));

/** Scores [n, K] and labels [n] to the number of rows whose argmax is the label, a float32 scalar. */
function correctCountKernel(args: { inputs: tf.NamedTensorInfoMap; backend: unknown }): tf.TensorInfo {
  const { scores, labels } = args.inputs as { scores: tf.TensorInfo; labels: tf.TensorInfo };
  const backend = args.backend as WasmBackendLike;
  const [n, k] = scores.shape;
  const out = backend.makeOutput([], "float32");
  const loops = rowLoops(backend);
  if (loops !== undefined && n > 0) {
    // the same count as below, as WebAssembly (row-loops.ts)
    loops.correctCount(backend.getMemoryOffset(scores.dataId), backend.getMemoryOffset(labels.dataId), backend.getMemoryOffset(out.dataId), n, k);
    return out;
  }
  const x = heapF32(backend, scores, n * k);
  const y = heapI32(backend, labels, n);
  let correct = 0;
  for (let i = 0; i < n; i++) {
    const row = i * k;
    let max = x[row];
    let best = 0;
    for (let j = 1; j < k; j++) {
      if (x[row + j] > max) {
        max = x[row + j];
        best = j;
      }
    }
    if (best === y[i]) correct++;
  }
  heapF32(backend, out, 1)[0] = correct;
  return out;
}

/** Counts correct predictions with one kernel on wasm (`true`) or with the ops (`false`). */
export function useFusedAccuracy(on: boolean): void {
  if (on && getKernel(KERNEL, "wasm") === undefined && tf.findBackend("wasm") !== null) {
    tf.registerKernel({ kernelName: KERNEL, backendName: "wasm", kernelFunc: correctCountKernel as unknown as tf.KernelFunc });
  }
  state.enabled = on && getKernel(KERNEL, "wasm") !== undefined;
}

/**
 * The number of rows of `yHat` whose largest score is at the label in `y`, as one kernel; undefined
 * where it does not apply (the caller then runs the ops).
 */
export function fusedCorrectCount(yHat: tf.Tensor, y: tf.Tensor): tf.Scalar | undefined {
  if (!state.enabled || getBackend() !== "wasm" || yHat.dtype !== "float32" || yHat.rank !== 2 || (yHat.shape[1] ?? 0) < 2 ||
    y.dtype !== "int32" || y.rank !== 1 || y.shape[0] !== yHat.shape[0]) {
    return undefined;
  }
  return tfEngine().runKernel(KERNEL, { scores: yHat, labels: y }) as tf.Scalar;
}

/**
 * The number of correct predictions, as a scalar tensor: d2l's `accuracy` (metrics.ts, which documents
 * it), counted by one kernel where it applies (see above), else by that helper.
 * @see d2l.accuracy (section 3.6.5, classification accuracy)
 */
export function accuracy(yHat: tf.Tensor, y: tf.Tensor): tf.Scalar {
  return fusedCorrectCount(yHat, y) ?? bookAccuracy(yHat, y);
}
