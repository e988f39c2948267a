/**
 * The models npm run bench trains (scripts/bench.ts): the chapters' headline jobs on Fashion-MNIST,
 * each written the way its notebook writes it.
 *
 * - scratch: 3.6's softmax regression, W [784, 10] ~ N(0, 0.01²), b = 0, crossEntropy, d2l.sgd.
 * - concise: 3.7's tf.sequential flatten + dense(10), softmaxCrossEntropy on the logits, tf.train.sgd.
 * - mlp-scratch: 4.2's multilayer perceptron, W1 [784, 256], W2 [256, 10] ~ N(0, 0.01²), zero
 *   biases, relu written as max(X, 0), d2l.sgd; the loss is softmaxCrossEntropy on the logits, as
 *   4.2's nn.CrossEntropyLoss takes them.
 * - mlp: 4.3's tf.sequential flatten + dense(256, relu) + dense(10), N(0, 0.01²) weights,
 *   softmaxCrossEntropy on the logits, tf.train.sgd.
 * - lenet: 6.6's LeNet: conv(6, 5×5, padding 2) sigmoid, avgpool 2×2 stride 2, conv(16, 5×5)
 *   sigmoid, avgpool, flatten, dense 120 sigmoid, dense 84 sigmoid, dense 10; Xavier (glorot)
 *   uniform weights, zero biases, softmaxCrossEntropy on the logits, tf.train.sgd, lr 0.9 by default.
 *   Trained by trainCh3 until chapter 6's trainCh6 lands: the same arithmetic per step (d2l's
 *   train_ch6 differs in moving data to a device and timing, nothing that changes the floats).
 */
import * as tf from "@tensorflow/tfjs";
// Only through index (see bench.ts): a second copy of a lib module would hold its own state.
import * as d2l from "../lib/src/index";

export const MODELS = ["scratch", "concise", "mlp", "mlp-scratch", "lenet"] as const;
export type Model = (typeof MODELS)[number];

/** Each model's learning rate and batch size when --lr / --batch-size are not given (d2l's for its job). */
export const DEFAULTS: Record<Model, { lr: number; batchSize: number }> = {
  scratch: { lr: 0.1, batchSize: 256 },
  concise: { lr: 0.1, batchSize: 256 },
  mlp: { lr: 0.1, batchSize: 256 },
  "mlp-scratch": { lr: 0.1, batchSize: 256 },
  lenet: { lr: 0.9, batchSize: 256 },
};

/** What trainCh3 needs for one model, and how to free it afterwards. */
export interface Job {
  net: d2l.Net;
  loss: d2l.Loss;
  updater: d2l.Updater;
  dispose: () => void;
}

/** How the progress line names each model's job. */
export const DESCRIPTIONS: Record<Model, string> = {
  scratch: "softmax regression (scratch, 3.6)",
  concise: "softmax regression (concise, 3.7)",
  "mlp-scratch": "multilayer perceptron 784-256-10 (scratch, 4.2)",
  mlp: "multilayer perceptron 784-256-10 (concise, 4.3)",
  lenet: "LeNet (sigmoid, average pooling, 6.6)",
};

const NUM_INPUTS = 784;
const NUM_OUTPUTS = 10;
const NUM_HIDDENS = 256;

/** A variable of the given shape ~ N(0, 0.01²). */
const normalVariable = (shape: number[]) => tf.tidy(() => tf.variable(tf.randomNormal(shape, 0, 0.01)));
const zeroVariable = (shape: number[]) => tf.tidy(() => tf.variable(tf.zeros(shape)));
const normalInit = () => tf.initializers.randomNormal({ mean: 0, stddev: 0.01 });

/** Notebook 3.6's model, loss and updater. */
function scratch(lr: number): Job {
  const W = normalVariable([NUM_INPUTS, NUM_OUTPUTS]);
  const b = zeroVariable([NUM_OUTPUTS]);
  const net = (X: tf.Tensor) => d2l.softmax(tf.matMul(X.reshape([-1, W.shape[0]]), W).add(b));
  const updater = (batchSize: number) => d2l.sgd([W, b], lr, batchSize);
  return { net, loss: d2l.crossEntropy, updater, dispose: () => tf.dispose([W, b]) };
}

