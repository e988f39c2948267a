import * as tf from "@tensorflow/tfjs";
import { afterEach, describe, expect, it, vi } from "vitest";
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

  it("keeps its tensor sums through tf.tidy, holds one tensor per slot, and frees them on read or reset", () => {
    const before = tf.memory().numTensors;
    const metric = new Accumulator(2);
    for (let i = 0; i < 50; i++) {
      tf.tidy(() => metric.add(tf.scalar(i), tf.ones([3])));
    }
    expect(tf.memory().numTensors).toBe(before + 2);
    expect(metric.get(0)).toBe((49 * 50) / 2);
    expect(tf.memory().numTensors).toBe(before + 1);
    metric.reset();
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
