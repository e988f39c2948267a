import * as tf from "@tensorflow/tfjs";
import { describe, expect, it } from "vitest";
import { SKINNY_MAX_COLUMNS, columnBlocks, skinnyMatMul } from "../../lib/src/engine/skinny-matmul";
import { values } from "./kernel-fixtures";

const onWasm = tf.getBackend() === "wasm";

describe("columnBlocks", () => {
  it("splits the columns into contiguous blocks of at most 5, as even as possible", () => {
    expect(columnBlocks(10)).toEqual([[0, 5], [5, 5]]);
    expect(columnBlocks(16)).toEqual([[0, 4], [4, 4], [8, 4], [12, 4]]);
    expect(columnBlocks(1)).toEqual([[0, 1]]);
    for (let n = 1; n <= 40; n++) {
      const blocks = columnBlocks(n);
      let next = 0;
      for (const [start, width] of blocks) {
        expect(start).toBe(next);
        expect(width).toBeGreaterThan(0);
        expect(width).toBeLessThanOrEqual(5);
        next += width;
      }
      expect(next).toBe(n);
      expect(Math.max(...blocks.map(([, w]) => w)) - Math.min(...blocks.map(([, w]) => w))).toBeLessThanOrEqual(1);
    }
  });
});

describe.skipIf(!onWasm)("skinnyMatMul (wasm backend)", () => {
  const backend = () => tf.backend() as unknown as Parameters<typeof skinnyMatMul>[0];
  const info = (t: tf.Tensor): tf.TensorInfo => ({ dataId: t.dataId, shape: t.shape, dtype: t.dtype });

  /** Runs the kernel directly; returns its values and shape, or undefined when it declines. */
  function product(aShape: number[], bShape: number[], tA: boolean, tB: boolean, withBias = false) {
    const a = tf.tensor(values(aShape.reduce((p, d) => p * d, 1), 3), aShape);
    const b = tf.tensor(values(bShape.reduce((p, d) => p * d, 1), 4), bShape);
    const n = tB ? bShape[bShape.length - 2] : bShape[bShape.length - 1];
    const bias = withBias ? tf.tensor1d(values(n, 5)) : undefined;
    const out = skinnyMatMul(backend(), info(a), info(b), tA, tB, bias && info(bias));
    let result: { data: Float32Array; shape: number[] } | undefined;
    if (out !== undefined) {
      const t = tf.engine().makeTensorFromTensorInfo(out);
      const expected = tf.tidy(() => {
        const p = tf.matMul(a, b, tA, tB);
        return bias ? p.add(bias) : p;
      });
      result = { data: t.dataSync() as Float32Array, shape: t.shape };
      const k = tA ? aShape[aShape.length - 2] : aShape[aShape.length - 1];
      expect(t.shape).toEqual(expected.shape);
      expect(tf.max(tf.abs(tf.sub(t, expected))).dataSync()[0]).toBeLessThan(2e-6 * k);
      tf.dispose([t, expected]);
    }
    tf.dispose([a, b, ...(bias ? [bias] : [])]);
    return result;
  }

  it("computes softmax regression's products: X·W (+ b), dY·Wᵀ's transposed twin, Xᵀ·dY", () => {
    expect(product([256, 784], [784, 10], false, false)).toBeDefined();
    expect(product([256, 784], [784, 10], false, false, true)).toBeDefined();
    expect(product([256, 784], [10, 784], false, true, true)).toBeDefined();
    expect(product([256, 784], [256, 10], true, false)).toBeDefined();
    expect(product([1, 64, 784], [1, 784, 10], false, false)?.shape).toEqual([1, 64, 10]);
  });

  it("handles odd row counts, one column, the widest skinny product and a lone block of 4 rows", () => {
    expect(product([7, 12], [12, 3], false, false, true)).toBeDefined();
    expect(product([3, 4], [4, 1], false, false)).toBeDefined();
    expect(product([5, 8], [8, SKINNY_MAX_COLUMNS], false, false)).toBeDefined();
    expect(product([5, 12], [5, 3], true, false)).toBeDefined(); // m = 12 = 8 + 4
    expect(product([6, 4], [6, 16], true, false)).toBeDefined(); // m = 4 only
  });

  it("declines what it does not compute, so the backend's kernel runs", () => {
    expect(product([8, 6], [6, 3], false, false)).toBeUndefined(); // k not a multiple of 4
    expect(product([8, 10], [8, 3], true, false)).toBeUndefined(); // m not a multiple of 4 with A transposed
    expect(product([8, 8], [8, SKINNY_MAX_COLUMNS + 1], false, false)).toBeUndefined(); // too many columns
    expect(product([8, 8], [8, 3], true, false, true)).toBeUndefined(); // bias with A transposed
    expect(product([8, 8], [3, 8], true, true)).toBeUndefined(); // both transposed
    expect(product([2, 8, 8], [2, 8, 3], false, false)).toBeUndefined(); // several batches
    expect(product([8, 8], [6, 3], false, false)).toBeUndefined(); // mismatched inner sizes
    const a = tf.zeros([4, 4], "int32");
    expect(skinnyMatMul(backend(), info(a), info(a), false, false)).toBeUndefined();
    a.dispose();
  });

  it("leaves no buffer behind (its scratch transpose is freed)", () => {
    const a = tf.tensor(values(64 * 784, 1), [64, 784]);
    const b = tf.tensor(values(784 * 10, 2), [784, 10]);
    const buffers = tf.engine().backend.numDataIds();
    for (let i = 0; i < 3; i++) {
      const out = skinnyMatMul(backend(), info(a), info(b), false, false)!;
      expect(tf.engine().backend.numDataIds()).toBe(buffers + 1);
      tf.engine().backend.disposeData(out.dataId);
    }
    expect(tf.engine().backend.numDataIds()).toBe(buffers);
    tf.dispose([a, b]);
  });
});
