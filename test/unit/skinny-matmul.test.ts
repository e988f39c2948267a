import * as tf from "@tensorflow/tfjs";
import { describe, expect, it } from "vitest";
import { SKINNY_MAX_COLUMNS, broadcastMatMul, broadcastRows, columnBlocks, skinnyMatMul } from "../../lib/src/engine/skinny-matmul";
import { packedMatMul } from "../../lib/src/engine/packed-matmul";
import { relaxedSimdAvailable } from "../../lib/src/engine/relaxed-simd";
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

describe.skipIf(!onWasm)("broadcastMatMul (wasm backend)", () => {
  const backend = () => tf.backend() as unknown as Parameters<typeof broadcastMatMul>[0];
  const info = (t: tf.Tensor): tf.TensorInfo => ({ dataId: t.dataId, shape: t.shape, dtype: t.dtype });
  const read = (out: tf.TensorInfo) => {
    const t = tf.engine().makeTensorFromTensorInfo(out);
    const data = t.dataSync() as Float32Array;
    t.dispose();
    return data;
  };

  /**
   * op(A)·op(B) (+ bias) by the broadcast kernel, against the product in float64 (within float32
   * rounding of a k-term sum) and against the packed kernel's dense product bit for bit (with and
   * without relaxed SIMD; the packed kernel's 6-row block when asked), for m×k·k×n and each flag.
   */
  function check(m: number, k: number, n: number, tA: boolean, tB: boolean, withBias: boolean, rows?: number): void {
    const av = values(m * k, 3 + m);
    const bv = values(k * n, 4 + n);
    const a = tf.tensor(av, tA ? [k, m] : [m, k]);
    const b = tf.tensor(bv, tB ? [n, k] : [k, n]);
    const bias = withBias ? tf.tensor1d(values(n, 5)) : undefined;
    const A = (i: number, p: number) => (tA ? av[p * m + i] : av[i * k + p]);
    const B = (p: number, j: number) => (tB ? bv[j * k + p] : bv[p * n + j]);
    const biasValues = bias?.dataSync();
    for (const relaxed of [false, ...(relaxedSimdAvailable() ? [true] : [])]) {
      const out = broadcastMatMul(backend(), info(a), info(b), tA, tB, bias && info(bias), relaxed, rows)!;
      expect(out.shape).toEqual([m, n]);
      const ours = read(out);
      let worst = 0;
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n; j++) {
          let exact = biasValues?.[j] ?? 0;
          for (let p = 0; p < k; p++) exact += A(i, p) * B(p, j);
          worst = Math.max(worst, Math.abs(ours[i * n + j] - exact));
        }
      }
      expect(worst, `${m}×${k}·${k}×${n} ${tA} ${tB} bias ${withBias} relaxed ${relaxed}`).toBeLessThan(1e-6 * (k + 1));
      for (const packedRows of [4, 6]) {
        const packed = packedMatMul(backend(), info(a), info(b), tA, tB, { bias: bias && info(bias) }, { relaxed, skipZeros: false, rows: packedRows })!;
        expect(Array.from(ours), `packed ${packedRows} rows, ${m}×${k}·${k}×${n} ${tA} ${tB} relaxed ${relaxed}`).toEqual(Array.from(read(packed)));
      }
    }
    tf.dispose([a, b, ...(bias ? [bias] : [])]);
  }

  it("computes softmax regression's products (X·W + b, Xᵀ·dY, X·Wᵀ) as the packed kernel does, bit for bit", () => {
    check(256, 784, 10, false, false, true);
    check(256, 784, 10, false, false, false);
    check(784, 256, 10, true, false, false);
    check(256, 784, 10, false, true, true);
  });

  it("takes every column count up to 16, row counts off the block, one step, both flags, and blocks of 1 to 6 rows", () => {
    for (const n of [1, 2, 3, 4, 5, 7, 8, 9, 12, 13, 16]) check(7, 5, n, false, false, n % 2 === 0);
    for (const [tA, tB] of [[true, false], [false, true], [true, true]] as const) check(11, 6, 10, tA, tB, !tA);
    check(1, 1, 10, false, false, true);
    check(2, 3, 10, true, true, false);
    for (let rows = 1; rows <= 6; rows++) check(13, 9, 10, rows % 2 === 0, false, false, rows);
    expect([1, 4, 5, 8, 10, 12, 16].map(broadcastRows)).toEqual([6, 6, 5, 5, 3, 3, 2]);
  });

  it("declines several batches, too many columns and other dtypes, and leaves no buffer behind", () => {
    const buffers = tf.engine().backend.numDataIds();
    const a = tf.tensor(values(2 * 8 * 8, 1), [2, 8, 8]);
    const wide = tf.tensor(values(8 * 17, 2), [8, 17]);
    const ints = tf.zeros([8, 8], "int32");
    expect(broadcastMatMul(backend(), info(a), info(a), false, false, undefined, false)).toBeUndefined();
    const plain = tf.tensor(values(8 * 8, 3), [8, 8]);
    expect(broadcastMatMul(backend(), info(plain), info(wide), false, false, undefined, false)).toBeUndefined();
    expect(broadcastMatMul(backend(), info(ints), info(ints), false, false, undefined, false)).toBeUndefined();
    for (let i = 0; i < 3; i++) {
      const out = broadcastMatMul(backend(), info(plain), info(plain), true, false, undefined, true);
      expect(out).toBeDefined();
      tf.engine().backend.disposeData(out!.dataId);
    }
    tf.dispose([a, wide, ints, plain]);
    expect(tf.engine().backend.numDataIds()).toBe(buffers);
  });
});
