import * as tf from "@tensorflow/tfjs";
import { checkInRange, checkNonNegative, checkTensor } from "./validate";

/**
 * Dropout, as d2l writes it from scratch: each entry of X is zeroed with probability `dropout`
 * and the others are divided by 1 - dropout, so that every entry keeps its expectation.
 * A dropout of 0 returns X itself, and 1 returns zeros. Call it only while training.
 * @see d2l.dropout_layer (section 4.6.4, implementation from scratch)
 */
export function dropoutLayer(X: tf.Tensor, dropout: number): tf.Tensor {
  checkTensor("dropoutLayer", "X", X);
  checkInRange("dropoutLayer", "dropout", dropout, 0, 1);
  // In this case every element is dropped
  if (dropout === 1) return tf.zerosLike(X);
  // In this case every element is kept
  if (dropout === 0) return X;
  return tf.tidy(() => {
    const mask = tf.randomUniform(X.shape).greater(dropout).cast("float32");
    return mask.mul(X).div(1 - dropout);
  });
}

/**
 * The L2 norm penalty of weight decay: λ times half the sum of the squared entries of w,
 * λ‖w‖²/2, with λ (`lambd`) 1 unless given. Adding it to the loss pulls the weights towards zero.
 * @see d2l.l2_penalty (section 4.5.2, implementation from scratch)
 */
export function l2Penalty(w: tf.Tensor, lambd = 1): tf.Scalar {
  checkTensor("l2Penalty", "w", w);
  checkNonNegative("l2Penalty", "lambd", lambd);
  return tf.tidy(() => w.square().sum().mul(lambd / 2));
}
