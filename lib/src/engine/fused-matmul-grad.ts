import * as tf from "@tensorflow/tfjs";
import { getBackend, getKernel, tfEngine } from "./tf-direct";
import { processState } from "./process-state";

/**
 * tfjs-core 4.x computes `tf.fused.matMul` (what `tf.layers.dense` calls) through `tf.customGrad`,
 * whose gradient function returns the gradients of A, B and the bias all at once: a dense layer
 * fed by the data multiplies dY·Wᵀ every step for an input gradient nothing uses, one product of
 * the three (about 12% of a softmax regression epoch on wasm). Its plain `tf.matMul` and `tf.add`
 * have lazy gradients: backpropagation asks only for those that lead to a variable. While
 * gradients are being recorded, a linear fused product is therefore computed as those two ops,
 * exactly what tfjs itself does for the other activations then; outside of gradients (evaluation,
 * prediction) it stays one fused kernel. Installed for every backend: the saving is a product,
 * the cost one more small op.
 */

type FusedMatMul = typeof tf.fused.matMul;
type MarkedFusedMatMul = FusedMatMul & { [MARK]?: FusedMatMul };

/** Marks our wrapper (and holds the original); `Symbol.for` so that a second copy of this module sees it. */
const MARK = Symbol.for("d2l.lazyFusedMatMulGradient");

/** tfjs-core's `fused` namespace object, a plain object in its CommonJS build (frozen in an ES module build). */
const fused = tf.fused as { matMul: MarkedFusedMatMul };

function lazyGradientMatMul(original: FusedMatMul): MarkedFusedMatMul {
  const wrapper: MarkedFusedMatMul = (args) => {
    const { a, b, transposeA = false, transposeB = false, bias, activation = "linear", preluActivationWeights } = args;
    if (activation === "relu" && preluActivationWeights == null && tfEngine().state.gradientDepth > 0) {
      // tfjs-core's unfused path, relu(X·W + b), with X·W + b as D2lDenseLinear (4.3's hidden layer)
      const dense = denseLinear(a, b, transposeA, transposeB, bias);
      if (dense === undefined) return original(args);
      const y = tf.relu(dense);
      dense.dispose();
      return y;
    }
    if (activation !== "linear" || preluActivationWeights != null || tfEngine().state.gradientDepth === 0) {
      return original(args);
    }
    const dense = denseLinear(a, b, transposeA, transposeB, bias);
    if (dense !== undefined) return dense;
    const product = tf.matMul(a, b, transposeA, transposeB);
    if (bias == null) return product;
    const withBias = tf.add(product, bias);
    product.dispose();
    return withBias;
  };
  wrapper[MARK] = original;
  return wrapper;
}

/**
 * On wasm, a dense layer's X·W + b while gradients are recorded (3.7's and 4.3's output layers, every
 * training step, and under the relu of 4.3's hidden layer, which tfjs-core computes unfused while
 * recording as relu(X·W + b): then relu(D2lDenseLinear)) is one kernel, D2lDenseLinear, instead of the
 * two ops above: the registered
 * `_FusedMatMul` kernel with the bias (our product kernels add the bias to each finished sum, as
 * the Add op does: the same floats), with the two ops' gradients, as lazy: dX = dY·Wᵀ only where X
 * needs one, dW = Xᵀ·dY, db = dY summed over the rows (the Add's gradient without its two Reshapes).
 * That is one op and one tape node fewer forward and two Reshapes fewer backward, a step.
 * Where: the wasm backend, float32 X [n, in] and W [in, out] untransposed, a bias [out], one gradient
 * tape; `useDenseKernel(false)` (for comparisons) or `useSpeedups(false)` switches it off.
 */
const DENSE = "D2lDenseLinear";
const denseState = processState("d2l.useDenseKernel", () => ({ enabled: true }));

/** Whether D2lDenseLinear runs where it applies (default true). */
export function useDenseKernel(on: boolean): void {
  denseState.enabled = on;
}

function registerDense(): boolean {
  if (getKernel(DENSE, "wasm") !== undefined) return true;
  if (getKernel(tf._FusedMatMul, "wasm") === undefined) return false;
  tf.registerKernel({
    kernelName: DENSE,
    backendName: "wasm",
    // the _FusedMatMul registered at the time of the call (ours, or tfjs's when ours is off), on
    // 3-D views of X and W as tf.fused.matMul passes them (tfjs's kernel reads the batch from axis 0)
    kernelFunc: (args) => {
      const { a, b, bias } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo; bias: tf.TensorInfo };
      const out = getKernel(tf._FusedMatMul, "wasm")!.kernelFunc({
        inputs: { a: { ...a, shape: [1, ...a.shape] }, b: { ...b, shape: [1, ...b.shape] }, bias },
        backend: args.backend,
        attrs: { transposeA: false, transposeB: false, activation: "linear", leakyreluAlpha: 0.2 } as unknown as tf.NamedAttrMap,
      }) as tf.TensorInfo;
      out.shape = [a.shape[0], b.shape[1]];
      return out;
    },
  });
  tf.registerGradient({
    kernelName: DENSE,
    inputsToSave: ["a", "b"],
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
      const g = Array.isArray(dy) ? dy[0] : dy;
      const [a, b] = saved;
      // tfjs's MatMul gradient (transposeA and transposeB false) and Add's for a bias over the rows
      return { a: () => tf.matMul(g, b, false, true), b: () => tf.matMul(a, g, true, false), bias: () => tf.sum(g, 0) };
    },
  });
  return true;
}

/** X·W + b as D2lDenseLinear where it applies (see above), else undefined. */
function denseLinear(a: unknown, b: unknown, transposeA: boolean, transposeB: boolean, bias: unknown): tf.Tensor | undefined {
  if (!denseState.enabled || transposeA || transposeB || getBackend() !== "wasm" || tfEngine().state.gradientDepth !== 1) return undefined;
  if (!(a instanceof tf.Tensor && b instanceof tf.Tensor && bias instanceof tf.Tensor)) return undefined;
  if (a.rank !== 2 || b.rank !== 2 || bias.rank !== 1 || a.shape[1] !== b.shape[0] || bias.shape[0] !== b.shape[1]) return undefined;
  if (a.dtype !== "float32" || b.dtype !== "float32" || bias.dtype !== "float32" || !registerDense()) return undefined;
  return tfEngine().runKernel(DENSE, { a, b, bias }) as tf.Tensor;
}

/**
 * Makes `tf.fused.matMul` (and so `tf.layers.dense`) compute only the gradients asked for.
 * Idempotent; returns false where tfjs's `fused` namespace cannot be changed (an ES module build).
 * Not in d2l: it works around tfjs-core 4.x, see lib/src/fused-matmul-grad.ts.
 */
export function useLazyFusedMatMulGradient(): boolean {
  if (fused.matMul[MARK] !== undefined) return true;
  try {
    fused.matMul = lazyGradientMatMul(fused.matMul);
  } catch {
    return false;
  }
  return fused.matMul[MARK] !== undefined;
}

/** Puts tfjs's own `tf.fused.matMul` back (for tests and benchmarks); returns whether it was replaced. */
export function restoreFusedMatMul(): boolean {
  const original = fused.matMul[MARK];
  if (original === undefined) return false;
  fused.matMul = original;
  return true;
}
