import * as tf from "@tensorflow/tfjs";
import { type WasmBackendLike, applyWasmUnary, heapF32, heapI32, registerFusedKernels } from "./wasm-kernels";
import { floatBits, rowLoops } from "./row-loops";
import { softmaxCrossEntropy as bookSoftmaxCrossEntropy } from "../losses";
import { getBackend, getKernel, tfEngine } from "./tf-direct";
import { processState } from "./process-state";

/**
 * Replaces the ops of `softmaxCrossEntropy` (losses.ts: a `tf.customGrad` of OneHot, Max, Sub, Exp,
 * Sum, RealDiv, Log, Mul, Sum, Sub, Reshape, and Reshape, Sub, Mul for its gradient, with two
 * clones saved for the gradient) on the wasm backend by one kernel forward and one for the gradient,
 * so a training step of 3.7's and 4.3's models passes through tfjs's engine (scopes, tape, tracking:
 * ~5-10 µs an op) about 14 times fewer. The loss is the last thing a step computes before its
 * gradient, and on softmax regression its ops were a third of the step's kernel calls.
 *
 * Same floats, bit for bit: the kernel computes what those ops computed, in their order, each
 * operation rounded to float32 (float64 arithmetic then `Math.fround`, exact for + − × ÷), and runs
 * the backend's own Exp and Log kernels for the exponentials and the logarithm (test/unit/fused-softmax-ce.test.ts
 * compares both outputs and the gradient with the ops' value by value). For each row i of the
 * logits o and targets t (one-hot, or smoothed: 1 − ε + ε/K and ε/K, as float32):
 *   m = max_j o_ij; s_ij = o_ij − m; e_ij = exp(s_ij); Z_i = Σ_j e_ij (in order j = 0..K−1);
 *   probs_ij = e_ij / Z_i; loss_i = log Z_i − Σ_j s_ij·t_ij; gradient dy_i · (probs_ij − t_ij).
 *
 * How it is reached: `d2l.softmaxCrossEntropy` (lib/src/index.ts) and trainCh6 are {@link softmaxCrossEntropy}
 * below, which runs the fused kernel where it applies and the book's helper of losses.ts otherwise; the
 * helper itself stays as the book writes it (a notebook's `// @save` copy must match it).
 * Where it applies: the wasm backend, float32 logits [n, K], int32 labels [n] (what d2l's data
 * iterators give), outside nested gradient tapes; anything else (fewer than 2 classes, which tf.oneHot rejects, among it) takes the ops. Switched on by `useSpeedups(true)`, off (the ops
 * again) by `useSpeedups(false)`.
 */

const KERNEL = "D2lSoftmaxCrossEntropy";
const GRAD_KERNEL = "D2lSoftmaxCrossEntropyGrad";

/** On or off, shared by every copy of this module (tsx and tslab can load a lib module twice). */
const state = processState("d2l.useFusedSoftmaxCrossEntropy", () => ({ enabled: false }));

interface Attrs {
  labelSmoothing: number;
}

/** The targets' values for the true class and the others, as tf.oneHot stores them (float32). */
function targetValues(labelSmoothing: number, numClasses: number): [number, number] {
  const other = labelSmoothing / numClasses;
  return [Math.fround(1 - labelSmoothing + other), Math.fround(other)];
}

/** Forward: outputs the loss [n] and softmax(o) [n, K] (saved for the gradient). */
function forwardKernel(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: unknown }): tf.TensorInfo[] {
  const { logits, labels } = args.inputs as { logits: tf.TensorInfo; labels: tf.TensorInfo };
  const { labelSmoothing } = args.attrs as unknown as Attrs;
  const backend = args.backend as WasmBackendLike;
  const [n, k] = logits.shape;
  const size = n * k;
  const [on, off] = targetValues(labelSmoothing, k);
  const loss = backend.makeOutput([n], "float32");
  const probs = backend.makeOutput([n, k], "float32");
  const partition = backend.makeOutput([n], "float32");
  const loops = rowLoops(backend);
  if (loops !== undefined) {
    // the same passes as below, as WebAssembly (row-loops.ts)
    const offset = (x: tf.TensorInfo) => backend.getMemoryOffset(x.dataId);
    loops.shift(offset(logits), offset(probs), n, k);
    const e = applyWasmUnary("Exp", probs, backend);
    loops.sum(offset(e), offset(partition), n, k);
    const logPartition = applyWasmUnary("Log", partition, backend);
    loops.crossEntropyFinish(offset(probs), offset(e), offset(partition), offset(logPartition), offset(labels), offset(loss), n, k, floatBits(on), floatBits(off));
    for (const t of [e, partition, logPartition]) backend.disposeData(t.dataId);
    return [loss, probs];
  }
  // s = o − m into probs' buffer (the Exp kernel's input), then e = exp(s)
  {
    const o = heapF32(backend, logits, size);
    const s = heapF32(backend, probs, size);
    for (let i = 0; i < n; i++) {
      const row = i * k;
      let m = o[row];
      for (let j = 1; j < k; j++) if (o[row + j] > m) m = o[row + j];
      for (let j = 0; j < k; j++) s[row + j] = o[row + j] - m;
    }
  }
  const e = applyWasmUnary("Exp", probs, backend);
  {
    const ev = heapF32(backend, e, size);
    const z = heapF32(backend, partition, n);
    for (let i = 0; i < n; i++) {
      let sum = 0;
      for (let j = i * k, end = j + k; j < end; j++) sum = Math.fround(sum + ev[j]);
      z[i] = sum;
    }
  }
  const logPartition = applyWasmUnary("Log", partition, backend);
  // Views made after the last allocation (a grow of the memory detaches older ones).
  const s = heapF32(backend, probs, size);
  const ev = heapF32(backend, e, size);
  const z = heapF32(backend, partition, n);
  const logZ = heapF32(backend, logPartition, n);
  const y = heapI32(backend, labels, n);
  const l = heapF32(backend, loss, n);
  for (let i = 0; i < n; i++) {
    const row = i * k;
    const label = y[i];
    let picked = 0; // Σ_j s_ij·t_ij, in order
    for (let j = 0; j < k; j++) picked = Math.fround(picked + Math.fround(s[row + j] * (j === label ? on : off)));
    l[i] = Math.fround(logZ[i] - picked);
    const zi = z[i];
    for (let j = 0; j < k; j++) s[row + j] = ev[row + j] / zi; // probs overwrite s (read above)
  }
  for (const t of [e, partition, logPartition]) backend.disposeData(t.dataId);
  return [loss, probs];
}

