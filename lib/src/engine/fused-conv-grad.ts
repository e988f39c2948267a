import * as tf from "@tensorflow/tfjs";

/**
 * tfjs-core 4.x computes `tf.fused.conv2d` (what `tf.layers.conv2d` calls, with its bias) through
 * `tf.customGrad`, whose gradient function returns the gradients of x, the filter and the bias all
 * at once: a convolution fed by the data (LeNet's first layer) computes an input gradient nothing
 * uses, every step (on wasm, tfjs's Conv2DBackpropInput is a scalar loop: about a tenth of a LeNet
 * step). Plain `tf.conv2d` and `tf.add` have lazy gradients, so while gradients are being recorded a
 * linear fused convolution is computed as those two ops, as fused-matmul-grad.ts does for dense
 * layers (and tfjs itself does for other activations then); outside of gradients it stays one fused
 * kernel. Every backend.
 */

type FusedConv2d = typeof tf.fused.conv2d;
type Marked = FusedConv2d & { [MARK]?: FusedConv2d };

/** Marks our wrapper (and holds the original); `Symbol.for` so that a second copy of this module sees it. */
const MARK = Symbol.for("d2l.lazyFusedConv2dGradient");

/** tfjs-core's `fused` namespace object, a plain object in its CommonJS build. */
const fused = tf.fused as { conv2d: Marked };

function lazyGradientConv2d(original: FusedConv2d): Marked {
  const wrapper = ((args: Parameters<FusedConv2d>[0]) => {
    const { x, filter, strides, pad, dataFormat = "NHWC", dilations = [1, 1], dimRoundingMode, bias, preluActivationWeights } = args;
    // tf.layers.conv2d passes activation null for the activations it applies itself (sigmoid): tfjs reads null as linear
    const activation = args.activation ?? "linear";
    if (activation !== "linear" || preluActivationWeights != null || tf.engine().state.gradientDepth === 0) return original(args);
    const y = tf.conv2d(x as tf.Tensor4D, filter, strides, pad, dataFormat, dilations, dimRoundingMode);
    if (bias == null) return y;
    const withBias = tf.add(y, bias) as tf.Tensor4D;
    y.dispose();
    return withBias;
  }) as Marked;
  wrapper[MARK] = original;
  return wrapper;
}

/**
 * Makes `tf.fused.conv2d` (and so `tf.layers.conv2d`) compute only the gradients asked for.
 * Idempotent; returns false where tfjs's `fused` namespace cannot be changed (an ES module build).
 * Not in d2l: it works around tfjs-core 4.x, see lib/src/engine/fused-conv-grad.ts.
 */
export function useLazyFusedConv2dGradient(): boolean {
  if (fused.conv2d[MARK] !== undefined) return true;
  try {
    fused.conv2d = lazyGradientConv2d(fused.conv2d);
  } catch {
    return false;
  }
  return fused.conv2d[MARK] !== undefined;
}

/** Puts tfjs's own `tf.fused.conv2d` back (for tests and benchmarks); returns whether it was replaced. */
export function restoreLazyFusedConv2d(): boolean {
  const original = fused.conv2d[MARK];
  if (original === undefined) return false;
  fused.conv2d = original;
  return true;
}
