import * as tf from "@tensorflow/tfjs";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { loadArray } from "../../lib/src/data";
import { crossEntropy, softmaxCrossEntropy } from "../../lib/src/losses";
import { Accumulator, accuracy, evaluateAccuracy } from "../../lib/src/metrics";
import { forward, softmax } from "../../lib/src/models";
import { blobs, countReads } from "./train-fixtures";

afterEach(() => {
  vi.restoreAllMocks();
});

describe("softmax", () => {
  it("turns each row into probabilities: positive, summing to 1, ordered as the logits", () => {
    const X = tf.tensor2d([[1, 2, 3], [0, 0, 0], [-5, 10, 2]]);
    const P = softmax(X);
    const rows = P.arraySync() as number[][];
    for (const row of rows) {
      expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6);
      for (const p of row) expect(p).toBeGreaterThan(0);
    }
    expect(rows[1]).toEqual([1 / 3, 1 / 3, 1 / 3].map((v) => expect.closeTo(v, 6)));
    const e = [Math.exp(1), Math.exp(2), Math.exp(3)];
    const z = e[0] + e[1] + e[2];
    expect(rows[0][0]).toBeCloseTo(e[0] / z, 6);
    expect(rows[0][2]).toBeCloseTo(e[2] / z, 6);
    tf.dispose([X, P]);
  });

  it("overflows to NaN on large logits, as the book's form does (the reason for LogSumExp)", () => {
    const X = tf.tensor2d([[100, 1000]]);
    const P = softmax(X);
    expect(Number.isNaN(P.dataSync()[1])).toBe(true);
    tf.dispose([X, P]);
  });
});

describe("crossEntropy and softmaxCrossEntropy", () => {
  it("give minus the log of the true class's probability, per example", () => {
    // d2l 3.6.3: y = [0, 2], y_hat = [[0.1, 0.3, 0.6], [0.3, 0.2, 0.5]] -> [-log 0.1, -log 0.5]
    const yHat = tf.tensor2d([[0.1, 0.3, 0.6], [0.3, 0.2, 0.5]]);
    const y = tf.tensor1d([0, 2], "int32");
    const l = crossEntropy(yHat, y);
    expect(l.shape).toEqual([2]);
    const [l0, l1] = l.dataSync();
    expect(l0).toBeCloseTo(-Math.log(0.1), 5);
    expect(l1).toBeCloseTo(-Math.log(0.5), 5);
    tf.dispose([yHat, y, l]);
  });

  it("agree with each other on moderate logits, and the logits form stays finite where the naive one fails", () => {
    const logits = tf.tensor2d([[1, -2, 0.5], [3, 3, -1], [0, 0, 0]]);
    const y = tf.tensor1d([2, 0, 1], "int32");
    const naive = tf.tidy(() => crossEntropy(softmax(logits), y).arraySync() as number[]);
    const stable = tf.tidy(() => softmaxCrossEntropy(logits, y).arraySync() as number[]);
    stable.forEach((v, i) => expect(v).toBeCloseTo(naive[i], 5));
    const big = tf.tensor2d([[1000, 0, -1000], [0, 1000, 10]]);
    const yBig = tf.tensor1d([0, 2], "int32");
    const [s0, s1] = tf.tidy(() => Array.from(softmaxCrossEntropy(big, yBig).dataSync()));
    expect(s0).toBeCloseTo(0, 5);
    expect(s1).toBeCloseTo(990, 2);
    const naiveBig = tf.tidy(() => Array.from(crossEntropy(softmax(big), yBig).dataSync()));
    expect(naiveBig.some((v) => !Number.isFinite(v))).toBe(true);
    tf.dispose([logits, y, big, yBig]);
  });

  it("have the gradient softmax(o) - onehot(y) with respect to the logits", () => {
    const o = tf.tensor2d([[0.2, -1, 2], [1, 1, 1]]);
    const y = tf.tensor1d([1, 2], "int32");
    const g = tf.tidy(() => tf.grad((logits: tf.Tensor) => softmaxCrossEntropy(logits, y).sum())(o));
    const expected = tf.tidy(() => softmax(o).sub(tf.oneHot(y, 3)));
    const [a, b] = [g.dataSync(), expected.dataSync()];
    a.forEach((v, i) => expect(v).toBeCloseTo(b[i], 5));
    tf.dispose([o, y, g, expected]);
  });
});

