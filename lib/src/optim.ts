import * as tf from "@tensorflow/tfjs";
import { checkFinite, checkPositiveInt } from "./validate";

/**
 * The gradients computed by the last {@link backward}, by variable name. tfjs tensors carry no
 * `.grad` as PyTorch's do (autodiff returns the gradients instead), so d2l keeps them here,
 * which lets training loops read as the book's: `backward(...)`, then `updater(batchSize)`.
 */
const gradients = new Map<string, tf.Tensor>();

/**
 * Computes the gradient of the scalar `f()` with respect to `params` (by default every
 * trainable variable `f` uses) with `tf.variableGrads`, and keeps each one where
 * {@link gradOf} and {@link sgd} find it: what PyTorch's `l.sum().backward()` does to each
 * parameter's `.grad`. A new call replaces the stored gradients rather than adding to them;
 * d2l zeroes them after every step, so the two agree. `f`'s own tensors are freed.
 * @see d2l section 3.2.7 (training): `l.sum().backward()`
 */
export function backward(f: () => tf.Scalar, params?: tf.Variable[]): void {
  // In one tf.tidy: a run cut off by an interrupt, even while storing the gradients, leaves it open, which tells d2l to clean up.
  tf.tidy(() => {
    const { value, grads } = tf.variableGrads(f, params);
    value.dispose();
    for (const [name, grad] of Object.entries(grads)) {
      gradients.get(name)?.dispose();
      gradients.set(name, tf.keep(grad));
    }
  });
}

/**
 * The gradient {@link backward} computed for `param`, as PyTorch's `param.grad`.
 * @see d2l section 3.2.6 (defining the optimization algorithm): `param.grad`
 */
export function gradOf(param: tf.Variable): tf.Tensor {
  const grad = gradients.get(param.name);
  if (grad === undefined) {
    throw new Error(`gradOf: variable "${param.name}" has no gradient; compute one first with backward(() => loss)`);
  }
  return grad;
}

/**
 * Frees the gradient of `param`, as PyTorch's `param.grad.zero_()`.
 * @see d2l section 3.2.6 (defining the optimization algorithm): `param.grad.zero_()`
 */
export function zeroGrad(param: tf.Variable): void {
  gradients.get(param.name)?.dispose();
  gradients.delete(param.name);
}

/**
 * Minibatch stochastic gradient descent: each parameter steps by `lr` against its gradient
 * from {@link backward}, averaged over the batch (that gradient is of the summed loss, hence
 * the division by `batchSize`); then the gradient is freed. Updates the variables in place
 * and leaves no tensor behind. A step of d2l's training loop:
 *
 * ```ts
 * backward(() => squaredLoss(linreg(X, w, b), y).sum());
 * sgd([w, b], lr, batchSize);
 * ```
 * @see d2l.sgd (section 3.2.6, defining the optimization algorithm)
 */
export function sgd(params: tf.Variable[], lr: number, batchSize: number): void {
  checkFinite("sgd", "lr", lr);
  checkPositiveInt("sgd", "batchSize", batchSize);
  tf.tidy(() => {
    for (const param of params) {
      param.assign(param.sub(gradOf(param).mul(lr / batchSize)));
      zeroGrad(param);
    }
  });
}