/** A tf.sequential model with its optimizer, as 3.7 and 4.3 train them. */
function sequentialJob(layers: tf.layers.Layer[], lr: number): Job {
  const net = tf.sequential({ layers });
  const trainer = tf.train.sgd(lr);
  return {
    net,
    loss: d2l.softmaxCrossEntropy,
    updater: trainer,
    dispose: () => {
      net.dispose();
      trainer.dispose();
    },
  };
}

/** Notebook 3.7's model, loss and optimizer. */
function concise(lr: number): Job {
  return sequentialJob([
    tf.layers.flatten({ inputShape: [28, 28, 1] }),
    tf.layers.dense({ units: NUM_OUTPUTS, kernelInitializer: normalInit(), biasInitializer: "zeros" }),
  ], lr);
}

/** Notebook 4.2's parameters, relu and net. */
function mlpScratch(lr: number): Job {
  const W1 = normalVariable([NUM_INPUTS, NUM_HIDDENS]);
  const b1 = zeroVariable([NUM_HIDDENS]);
  const W2 = normalVariable([NUM_HIDDENS, NUM_OUTPUTS]);
  const b2 = zeroVariable([NUM_OUTPUTS]);
  const params = [W1, b1, W2, b2];
  const relu = (X: tf.Tensor) => tf.maximum(X, 0);
  const net = (X: tf.Tensor) => {
    const H = relu(tf.matMul(X.reshape([-1, NUM_INPUTS]), W1).add(b1));
    return tf.matMul(H, W2).add(b2);
  };
  const updater = (batchSize: number) => d2l.sgd(params, lr, batchSize);
  return { net, loss: d2l.softmaxCrossEntropy, updater, dispose: () => tf.dispose(params) };
}

/** Notebook 4.3's model, loss and optimizer. */
function mlp(lr: number): Job {
  return sequentialJob([
    tf.layers.flatten({ inputShape: [28, 28, 1] }),
    tf.layers.dense({ units: NUM_HIDDENS, activation: "relu", kernelInitializer: normalInit(), biasInitializer: "zeros" }),
    tf.layers.dense({ units: NUM_OUTPUTS, kernelInitializer: normalInit(), biasInitializer: "zeros" }),
  ], lr);
}

/** Notebook 6.6's LeNet, loss and optimizer (d2l's nn.Sequential; tf.layers' default kernel initializer is Xavier uniform). */
function lenet(lr: number): Job {
  const zeros = "zeros";
  return sequentialJob([
    // padding 2 around a 5×5 filter at stride 1 is "same"
    tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 6, kernelSize: 5, padding: "same", activation: "sigmoid", kernelInitializer: "glorotUniform", biasInitializer: zeros }),
    tf.layers.averagePooling2d({ poolSize: 2, strides: 2 }),
    tf.layers.conv2d({ filters: 16, kernelSize: 5, activation: "sigmoid", kernelInitializer: "glorotUniform", biasInitializer: zeros }),
    tf.layers.averagePooling2d({ poolSize: 2, strides: 2 }),
    tf.layers.flatten(),
    tf.layers.dense({ units: 120, activation: "sigmoid", kernelInitializer: "glorotUniform", biasInitializer: zeros }),
    tf.layers.dense({ units: 84, activation: "sigmoid", kernelInitializer: "glorotUniform", biasInitializer: zeros }),
    tf.layers.dense({ units: NUM_OUTPUTS, kernelInitializer: "glorotUniform", biasInitializer: zeros }),
  ], lr);
}

const MAKERS: Record<Model, (lr: number) => Job> = { scratch, concise, mlp, "mlp-scratch": mlpScratch, lenet };

/** A fresh model of the given kind with its loss and updater at learning rate `lr`. */
export const makeJob = (model: Model, lr: number): Job => MAKERS[model](lr);
