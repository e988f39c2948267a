import * as tf from "@tensorflow/tfjs";
import { Animator } from "./animator";
import { Batch, BatchSource } from "./batches";
import { Device, tryGpu } from "./device";
import { softmaxCrossEntropy } from "./engine/fused-softmax-ce"; // losses.ts's, as one wasm kernel where it applies
import { Accumulator } from "./metrics";
import { accuracy } from "./engine/fused-accuracy"; // metrics.ts's, likewise
import { Net, forward, setTraining } from "./models";
import { Timer } from "./timer";
import { TrainMetrics } from "./train";
import { ArgumentError, checkPositiveInt } from "./validate";

/**
 * Throws unless `device` (if given) names the backend tfjs computes on: tfjs has one active backend
 * and no `.to(device)`, so a device that is not the active backend cannot be honoured.
 */
function checkDevice(fn: string, device: Device | undefined): void {
  if (device === undefined) return;
  if (!(device instanceof Device)) {
    throw new ArgumentError(fn, "device", "a Device from tryGpu() (or undefined)", device);
  }
  if (device.backend !== tf.getBackend()) {
    throw new ArgumentError(fn, "device", `the active backend "${tf.getBackend()}" (tfjs moves no tensors: call tf.setBackend first)`, device.backend);
  }
}

/**
 * Computes the accuracy of a model on a dataset using a GPU, as d2l's `evaluate_accuracy_gpu`: in
 * evaluation mode, the fraction of examples whose predicted class is the true one. tfjs has no
 * `.to(device)`: every tensor already lives on the active backend, so `device` is only checked to
 * be that backend.
 * @see d2l.evaluate_accuracy_gpu (section 6.6.2, training)
 */
export function evaluateAccuracyGpu(net: Net, dataIter: Iterable<Batch>, device?: Device): number {
  checkDevice("evaluateAccuracyGpu", device);
  setTraining(net, false); // d2l's net.eval()
  return tf.tidy(() => {
    const metric = new Accumulator(2); // number of correct predictions, number of predictions
    for (const [X, y] of dataIter) {
      tf.tidy(() => metric.add(accuracy(forward(net, X), y), y.size));
    }
    return metric.get(0) / metric.get(1);
  });
}

/** What {@link trainCh6} returns: the last epoch's metrics and the training speed. */
export interface TrainCh6Metrics extends TrainMetrics {
  /** Training examples per second, timed over the training steps only, as d2l prints it. */
  examplesPerSec: number;
}

/**
 * Sets the weights of every dense and convolutional layer of `net` to Xavier (Glorot) uniform
 * values, PyTorch's `nn.init.xavier_uniform_`; biases are left as they are, as in d2l.
 */
function initWeights(net: tf.LayersModel): void {
  for (const layer of net.layers) {
    const kind = layer.getClassName();
    if (kind !== "Dense" && kind !== "Conv2D") continue;
    const kernel = layer.weights.find((w) => /kernel/.test(w.originalName));
    if (!kernel) continue;
    const value = tf.tidy(() => tf.initializers.glorotUniform({}).apply(kernel.shape));
    kernel.write(value);
    value.dispose();
  }
}

/**
 * Trains a model with a GPU, as d2l's `train_ch6`: Xavier initialization of the weights, minibatch
 * SGD at learning rate `lr` on the mean cross-entropy (the net outputs logits), a live chart of
 * train loss and accuracy five times an epoch and test accuracy after each, then prints the last
 * metrics and the examples per second. Re-initializes the weights first, so each call starts afresh.
 * `device` is d2l's argument: tfjs computes on its active backend, which `device` must name if given.
 * @see d2l.train_ch6 (section 6.6.2, training)
 */
export function trainCh6(
  net: tf.LayersModel,
  trainIter: BatchSource,
  testIter: Iterable<Batch>,
  numEpochs: number,
  lr: number,
  device?: Device,
): TrainCh6Metrics {
  const fn = "trainCh6";
  if (!(net instanceof tf.LayersModel)) throw new ArgumentError(fn, "net", "a tfjs layers model (tf.sequential)", net);
  checkPositiveInt(fn, "numEpochs", numEpochs);
  if (typeof lr !== "number" || !(lr > 0 && Number.isFinite(lr))) throw new ArgumentError(fn, "lr", "a positive number", lr);
  checkDevice(fn, device);
  initWeights(net);
  console.log(`training on ${device ?? tryGpu()}`);
  const optimizer = tf.train.sgd(lr);
  const animator = new Animator({ xlabel: "epoch", xlim: [1, numEpochs], legend: ["train loss", "train acc", "test acc"] });
  const timer = new Timer();
  const numBatches = Math.ceil(trainIter.numExamples / trainIter.batchSize);
  const every = Math.max(1, Math.floor(numBatches / 5));
  let trainL = NaN, trainAcc = NaN, testAcc = NaN, examples = 0;
  try {
    for (let epoch = 0; epoch < numEpochs; epoch++) {
      setTraining(net, true);
      // The epoch runs in one tf.tidy: a run cut off by an interrupt leaves it open, which tells d2l to clean up.
      tf.tidy(() => {
        const metric = new Accumulator(3); // sum of training loss, sum of training accuracy, no. of examples
        try {
          let i = 0;
          for (const [X, y] of trainIter) {
            timer.start();
            tf.tidy(() => {
              let yHat: tf.Tensor | undefined;
              const l = optimizer.minimize(() => {
                yHat = tf.keep(forward(net, X));
                return softmaxCrossEntropy(yHat, y).mean() as tf.Scalar;
              }, true)!;
              metric.add(l.mul(X.shape[0]), accuracy(yHat!, y), X.shape[0]);
              yHat!.dispose();
            });
            timer.stop();
            i++;
            if (i % every === 0 || i === numBatches) {
              trainL = metric.get(0) / metric.get(2);
              trainAcc = metric.get(1) / metric.get(2);
              if (!Number.isFinite(trainL)) {
                throw new Error(`${fn}: the training loss became ${trainL} in epoch ${epoch + 1}, step ${i}: the updates overshoot; try a smaller lr (d2l uses 0.9 for LeNet)`);
              }
              animator.add(epoch + i / numBatches, [trainL, trainAcc, null]);
            }
          }
          examples += metric.get(2);
        } finally {
          metric.reset();
        }
      });
      testAcc = evaluateAccuracyGpu(net, testIter);
      animator.add(epoch + 1, [null, null, testAcc]);
    }
  } finally {
    optimizer.dispose();
  }
  const examplesPerSec = examples / timer.sum();
  console.log(`loss ${trainL.toFixed(3)}, train acc ${trainAcc.toFixed(3)}, test acc ${testAcc.toFixed(3)}`);
  console.log(`${examplesPerSec.toFixed(1)} examples/sec on ${device ?? tryGpu()}`);
  return { trainLoss: trainL, trainAcc, testAcc, examplesPerSec };
}
