import * as tf from "@tensorflow/tfjs";
import { mkdirSync, writeFileSync } from "fs";
import { join } from "path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BatchSource } from "../../lib/src/batches";
import {
  fashionMnist,
  getFashionMnistLabels,
  loadDataFashionMnist,
  projectRoot,
} from "../../lib/src/fashion-mnist";
import { ImageDataset } from "../../lib/src/image-data";
import { listing, realDataDir, tempDir } from "./fashion-mnist-fixtures";

// The real files come from Debian's copy (read-only); the cache is a temporary folder, so the
// project's data/ is never written.
const cache = tempDir("fm-cache");
const options = { systemDir: realDataDir(), cacheDir: cache.dir, baseUrl: "http://127.0.0.1:9/" };
afterAll(cache.cleanup);

let train: ImageDataset;
let test: ImageDataset;
// How fast it loads and reads is measured by `npm run bench:data`, not here: a timed test
// fails on a busy machine without anything being wrong.
beforeAll(async () => {
  [train, test] = await fashionMnist(options);
});

function histogram(labels: ArrayLike<number>): number[] {
  const counts = new Array(10).fill(0);
  for (let i = 0; i < labels.length; i++) counts[labels[i]]++;
  return counts;
}

describe("fashionMnist on the real files", () => {
  it("reads 60000 training and 10000 test images of 28x28 without touching the cache", () => {
    expect(train.length).toBe(60000);
    expect(test.length).toBe(10000);
    expect([train.height, train.width, test.height, test.width]).toEqual([28, 28, 28, 28]);
    expect(train.images.length).toBe(60000 * 784);
    expect(test.images.length).toBe(10000 * 784);
    expect(listing(cache.dir)).toEqual([]);
  });

  it("has 6000 training and 1000 test images of each class", () => {
    expect(histogram(train.labels)).toEqual(new Array(10).fill(6000));
    expect(histogram(test.labels)).toEqual(new Array(10).fill(1000));
  });

  it("has pixel bytes spanning 0..255", () => {
    let min = 255;
    let max = 0;
    for (const v of train.images) {
      if (v < min) min = v;
      if (v > max) max = v;
    }
    expect([min, max]).toEqual([0, 255]);
  });

  it("decodes once per process: later loads share the same arrays", async () => {
    const [train2, test2] = await fashionMnist({ root: "/nonexistent" });
    expect(train2).toBe(train);
    expect(test2).toBe(test);
    const [trainIter] = await loadDataFashionMnist(256, options);
    expect(trainIter.numExamples).toBe(60000);
    expect(train2.images).toBe(train.images);
  });

  it("gives example 0 as a [28, 28, 1] float image in [0, 1] with its label (an ankle boot)", () => {
    const before = tf.memory().numTensors;
    const [x, y] = train.get(0);
    expect(x.shape).toEqual([28, 28, 1]);
    expect(x.dtype).toBe("float32");
    const values = x.dataSync() as Float32Array;
    expect(values[0]).toBe(0);
    expect(Math.max(...values)).toBeLessThanOrEqual(1);
    expect(values.reduce((a, b) => a + b, 0)).toBeCloseTo(train.images.subarray(0, 784).reduce((a, b) => a + b, 0) / 255, 2);
    expect(y).toBe(9);
    x.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});

/** One epoch's labels, batch sizes and the first batch's pixels; checks shapes and dtypes on the way. */
function readEpoch(source: BatchSource, size: number): { labels: number[]; sizes: number[]; first: Float32Array } {
  const labels: number[] = [];
  const sizes: number[] = [];
  let first = new Float32Array();
  for (const [X, y] of source) {
    const b = X.shape[0];
    expect(X.shape).toEqual([b, size, size, 1]);
    expect(X.dtype).toBe("float32");
    expect(y.shape).toEqual([b]);
    expect(y.dtype).toBe("int32");
    if (sizes.length === 0) first = X.dataSync() as Float32Array;
    sizes.push(b);
    labels.push(...y.dataSync());
  }
  return { labels, sizes, first };
}

describe("loadDataFashionMnist", () => {
  it("yields X float32 [b, 28, 28, 1] in [0, 1] and y int32 [b]; the test set in file order", async () => {
    const [, testIter] = await loadDataFashionMnist(256, options);
    const { labels, sizes, first } = readEpoch(testIter, 28);
    expect(sizes.length).toBe(40);
    expect(sizes.slice(0, 39).every((b) => b === 256)).toBe(true);
    expect(sizes[39]).toBe(10000 - 39 * 256);
    expect(labels).toEqual(Array.from(test.labels));
    // The first batch is the first 256 images, each byte divided by 255.
    expect(first.length).toBe(256 * 784);
    for (const i of [0, 1, 500, 200_000, 256 * 784 - 1]) expect(first[i]).toBeCloseTo(test.images[i] / 255, 6);
    expect(first.reduce((a, b) => Math.min(a, b))).toBe(0);
    expect(first.reduce((a, b) => Math.max(a, b))).toBe(1);
  });

  it("visits every training example exactly once an epoch, in a new order each epoch", async () => {
    const [trainIter] = await loadDataFashionMnist(1000, options);
    const a = readEpoch(trainIter, 28);
    const b = readEpoch(trainIter, 28);
    expect(a.sizes).toEqual(new Array(60).fill(1000));
    expect(histogram(a.labels)).toEqual(new Array(10).fill(6000));
    expect(histogram(b.labels)).toEqual(new Array(10).fill(6000));
    const same = a.labels.filter((v, i) => v === b.labels[i]).length;
    expect(same).toBeLessThan(60000 * 0.2); // two random orders agree on ~10% of positions
  });

  it("reads epoch after epoch of batch-256 training batches, leaking no tensor", async () => {
    const [trainIter] = await loadDataFashionMnist(256, options);
    const before = tf.memory().numTensors;
    let batches = 0;
    for (let epoch = 0; epoch < 3; epoch++) {
      for (const [X, y] of trainIter) {
        batches++;
        expect(X.size).toBe(X.shape[0] * 784);
        expect(y.shape[0]).toBe(X.shape[0]);
      }
    }
    expect(batches).toBe(3 * 235);
    expect(tf.memory().numTensors).toBe(before);
  });

  it("frees the current batch when a loop breaks, and keeps batches the caller tf.keep()s", async () => {
    const [trainIter, testIter] = await loadDataFashionMnist(64, options);
    const before = tf.memory().numTensors;
    for (const _ of trainIter) break;
    expect(tf.memory().numTensors).toBe(before);
    let kept: tf.Tensor[] = [];
    for (const [X, y] of testIter) {
      kept = [tf.keep(X), tf.keep(y)];
      break;
    }
    expect(kept.every((t) => !t.isDisposed)).toBe(true);
    expect(kept[1].dataSync()[0]).toBe(test.labels[0]);
    tf.dispose(kept);
    expect(tf.memory().numTensors).toBe(before);
  });

  it("resizes with resize: [32, 64, 64, 1] batches, still in [0, 1]", async () => {
    const [trainIter] = await loadDataFashionMnist(32, { ...options, resize: 64 });
    const before = tf.memory().numTensors;
    for (const [X, y] of trainIter) {
      expect(X.shape).toEqual([32, 64, 64, 1]);
      expect(X.dtype).toBe("float32");
      expect(y.shape).toEqual([32]);
      expect(y.dtype).toBe("int32");
      const [lo, hi] = tf.tidy(() => [X.min().dataSync()[0], X.max().dataSync()[0]]);
      expect(lo).toBeGreaterThanOrEqual(0);
      expect(hi).toBeLessThanOrEqual(1);
      expect(hi).toBeGreaterThan(0.5);
      break;
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it("rejects a bad batch size or resize, naming the argument", async () => {
    await expect(loadDataFashionMnist(0, options)).rejects.toThrow(/loadDataFashionMnist: batchSize must be a positive integer; got 0/);
    await expect(loadDataFashionMnist(256, { ...options, resize: 2.5 })).rejects.toThrow(/loadDataFashionMnist: resize must be a positive integer; got 2.5/);
  });
});

describe("ImageDataset", () => {
  // Image i holds i in its first two pixels, so every example can be recognised in a batch.
  const n = 1003;
  const images = new Uint8Array(n * 4);
  for (let i = 0; i < n; i++) images.set([i & 255, i >> 8, 0, 255], i * 4);
  const labels = Uint8Array.from({ length: n }, (_, i) => i % 10);
  const data = new ImageDataset(images, labels, 2, 2);

  it("visits each example exactly once an epoch, including the short last batch", () => {
    const source = data.batches(100, { shuffle: true });
    const orders: number[][] = [];
    for (let epoch = 0; epoch < 2; epoch++) {
      const seen: number[] = [];
      for (const [X, y] of source) {
        const x = X.dataSync();
        const ys = y.dataSync();
        for (let k = 0; k < X.shape[0]; k++) {
          const id = Math.round(x[k * 4] * 255) + 256 * Math.round(x[k * 4 + 1] * 255);
          expect(ys[k]).toBe(id % 10);
          expect(x[k * 4 + 3]).toBe(1);
          seen.push(id);
        }
      }
      expect(seen.length).toBe(n);
      expect(new Set(seen).size).toBe(n);
      orders.push(seen);
    }
    expect(orders[0]).not.toEqual(orders[1]);
  });

  it("slices examples in file order and checks its arguments", () => {
    const [X, y] = data.slice(256, 259);
    expect(X.shape).toEqual([3, 2, 2, 1]);
    expect(Array.from(y.dataSync())).toEqual([6, 7, 8]);
    expect(Array.from(X.dataSync()).map((v) => Math.round(v * 255))).toEqual([0, 1, 0, 255, 1, 1, 0, 255, 2, 1, 0, 255]);
    tf.dispose([X, y]);
    expect(() => data.slice(5, 5)).toThrow(/ImageDataset.slice: end must be greater than start \(5\); got 5/);
    expect(() => data.get(n)).toThrow(/ImageDataset.get: i must be an integer in 0..1002; got 1003/);
    expect(() => data.batches(0)).toThrow(/ImageDataset.batches: batchSize must be a positive integer/);
    expect(() => new ImageDataset(images, labels, 3, 3)).toThrow(/1003 labels need 9027 pixels/);
  });
});

describe("getFashionMnistLabels", () => {
  it("maps 0..9 to the ten class names, from arrays and tensors", () => {
    expect(getFashionMnistLabels([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])).toEqual([
      "t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot",
    ]);
    expect(getFashionMnistLabels([0, 9, 3])).toEqual(["t-shirt", "ankle boot", "dress"]);
    const y = tf.tensor1d([5, 7, 8], "int32");
    expect(getFashionMnistLabels(y)).toEqual(["sandal", "sneaker", "bag"]);
    y.dispose();
    expect(getFashionMnistLabels(test.labels.subarray(0, 3))).toEqual(["ankle boot", "pullover", "trouser"]);
  });

  it("rejects labels outside 0..9", () => {
    expect(() => getFashionMnistLabels([1, 10])).toThrow(/getFashionMnistLabels: labels\[1\] must be an integer in 0..9; got 10/);
    expect(() => getFashionMnistLabels([0.5])).toThrow(/labels\[0\] must be an integer/);
    expect(() => getFashionMnistLabels(null as unknown as number[])).toThrow(/labels must be a tensor or an array of integers 0..9; got null/);
  });
});

describe("projectRoot", () => {
  it("is the folder holding lib/, whatever the working directory", () => {
    expect(listing(projectRoot())).toContain("lib");
    expect(listing(projectRoot())).toContain("notebooks");
  });

  it("finds the project from lib/dist, from node_modules/d2l/dist, and falls back to the working directory", () => {
    const tree = tempDir("fm-root");
    try {
      const pkg = JSON.stringify({ name: "d2l" });
      mkdirSync(join(tree.dir, "proj", "lib", "dist"), { recursive: true });
      writeFileSync(join(tree.dir, "proj", "lib", "package.json"), pkg);
      mkdirSync(join(tree.dir, "app", "node_modules", "d2l", "dist"), { recursive: true });
      writeFileSync(join(tree.dir, "app", "node_modules", "d2l", "package.json"), pkg);
      mkdirSync(join(tree.dir, "bundle"));
      expect(projectRoot(join(tree.dir, "proj", "lib", "dist"))).toBe(join(tree.dir, "proj"));
      expect(projectRoot(join(tree.dir, "app", "node_modules", "d2l", "dist"))).toBe(join(tree.dir, "app"));
      expect(projectRoot(join(tree.dir, "bundle"))).toBe(process.cwd());
    } finally {
      tree.cleanup();
    }
  });
});
