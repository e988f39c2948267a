import * as tf from "@tensorflow/tfjs";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { loadArray } from "../../lib/src/data";
import { loadDataFashionMnist } from "../../lib/src/fashion-mnist";
import { crossEntropy, softmaxCrossEntropy } from "../../lib/src/losses";
import { evaluateAccuracy } from "../../lib/src/metrics";
import { softmax } from "../../lib/src/models";
import { gradOf, sgd } from "../../lib/src/optim";
import { predictCh3, trainCh3, trainEpochCh3, type TrainMetrics } from "../../lib/src/train";
import { realDataDir } from "./fashion-mnist-fixtures";
import { blobs, countReads, inFakeKernel } from "./train-fixtures";

/** d2l's scratch softmax regression for `numInputs` features and 3 classes. */
function scratchModel(numInputs: number, numOutputs = 3) {
  const W = tf.tidy(() => tf.variable(tf.randomNormal([numInputs, numOutputs], 0, 0.01)));
  const b = tf.tidy(() => tf.variable(tf.zeros([numOutputs])));
  const net = (X: tf.Tensor) => softmax(tf.matMul(X.reshape([-1, numInputs]), W).add(b));
  return { W, b, net, dispose: () => tf.dispose([W, b]) };
}

/** The concise model: a dense layer on logits, N(0, 0.01) weights. */
function conciseModel(numInputs: number, numOutputs = 3) {
  return tf.sequential({
    layers: [
      tf.layers.dense({
        units: numOutputs,
        inputShape: [numInputs],
        kernelInitializer: tf.initializers.randomNormal({ stddev: 0.01 }),
      }),
    ],
  });
}

let log: ReturnType<typeof vi.spyOn>;
beforeEach(() => {
  // The Animator prints one line per epoch outside a kernel; keep the test output quiet.
  log = vi.spyOn(console, "log").mockImplementation(() => undefined);
});
afterEach(() => {
  vi.restoreAllMocks();
});

