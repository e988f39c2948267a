import * as tf from "@tensorflow/tfjs";
import { type WasmBackendLike, applyWasmUnary, heapF32, registerFusedKernels } from "./wasm-kernels";
import { softmax as bookSoftmax } from "../models";
import { rowLoops } from "./row-loops";
import { getBackend, getKernel, tfEngine } from "./tf-direct";
import { processState } from "./process-state";

/**
 * Replaces the ops of 3.6's `softmax` (models.ts: Exp, Sum, RealDiv, and for their gradient
 * RealDiv, Multiply, Sum, Reshape, Square, RealDiv, Neg, Cast, Cast, a tensor of ones, Multiply, Add,
 * Multiply, with 3 clones saved) on the wasm backend by one kernel forward and one for the gradient,
 * so a step of softmax regression from scratch passes through tfjs's engine about 14 times fewer
 * (each pass ~4-8 µs of scopes, tape and tracking besides the kernel: with them, 3.6's step ran
 * ~40 kernels where 3.7's runs ~20).
 *
 * Same floats, bit for bit: the backend's own Exp kernel computes E = exp(X); the rest is float32
 * arithmetic in tfjs's order (float64 then `Math.fround`, exact for + − × ÷). For each row i:
 *   S_i = Σ_j E_ij (from +0, in order j = 0..K−1, as the wasm Sum adds), Y_ij = E_ij / S_i;
 * and the gradient tfjs's chain gives for dY: RealDiv's, dA_ij = dY_ij / S_i and
 * dS_i = −((Σ_j dY_ij·E_ij) / S_i²); Sum's, dS_i·1 for every j; their sum dE_ij = dA_ij + dS_i
 * (the order tfjs accumulates them); Exp's, dX_ij = dE_ij·E_ij. So overflow (exp(1000) = Inf, then
 * Inf / Inf = NaN, as 3.6's exercise shows) and NaN come out where the ops put them;
 * test/unit/fused-softmax.test.ts compares output and gradient with the ops value by value.
 *
 * How it is reached: `d2l.softmax` (lib/src/index.ts) is {@link softmax} below, which runs the fused
 * kernels where they apply and models.ts's helper otherwise; the helper itself stays as the book
 * writes it (3.6 defines its own copy, which runs the ops). Where: the wasm backend, a float32
 * matrix [n, K] (n, K ≥ 1), outside nested gradient tapes. `useSpeedups(false)` switches it off.
 */

const KERNEL = "D2lSoftmax";
const GRAD_KERNEL = "D2lSoftmaxGrad";

/** On or off, shared by every copy of this module (tsx and tslab can load a lib module twice). */
const state = processState("d2l.useFusedSoftmax", () => ({ enabled: false }));

/** Forward: X [n, K] to Y = softmax(X) [n, K], and E = exp(X) [n, K] and S [n, 1] (both saved for the gradient). */
function forwardKernel(args: { inputs: tf.NamedTensorInfoMap; backend: unknown }): tf.TensorInfo[] {
  const { x } = args.inputs as { x: tf.TensorInfo };
  const backend = args.backend as WasmBackendLike;
  const [n, k] = x.shape;
  const e = applyWasmUnary("Exp", x, backend);
  const partition = backend.makeOutput([n, 1], "float32");
  const y = backend.makeOutput([n, k], "float32");
  const loops = rowLoops(backend);
  if (loops !== undefined) {
    // the same passes as below, as WebAssembly (row-loops.ts)
    const offset = (t: tf.TensorInfo) => backend.getMemoryOffset(t.dataId);
    loops.sum(offset(e), offset(partition), n, k);
    loops.divide(offset(e), offset(partition), offset(y), n, k);
    return [y, e, partition];
  }
  // Views made after the last allocation (a grow of the memory detaches older ones).
  const ev = heapF32(backend, e, n * k);
  const s = heapF32(backend, partition, n);
  const out = heapF32(backend, y, n * k);
  for (let i = 0; i < n; i++) {
    const row = i * k;
    let sum = 0;
    for (let j = row, end = row + k; j < end; j++) sum = Math.fround(sum + ev[j]);
    s[i] = sum;
    for (let j = row, end = row + k; j < end; j++) out[j] = ev[j] / sum;
  }
  return [y, e, partition];
}

/** Gradient: dY [n, K], E [n, K], S [n, 1] to dX [n, K] (see the file's comment). */
function gradKernel(args: { inputs: tf.NamedTensorInfoMap; backend: unknown }): tf.TensorInfo {
  const { dy, e, s } = args.inputs as { dy: tf.TensorInfo; e: tf.TensorInfo; s: tf.TensorInfo };
  const backend = args.backend as WasmBackendLike;
  const [n, k] = e.shape;
  const dx = backend.makeOutput([n, k], "float32");
  const loops = rowLoops(backend);
  if (loops !== undefined) {
    const offset = (t: tf.TensorInfo) => backend.getMemoryOffset(t.dataId);
    loops.softmaxGrad(offset(dy), offset(e), offset(s), offset(dx), n, k);
    return dx;
  }
  const d = heapF32(backend, dy, n * k);
  const ev = heapF32(backend, e, n * k);
  const sv = heapF32(backend, s, n);
  const out = heapF32(backend, dx, n * k);
  for (let i = 0; i < n; i++) {
    const row = i * k;
    const si = sv[i];
    let dot = 0; // Σ_j dY_ij·E_ij, in order
    for (let j = row, end = row + k; j < end; j++) dot = Math.fround(dot + Math.fround(d[j] * ev[j]));
    const dS = -Math.fround(dot / Math.fround(si * si));
    for (let j = row, end = row + k; j < end; j++) out[j] = Math.fround(Math.fround(d[j] / si) + dS) * ev[j];
  }
  return dx;
}

/** Registers the two kernels and the gradient once. */
function register(): void {
  registerFusedKernels(KERNEL, forwardKernel as unknown as tf.KernelFunc, GRAD_KERNEL, gradKernel as unknown as tf.KernelFunc, {
    outputsToSave: [false, true, true],
    gradFunc: (dys: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
      const dy = Array.isArray(dys) ? dys[0] : dys;
      const [e, s] = saved;
      return { x: () => tfEngine().runKernel(GRAD_KERNEL, { dy, e, s }) as tf.Tensor };
    },
  });
}

/** Uses the fused kernels for d2l.softmax on wasm (`true`) or the ops (`false`). */
export function useFusedSoftmax(on: boolean): void {
  if (on && getKernel("Exp", "wasm") !== undefined) register();
  state.enabled = on && getKernel(KERNEL, "wasm") !== undefined;
}

/**
 * The softmax operation, row by row: d2l's `softmax` (models.ts, which documents it), computed by the
 * fused kernels where they apply (see above), else by that helper.
 * @see d2l.softmax (section 3.6.2, defining the softmax operation)
 */
export function softmax(X: tf.Tensor): tf.Tensor {
  if (!state.enabled || getBackend() !== "wasm" || (tfEngine().state as { gradientDepth: number }).gradientDepth > 1 ||
    X.dtype !== "float32" || X.rank !== 2 || X.shape[0] === 0 || X.shape[1] === 0) {
    return bookSoftmax(X);
  }
  const [y, e, s] = tfEngine().runKernel(KERNEL, { x: X }) as tf.Tensor[];
  // the gradient keeps its own references (saved), if a tape records this
  e.dispose();
  s.dispose();
  return y;
}
