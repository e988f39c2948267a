import * as tf from "@tensorflow/tfjs";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { corr2d } from "../../lib/src/conv";
import { loadArray } from "../../lib/src/data";
import { Device } from "../../lib/src/device";
import { heatmapsFigure } from "../../lib/src/heatmaps";
import { setSeed } from "../../lib/src/seed";
import { evaluateAccuracyGpu, trainCh6 } from "../../lib/src/train-ch6";

describe("corr2d", () => {
  it("computes d2l's 3 x 3 example and agrees with tf.conv2d on odd sizes", () => {
    tf.tidy(() => {
      const Y = corr2d(tf.tensor2d([[0, 1, 2], [3, 4, 5], [6, 7, 8]]), tf.tensor2d([[0, 1], [2, 3]]));
      expect(Y.arraySync()).toEqual([[19, 25], [37, 43]]);
      for (const [nh, nw, kh, kw] of [[5, 7, 3, 2], [4, 4, 4, 1], [6, 3, 1, 3]]) {
        const X = tf.randomNormal([nh, nw]);
        const K = tf.randomNormal([kh, kw]);
        const ref = tf.conv2d(X.reshape([1, nh, nw, 1]) as tf.Tensor4D, K.reshape([kh, kw, 1, 1]) as tf.Tensor4D, 1, "valid");
        const ours = corr2d(X, K);
        expect(ours.shape).toEqual([nh - kh + 1, nw - kw + 1]);
        expect(ours.sub(ref.reshape(ours.shape)).abs().max().dataSync()[0]).toBeLessThan(1e-5);
      }
    });
  });

  it("lets gradients flow to the kernel: d/dK of sum(corr2d(X, K)) is the sum of X's windows", () => {
    tf.tidy(() => {
      const X = tf.tensor2d([[0, 1, 2], [3, 4, 5], [6, 7, 8]]);
      const g = tf.grad((K: tf.Tensor) => corr2d(X, K).sum())(tf.zeros([2, 2]));
      expect(g.arraySync()).toEqual([[8, 12], [20, 24]]);
    });
  });

  it("refuses a kernel larger than the input, or tensors that are not matrices, naming the argument", () => {
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      expect(() => corr2d(tf.ones([2, 2]), tf.ones([3, 1]))).toThrow("corr2d: K must be no larger than X ([2, 2]); got a float32 tensor of shape [3, 1]");
      expect(() => corr2d(tf.ones([2, 2, 1]), tf.ones([1, 1]))).toThrow("corr2d: X must be a 2-D tensor");
    });
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe("heatmapsFigure", () => {
  it("lays out a grid of heatmaps with square pixels, one color scale and one color bar", () => {
    const grid = tf.tidy(() => tf.range(0, 2 * 3 * 4 * 5).reshape([2, 3, 4, 5]).sub(30));
    const fig = heatmapsFigure(grid, "column", "row", ["a", "b", "c"], [6, 4], "RdBu");
    grid.dispose();
    expect(fig.data).toHaveLength(6);
    expect(fig.data.every((t) => t.type === "heatmap" && t.zmin === -89 && t.zmax === 89)).toBe(true); // RdBu: symmetric about 0
    expect(fig.data.filter((t) => t.showscale)).toHaveLength(1);
    expect(fig.data[5].z![0]).toEqual([70, 71, 72, 73, 74]); // matrix (1, 2): elements 100.. less 30
    const { layout } = fig;
    const plotW = layout.width - layout.margin!.l - layout.margin!.r;
    const plotH = layout.height - layout.margin!.t - layout.margin!.b;
    for (const suffix of ["", "2", "6"]) {
      const x = layout[`xaxis${suffix}`]!.domain!;
      const y = layout[`yaxis${suffix}`]!.domain!;
      expect(((x[1] - x[0]) * plotW) / 5).toBeCloseTo(((y[1] - y[0]) * plotH) / 4, 6); // square pixels
      expect(layout[`yaxis${suffix}`]!.range).toEqual([3.5, -0.5]); // row 0 at the top
    }
    // Titles head each column of each row (d2l's per-column titles); labels only on the outer axes.
    expect(layout.annotations!.map((a) => a.text)).toEqual(["a", "b", "c", "a", "b", "c"]);
    expect(layout.xaxis4!.title).toEqual({ text: "column" });
    expect(layout.xaxis!.title).toBeUndefined();
    expect(layout.yaxis4!.title).toEqual({ text: "row" });
    expect(layout.yaxis5!.title).toBeUndefined();
    expect(layout.width).toBeLessThanOrEqual(6 * 150);
    expect(layout.height).toBeLessThanOrEqual(4 * 150);
  });

  it("takes one title per matrix, nested arrays, and a constant matrix", () => {
    const fig = heatmapsFigure([[[[1, 1]], [[1, 1]]]], "", "", ["p", "q"]);
    expect(fig.data.map((t) => [t.zmin, t.zmax])).toEqual([[0, 2], [0, 2]]);
    expect(fig.layout.annotations!.map((a) => a.text)).toEqual(["p", "q"]);
  });

  it("refuses what it cannot draw, naming the argument", () => {
    expect(() => heatmapsFigure(tf.zeros([2, 2]) as tf.Tensor, "", "")).toThrow("showHeatmaps: matrices must be a 4-D tensor");
    expect(() => heatmapsFigure([[[[1, NaN]]]], "", "")).toThrow("showHeatmaps: matrices must be");
    expect(() => heatmapsFigure([[[[1]], [[1]]]], "", "", ["a", "b", "c"])).toThrow("showHeatmaps: titles must be 2 titles (one per column) or 2 (one per matrix)");
    expect(() => heatmapsFigure([[[[1]]]], "", "", undefined, [2, 2], "jet" as "Reds")).toThrow("showHeatmaps: cmap must be one of Reds, Blues, gray, RdBu");
    expect(() => heatmapsFigure([[[[1]]]], "", "", undefined, [0, 2])).toThrow("showHeatmaps: figsize[0] must be positive");
  });
});

/** 8 x 8 images of a vertical (class 0) or horizontal (class 1) bar at a random place, with noise. */
function bars(n: number): [tf.Tensor4D, tf.Tensor1D] {
  const pixels = new Float32Array(n * 64);
  const labels = new Int32Array(n);
  for (let k = 0; k < n; k++) {
    const cls = k % 2;
    const at = 1 + Math.floor(Math.random() * 6);
    for (let i = 0; i < 8; i++) {
      for (let j = 0; j < 8; j++) pixels[k * 64 + i * 8 + j] = 0.1 * Math.random() + ((cls === 0 ? j : i) === at ? 1 : 0);
    }
    labels[k] = cls;
  }
  return [tf.tensor4d(pixels, [n, 8, 8, 1]), tf.tensor1d(labels, "int32")];
}

/** A small LeNet-like net for 8 x 8 images. */
function smallCnn(): tf.Sequential {
  return tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [8, 8, 1], filters: 4, kernelSize: 3, padding: "same", activation: "relu" }),
      tf.layers.maxPooling2d({ poolSize: 2, strides: 2 }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 2 }),
    ],
  });
}

