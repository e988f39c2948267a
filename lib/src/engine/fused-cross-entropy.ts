import * as tf from "@tensorflow/tfjs";
import { type WasmBackendLike, applyWasmUnary, heapF32, heapI32, registerFusedKernels } from "./wasm-kernels";
import { crossEntropy as bookCrossEntropy } from "../losses";
import { rowLoops } from "./row-loops";
import { getBackend, getKernel, tfEngine } from "./tf-direct";
import { processState } from "./process-state";

/**
 * Replaces the ops of 3.6's `crossEntropy` (losses.ts: OneHot, Mul, Sum, Log, Neg, three clones saved
 * for the gradient, and Neg, RealDiv, Cast, Reshape, Mul (by ones), Mul, Cast for its gradient) on the
 * wasm backend by one kernel forward and one for the gradient, so a step of softmax regression from
 * scratch passes through tfjs's engine about 10 times fewer.
 *
 * Same floats, bit for bit: for each row i of the probabilities ŷ and one-hot targets t,
 *   picked_i = Σ_j ŷ_ij·t_ij (from +0, in order j = 0..K−1, as the wasm Sum adds), loss_i = −log(picked_i)
 *   (the backend's own Log kernel), and the gradient tfjs's chain gives: q_i = (−dy_i) / picked_i
 *   (Neg's and Log's gradients), then q_i·t_ij (Sum's gradient multiplies by ones, Mul's by t), so
 *   −0, NaN and ±Infinity land where tfjs puts them. test/unit/fused-cross-entropy.test.ts compares
 *   both with the ops value by value.
 *
 * How it is reached: `d2l.crossEntropy` (lib/src/index.ts) is {@link crossEntropy} below, which runs the
 * fused kernel where it applies and the book's helper of losses.ts otherwise; a notebook's `// @save`
 * copy of the helper is the book's ops (3.6 defines its own). Where: the wasm backend, float32 ŷ [n, K]
 * with K ≥ 2, int32 labels [n], outside nested gradient tapes. `useSpeedups(false)` switches it off.
 */

const KERNEL = "D2lCrossEntropy";
const GRAD_KERNEL = "D2lCrossEntropyGrad";

/** On or off, shared by every copy of this module (tsx and tslab can load a lib module twice). */
const state = processState("d2l.useFusedCrossEntropy", () => ({ enabled: false }));

/** Forward: outputs the loss [n] and the picked probabilities [n] (saved for the gradient). */
function forwardKernel(args: { inputs: tf.NamedTensorInfoMap; backend: unknown }): tf.TensorInfo[] {
  const { yHat, labels } = args.inputs as { yHat: tf.TensorInfo; labels: tf.TensorInfo };
  const backend = args.backend as WasmBackendLike;
  const [n, k] = yHat.shape;
  const picked = backend.makeOutput([n], "float32");
  const loops = rowLoops(backend);
  if (loops !== undefined) {
    // the same pass as below, as WebAssembly (row-loops.ts)
    loops.picked(backend.getMemoryOffset(yHat.dataId), backend.getMemoryOffset(labels.dataId), backend.getMemoryOffset(picked.dataId), n, k);
  } else {
    const x = heapF32(backend, yHat, n * k);
    const y = heapI32(backend, labels, n);
    const p = heapF32(backend, picked, n);
    for (let i = 0; i < n; i++) {
      const row = i * k;
      const label = y[i];
      let sum = 0;
      for (let j = 0; j < k; j++) sum = Math.fround(sum + Math.fround(x[row + j] * (j === label ? 1 : 0)));
      p[i] = sum;
    }
  }
  const loss = applyWasmUnary("Log", picked, backend);
  const l = heapF32(backend, loss, n);
  for (let i = 0; i < n; i++) l[i] = -l[i]; // Neg, in place in the Log kernel's output
  return [loss, picked];
}

/** Gradient: dy [n], picked [n], labels [n] to ((−dy_i) / picked_i) · t_ij. */
function gradKernel(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: unknown }): tf.TensorInfo {
  const { dy, picked, labels } = args.inputs as { dy: tf.TensorInfo; picked: tf.TensorInfo; labels: tf.TensorInfo };
  const { numClasses: k } = args.attrs as unknown as { numClasses: number };
  const backend = args.backend as WasmBackendLike;
  const n = picked.shape[0];
  const dx = backend.makeOutput([n, k], "float32");
  const loops = rowLoops(backend);
  if (loops !== undefined) {
    const offset = (t: tf.TensorInfo) => backend.getMemoryOffset(t.dataId);
    loops.pickedGrad(offset(dy), offset(picked), offset(labels), offset(dx), n, k);
    return dx;
  }
  const d = heapF32(backend, dy, n);
  const p = heapF32(backend, picked, n);
  const y = heapI32(backend, labels, n);
  const out = heapF32(backend, dx, n * k);
  for (let i = 0; i < n; i++) {
    const q = Math.fround(-d[i] / p[i]);
    const row = i * k;
    const label = y[i];
    for (let j = 0; j < k; j++) out[row + j] = q * (j === label ? 1 : 0);
  }
  return dx;
}

function register(): void {
  registerFusedKernels(KERNEL, forwardKernel as unknown as tf.KernelFunc, GRAD_KERNEL, gradKernel as unknown as tf.KernelFunc, {
    inputsToSave: ["yHat", "labels"],
    outputsToSave: [false, true],
    gradFunc: (dys: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
      const dy = Array.isArray(dys) ? dys[0] : dys;
      const [yHat, labels, picked] = saved;
      const attrs = { numClasses: yHat.shape[1] } as unknown as tf.NamedAttrMap;
      return {
        yHat: () => tfEngine().runKernel(GRAD_KERNEL, { dy, picked, labels }, attrs) as tf.Tensor,
        labels: () => tf.zerosLike(labels),
      };
    },
  });
}

/** Uses the fused kernels for crossEntropy on wasm (`true`) or the ops (`false`). */
export function useFusedCrossEntropy(on: boolean): void {
  if (on && getKernel("Log", "wasm") !== undefined) register();
  state.enabled = on && getKernel(KERNEL, "wasm") !== undefined;
}

/**
 * Cross-entropy of probabilities, one value per example: d2l's `crossEntropy` (losses.ts, which
 * documents it), computed by the fused kernel where it applies (see above), else by that helper.
 * @see d2l.cross_entropy (section 3.6.3, defining the loss function)
 */
export function crossEntropy(yHat: tf.Tensor, y: tf.Tensor): tf.Tensor {
  if (!state.enabled || getBackend() !== "wasm" || (tfEngine().state as { gradientDepth: number }).gradientDepth > 1 ||
    yHat.dtype !== "float32" || yHat.rank !== 2 || (yHat.shape[1] ?? 0) < 2 || y.dtype !== "int32" || y.rank !== 1 ||
    y.shape[0] !== yHat.shape[0] || yHat.shape[0] === 0) {
    return bookCrossEntropy(yHat, y);
  }
  const [loss, picked] = tfEngine().runKernel(KERNEL, { yHat, labels: y }) as tf.Tensor[];
  picked.dispose(); // the gradient keeps its own reference (saved), if a tape records this
  return loss;
}
