import * as tf from "@tensorflow/tfjs";
import { Animator } from "./animator";
import { Batch } from "./batches";
import { Loss } from "./losses";
import { Accumulator, evaluateAccuracy } from "./metrics";
import { accuracy } from "./engine/fused-accuracy"; // metrics.ts's, as one wasm kernel where it applies
import { Net, forward, setTraining } from "./models";
import { backward } from "./optim";
import { getFashionMnistLabels } from "./fashion-mnist";
import { showImages } from "./show-images";

/**
 * How d2l's training loops update the parameters: a tfjs optimizer (`tf.train.sgd(0.1)`),
 * which steps on the gradient of the mean loss, or d2l's own `updater(batchSize)`, which
 * steps on the gradients of the summed loss that the loop stored with {@link backward}:
 * `(batchSize) => d2l.sgd([W, b], lr, batchSize)`.
 * @see d2l.train_epoch_ch3 (section 3.6.6, training)
 */
export type Updater = tf.Optimizer | ((batchSize: number) => void);

/** What {@link trainCh3} returns: the metrics of the last epoch. */
export interface TrainMetrics {
  trainLoss: number;
  trainAcc: number;
  testAcc: number;
}

/**
 * The error for a training loss that became NaN or infinite: it names the epoch and the
 * step (found from the per-step losses kept on the device) and what to try.
 */
export function divergenceError(stepLosses: tf.Tensor[], epoch?: number): Error {
  const losses = tf.tidy(() => tf.stack(stepLosses).dataSync());
  const step = losses.findIndex((v) => !Number.isFinite(v));
  const where = `${epoch === undefined ? "" : `in epoch ${epoch}, `}at step ${step + 1} of ${losses.length}`;
  // The first step's loss comes before any update: if it is already broken, the learning rate is not to blame.
  const hint =
    step === 0 && (epoch ?? 1) === 1
      ? "It was never finite, so the loss or the model is at fault, not the learning rate: crossEntropy takes " +
        "probabilities (a net ending in softmax); for a net that outputs logits, use softmaxCrossEntropy."
      : "The updates overshoot and the parameters blow up: try a smaller learning rate (d2l uses 0.1 here).";
  return new Error(`Training diverged: the loss became non-finite (${losses[step]}) ${where}. ${hint}`);
}

/**
 * Trains a model for one epoch, in training mode (dropout on), and returns
 * [average training loss, training accuracy]. Each step runs in `tf.tidy`; the metrics are summed on the device and read once at the end,
 * when a non-finite loss stops training with an error naming the step (and `epoch`, if given).
 * @see d2l.train_epoch_ch3 (section 3.6.6, training)
 */
export function trainEpochCh3(net: Net, trainIter: Iterable<Batch>, loss: Loss, updater: Updater, epoch?: number): [number, number] {
  if (typeof net !== "function" && !(net instanceof tf.LayersModel)) {
    throw new Error(`trainEpochCh3: net must be a function of X or a tfjs layers model; got ${net}`);
  }
  if (typeof updater !== "function" && !(updater instanceof tf.Optimizer)) {
    throw new Error(`trainEpochCh3: updater must be a tfjs optimizer or a function (batchSize) => void; got ${updater}`);
  }
  setTraining(net, true); // d2l's net.train(): dropout drops units while training
  // The whole epoch runs in one tf.tidy: a run cut off by an interrupt leaves it open, which tells d2l to clean up.
  return tf.tidy((): [number, number] => {
    const metric = new Accumulator(3); // sum of training loss, number of correct predictions, number of examples
    const stepLosses: tf.Tensor[] = []; // each step's summed loss, kept on the device until the epoch ends
    try {
      for (const [X, y] of trainIter) {
        tf.tidy(() => {
          // The forward pass runs inside the function whose gradient is taken; it keeps its outputs for the metrics.
          let yHat: tf.Tensor | undefined;
          let l: tf.Tensor | undefined;
          const objective = (): tf.Scalar => {
            yHat = tf.keep(forward(net, X));
            l = tf.keep(loss(yHat, y));
            return updater instanceof tf.Optimizer ? l.mean() : l.sum();
          };
          try {
            if (updater instanceof tf.Optimizer) {
              updater.minimize(objective); // the gradient of the mean loss, then the optimizer's step
            } else {
              backward(objective); // the gradients of the summed loss, kept for the updater
              updater(X.shape[0]);
            }
            // The metrics, computed after the gradients so that autodiff does not record them
            const lSum = tf.keep(l!.sum());
            stepLosses.push(lSum);
            metric.add(lSum, accuracy(yHat!, y), y.shape[0]);
          } finally {
            tf.dispose([yHat, l].filter((t) => t !== undefined));
          }
        });
      }
      const [lossSum, correct, n] = [metric.get(0), metric.get(1), metric.get(2)];
      if (!Number.isFinite(lossSum)) throw divergenceError(stepLosses, epoch);
      return [lossSum / n, correct / n];
    } finally {
      tf.dispose(stepLosses);
      metric.reset();
    }
  });
}

