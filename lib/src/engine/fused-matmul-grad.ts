import * as tf from "@tensorflow/tfjs";

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
    if (activation !== "linear" || preluActivationWeights != null || tf.engine().state.gradientDepth === 0) {
      return original(args);
    }
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
