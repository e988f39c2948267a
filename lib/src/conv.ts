import * as tf from "@tensorflow/tfjs";
import { ArgumentError, checkTensor } from "./validate";

/**
 * Computes the two-dimensional cross-correlation of `X` ([n_h, n_w]) with the kernel `K`
 * ([k_h, k_w]), written out as in the book: each output element is the sum of a k_h x k_w window
 * of `X` times `K`, and the output has shape [n_h - k_h + 1, n_w - k_w + 1]. It is made of
 * slices, products and sums only, so gradients flow through it to `X` and `K` (slowly: one
 * slice per output element; `tf.conv2d` is the fast form).
 * @see d2l.corr2d (section 6.2.1, the cross-correlation operation)
 */
export function corr2d(X: tf.Tensor, K: tf.Tensor): tf.Tensor {
  checkTensor("corr2d", "X", X, 2);
  checkTensor("corr2d", "K", K, 2);
  const [h, w] = K.shape as [number, number];
  const [nh, nw] = X.shape as [number, number];
  if (h > nh || w > nw) {
    throw new ArgumentError("corr2d", "K", `no larger than X ([${X.shape.join(", ")}])`, K);
  }
  return tf.tidy(() => {
    const rows: tf.Tensor[] = [];
    for (let i = 0; i < nh - h + 1; i++) {
      const row: tf.Tensor[] = [];
      for (let j = 0; j < nw - w + 1; j++) {
        row.push(X.slice([i, j], [h, w]).mul(K).sum());
      }
      rows.push(tf.stack(row));
    }
    return tf.stack(rows);
  });
}