describe("trainCh3", () => {
  it("trains a function net with d2l's updater(batchSize) and sgd, and returns the last epoch's metrics", () => {
    const [X, y] = blobs(600);
    const [Xt, yt] = blobs(300);
    const trainIter = loadArray([X, y], 32);
    const testIter = loadArray([Xt, yt], 64, false);
    const { W, b, net, dispose } = scratchModel(4);
    const metrics = trainCh3(net, trainIter, testIter, crossEntropy, 5, (batchSize) => sgd([W, b], 0.1, batchSize));
    expect(metrics.trainLoss).toBeLessThan(0.2);
    expect(metrics.trainAcc).toBeGreaterThan(0.97);
    expect(metrics.testAcc).toBeGreaterThan(0.97);
    expect(metrics.testAcc).toBe(evaluateAccuracy(net, testIter));
    // one line per epoch outside a kernel
    const lines = log.mock.calls.map((c) => String(c[0]));
    expect(lines).toHaveLength(5);
    const { trainLoss, trainAcc, testAcc } = metrics;
    expect(lines[4]).toBe(`epoch 5: train loss ${trainLoss.toFixed(4)}, train acc ${trainAcc.toFixed(4)}, test acc ${testAcc.toFixed(4)}`);
    tf.dispose([X, y, Xt, yt]);
    dispose();
  });

  it("calls onEpoch after each epoch with its number and metrics, the last ones those it returns", () => {
    const [X, y] = blobs(300);
    const data = loadArray([X, y], 50, false);
    const { W, b, net, dispose } = scratchModel(4);
    const seen: [number, TrainMetrics][] = [];
    const metrics = trainCh3(net, data, data, crossEntropy, 3, (n) => sgd([W, b], 0.1, n), (epoch, m) => seen.push([epoch, m]));
    expect(seen.map(([epoch]) => epoch)).toEqual([1, 2, 3]);
    expect(seen[2][1]).toEqual(metrics);
    expect(seen[0][1].trainLoss).toBeGreaterThan(seen[2][1].trainLoss);
    tf.dispose([X, y]);
    dispose();
  });

  it("trains a tf.sequential model with a tfjs optimizer, on a loss from logits", () => {
    const [X, y] = blobs(600);
    const [Xt, yt] = blobs(300);
    const model = conciseModel(4);
    const metrics = trainCh3(model, loadArray([X, y], 32), loadArray([Xt, yt], 64, false), softmaxCrossEntropy, 5, tf.train.sgd(0.1));
    expect(metrics.trainLoss).toBeLessThan(0.2);
    expect(metrics.trainAcc).toBeGreaterThan(0.97);
    expect(metrics.testAcc).toBeGreaterThan(0.97);
    tf.dispose([X, y, Xt, yt]);
    model.dispose();
  });

  it("keeps d2l's asserts as errors that say what fell short", () => {
    const [X, y] = blobs(300);
    const data = loadArray([X, y], 50, false);
    const { W, b, net, dispose } = scratchModel(4);
    expect(() => trainCh3(net, data, data, crossEntropy, 1, (n) => sgd([W, b], 1e-6, n))).toThrow(
      /trainCh3: after 1 epoch\(s\) the train loss is 1\.\d{4}, not below 0\.5; d2l expects better/,
    );
    expect(() => trainCh3(net, data, data, crossEntropy, 0, (n) => sgd([W, b], 0.1, n))).toThrow(
      /trainCh3: numEpochs must be a positive integer; got 0/,
    );
    tf.dispose([X, y]);
    dispose();
  });

  it("leaks no tensor: the count after equals the count before, plus the weights a layers model builds; a rerun adds none", () => {
    const [X, y] = blobs(300);
    const data = loadArray([X, y], 32);
    const { W, b, net, dispose } = scratchModel(4);
    const before = tf.memory().numTensors;
    trainCh3(net, data, data, crossEntropy, 3, (n) => sgd([W, b], 0.1, n));
    expect(tf.memory().numTensors).toBe(before);
    trainCh3(net, data, data, crossEntropy, 3, (n) => sgd([W, b], 0.1, n));
    expect(tf.memory().numTensors).toBe(before);

    const model = tf.sequential({ layers: [tf.layers.dense({ units: 3, inputShape: [4] })] });
    const optimizer = tf.train.momentum(0.1, 0.9);
    const beforeModel = tf.memory().numTensors;
    trainCh3(model, data, data, softmaxCrossEntropy, 3, optimizer);
    // the dense layer's kernel and bias (built on first use), and momentum's two accumulators
    const created = tf.memory().numTensors - beforeModel;
    expect(created).toBeLessThanOrEqual(4);
    trainCh3(model, data, data, softmaxCrossEntropy, 3, optimizer);
    expect(tf.memory().numTensors - beforeModel).toBe(created);
    model.dispose();
    optimizer.dispose();
    tf.dispose([X, y]);
    dispose();
  });

  it("stops a diverging run with an error naming the epoch and the step, and leaks nothing", () => {
    const [X, y] = blobs(128);
    const [Xt, yt] = blobs(30);
    const trainIter = loadArray([X, y], 32, false); // 4 steps an epoch
    const testIter = loadArray([Xt, yt], 30, false); // 1 batch
    const { W, b, net, dispose } = scratchModel(4);
    // The 8th call is epoch 2, step 3 (each epoch calls the net 4 times to train, once to test).
    let calls = 0;
    const poisoned = (X: tf.Tensor) => {
      calls++;
      return calls === 8 ? net(X).mul(NaN) : net(X);
    };
    const before = tf.memory().numTensors;
    expect(() => trainCh3(poisoned, trainIter, testIter, crossEntropy, 5, (n) => sgd([W, b], 0.1, n))).toThrow(
      /the loss became non-finite \(NaN\) in epoch 2, at step 3 of 4\..*smaller learning rate/,
    );
    expect(calls).toBe(9); // stopped at the end of epoch 2, before testing it
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([X, y, Xt, yt]);
    dispose();
  });
  it("blames the loss, not the learning rate, when the very first loss is not finite", () => {
    const [X, y] = blobs(128);
    const data = loadArray([X, y], 32, false);
    // A net that outputs logits, all -1 at the start: log of a negative "probability" is NaN.
    const model = tf.sequential({
      layers: [tf.layers.dense({ units: 3, inputShape: [4], kernelInitializer: "zeros", biasInitializer: tf.initializers.constant({ value: -1 }) })],
    });
    expect(() => trainCh3(model, data, data, crossEntropy, 2, tf.train.sgd(0.1))).toThrow(
      /non-finite \(NaN\) in epoch 1, at step 1 of 4\. It was never finite, so the loss or the model is at fault.*use softmaxCrossEntropy/,
    );
    tf.dispose([X, y]);
    model.dispose();
  });

  it("refuses a net or an updater of the wrong kind, naming it", () => {
    const [X, y] = blobs(30);
    const data = loadArray([X, y], 10);
    const { net, dispose } = scratchModel(4);
    expect(() => trainEpochCh3(42 as never, data, crossEntropy, tf.train.sgd(0.1))).toThrow(
      /trainEpochCh3: net must be a function of X or a tfjs layers model; got 42/,
    );
    expect(() => trainCh3(net, data, data, crossEntropy, 1, 0.1 as never)).toThrow(
      /trainEpochCh3: updater must be a tfjs optimizer or a function \(batchSize\) => void; got 0\.1/,
    );
    tf.dispose([X, y]);
    dispose();
  });
});