describe("trainCh6 and evaluateAccuracyGpu", () => {
  let log: ReturnType<typeof vi.spyOn>;
  beforeEach(() => {
    setSeed(3);
    log = vi.spyOn(console, "log").mockImplementation(() => {});
  });
  afterEach(() => {
    log.mockRestore();
    setSeed(undefined);
  });

  it("trains a small CNN to tell bars apart, prints d2l's lines, and leaves no tensor behind", () => {
    const [X, y] = bars(256);
    const trainIter = loadArray([X, y], 32);
    const testIter = loadArray([X, y], 64, false);
    tf.dispose([X, y]);
    const net = smallCnn();
    const before = tf.memory().numTensors;
    const m = trainCh6(net, trainIter, testIter, 3, 0.5, new Device("cpu", null, tf.getBackend()));
    expect(tf.memory().numTensors).toBe(before);
    expect(m.testAcc).toBeGreaterThan(0.95);
    expect(m.trainLoss).toBeLessThan(0.5);
    expect(m.examplesPerSec).toBeGreaterThan(0);
    expect(evaluateAccuracyGpu(net, testIter)).toBe(m.testAcc);
    const lines = log.mock.calls.map((c: unknown[]) => String(c[0]));
    expect(lines[0]).toBe(`training on cpu (${tf.getBackend()})`);
    expect(lines.at(-2)).toMatch(/^loss \d\.\d{3}, train acc \d\.\d{3}, test acc \d\.\d{3}$/);
    expect(lines.at(-1)).toMatch(new RegExp(`^\\d+\\.\\d examples/sec on cpu \\(${tf.getBackend()}\\)$`));
    // Outside a kernel the Animator prints its points: train metrics after every batch here (8 batches, 8 // 5 = 1), test accuracy once an epoch
    expect(lines.filter((l) => /^epoch \S+: train loss \d/.test(l))).toHaveLength(3 * 8);
    expect(lines.filter((l) => /test acc \d/.test(l) && /^epoch \d+:/.test(l))).toHaveLength(3);
    net.dispose();
  });

  it("re-initializes the weights (Xavier uniform): each call starts afresh", () => {
    const net = smallCnn();
    const kernel = net.layers[0].getWeights()[0] as tf.Variable; // the layer's own variable
    tf.tidy(() => kernel.assign(tf.fill(kernel.shape, 100)));
    const [X, y] = bars(64);
    const iter = loadArray([X, y], 64, false);
    tf.dispose([X, y]);
    trainCh6(net, iter, iter, 1, 1e-6);
    const limit = Math.sqrt(6 / (9 * 1 + 9 * 4)); // fan in 3·3·1, fan out 3·3·4
    expect(kernel.abs().max().dataSync()[0]).toBeLessThanOrEqual(limit);
    net.dispose();
  });

  it("refuses bad arguments with messages naming them", () => {
    const net = smallCnn();
    const [X, y] = bars(8);
    const iter = loadArray([X, y], 8);
    tf.dispose([X, y]);
    const other = tf.getBackend() === "cpu" ? "wasm" : "cpu";
    expect(() => trainCh6(net, iter, iter, 0, 0.1)).toThrow("trainCh6: numEpochs must be a positive integer; got 0");
    expect(() => trainCh6(net, iter, iter, 1, -1)).toThrow("trainCh6: lr must be a positive number; got -1");
    expect(() => trainCh6(((x: tf.Tensor) => x) as unknown as tf.LayersModel, iter, iter, 1, 0.1)).toThrow("trainCh6: net must be a tfjs layers model");
    expect(() => trainCh6(net, iter, iter, 1, 0.1, new Device("cpu", null, other))).toThrow(`trainCh6: device must be the active backend "${tf.getBackend()}"`);
    expect(() => evaluateAccuracyGpu(net, iter, { backend: tf.getBackend() } as Device)).toThrow("evaluateAccuracyGpu: device must be a Device from tryGpu()");
    net.dispose();
  });

  it("stops with an error naming the epoch and step when the loss blows up", () => {
    const [X, y] = bars(64);
    const big = X.mul(1e4);
    const iter = loadArray([big, y], 16);
    tf.dispose([X, y, big]);
    const net = smallCnn();
    const before = tf.memory().numTensors;
    expect(() => trainCh6(net, iter, iter, 2, 1e30)).toThrow(/trainCh6: the training loss became (NaN|Infinity) in epoch \d, step \d/);
    expect(tf.memory().numTensors).toBe(before);
    net.dispose();
  });
});
