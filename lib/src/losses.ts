import * as tf from "@tensorflow/tfjs";
import { ArgumentError } from "./validate";

/** A loss as d2l's training loops take it: predictions and labels in, one value per example out. */
export type Loss = (yHat: tf.Tensor, y: tf.Tensor) => tf.Tensor;

/**
 * Cross-entropy loss, one value per example: minus the log of the probability that `yHat`
 * (rows of probabilities) gives to the true class in `y` (class indices, int32).
 * The one-hot mask picks that probability, as d2l's `y_hat[range(len(y_hat)), y]`.
 * @see d2l.cross_entropy (section 3.6.3, defining the loss function)
 */
export function crossEntropy(yHat: tf.Tensor, y: tf.Tensor): tf.Tensor {
  const picked = yHat.mul(tf.oneHot(y, yHat.shape[1] as number, 1, 0, "float32")).sum(1);
  return tf.log(picked).neg();
}

/**
 * Cross-entropy computed from logits (scores before softmax), one value per example, with the
 * LogSumExp trick: subtract each row's largest logit ō, so no exponential overflows, and use
 * -log softmax(o)_y = log Σ_k exp(o_k - ō) - (o_y - ō), so no logarithm is taken of a tiny number.
 * Its gradient with respect to the logits, softmax(o) - onehot(y) per example (section 3.4),
 * is given to tfjs directly with tf.customGrad instead of being derived op by op.
 * `labelSmoothing` ε, as PyTorch's `label_smoothing`, mixes ε of the uniform distribution into the
 * targets: 1 - ε + ε/K for the true class, ε/K for each of the others (the gradient is then
 * softmax(o) minus those targets).
 * The counterpart of PyTorch's `nn.CrossEntropyLoss(reduction='none', label_smoothing=ε)`.
 * @see d2l section 3.7.2 (softmax implementation revisited)
 */
export function softmaxCrossEntropy(logits: tf.Tensor, y: tf.Tensor, labelSmoothing = 0): tf.Tensor {
  if (!(labelSmoothing >= 0 && labelSmoothing < 1)) {
    throw new ArgumentError("softmaxCrossEntropy", "labelSmoothing", "a number in [0, 1)", labelSmoothing);
  }
  const numClasses = logits.shape[1] as number;
  // tf.customGrad calls this with the inputs (the logits o) and a function that saves tensors for the gradient
  const lossWithGradient = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [o, save] = args as [tf.Tensor, tf.GradSaveFunc];
    const other = labelSmoothing / numClasses;
    const targets = tf.oneHot(y, numClasses, 1 - labelSmoothing + other, other, "float32");
    const shifted = o.sub(o.max(1, true)); // o_j - ō: every exponent is at most 0
    const expShifted = shifted.exp();
    const partition = expShifted.sum(1, true); // it holds exp(0) = 1, so its log is finite
    save([expShifted.div(partition), targets]); // softmax(o), for the gradient
    return {
      // Σ_j t_j (log Σ_k exp(o_k - ō) - (o_j - ō)), as the targets t sum to 1
      value: partition.log().sub(shifted.mul(targets).sum(1, true)).reshape([-1]),
      // d loss_i / d o_i = softmax(o_i) - t_i, times the gradient dy_i flowing into loss_i
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [probs, targets] = saved;
        return dy.reshape([-1, 1]).mul(probs.sub(targets));
      },
    };
  });
  return lossWithGradient(logits);
}

/**
 * Squared loss, one value per example: (ŷ - y)² / 2, with y reshaped to ŷ's shape.
 * @see d2l.squared_loss (section 3.2.5, defining the loss function)
 */
export function squaredLoss(yHat: tf.Tensor, y: tf.Tensor): tf.Tensor {
  return yHat.sub(y.reshape(yHat.shape)).square().div(2);
}