describe("trainEpochCh3", () => {
  it("returns the mean loss and the accuracy over the epoch's examples", () => {
    const [X, y] = blobs(200);
    const data = loadArray([X, y], 64, false); // batches of 64, 64, 64, 8
    const { W, b, net, dispose } = scratchModel(4);
    const sizes: number[] = [];
    const [loss, acc] = trainEpochCh3(net, data, crossEntropy, (n) => {
      sizes.push(n);
      sgd([W, b], 0, n); // lr 0: the parameters stay as they are
    });
    expect(sizes).toEqual([64, 64, 64, 8]);
    const expectedLoss = tf.tidy(() => crossEntropy(net(X), y).mean().dataSync()[0]);
    expect(loss).toBeCloseTo(expectedLoss, 5);
    expect(acc).toBe(evaluateAccuracy(net, data));
    tf.dispose([X, y]);
    dispose();
  });

  it("hands d2l's updater the gradients of the summed loss, and a tfjs optimizer those of the mean", () => {
    const [X, y] = blobs(50);
    const data = loadArray([X, y], 50, false); // one batch: one step
    const lr = 0.5;
    // the gradient of the summed loss at the starting point
    const start = scratchModel(4);
    const expected = tf.tidy(() => {
      const g = tf.grads((w: tf.Tensor, c: tf.Tensor) => crossEntropy(softmax(X.matMul(w).add(c)), y).sum());
      return g([start.W, start.b]).map((t) => t.arraySync() as number[][] | number[]);
    });
    // d2l style: the updater sees the summed loss's gradients through gradOf
    const a = scratchModel(4);
    a.W.assign(start.W);
    let seen: number[][] = [];
    trainEpochCh3(a.net, data, crossEntropy, (n) => {
      seen = gradOf(a.W).arraySync() as number[][];
      sgd([a.W, a.b], lr, n);
    });
    seen.flat().forEach((v, i) => expect(v).toBeCloseTo((expected[0] as number[][]).flat()[i], 4));
    // tfjs optimizer: one step of lr on the mean loss, i.e. the summed gradient / batch size
    const c = scratchModel(4);
    c.W.assign(start.W);
    trainEpochCh3(c.net, data, crossEntropy, tf.train.sgd(lr));
    const stepW = tf.tidy(() => (start.W.sub(c.W).div(lr).arraySync() as number[][]).flat());
    stepW.forEach((v, i) => expect(v).toBeCloseTo((expected[0] as number[][]).flat()[i] / 50, 4));
    // and both ways land on the same parameters
    const diff = tf.tidy(() => a.W.sub(c.W).abs().max().dataSync()[0]);
    expect(diff).toBeLessThan(1e-6);
    tf.dispose([X, y]);
    [start, a, c].forEach((m) => m.dispose());
  });

  it("reads the device a fixed number of times an epoch, not once per step", () => {
    const [X, y] = blobs(1000);
    const data = loadArray([X, y], 10); // 100 steps
    const { W, b, net, dispose } = scratchModel(4);
    const { reads } = countReads(() => trainEpochCh3(net, data, crossEntropy, (n) => sgd([W, b], 0.1, n)));
    expect(reads).toBeLessThanOrEqual(3);
    tf.dispose([X, y]);
    dispose();
  });
});