/** softmaxCrossEntropy as it was before its custom gradient: autodiff through logSumExp. */
function autodiffSoftmaxCrossEntropy(logits: tf.Tensor, y: tf.Tensor): tf.Tensor {
  const logProbs = logits.sub(tf.logSumExp(logits, 1, true));
  return logProbs.mul(tf.oneHot(y, logits.shape[1] as number)).sum(1).neg();
}

describe("softmaxCrossEntropy's custom gradient", () => {
  const logits = tf.tensor2d(Float32Array.from({ length: 6 * 10 }, (_, i) => 3 * Math.sin(i * 1.3)), [6, 10]);
  const big = tf.tensor2d([[1000, 0, -1000], [0, 1000, 10], [-50, -60, -70]]);
  const y = tf.tensor1d([0, 3, 9, 9, 1, 5], "int32");
  const yBig = tf.tensor1d([0, 2, 1], "int32");
  const weights = tf.tensor1d([1, -2, 0.5, 3, 0, 1]); // an upstream gradient other than ones
  afterAll(() => tf.dispose([logits, big, y, yBig, weights]));

  it("gives the same values as autodiff through logSumExp, within float rounding", () => {
    for (const [o, t] of [[logits, y], [big, yBig]]) {
      const [mine, reference] = tf.tidy(() => [softmaxCrossEntropy(o, t).dataSync(), autodiffSoftmaxCrossEntropy(o, t).dataSync()]);
      expect(mine.length).toBe(reference.length);
      mine.forEach((v, i) => expect(Math.abs(v - reference[i])).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(reference[i]))));
    }
  });

  it("with labelSmoothing ε, is the cross-entropy against targets 1 - ε + ε/K and ε/K, with gradient softmax(o) - targets", () => {
    const eps = 0.1;
    const K = 10;
    const targets = tf.tidy(() => tf.oneHot(y, K).cast("float32").mul(1 - eps).add(eps / K));
    const [value, expected, grad, expectedGrad] = tf.tidy(() => [
      softmaxCrossEntropy(logits, y, eps),
      targets.mul(tf.logSoftmax(logits)).sum(1).neg(),
      tf.grad((x: tf.Tensor) => softmaxCrossEntropy(x, y, eps).mul(weights).sum())(logits),
      tf.softmax(logits).sub(targets).mul(weights.reshape([-1, 1])),
    ].map((t) => Array.from(t.dataSync())));
    targets.dispose();
    value.forEach((v, i) => expect(v).toBeCloseTo(expected[i], 5));
    grad.forEach((v, i) => expect(v).toBeCloseTo(expectedGrad[i], 6));
    // smoothing raises the loss of a confident right answer: the targets are no longer one-hot
    const [hard, soft] = tf.tidy(() => [softmaxCrossEntropy(big, yBig), softmaxCrossEntropy(big, yBig, eps)].map((t) => t.dataSync()[0]));
    expect(soft).toBeGreaterThan(hard + 10);
  });

  it("rejects a labelSmoothing outside [0, 1), naming it", () => {
    for (const bad of [-0.1, 1, NaN, 2]) {
      expect(() => softmaxCrossEntropy(logits, y, bad)).toThrow(/softmaxCrossEntropy: labelSmoothing must be a number in \[0, 1\); got/);
    }
  });

  it("gives the same gradient as autodiff, for any upstream gradient, on small and huge logits", () => {
    for (const [o, t, dy] of [[logits, y, weights], [big, yBig, tf.ones([3])]]) {
      const [mine, reference] = tf.tidy(() =>
        [softmaxCrossEntropy, autodiffSoftmaxCrossEntropy].map((loss) =>
          Array.from(tf.grad((x: tf.Tensor) => loss(x, t).mul(dy).sum())(o).dataSync())),
      );
      expect(mine.every(Number.isFinite)).toBe(true);
      mine.forEach((v, i) => expect(v).toBeCloseTo(reference[i], 6));
    }
  });

  it("survives a tf.tidy around the loss inside the function whose gradient is taken, and leaks nothing", () => {
    const before = tf.memory().numTensors;
    const g = tf.grad((x: tf.Tensor) => tf.tidy(() => softmaxCrossEntropy(x, y).sum()))(logits);
    const reference = tf.grad((x: tf.Tensor) => autodiffSoftmaxCrossEntropy(x, y).sum())(logits);
    Array.from(g.dataSync()).forEach((v, i) => expect(v).toBeCloseTo(reference.dataSync()[i], 6));
    tf.dispose([g, reference]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it("trains a dense layer with tf.train.sgd to the same weights as the autodiff loss", () => {
    const X = tf.tensor2d(Float32Array.from({ length: 32 * 5 }, (_, i) => Math.cos(i * 0.37)), [32, 5]);
    const labels = tf.tensor1d(Array.from({ length: 32 }, (_, i) => (i * 7) % 4), "int32");
    const trained = [softmaxCrossEntropy, autodiffSoftmaxCrossEntropy].map((loss) => {
      const model = tf.sequential({ layers: [tf.layers.dense({ units: 4, inputShape: [5], kernelInitializer: "ones" })] });
      const optimizer = tf.train.sgd(0.5);
      for (let step = 0; step < 20; step++) {
        tf.tidy(() => {
          optimizer.minimize(() => loss(model.apply(X) as tf.Tensor, labels).mean() as tf.Scalar);
        });
      }
      const weights = model.getWeights().map((w) => Array.from(w.dataSync()));
      model.dispose();
      optimizer.dispose();
      return weights.flat();
    });
    trained[0].forEach((v, i) => expect(v).toBeCloseTo(trained[1][i], 5));
    tf.dispose([X, labels]);
  });
});

describe("Accumulator", () => {
  it("sums numbers and tensors per slot, as d2l's metric.add, and resets", () => {
    const metric = new Accumulator(3);
    metric.add(1, 2, 3);
    const t = tf.tensor1d([1.5, 2.5]);
    metric.add(t, tf.scalar(4), 0.5);
    metric.add(2, t, 1);
    expect(metric.get(0)).toBeCloseTo(1 + 4 + 2, 6);
    expect(metric.get(1)).toBeCloseTo(2 + 4 + 4, 6);
    expect(metric.get(2)).toBeCloseTo(4.5, 6);
    // reading twice gives the same value
    expect(metric.get(0)).toBeCloseTo(7, 6);
    metric.reset();
    expect([metric.get(0), metric.get(1), metric.get(2)]).toEqual([0, 0, 0]);
    t.dispose();
  });

  it("keeps its tensor sums through tf.tidy, one scalar per value added, and frees them on read or reset", () => {
    const before = tf.memory().numTensors;
    const metric = new Accumulator(2);
    for (let i = 0; i < 50; i++) {
      tf.tidy(() => metric.add(tf.scalar(i), tf.ones([3])));
    }
    expect(tf.memory().numTensors).toBe(before + 100);
    expect(metric.get(0)).toBe((49 * 50) / 2);
    expect(tf.memory().numTensors).toBe(before + 50);
    metric.reset();
    expect(tf.memory().numTensors).toBe(before);
  });

  it("folds its kept sums into one every 1024 values, so a long loop holds few tensors", () => {
    const before = tf.memory().numTensors;
    const metric = new Accumulator(1);
    for (let i = 0; i < 3000; i++) tf.tidy(() => metric.add(tf.scalar(i % 7, "int32")));
    // at 1024 kept sums they are folded into one
    expect(tf.memory().numTensors - before).toBeLessThan(1024);
    let expected = 0;
    for (let i = 0; i < 3000; i++) expected += i % 7;
    expect(metric.get(0)).toBe(expected);
    expect(tf.memory().numTensors).toBe(before);
  });

  it("sums tensors on the device: no device read until a sum is read", () => {
    const metric = new Accumulator(1);
    const { reads } = countReads(() => {
      for (let i = 0; i < 20; i++) tf.tidy(() => metric.add(tf.scalar(1)));
    });
    expect(reads).toBe(0);
    const { result, reads: readsOnGet } = countReads(() => metric.get(0));
    expect(result).toBe(20);
    expect(readsOnGet).toBe(1);
  });

  it("refuses a bad size and the wrong number of values, naming itself", () => {
    expect(() => new Accumulator(0)).toThrow(/Accumulator: n must be a positive integer; got 0/);
    expect(() => new Accumulator(1.5)).toThrow(/positive integer/);
    const metric = new Accumulator(2);
    expect(() => metric.add(1)).toThrow(/Accumulator.add: expected 2 values; got 1/);
  });
});

describe("accuracy", () => {
  it("counts correct predictions from scores (argmax per row) or from predicted classes", () => {
    // d2l 3.6.5: the first example is wrong, the second right -> 1 of 2
    const yHat = tf.tensor2d([[0.1, 0.3, 0.6], [0.3, 0.2, 0.5]]);
    const y = tf.tensor1d([0, 2], "int32");
    const before = tf.memory().numTensors;
    const correct = accuracy(yHat, y);
    expect(correct.rank).toBe(0);
    expect(correct.dataSync()[0]).toBe(1);
    correct.dispose();
    expect(tf.memory().numTensors).toBe(before);
    const classes = tf.tensor1d([0, 1, 2, 2], "int32");
    const labels = tf.tensor1d([0, 1, 1, 2], "int32");
    const c2 = accuracy(classes, labels);
    expect(c2.dataSync()[0]).toBe(3);
    tf.dispose([yHat, y, classes, labels, c2]);
  });
});

describe("evaluateAccuracy", () => {
  it("gives the fraction of correct predictions over every batch, for a function and for a layers model", () => {
    const [X, y] = blobs(300);
    const data = loadArray([X, y], 64, false);
    // A net that predicts the blob from the largest coordinate is right on (almost) every example.
    const argmaxNet = (X: tf.Tensor) => X.slice([0, 0], [-1, 3]);
    expect(evaluateAccuracy(argmaxNet, data)).toBeGreaterThan(0.98);
    // A constant net predicts class 0 for everyone: exactly one third.
    const constantNet = (X: tf.Tensor) => tf.zeros([X.shape[0], 3]).add(tf.tensor1d([1, 0, 0]));
    expect(evaluateAccuracy(constantNet, data)).toBeCloseTo(1 / 3, 10);
    const model = tf.sequential({ layers: [tf.layers.dense({ units: 3, inputShape: [4], useBias: false })] });
    const eye = tf.eye(4, 3);
    model.layers[0].setWeights([eye]);
    expect(forward(model, X).shape).toEqual([300, 3]);
    expect(evaluateAccuracy(model, data)).toBeCloseTo(evaluateAccuracy(argmaxNet, data), 10);
    tf.dispose([X, y, eye]);
    model.dispose();
  });

  it("leaks no tensor and reads the device once per sum, not once per batch", () => {
    const [X, y] = blobs(1000);
    const data = loadArray([X, y], 10, false); // 100 batches
    const eye = tf.eye(4, 3);
    const net = (X: tf.Tensor) => X.matMul(eye); // (slice would read the device on wasm)
    const before = tf.memory().numTensors;
    const { result, reads } = countReads(() => evaluateAccuracy(net, data));
    expect(result).toBeGreaterThan(0.98);
    expect(reads).toBeLessThanOrEqual(2);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([X, y, eye]);
  });
});