/** Gradient: dy [n], probs [n, K], labels [n] to dy_i · (probs_ij − t_ij). */
function gradKernel(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: unknown }): tf.TensorInfo {
  const { dy, probs, labels } = args.inputs as { dy: tf.TensorInfo; probs: tf.TensorInfo; labels: tf.TensorInfo };
  const { labelSmoothing } = args.attrs as unknown as Attrs;
  const backend = args.backend as WasmBackendLike;
  const [n, k] = probs.shape;
  const [on, off] = targetValues(labelSmoothing, k);
  const dx = backend.makeOutput([n, k], "float32");
  const loops = rowLoops(backend);
  if (loops !== undefined) {
    const offset = (x: tf.TensorInfo) => backend.getMemoryOffset(x.dataId);
    loops.crossEntropyGrad(offset(dy), offset(probs), offset(labels), offset(dx), n, k, floatBits(on), floatBits(off));
    return dx;
  }
  const d = heapF32(backend, dy, n);
  const p = heapF32(backend, probs, n * k);
  const y = heapI32(backend, labels, n);
  const out = heapF32(backend, dx, n * k);
  for (let i = 0; i < n; i++) {
    const row = i * k;
    const label = y[i];
    const di = d[i];
    for (let j = 0; j < k; j++) out[row + j] = di * Math.fround(p[row + j] - (j === label ? on : off));
  }
  return dx;
}

/** Registers the two kernels and the gradient once. */
function register(): void {
  registerFusedKernels(KERNEL, forwardKernel as unknown as tf.KernelFunc, GRAD_KERNEL, gradKernel as unknown as tf.KernelFunc, {
    inputsToSave: ["labels"],
    outputsToSave: [false, true],
    gradFunc: (dys: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: tf.NamedAttrMap) => {
      const dy = Array.isArray(dys) ? dys[0] : dys;
      const [labels, probs] = saved;
      return {
        logits: () => tfEngine().runKernel(GRAD_KERNEL, { dy, probs, labels }, attrs) as tf.Tensor,
        labels: () => tf.zerosLike(labels),
      };
    },
  });
}

/** Uses the fused kernels for softmaxCrossEntropy on wasm (`true`) or the ops (`false`). */
export function useFusedSoftmaxCrossEntropy(on: boolean): void {
  if (on && getKernel("Exp", "wasm") !== undefined && getKernel("Log", "wasm") !== undefined) register();
  state.enabled = on && getKernel(KERNEL, "wasm") !== undefined;
}

/**
 * softmaxCrossEntropy(logits, y, labelSmoothing) as one kernel, or undefined where the fused kernel
 * does not apply (another backend, other dtypes or shapes, the speed-ups off): the caller then runs the ops.
 */
export function fusedSoftmaxCrossEntropy(logits: tf.Tensor, y: tf.Tensor, labelSmoothing: number): tf.Tensor | undefined {
  // Nested tapes (a gradient of a gradient) take the ops: the gradient kernel has no gradient of its own.
  if (!state.enabled || getBackend() !== "wasm" || (tfEngine().state as { gradientDepth: number }).gradientDepth > 1 || logits.dtype !== "float32" || logits.rank !== 2 || y.dtype !== "int32" ||
    y.rank !== 1 || y.shape[0] !== logits.shape[0] || logits.shape[0] === 0 || (logits.shape[1] ?? 0) < 2) {
    return undefined;
  }
  const attrs: Attrs = { labelSmoothing };
  const [loss, probs] = tfEngine().runKernel(KERNEL, { logits, labels: y }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
  probs.dispose(); // the gradient keeps its own reference (saved), if a tape records this
  return loss;
}

/**
 * Cross-entropy from logits, one value per example: d2l's `softmaxCrossEntropy` (losses.ts, which
 * documents it), computed by the fused kernel where it applies (see above), else by that helper.
 * @see d2l section 3.7.2 (softmax implementation revisited)
 */
export function softmaxCrossEntropy(logits: tf.Tensor, y: tf.Tensor, labelSmoothing = 0): tf.Tensor {
  const valid = labelSmoothing >= 0 && labelSmoothing < 1; // else the helper says what is wrong
  return (valid ? fusedSoftmaxCrossEntropy(logits, y, labelSmoothing) : undefined) ?? bookSoftmaxCrossEntropy(logits, y, labelSmoothing);
}
