import * as tf from "@tensorflow/tfjs";
import { describe, expect, it } from "vitest";
import type { BatchSource } from "../../lib/src/batches";
import { dataIter, loadArray, rowTaker, syntheticData } from "../../lib/src/data";
import { disposeOnRerun } from "../../lib/src/rerun";

/** n examples whose features are [i, 10 i] and label i, so a batch shows which examples it holds. */
function indexed(n: number): [tf.Tensor2D, tf.Tensor2D] {
  return tf.tidy(() => {
    const i = tf.range(0, n).reshape([n, 1]);
    return [tf.concat([i, i.mul(10)], 1) as tf.Tensor2D, i.clone() as tf.Tensor2D];
  });
}

/** One epoch: each batch's size and the example ids it held, checking that X and y stay paired. */
function epoch(batches: Iterable<[tf.Tensor, tf.Tensor]>): { sizes: number[]; ids: number[] } {
  const sizes: number[] = [];
  const ids: number[] = [];
  for (const [X, y] of batches) {
    const xs = X.arraySync() as number[][];
    const ys = (y.arraySync() as number[][]).map((r) => r[0]);
    expect(xs.map((r) => r[0])).toEqual(ys);
    expect(xs.map((r) => r[1])).toEqual(ys.map((v) => 10 * v));
    sizes.push(X.shape[0]);
    ids.push(...ys);
  }
  return { sizes, ids };
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** Least squares of y on [X, 1] through the normal equations (3×3, solved by Gaussian elimination). */
function leastSquares(X: number[][], y: number[]): number[] {
  const rows = X.map((r) => [...r, 1]);
  const k = rows[0].length;
  const A = Array.from({ length: k }, (_, i) => Array.from({ length: k + 1 }, (_, j) =>
    rows.reduce((s, r, n) => s + r[i] * (j < k ? r[j] : y[n]), 0)));
  for (let c = 0; c < k; c++) {
    for (let r = c + 1; r < k; r++) {
      const f = A[r][c] / A[c][c];
      for (let j = c; j <= k; j++) A[r][j] -= f * A[c][j];
    }
  }
  const x = new Array<number>(k).fill(0);
  for (let r = k - 1; r >= 0; r--) {
    x[r] = (A[r][k] - A[r].slice(r + 1, k).reduce((s, a, j) => s + a * x[r + 1 + j], 0)) / A[r][r];
  }
  return x;
}

describe("syntheticData", () => {
  it("returns X of shape [n, len(w)] and y of shape [n, 1] without leaking", () => {
    const w = tf.tensor1d([2, -3.4]);
    const before = tf.memory().numTensors;
    const [X, y] = syntheticData(w, 4.2, 1000);
    expect(X.shape).toEqual([1000, 2]);
    expect(y.shape).toEqual([1000, 1]);
    expect(tf.memory().numTensors).toBe(before + 2);
    tf.dispose([w, X, y]);
  });

  it("draws X ~ N(0, 1) and y = Xw + b + N(0, 0.01²): least squares recovers w and b", () => {
    const trueW = [2, -3.4];
    const trueB = 4.2;
    const w = tf.tensor1d(trueW);
    const [Xt, yt] = syntheticData(w, trueB, 20000);
    const X = Xt.arraySync();
    const y = (yt.arraySync() as number[][]).map((r) => r[0]);
    tf.dispose([w, Xt, yt]);

    const flat = X.flat();
    const mean = flat.reduce((s, v) => s + v, 0) / flat.length;
    const std = Math.sqrt(flat.reduce((s, v) => s + (v - mean) ** 2, 0) / flat.length);
    expect(Math.abs(mean)).toBeLessThan(0.03);
    expect(Math.abs(std - 1)).toBeLessThan(0.03);

    const [w0, w1, b] = leastSquares(X, y);
    expect(Math.abs(w0 - trueW[0])).toBeLessThan(0.01);
    expect(Math.abs(w1 - trueW[1])).toBeLessThan(0.01);
    expect(Math.abs(b - trueB)).toBeLessThan(0.01);

    const noise = y.map((v, n) => v - (X[n][0] * trueW[0] + X[n][1] * trueW[1] + trueB));
    const noiseMean = noise.reduce((s, v) => s + v, 0) / noise.length;
    const noiseStd = Math.sqrt(noise.reduce((s, v) => s + (v - noiseMean) ** 2, 0) / noise.length);
    expect(Math.abs(noiseStd - 0.01) / 0.01).toBeLessThan(0.1);
    expect(Math.abs(noiseMean)).toBeLessThan(0.001);
  });

  it("refuses a w that is not 1-D, a non-finite b and a bad numExamples, naming them", () => {
    const w = tf.tensor1d([2, -3.4]);
    const w2 = tf.tensor2d([[2], [-3.4]]);
    expect(() => syntheticData(w2, 4.2, 10)).toThrow("syntheticData: w must be a 1-D tensor; got a float32 tensor of shape [2, 1]");
    expect(() => syntheticData([2, -3.4] as unknown as tf.Tensor, 4.2, 10)).toThrow("syntheticData: w must be a 1-D tensor; got an array of length 2");
    expect(() => syntheticData(w, NaN, 10)).toThrow("syntheticData: b must be a finite number; got NaN");
    for (const n of [0, -5, 2.5, NaN]) {
      expect(() => syntheticData(w, 4.2, n)).toThrow(`syntheticData: numExamples must be a positive integer; got ${n}`);
    }
    tf.dispose([w, w2]);
  });
});

describe("dataIter", () => {
  it("yields ceil(n / batchSize) batches, the last one smaller, each example once", () => {
    const [X, y] = indexed(103);
    const { sizes, ids } = epoch(dataIter(10, X, y));
    expect(sizes).toEqual([10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 3]);
    expect([...ids].sort((a, b) => a - b)).toEqual(range(103));
    expect(epoch(dataIter(103, X, y)).sizes).toEqual([103]);
    expect(epoch(dataIter(500, X, y)).sizes).toEqual([103]);
    tf.dispose([X, y]);
  });

  it("shuffles: the order is not the input order and differs between calls", () => {
    const [X, y] = indexed(100);
    const first = epoch(dataIter(10, X, y)).ids;
    const second = epoch(dataIter(10, X, y)).ids;
    expect(first).not.toEqual(range(100));
    expect(second).not.toEqual(first);
    tf.dispose([X, y]);
  });

  it("disposes each batch when the loop moves on, ends or breaks", () => {
    const [X, y] = indexed(50);
    const before = tf.memory().numTensors;
    const seen: tf.Tensor[] = [];
    for (const batch of dataIter(7, X, y)) {
      expect(tf.memory().numTensors).toBe(before + 2);
      seen.push(...batch);
    }
    expect(seen.every((t) => t.isDisposed)).toBe(true);
    for (const [Xb] of dataIter(7, X, y)) {
      seen.push(Xb);
      break;
    }
    expect(seen[seen.length - 1].isDisposed).toBe(true);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([X, y]);
  });

  it("refuses a bad batch size and features and labels of different lengths, naming them", () => {
    const [X, y] = indexed(10);
    const short = tf.zeros([9, 1]);
    for (const bs of [0, -1, 2.5]) {
      expect(() => [...dataIter(bs, X, y)]).toThrow(`dataIter: batchSize must be a positive integer; got ${bs}`);
    }
    expect(() => [...dataIter(2, X, short)]).toThrow(
      "dataIter: labels must be a tensor with 10 rows, as many as features; got a float32 tensor of shape [9, 1]",
    );
    expect(() => [...dataIter(2, [[1]] as unknown as tf.Tensor, y)]).toThrow("dataIter: features must be a tensor; got an array of length 1");
    tf.dispose([X, y, short]);
  });
});

describe("loadArray", () => {
  it("is a re-iterable BatchSource: each loop is one epoch of every example", () => {
    const [X, y] = indexed(25);
    const source: BatchSource = loadArray([X, y], 4);
    expect(source.numExamples).toBe(25);
    expect(source.batchSize).toBe(4);
    for (let e = 0; e < 3; e++) {
      const { sizes, ids } = epoch(source);
      expect(sizes).toEqual([4, 4, 4, 4, 4, 4, 1]);
      expect([...ids].sort((a, b) => a - b)).toEqual(range(25));
    }
    tf.dispose([X, y]);
  });

  it("shuffles anew each epoch when isTrain, keeps the input order otherwise", () => {
    const [X, y] = indexed(100);
    const train = loadArray([X, y], 10);
    const [e1, e2] = [epoch(train).ids, epoch(train).ids];
    expect(e1).not.toEqual(range(100));
    expect(e2).not.toEqual(e1);
    const test = loadArray([X, y], 30, false);
    expect(epoch(test)).toEqual({ sizes: [30, 30, 30, 10], ids: range(100) });
    expect(epoch(test).ids).toEqual(range(100));
    tf.dispose([X, y]);
  });

  it("reads the tensors once: they may be disposed, and int32 labels stay int32", () => {
    const X = tf.tensor2d([[1, 2], [3, 4], [5, 6]]);
    const y = tf.tensor1d([7, 8, 9], "int32");
    const source = loadArray([X, y], 2, false);
    tf.dispose([X, y]);
    const before = tf.memory().numTensors;
    const batches: [number[][], number[], string][] = [];
    for (const [Xb, yb] of source) batches.push([Xb.arraySync() as number[][], yb.arraySync() as number[], yb.dtype]);
    expect(batches).toEqual([
      [[[1, 2], [3, 4]], [7, 8], "int32"],
      [[[5, 6]], [9], "int32"],
    ]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it("refuses bad input, naming the argument", () => {
    const [X, y] = indexed(10);
    const short = tf.zeros([8]);
    for (const bs of [0, -3, 1.5]) {
      expect(() => loadArray([X, y], bs)).toThrow(`loadArray: batchSize must be a positive integer; got ${bs}`);
    }
    expect(() => loadArray([X, short], 2)).toThrow(
      "loadArray: dataArrays[1] must be a tensor with 10 rows, as many as dataArrays[0]; got a float32 tensor of shape [8]",
    );
    expect(() => loadArray([X] as unknown as [tf.Tensor, tf.Tensor], 2)).toThrow(
      "loadArray: dataArrays must be [features, labels]; got an array of length 1",
    );
    expect(() => loadArray([tf.scalar(1), y] as [tf.Tensor, tf.Tensor], 2)).toThrow(
      "loadArray: dataArrays[0] must be a tensor with one row per example (rank >= 1); got a float32 tensor of shape []",
    );
    tf.dispose([X, y, short]);
  });
});

describe("rowTaker", () => {
  it("copies the given rows, keeping the row shape and dtype", () => {
    const t = tf.tensor3d([[[1, 2]], [[3, 4]], [[5, 6]]], [3, 1, 2], "int32");
    const take = rowTaker(t);
    const rows = take([2, 0, 2]);
    expect(rows.shape).toEqual([3, 1, 2]);
    expect(rows.dtype).toBe("int32");
    expect(rows.arraySync()).toEqual([[[5, 6]], [[1, 2]], [[5, 6]]]);
    tf.dispose([t, rows]);
  });
});

describe("disposeOnRerun", () => {
  it("frees what the previous run registered under the same key, and nothing else", () => {
    const before = tf.memory().numTensors;
    const run = () => {
      const t = tf.ones([3]);
      const v = tf.tidy(() => tf.variable(tf.zeros([2])));
      const net = tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [2] })] });
      disposeOnRerun("test-cell", t, v, net);
      return net;
    };
    run();
    const afterOne = tf.memory().numTensors;
    expect(afterOne).toBe(before + 4); // t, v, the dense kernel and bias
    const net = run();
    expect(tf.memory().numTensors).toBe(afterOne);
    net.dispose(); // disposed by hand: the next run must not fail on it
    run();
    expect(tf.memory().numTensors).toBe(afterOne);
    const kept = tf.ones([1]);
    disposeOnRerun("other-cell", kept);
    disposeOnRerun("other-cell", kept);
    expect(kept.isDisposed).toBe(false);
    disposeOnRerun("test-cell");
    disposeOnRerun("other-cell");
    expect(tf.memory().numTensors).toBe(before);
  });
});
