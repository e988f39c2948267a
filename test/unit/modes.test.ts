/**
 * Training and evaluation modes (PyTorch's net.train() / net.eval()): the loops switch them,
 * dropout acts only in training mode, for layers models and for function nets alike.
 */
import * as tf from "@tensorflow/tfjs";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { loadArray } from "../../lib/src/data";
import { softmaxCrossEntropy, squaredLoss } from "../../lib/src/losses";
import { evaluateAccuracy, evaluateLoss } from "../../lib/src/metrics";
import { type FunctionNet, forward, isTraining, linreg, setTraining } from "../../lib/src/models";
import { dropoutLayer } from "../../lib/src/regularization";
import { loadDataFashionMnist } from "../../lib/src/fashion-mnist";
import { predictCh3, trainCh3, trainEpochCh3 } from "../../lib/src/train";
import { realDataDir } from "./fashion-mnist-fixtures";
import { blobs, inFakeKernel } from "./train-fixtures";

/** A classifier of the 4-D blobs with a dropout layer between its two dense layers. */
function dropoutModel(rate: number) {
  return tf.sequential({
    layers: [
      tf.layers.dense({ units: 16, inputShape: [4], activation: "relu" }),
      tf.layers.dropout({ rate }),
      tf.layers.dense({ units: 3 }),
    ],
  });
}

/** d2l 4.6's scratch net in small: one hidden layer, dropout on it while `training`; it counts its calls by mode. */
function scratchDropoutNet(dropout: number) {
  const W1 = tf.tidy(() => tf.variable(tf.randomNormal([4, 16], 0, 0.5)));
  const W2 = tf.tidy(() => tf.variable(tf.randomNormal([16, 3], 0, 0.5)));
  const calls = { training: 0, evaluating: 0 };
  const net: FunctionNet = Object.assign(
    (X: tf.Tensor): tf.Tensor => {
      calls[net.training ? "training" : "evaluating"]++;
      const H = tf.relu(tf.matMul(X, W1));
      return tf.matMul(net.training ? dropoutLayer(H, dropout) : H, W2);
    },
    { training: true },
  );
  return { net, calls, params: [W1, W2], dispose: () => tf.dispose([W1, W2]) };
}

beforeEach(() => {
  vi.spyOn(console, "log").mockImplementation(() => undefined); // the Animator's lines
});
afterEach(() => {
  vi.restoreAllMocks();
});

describe("setTraining and isTraining", () => {
  it("keep a layers model's mode, which starts as evaluation (as tfjs's predict)", () => {
    const model = dropoutModel(0.5);
    expect(isTraining(model)).toBe(false);
    setTraining(model, true);
    expect(isTraining(model)).toBe(true);
    setTraining(model, false);
    expect(isTraining(model)).toBe(false);
    model.dispose();
  });

  it("set a function net's own training flag, and leave a plain function alone", () => {
    const withFlag: FunctionNet = Object.assign((X: tf.Tensor) => X, { training: true });
    setTraining(withFlag, false);
    expect(withFlag.training).toBe(false);
    expect(isTraining(withFlag)).toBe(false);
    setTraining(withFlag, true);
    expect(isTraining(withFlag)).toBe(true);
    const plain = (X: tf.Tensor) => X;
    setTraining(plain, true);
    expect("training" in plain).toBe(false);
    expect(isTraining(plain)).toBe(false);
  });
});

describe("forward in each mode", () => {
  it("drops units of a layers model only in training mode", () => {
    const model = tf.sequential({ layers: [tf.layers.dropout({ rate: 0.5, inputShape: [1000] })] });
    const X = tf.ones([2, 1000]);
    setTraining(model, true);
    const trained = forward(model, X).dataSync();
    const dropped = trained.filter((v) => v === 0).length / trained.length;
    expect(dropped).toBeGreaterThan(0.4);
    expect(dropped).toBeLessThan(0.6);
    setTraining(model, false);
    expect(Array.from(forward(model, X).dataSync())).toEqual(new Array(2000).fill(1));
    X.dispose();
    model.dispose();
  });
});