describe("softmax regression on Fashion-MNIST", () => {
  it("reaches d2l's numbers in 10 epochs (batch 256, lr 0.1), and lr 100 diverges with a clear error", async () => {
    const [trainIter, testIter] = await loadDataFashionMnist(256, { root: realDataDir() });
    const { W, b, net, dispose } = scratchModel(784, 10);
    const before = tf.memory().numTensors;
    const metrics = trainCh3(net, trainIter, testIter, crossEntropy, 10, (n) => sgd([W, b], 0.1, n));
    expect(metrics.trainLoss).toBeLessThan(0.5);
    expect(metrics.trainAcc).toBeGreaterThan(0.82);
    expect(metrics.testAcc).toBeGreaterThanOrEqual(0.8);
    expect(tf.memory().numTensors).toBe(before);

    const fresh = scratchModel(784, 10);
    expect(() => trainCh3(fresh.net, trainIter, testIter, crossEntropy, 10, (n) => sgd([fresh.W, fresh.b], 100, n))).toThrow(
      /Training diverged: the loss became non-finite \((NaN|Infinity)\) in epoch 1, at step \d+ of 235\..*smaller learning rate/,
    );
    expect(tf.memory().numTensors).toBe(before + 2);
    dispose();
    fresh.dispose();
  }, 120_000);
});

describe("predictCh3", () => {
  it("shows the first n test images titled with the true label over the predicted one", async () => {
    const [, testIter] = await loadDataFashionMnist(256, { root: realDataDir() });
    // A "net" that always predicts class 9 (ankle boot).
    const net = (X: tf.Tensor) => tf.oneHot(tf.fill([X.shape[0]], 9, "int32"), 10);
    const before = tf.memory().numTensors;
    const sent = inFakeKernel(() => predictCh3(net, testIter));
    expect(tf.memory().numTensors).toBe(before);
    const charts = sent.filter((m) => "application/vnd.plotly.v1+json" in m.data);
    expect(charts).toHaveLength(1);
    const fig = charts[0].data["application/vnd.plotly.v1+json"] as { data: { type: string; z: unknown }[]; layout: { annotations: { text: string }[] } };
    expect(fig.data).toHaveLength(6);
    expect(fig.data[0].z).toMatchObject({ dtype: "f4", shape: "28,28" }); // 28x28 pixels as a typed array (figure.ts)
    // Two-line titles (true over predicted; Plotly breaks at <br>). The test set starts with an ankle boot, a pullover, a trouser, a trouser, a shirt, a trouser.
    expect(fig.layout.annotations.map((a) => a.text)).toEqual(
      ["ankle boot", "pullover", "trouser", "trouser", "shirt", "trouser"].map((t) => `${t}<br>ankle boot`),
    );
    const three = inFakeKernel(() => predictCh3(net, testIter, 3));
    const fig3 = three.find((m) => "application/vnd.plotly.v1+json" in m.data)!.data["application/vnd.plotly.v1+json"] as { data: unknown[] };
    expect(fig3.data).toHaveLength(3);
  });
});