/**
 * Trains a model for `numEpochs` epochs, drawing train loss, train accuracy and test accuracy
 * per epoch in one live chart, and returns the last epoch's metrics. Keeps d2l's checks of a
 * successful run (train loss < 0.5, train and test accuracy > 0.7) as errors that say so.
 * `onEpoch`, if given, is called after each epoch with its number and metrics (to time or log a run).
 * @see d2l.train_ch3 (section 3.6.6, training)
 */
export function trainCh3(
  net: Net,
  trainIter: Iterable<Batch>,
  testIter: Iterable<Batch>,
  loss: Loss,
  numEpochs: number,
  updater: Updater,
  onEpoch?: (epoch: number, metrics: TrainMetrics) => void,
): TrainMetrics {
  if (!Number.isInteger(numEpochs) || numEpochs < 1) {
    throw new Error(`trainCh3: numEpochs must be a positive integer; got ${numEpochs}`);
  }
  const animator = new Animator({
    xlabel: "epoch",
    xlim: [1, numEpochs],
    ylim: [0.3, 0.9],
    legend: ["train loss", "train acc", "test acc"],
  });
  let trainLoss = NaN, trainAcc = NaN, testAcc = NaN;
  for (let epoch = 0; epoch < numEpochs; epoch++) {
    [trainLoss, trainAcc] = trainEpochCh3(net, trainIter, loss, updater, epoch + 1);
    testAcc = evaluateAccuracy(net, testIter);
    animator.add(epoch + 1, [trainLoss, trainAcc, testAcc]);
    onEpoch?.(epoch + 1, { trainLoss, trainAcc, testAcc });
  }
  const fail = (what: string) =>
    new Error(`trainCh3: after ${numEpochs} epoch(s) the ${what}; d2l expects better of this model: check the learning rate and the number of epochs`);
  if (!(trainLoss < 0.5)) throw fail(`train loss is ${trainLoss.toFixed(4)}, not below 0.5`);
  if (!(trainAcc <= 1 && trainAcc > 0.7)) throw fail(`train accuracy is ${trainAcc.toFixed(4)}, not above 0.7`);
  if (!(testAcc <= 1 && testAcc > 0.7)) throw fail(`test accuracy is ${testAcc.toFixed(4)}, not above 0.7`);
  return { trainLoss, trainAcc, testAcc };
}

/**
 * Predicts labels for the first `n` images of the test set, in evaluation mode, and shows them
 * titled with the true label above the predicted one.
 * @see d2l.predict_ch3 (section 3.6.7, prediction)
 */
export function predictCh3(net: Net, testIter: Iterable<Batch>, n = 6): void {
  setTraining(net, false);
  for (const [X, y] of testIter) {
    tf.tidy(() => {
      const trues = getFashionMnistLabels(y);
      const preds = getFashionMnistLabels(forward(net, X).argMax(1));
      const titles = trues.map((t, i) => t + "\n" + preds[i]);
      showImages(X.slice(0, n).reshape([n, 28, 28]), 1, n, titles.slice(0, n));
    });
    break;
  }
}
