import * as tf from "@tensorflow/tfjs";
import { describe, expect, it } from "vitest";
import { dataIter, loadArray, syntheticData } from "../../lib/src/data";
import { squaredLoss } from "../../lib/src/losses";
import { linreg } from "../../lib/src/models";
import { backward, gradOf, sgd, zeroGrad } from "../../lib/src/optim";

const trueW = [2, -3.4];
const trueB = 4.2;

/** d2l's scratch training (section 3.2.7); returns the errors in w and b and the final whole-set loss. */
function trainScratch(features: tf.Tensor, labels: tf.Tensor, lr: number, numEpochs: number, batchSize: number) {
  const w = tf.tidy(() => tf.variable(tf.randomNormal([2, 1], 0, 0.01)));
  const b = tf.tidy(() => tf.variable(tf.zeros([1])));
  const losses: number[] = [];
  for (let epoch = 0; epoch < numEpochs; epoch++) {
    for (const [X, y] of dataIter(batchSize, features, labels)) {
      backward(() => squaredLoss(linreg(X, w, b), y).sum());
      sgd([w, b], lr, batchSize);
    }
    losses.push(tf.tidy(() => squaredLoss(linreg(features, w, b), labels).mean().dataSync()[0]));
  }
  const wErr = [trueW[0] - w.dataSync()[0], trueW[1] - w.dataSync()[1]];
  const bErr = trueB - b.dataSync()[0];
  return { w, b, wErr, bErr, losses };
}

describe("linreg and squaredLoss", () => {
  it("compute Xw + b and (ŷ - y)² / 2 per example", () => {
    const X = tf.tensor2d([[1, 2], [3, 4]]);
    const w = tf.tensor2d([[0.5], [-1]]);
    const b = tf.tensor1d([2]);
    const yHat = linreg(X, w, b);
    expect(yHat.shape).toEqual([2, 1]);
    expect(yHat.arraySync()).toEqual([[0.5], [-0.5]]);
    const l = squaredLoss(yHat, tf.tensor1d([1.5, 0.5]));
    expect(l.shape).toEqual([2, 1]);
    expect(l.arraySync()).toEqual([[0.5], [0.5]]);
    tf.dispose([X, w, b, yHat, l]);
  });
});

describe("backward and sgd", () => {
  it("take one step of lr / batchSize against the gradient of the summed loss, in place, leaving nothing", () => {
    const X = tf.tensor2d([[1, 2], [3, 4]]);
    const y = tf.tensor2d([[1], [2]]);
    const w = tf.variable(tf.tensor2d([[0.5], [-1]]));
    const b = tf.variable(tf.tensor1d([2]));
    const before = tf.memory().numTensors;
    backward(() => squaredLoss(linreg(X, w, b), y).sum());
    expect(tf.memory().numTensors).toBe(before + 2);
    // residuals ŷ - y = [-0.5, -2.5]; dL/dw = Xᵀ r = [-8, -11], dL/db = -3
    expect(gradOf(w).arraySync()).toEqual([[-8], [-11]]);
    expect(gradOf(b).arraySync()).toEqual([-3]);
    sgd([w, b], 0.1, 2);
    expect(tf.memory().numTensors).toBe(before);
    const [w0, w1] = w.dataSync();
    expect(w0).toBeCloseTo(0.5 + 0.4, 6);
    expect(w1).toBeCloseTo(-1 + 0.55, 6);
    expect(b.dataSync()[0]).toBeCloseTo(2.15, 6);
    expect(() => gradOf(w)).toThrow(`gradOf: variable "${w.name}" has no gradient`);
    tf.dispose([X, y, w, b]);
  });

  it("replaces stored gradients on a new backward, and zeroGrad frees them", () => {
    const w = tf.variable(tf.tensor1d([1, 2]));
    const before = tf.memory().numTensors;
    backward(() => w.square().sum());
    backward(() => w.mul(3).sum());
    expect(tf.memory().numTensors).toBe(before + 1);
    expect(gradOf(w).arraySync()).toEqual([3, 3]);
    zeroGrad(w);
    expect(tf.memory().numTensors).toBe(before);
    w.dispose();
  });

  it("refuses a non-finite lr and a bad batch size, naming them", () => {
    const w = tf.variable(tf.tensor1d([1]));
    for (const lr of [NaN, Infinity, -Infinity]) {
      expect(() => sgd([w], lr, 10)).toThrow(`sgd: lr must be a finite number; got ${lr}`);
    }
    for (const bs of [0, -10, 0.5]) {
      expect(() => sgd([w], 0.03, bs)).toThrow(`sgd: batchSize must be a positive integer; got ${bs}`);
    }
    expect(() => sgd([w], 0.03, 10)).toThrow(`gradOf: variable "${w.name}" has no gradient`);
    w.dispose();
  });
});

