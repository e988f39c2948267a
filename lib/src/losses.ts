import * as tf from "@tensorflow/tfjs";

/** A loss as d2l's training loops take it: predictions and labels in, one value per example out. */
export type Loss = (yHat: tf.Tensor, y: tf.Tensor) => tf.Tensor;

/**
 * Cross-entropy loss, one value per example: minus the log of the probability that `yHat`
 * (rows of probabilities) gives to the true class in `y` (class indices, int32).
 * The one-hot mask picks that probability, as d2l's `y_hat[range(len(y_hat)), y]`.
 * @see d2l.cross_entropy (section 3.6.3, defining the loss function)
 */
export function crossEntropy(yHat: tf.Tensor, y: tf.Tensor): tf.Tensor {
  const picked = yHat.mul(tf.oneHot(y, yHat.shape[1] as number)).sum(1);
  return tf.log(picked).neg();
}

/**
 * Cross-entropy computed from logits (scores before softmax), one value per example, with
 * the LogSumExp trick: log softmax(o)_j = o_j - log sum_k exp(o_k), where tf.logSumExp
 * subtracts the row maximum before exponentiating, so large logits never overflow.
 * Its gradient with respect to the logits, softmax(o) - onehot(y) per example (section 3.4),
 * is given to tfjs directly with tf.customGrad: autodiff through logSumExp takes some twenty
 * small ops, one of them slow on the wasm backend.
 * The counterpart of PyTorch's `nn.CrossEntropyLoss(reduction='none')`.
 * @see d2l section 3.7.2 (softmax implementation revisited)
 */
export function softmaxCrossEntropy(logits: tf.Tensor, y: tf.Tensor): tf.Tensor {
  // tf.customGrad calls this with the inputs (the logits o) and a function that saves tensors for the gradient
  const lossWithGradient = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [o, save] = args as [tf.Tensor, tf.GradSaveFunc];
    const oneHot = tf.oneHot(y, o.shape[1] as number);
    const logProbs = o.sub(tf.logSumExp(o, 1, true));
    save([logProbs, oneHot]);
    return {
      value: logProbs.mul(oneHot).sum(1).neg(),
      // d loss_i / d o_i = softmax(o_i) - onehot(y_i), times the gradient dy_i flowing into loss_i
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [logProbs, oneHot] = saved;
        return dy.expandDims(1).mul(logProbs.exp().sub(oneHot));
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
