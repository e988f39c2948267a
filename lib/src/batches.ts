import type * as tf from "@tensorflow/tfjs";

/** A minibatch: features X and labels y, as d2l's `for X, y in data_iter`. */
export type Batch = [tf.Tensor, tf.Tensor];

/**
 * A re-iterable source of minibatches, the counterpart of a PyTorch DataLoader: each
 * `for (const [X, y] of source)` is one epoch. A batch's tensors live until the loop moves
 * on to the next batch (or ends, or breaks); keep one longer with `X.clone()`.
 * That rule is what lets an epoch run without leaking tensors.
 */
export interface BatchSource extends Iterable<Batch> {
  /** How many examples one epoch visits. */
  readonly numExamples: number;
  /** How many examples a full batch holds (the last one may hold fewer). */
  readonly batchSize: number;
}
