import * as tf from "@tensorflow/tfjs";
import { describe, expect, it } from "vitest";
import { dropoutLayer, l2Penalty } from "../../lib/src/regularization";

describe("dropoutLayer", () => {
  it("keeps X as it is for dropout 0 and zeroes it for dropout 1, as d2l's two special cases", () => {
    const X = tf.range(0, 16).reshape([2, 8]);
    expect(dropoutLayer(X, 0)).toBe(X);
    const zeros = dropoutLayer(X, 1);
    expect(zeros.shape).toEqual([2, 8]);
    expect(Array.from(zeros.dataSync())).toEqual(new Array(16).fill(0));
    tf.dispose([X, zeros]);
  });

  it("zeroes about a fraction `dropout` of the entries and scales the rest by 1 / (1 - dropout)", () => {
    const X = tf.ones([100, 100]);
    for (const p of [0.2, 0.5, 0.8]) {
      const values = Array.from(dropoutLayer(X, p).dataSync());
      const dropped = values.filter((v) => v === 0).length / values.length;
      // 10000 Bernoulli(p) draws: the fraction's standard deviation is at most 0.005, so 0.03 is six of them
      expect(Math.abs(dropped - p)).toBeLessThan(0.03);
      expect(values.every((v) => v === 0 || Math.abs(v - 1 / (1 - p)) < 1e-5)).toBe(true);
      // so the mean, the expectation of each entry, stays close to 1
      const mean = values.reduce((a, b) => a + b, 0) / values.length;
      expect(Math.abs(mean - 1)).toBeLessThan(0.03 / (1 - p));
    }
    X.dispose();
  });

  it("draws a new mask on every call and leaves only its result behind", () => {
    const X = tf.ones([4, 64]);
    const before = tf.memory().numTensors;
    const a = dropoutLayer(X, 0.5);
    const b = dropoutLayer(X, 0.5);
    expect(tf.memory().numTensors).toBe(before + 2);
    expect(Array.from(a.dataSync())).not.toEqual(Array.from(b.dataSync()));
    tf.dispose([X, a, b]);
  });

  it("refuses a dropout outside [0, 1] and an X that is not a tensor, naming them", () => {
    const X = tf.ones([2, 2]);
    for (const p of [-0.1, 1.5, NaN]) {
      expect(() => dropoutLayer(X, p)).toThrow(`dropoutLayer: dropout must be a number in [0, 1]; got ${p}`);
    }
    expect(() => dropoutLayer(X, "0.5" as never)).toThrow('dropoutLayer: dropout must be a number in [0, 1]; got "0.5"');
    expect(() => dropoutLayer([1, 2] as never, 0.5)).toThrow("dropoutLayer: X must be a tensor; got an array of length 2");
    X.dispose();
  });
});

describe("l2Penalty", () => {
  it("is half the sum of the squared weights, times lambd", () => {
    const w = tf.tensor1d([3, -4]);
    const penalty = l2Penalty(w);
    expect(penalty.shape).toEqual([]);
    expect(penalty.dataSync()[0]).toBeCloseTo(12.5, 5);
    const weighted = l2Penalty(w, 3);
    expect(weighted.dataSync()[0]).toBeCloseTo(37.5, 5);
    const none = l2Penalty(w, 0);
    expect(none.dataSync()[0]).toBe(0);
    tf.dispose([w, penalty, weighted, none]);
  });

  it("has the gradient lambd * w, the pull towards zero of weight decay, and leaks nothing", () => {
    const w = tf.tensor2d([[1, -2], [0.5, 3]]);
    const before = tf.memory().numTensors;
    const grad = tf.grad((v: tf.Tensor) => l2Penalty(v, 3))(w);
    expect(tf.memory().numTensors).toBe(before + 1);
    expect(Array.from(grad.dataSync())).toEqual([3, -6, 1.5, 9].map((v) => expect.closeTo(v, 5)));
    tf.dispose([w, grad]);
  });

  it("refuses a negative or non-finite lambd and a w that is not a tensor, naming them", () => {
    const w = tf.ones([3]);
    expect(() => l2Penalty(w, -1)).toThrow("l2Penalty: lambd must be a finite number >= 0; got -1");
    expect(() => l2Penalty(w, Infinity)).toThrow("l2Penalty: lambd must be a finite number >= 0; got Infinity");
    expect(() => l2Penalty(w, NaN)).toThrow("l2Penalty: lambd must be a finite number >= 0; got NaN");
    expect(() => l2Penalty(3 as never)).toThrow("l2Penalty: w must be a tensor; got 3");
    w.dispose();
  });
});