describe("linear regression from scratch (section 3.2)", () => {
  it("lr 0.03, batch 10, 3 epochs: |w err|, |b err| < 0.01 and loss < 1e-4, leaking nothing", () => {
    const w0 = tf.tensor1d(trueW);
    const [features, labels] = syntheticData(w0, trueB, 1000);
    const before = tf.memory().numTensors;
    const { w, b, wErr, bErr, losses } = trainScratch(features, labels, 0.03, 3, 10);
    expect(tf.memory().numTensors).toBe(before + 2); // the parameters w and b, nothing else
    for (const e of [...wErr, bErr]) expect(Math.abs(e)).toBeLessThan(0.01);
    expect(losses).toHaveLength(3);
    expect(losses[0]).toBeGreaterThan(losses[2]);
    expect(losses[2]).toBeLessThan(1e-4);
    expect(losses[2]).toBeGreaterThan(3e-5); // the noise floor: half of 0.01²
    tf.dispose([w0, features, labels, w, b]);
    expect(tf.memory().numTensors).toBe(before - 3);
  });

  it("lr 0.003 is ten times too slow to get there in 3 epochs", () => {
    const w0 = tf.tensor1d(trueW);
    const [features, labels] = syntheticData(w0, trueB, 1000);
    const { w, b, bErr, losses } = trainScratch(features, labels, 0.003, 3, 10);
    expect(Math.abs(bErr)).toBeGreaterThan(0.5);
    expect(losses[2]).toBeGreaterThan(0.1);
    tf.dispose([w0, features, labels, w, b]);
  });
});

describe("linear regression, concise (section 3.3)", () => {
  it("a dense layer trained with tf.train.sgd on loadArray batches reaches the same accuracy, leaking nothing", () => {
    const w0 = tf.tensor1d(trueW);
    const [features, labels] = syntheticData(w0, trueB, 1000);
    const dataIterator = loadArray([features, labels], 10);
    const before = tf.memory().numTensors;
    const net = tf.sequential({
      layers: [tf.layers.dense({ units: 1, inputShape: [2], kernelInitializer: tf.initializers.randomNormal({ mean: 0, stddev: 0.01 }), biasInitializer: "zeros" })],
    });
    const trainer = tf.train.sgd(0.03);
    const created = tf.memory().numTensors - before;
    for (let epoch = 0; epoch < 3; epoch++) {
      for (const [X, y] of dataIterator) {
        trainer.minimize(() => tf.losses.meanSquaredError(y, net.apply(X) as tf.Tensor) as tf.Scalar);
      }
    }
    expect(tf.memory().numTensors).toBe(before + created);
    const [kernel, bias] = net.layers[0].getWeights();
    const wLearned = kernel.dataSync();
    expect(Math.abs(trueW[0] - wLearned[0])).toBeLessThan(0.01);
    expect(Math.abs(trueW[1] - wLearned[1])).toBeLessThan(0.01);
    expect(Math.abs(trueB - bias.dataSync()[0])).toBeLessThan(0.01);
    const mse = tf.tidy(() => tf.losses.meanSquaredError(labels, net.predict(features) as tf.Tensor).dataSync()[0]);
    expect(mse / 2).toBeLessThan(1e-4);
    net.dispose();
    trainer.dispose();
    tf.dispose([w0, features, labels]);
    expect(tf.memory().numTensors).toBe(before - 3);
  });
});
