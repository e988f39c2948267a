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

/** A network as d2l's training loops take it: a function of X, or a tfjs layers model. */
export type Net = ((X: tf.Tensor) => tf.Tensor) | tf.LayersModel;

/**
 * Runs a network on X, as PyTorch's `net(X)`: calls a function, or applies a layers model.
 * @see d2l.train_epoch_ch3 (section 3.6.6), which calls `net(X)` for both kinds
 */
export function forward(net: Net, X: tf.Tensor): tf.Tensor {
  return net instanceof tf.LayersModel ? (net.apply(X) as tf.Tensor) : net(X);
}

/**
 * The linear regression model: X w + b (b broadcast over the rows).
 * @see d2l.linreg (section 3.2.4, defining the model)
 */
export function linreg(X: tf.Tensor, w: tf.Tensor, b: tf.Tensor): tf.Tensor {
  return tf.matMul(X, w).add(b);
}