describe("the training loops set the mode", () => {
  it("trainEpochCh3 trains in training mode (a training step drops units), evaluateAccuracy evaluates without", () => {
    const [X, y] = blobs(300);
    const data = loadArray([X, y], 50, false);
    const { net, calls, dispose } = scratchDropoutNet(0.5);
    net.training = false;
    trainEpochCh3(net, data, softmaxCrossEntropy, tf.train.sgd(0));
    expect(calls).toEqual({ training: 6, evaluating: 0 });
    expect(net.training).toBe(true);
    const first = evaluateAccuracy(net, data);
    expect(calls).toEqual({ training: 6, evaluating: 6 });
    expect(net.training).toBe(false);
    // Evaluating twice gives the same accuracy: no unit is dropped at random.
    expect(evaluateAccuracy(net, data)).toBe(first);
    dispose();
    tf.dispose([X, y]);
  });

  it("predictCh3 predicts in evaluation mode", async () => {
    const [, testIter] = await loadDataFashionMnist(256, { root: realDataDir() });
    const modes: boolean[] = [];
    const net: FunctionNet = Object.assign(
      (X: tf.Tensor): tf.Tensor => {
        modes.push(net.training === true);
        return tf.oneHot(tf.fill([X.shape[0]], 3, "int32"), 10);
      },
      { training: true },
    );
    inFakeKernel(() => predictCh3(net, testIter));
    expect(modes).toEqual([false]);
    expect(net.training).toBe(false);
  });

  it("a layers model with dropout: a training epoch's loss differs from the same data's loss evaluated; without dropout they agree", () => {
    const [X, y] = blobs(300);
    const data = loadArray([X, y], 50, false);
    const lossOf = (rate: number) => {
      const model = dropoutModel(rate);
      const optimizer = tf.train.sgd(0); // lr 0: the parameters stay as they are
      const [trainLoss] = trainEpochCh3(model, data, softmaxCrossEntropy, optimizer);
      expect(isTraining(model)).toBe(true);
      const evalLoss = evaluateLoss(model, data, softmaxCrossEntropy);
      expect(isTraining(model)).toBe(false);
      const acc = evaluateAccuracy(model, data);
      expect(evaluateAccuracy(model, data)).toBe(acc);
      model.dispose();
      optimizer.dispose();
      return { trainLoss, evalLoss };
    };
    const kept = lossOf(0);
    expect(kept.trainLoss).toBeCloseTo(kept.evalLoss, 5);
    const dropped = lossOf(0.5);
    expect(Math.abs(dropped.trainLoss - dropped.evalLoss)).toBeGreaterThan(1e-3);
    tf.dispose([X, y]);
  });

  it("leaks no tensor training a dropout net: the count after is the count before plus the parameters", () => {
    const [X, y] = blobs(300);
    const data = loadArray([X, y], 32);
    const before = tf.memory().numTensors;
    const model = dropoutModel(0.5);
    const optimizer = tf.train.sgd(0.1);
    trainCh3(model, data, data, softmaxCrossEntropy, 3, optimizer);
    // two kernels, two biases, and the optimizer's learning rate
    expect(tf.memory().numTensors).toBe(before + model.weights.length + 1);
    expect(model.weights.length).toBe(4);
    model.dispose();
    optimizer.dispose();

    const scratch = scratchDropoutNet(0.5);
    const beforeScratch = tf.memory().numTensors;
    const scratchOptimizer = tf.train.sgd(0.1);
    trainCh3(scratch.net, data, data, softmaxCrossEntropy, 3, scratchOptimizer);
    expect(tf.memory().numTensors).toBe(beforeScratch + 1);
    scratchOptimizer.dispose();
    scratch.dispose();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([X, y]);
  });
});

describe("evaluateLoss", () => {
  it("is the mean loss over the data set, with the labels reshaped to the net's output", () => {
    const X = tf.tensor2d([[1, 0], [0, 1], [1, 1], [2, 0], [0, 2]]);
    const y = tf.tensor1d([1, 1, 1, 1, 1]); // [5] labels for [5, 1] predictions
    const w = tf.tensor2d([[1], [0]]);
    const net = (X: tf.Tensor) => linreg(X, w, tf.scalar(0));
    // predictions 1, 0, 1, 2, 0: squared losses 0, 0.5, 0, 0.5, 0.5
    const before = tf.memory().numTensors;
    expect(evaluateLoss(net, loadArray([X, y], 2, false), squaredLoss)).toBeCloseTo(0.3, 6);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([X, y, w]);
  });

  it("takes class labels, one per row of scores, as they are", () => {
    const scores = tf.tensor2d([[2, 0], [0, 2], [2, 0]]);
    const y = tf.tensor1d([0, 1, 1], "int32");
    const expected = softmaxCrossEntropy(scores, y).mean().dataSync()[0];
    expect(evaluateLoss(() => scores.clone(), [[scores, y]], softmaxCrossEntropy)).toBeCloseTo(expected, 6);
    tf.dispose([scores, y]);
  });

  it("refuses labels that do not fit the net's output, naming their shape", () => {
    const X = tf.ones([4, 2]);
    const y = tf.ones([4, 3]);
    const net = (X: tf.Tensor) => X.sum(1, true);
    const before = tf.memory().numTensors;
    expect(() => evaluateLoss(net, loadArray([X, y], 4, false), squaredLoss)).toThrow(
      "evaluateLoss: y must be labels with one entry per output of the net (shape [4, 1]) or one class per row; got a float32 tensor of shape [4, 3]",
    );
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([X, y]);
  });
});
