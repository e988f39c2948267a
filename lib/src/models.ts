import * as tf from "@tensorflow/tfjs";

/**
 * The softmax operation: exponentiate each entry, then divide each row by its sum, so every
 * row is a probability distribution. Written as in the book, so a large logit overflows
 * `exp` (section 3.7 shows the stable form).
 * @see d2l.softmax (section 3.6.2, defining the softmax operation)
 */
export function softmax(X: tf.Tensor): tf.Tensor {
  const XExp = tf.exp(X);
  const partition = XExp.sum(1, true);
  return XExp.div(partition); // broadcasting divides each row by its sum
}

/**
 * A network written as a function of X. It may carry a `training` flag, as d2l's scratch nets
 * of section 4.6 keep `self.training`: the training loops set it (see {@link setTraining}), and the
 * function reads it to drop units only while training. A function without the flag works as well.
 */
export type FunctionNet = ((X: tf.Tensor) => tf.Tensor) & { training?: boolean };

/** A network as d2l's training loops take it: a function of X, or a tfjs layers model. */
export type Net = FunctionNet | tf.LayersModel;

/** Each layers model's mode: tfjs keeps none (it takes `training` with each call), PyTorch keeps one per module. */
const layersModelTraining = new WeakMap<tf.LayersModel, boolean>();

/**
 * Puts a network in training mode (`true`, PyTorch's `net.train()`) or evaluation mode
 * (`false`, `net.eval()`); dropout drops units only in training mode. A layers model then runs
 * with tfjs's `training` flag set accordingly in {@link forward}; a function net has its
 * `training` property set, if it has one, and is left alone otherwise.
 * @see d2l.train_epoch_ch3 and d2l.evaluate_accuracy (section 3.6), which call `net.train()` and `net.eval()`
 */
export function setTraining(net: Net, training: boolean): void {
  if (net instanceof tf.LayersModel) {
    layersModelTraining.set(net, training);
  } else if (typeof net === "function" && "training" in net) {
    net.training = training;
  }
}

/**
 * Whether a network is in training mode (PyTorch's `net.training`). A layers model starts in
 * evaluation mode, as tfjs's `predict` runs; a function net without a `training` flag is never training.
 * @see d2l section 4.6.4 (defining the model), which reads `self.training`
 */
export function isTraining(net: Net): boolean {
  return net instanceof tf.LayersModel ? layersModelTraining.get(net) === true : net.training === true;
}

/**
 * Runs a network on X, as PyTorch's `net(X)`: calls a function, or applies a layers model with
 * tfjs's `training` flag set to the model's mode ({@link setTraining}).
 * @see d2l.train_epoch_ch3 (section 3.6.6), which calls `net(X)` for both kinds
 */
export function forward(net: Net, X: tf.Tensor): tf.Tensor {
  return net instanceof tf.LayersModel ? (net.apply(X, { training: isTraining(net) }) as tf.Tensor) : net(X);
}

/**
 * The linear regression model: X w + b (b broadcast over the rows).
 * @see d2l.linreg (section 3.2.4, defining the model)
 */
export function linreg(X: tf.Tensor, w: tf.Tensor, b: tf.Tensor): tf.Tensor {
  return tf.matMul(X, w).add(b);
}
