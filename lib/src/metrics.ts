import * as tf from "@tensorflow/tfjs";
import { Batch } from "./batches";
import { Loss } from "./losses";
import { Net, forward, setTraining } from "./models";
import { ArgumentError } from "./validate";

/**
 * Sums over n variables. A number is added at once; a tensor (a batch's loss, its count of
 * correct predictions) is summed on the device and kept there, and the kept sums are added up
 * and read back only when the total is read, so a training loop never waits for the device just
 * to keep score, nor spends more than one small op per value on it.
 * @see d2l.Accumulator (section 3.6.5, classification accuracy)
 */
export class Accumulator {
  private data: number[];
  private pending: tf.Tensor[][];

  constructor(n: number) {
    if (!Number.isInteger(n) || n < 1) throw new Error(`Accumulator: n must be a positive integer; got ${n}`);
    this.data = new Array<number>(n).fill(0);
    this.pending = Array.from({ length: n }, () => []);
  }

  /** Adds `args[i]` to the i-th sum; a tensor adds the sum of its entries. */
  add(...args: (number | tf.Tensor)[]): void {
    if (args.length !== this.data.length) {
      throw new Error(`Accumulator.add: expected ${this.data.length} values; got ${args.length}`);
    }
    args.forEach((b, i) => {
      if (typeof b === "number") {
        this.data[i] += b;
      } else {
        const sums = this.pending[i];
        sums.push(tf.keep(b.sum()));
        if (sums.length === 1024) sums.push(this.total(sums.splice(0))); // keeps the list short in long loops
      }
    });
  }

  /** Sets every sum back to zero (and frees the tensors it held). */
  reset(): void {
    this.pending.forEach((sums) => tf.dispose(sums.splice(0)));
    this.data.fill(0);
  }

  /** The i-th sum, d2l's `metric[i]`: adds up the tensor sums on the device and reads the total back once. */
  get(i: number): number {
    const sums = this.pending[i];
    if (sums.length > 0) {
      const total = this.total(sums.splice(0));
      this.data[i] += total.dataSync()[0];
      total.dispose();
    }
    return this.data[i];
  }

  /** One float32 scalar holding the sum of `sums`, which are freed. */
  private total(sums: tf.Tensor[]): tf.Tensor {
    const total = tf.keep(tf.tidy(() => tf.addN(sums.map((s) => s.cast("float32")))));
    tf.dispose(sums);
    return total;
  }
}

/**
 * The number of correct predictions, as a scalar tensor: it stays on the device until read
 * (`.dataSync()[0]`), so it can be summed over batches without waiting. `yHat` holds one row
 * of scores per example (the highest is the prediction) or the predicted classes.
 * @see d2l.accuracy (section 3.6.5, classification accuracy)
 */
export function accuracy(yHat: tf.Tensor, y: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    const predicted = yHat.rank > 1 && (yHat.shape[1] as number) > 1 ? yHat.argMax(1) : yHat;
    const cmp = predicted.cast(y.dtype).equal(y);
    return cmp.cast("float32").sum();
  });
}

/**
 * Computes the accuracy of a model on a dataset, in evaluation mode (dropout off): the fraction
 * of its examples whose predicted class is the true one.
 * @see d2l.evaluate_accuracy (section 3.6.5, classification accuracy)
 */
export function evaluateAccuracy(net: Net, dataIter: Iterable<Batch>): number {
  setTraining(net, false); // d2l's net.eval(): dropout keeps every unit while evaluating
  return tf.tidy(() => {
    const metric = new Accumulator(2); // number of correct predictions, number of predictions
    for (const [X, y] of dataIter) {
      tf.tidy(() => metric.add(accuracy(forward(net, X), y), y.shape[0]));
    }
    return metric.get(0) / metric.get(1);
  });
}

/**
 * Computes the mean loss of a model on a dataset, in evaluation mode: the loss of each example,
 * summed over the batches and divided by their number. Labels with one entry per output are
 * reshaped to the model's output, as d2l does, so [n] labels fit [n, 1] predictions; class
 * labels (one per row of scores) go to the loss as they are.
 * @see d2l.evaluate_loss (section 4.4.4, polynomial regression)
 */
export function evaluateLoss(net: Net, dataIter: Iterable<Batch>, loss: Loss): number {
  setTraining(net, false);
  const metric = new Accumulator(2); // sum of losses, number of losses
  for (const [X, y] of dataIter) {
    tf.tidy(() => {
      const out = forward(net, X);
      const isClassLabels = y.rank === 1 && y.shape[0] === out.shape[0];
      if (y.size !== out.size && !isClassLabels) {
        const expected = `labels with one entry per output of the net (shape [${out.shape.join(", ")}]) or one class per row`;
        throw new ArgumentError("evaluateLoss", "y", expected, y);
      }
      const l = loss(out, y.size === out.size ? y.reshape(out.shape) : y);
      metric.add(l.sum(), l.size);
    });
  }
  return metric.get(0) / metric.get(1);
}
