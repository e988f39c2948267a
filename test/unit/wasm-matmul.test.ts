import * as tf from "@tensorflow/tfjs";
import { afterAll, describe, expect, it, vi } from "vitest";
import {
  restoreWasmMatMul,
  useFastWasmMatMul,
  type MatMulRewrite,
  type Transposer,
} from "../../lib/src/engine/wasm-matmul";
import { trainDenseLayer, values } from "./kernel-fixtures";

const onWasm = tf.getBackend() === "wasm";

function broadcastShape(a: number[], b: number[]): number[] {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    out.push(Math.max(da, db));
  }
  return out;
}

/** Offset of the broadcast batch index `idx` (of `outBatch`) into a tensor with batch dims `batch`. */
function batchOffset(idx: number[], batch: number[], matrix: number): number {
  let offset = 0;
  const shift = idx.length - batch.length;
  for (let i = 0; i < batch.length; i++) {
    offset = offset * batch[i] + (batch[i] === 1 ? 0 : idx[i + shift]);
  }
  return offset * matrix;
}

/** op(A)·op(B) in float64, with tfjs's broadcasting of batch dims. */
function reference(
  a: Float32Array, aShape: number[], b: Float32Array, bShape: number[], tA: boolean, tB: boolean,
): { data: Float64Array; shape: number[] } {
  const [ar, ac] = aShape.slice(-2);
  const [br, bc] = bShape.slice(-2);
  const m = tA ? ac : ar;
  const k = tA ? ar : ac;
  const n = tB ? br : bc;
  const aBatch = aShape.slice(0, -2);
  const bBatch = bShape.slice(0, -2);
  const outBatch = broadcastShape(aBatch, bBatch);
  const batches = outBatch.reduce((p, d) => p * d, 1);
  const data = new Float64Array(batches * m * n);
  for (let t = 0; t < batches; t++) {
    const idx: number[] = [];
    for (let i = outBatch.length - 1, r = t; i >= 0; i--) {
      idx.unshift(r % outBatch[i]);
      r = Math.floor(r / outBatch[i]);
    }
    const ao = batchOffset(idx, aBatch, ar * ac);
    const bo = batchOffset(idx, bBatch, br * bc);
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let sum = 0;
        for (let p = 0; p < k; p++) {
          const av = tA ? a[ao + p * ac + i] : a[ao + i * ac + p];
          const bv = tB ? b[bo + j * bc + p] : b[bo + p * bc + j];
          sum += av * bv;
        }
        data[t * m * n + i * n + j] = sum;
      }
    }
  }
  return { data, shape: [...outBatch, m, n] };
}

function maxAbsDiff(x: ArrayLike<number>, y: ArrayLike<number>): number {
  expect(x.length).toBe(y.length);
  let d = 0;
  for (let i = 0; i < x.length; i++) d = Math.max(d, Math.abs(x[i] - y[i]));
  return d;
}

/** [aShape, bShape] of the untransposed product; flags transpose the stored operand. */
const SHAPES: [number[], number[]][] = [
  [[5, 7], [7, 3]],
  [[31, 17], [17, 29]],
  [[13, 1], [1, 11]],
  [[1, 9], [9, 1]],
  [[256, 784], [784, 10]],
  [[1, 6, 5], [5, 4]],
  [[1, 6, 5], [1, 5, 4]],
  [[4, 6, 5], [4, 5, 3]],
  [[4, 6, 5], [5, 3]],
  [[1, 6, 5], [3, 5, 4]],
  [[5, 7], [3, 7, 2]],
  [[2, 3, 3, 5], [3, 5, 7]],
  // m and n multiples of 4: the SIMD transpose runs
  [[8, 12], [12, 4]],
  [[1, 16, 8], [8, 12]],
  [[64, 784], [784, 12]],
  // at most 16 columns, k or m a multiple of 4: the skinny kernels run (odd m, m = 8q + 4, n = 1, 16 and 17)
  [[7, 12], [12, 3]],
  [[12, 8], [8, 1]],
  [[20, 4], [4, 16]],
  [[9, 16], [16, 17]],
  [[1, 5, 8], [1, 8, 7]],
];
// tfjs (every backend) flattens batch dims, so [2, 1, ...] against [3, ...] is not supported,
// and its matMul gradient does not sum over broadcast batch dims: gradients are checked on
// products whose batch dims agree.
const FLAGS: [boolean, boolean][] = [
  [false, false],
  [true, false],
  [false, true],
  [true, true],
];
/** [rewrite, transposer, skinny]: the defaults, then each other path with the skinny kernels off. */
const SETTINGS: [MatMulRewrite, Transposer, boolean][] = [
  ["auto", "auto", true],
  ["auto", "auto", false],
  ["operands", "read-order", false],
  ["operands", "write-order", false],
  ["output", "read-order", false],
  ["output", "write-order", false],
  ["operands", "simd", false],
  ["output", "simd", false],
];

/** Stored operand shapes and data for op(A)·op(B) with the untransposed shapes given. */
function operands(aShape: number[], bShape: number[], tA: boolean, tB: boolean, seed: number) {
  const swap = (s: number[], t: boolean) => (t ? [...s.slice(0, -2), s[s.length - 1], s[s.length - 2]] : s);
  const as = swap(aShape, tA);
  const bs = swap(bShape, tB);
  const size = (s: number[]) => s.reduce((p, d) => p * d, 1);
  return { as, bs, a: values(size(as), seed), b: values(size(bs), seed + 1) };
}

function run(f: () => tf.Tensor): { data: Float32Array; shape: number[] } {
  const t = f();
  const out = { data: t.dataSync() as Float32Array, shape: t.shape };
  t.dispose();
  return out;
}

describe.skipIf(!onWasm)("useFastWasmMatMul (wasm backend)", () => {
  afterAll(() => {
    useFastWasmMatMul({ rewrite: "auto", transposer: "auto", skinny: true });
  });

  it("is installed by initBackend and re-calling it is a no-op", () => {
    const before = tf.getKernel(tf.BatchMatMul, "wasm")!.kernelFunc;
    const fusedBefore = tf.getKernel(tf._FusedMatMul, "wasm")!.kernelFunc;
    expect(useFastWasmMatMul()).toBe(true);
    expect(useFastWasmMatMul()).toBe(true);
    expect(tf.getKernel(tf.BatchMatMul, "wasm")!.kernelFunc).toBe(before);
    expect(tf.getKernel(tf._FusedMatMul, "wasm")!.kernelFunc).toBe(fusedBefore);
    // initBackend installed it: restoring changes the kernel, and installing again changes it back.
    expect(restoreWasmMatMul()).toBe(true);
    expect(restoreWasmMatMul()).toBe(false);
    const original = tf.getKernel(tf.BatchMatMul, "wasm")!.kernelFunc;
    expect(original).not.toBe(before);
    useFastWasmMatMul();
    expect(tf.getKernel(tf.BatchMatMul, "wasm")!.kernelFunc).not.toBe(original);
  });

  it("a second copy of the module (lib/dist next to lib/src) sees the installed kernels", async () => {
    useFastWasmMatMul();
    const installed = tf.getKernel(tf.BatchMatMul, "wasm")!.kernelFunc;
    vi.resetModules();
    const copy = await import("../../lib/src/engine/wasm-matmul");
    expect(copy.useFastWasmMatMul).not.toBe(useFastWasmMatMul);
    expect(copy.useFastWasmMatMul()).toBe(true);
    expect(tf.getKernel(tf.BatchMatMul, "wasm")!.kernelFunc).toBe(installed); // not wrapped twice
    expect(copy.restoreWasmMatMul()).toBe(true);
    expect(restoreWasmMatMul()).toBe(false); // already the original
    useFastWasmMatMul();
    expect(copy.restoreWasmMatMul()).toBe(true);
    useFastWasmMatMul();
  });

  it("matMul matches the original kernel and a float64 reference, every flag, shape and setting", () => {
    let checked = 0;
    for (const [aShape, bShape] of SHAPES) {
      for (const [tA, tB] of FLAGS) {
        const { as, bs, a, b } = operands(aShape, bShape, tA, tB, 7 + checked);
        const ref = reference(a, as, b, bs, tA, tB);
        const product = () => tf.matMul(tf.tensor(a, as), tf.tensor(b, bs), tA, tB);
        restoreWasmMatMul();
        const original = run(() => tf.tidy(product));
        for (const [rewrite, transposer, skinny] of SETTINGS) {
          useFastWasmMatMul({ rewrite, transposer, skinny });
          const fast = run(() => tf.tidy(product));
          expect(fast.shape).toEqual(original.shape);
          expect(fast.shape).toEqual(ref.shape);
          const k = tA ? as[as.length - 2] : as[as.length - 1];
          expect(maxAbsDiff(fast.data, original.data)).toBeLessThan(2e-6 * k);
          expect(maxAbsDiff(fast.data, ref.data)).toBeLessThan(2e-6 * k);
          checked++;
        }
      }
    }
    expect(checked).toBe(SHAPES.length * FLAGS.length * SETTINGS.length);
  });

  it.each([["relu", true], ["linear", true], ["linear", false]] as const)(
    "fused matMul (bias, %s; skinny kernels %s) matches a float64 reference with transposes", (activation, skinny) => {
    useFastWasmMatMul({ rewrite: "auto", transposer: "auto", skinny });
    // Single-batch products only: with several batches the wasm kernel's own slow path
    // broadcasts the bias wrongly past row 0, and that path is left as it is.
    const singleBatch = (s: number[]) => s.slice(0, -2).every((d) => d === 1);
    for (const [aShape, bShape] of SHAPES.filter(([a, b]) => singleBatch(a) && singleBatch(b) && a.length <= 3)) {
      for (const [tA, tB] of FLAGS) {
        const { as, bs, a, b } = operands(aShape, bShape, tA, tB, 99);
        const n = bShape[bShape.length - 1];
        const bias = values(n, 5);
        const ref = reference(a, as, b, bs, tA, tB);
        const expected = ref.data.map((v, i) => (activation === "relu" ? Math.max(0, v + bias[i % n]) : v + bias[i % n]));
        const fast = run(() =>
          tf.tidy(() =>
            tf.fused.matMul({
              a: tf.tensor(a, as) as tf.Tensor as tf.Tensor2D,
              b: tf.tensor(b, bs) as tf.Tensor as tf.Tensor2D,
              transposeA: tA,
              transposeB: tB,
              bias: tf.tensor1d(bias),
              activation,
            }),
          ),
        );
        expect(fast.shape).toEqual(ref.shape);
        expect(maxAbsDiff(fast.data, expected)).toBeLessThan(1e-4);
      }
    }
  });

  it("gradients of matMul (tf.grads) match the original kernel's", () => {
    const sameBatch = ([a, b]: number[][]) => a.slice(0, -2).join() === b.slice(0, -2).join();
    for (const [aShape, bShape] of SHAPES.filter(sameBatch)) {
      for (const [tA, tB] of FLAGS) {
        const { as, bs, a, b } = operands(aShape, bShape, tA, tB, 3);
        const grads = () =>
          tf.tidy(() => {
            const A = tf.tensor(a, as);
            const B = tf.tensor(b, bs);
            const out = tf.matMul(A, B, tA, tB);
            const weights = tf.tensor(values(out.size, 11), out.shape);
            const g = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(tf.matMul(x, y, tA, tB), weights)));
            return g([A, B]);
          });
        const read = (ts: tf.Tensor[]) => {
          const out = ts.map((t) => ({ data: t.dataSync() as Float32Array, shape: t.shape }));
          tf.dispose(ts);
          return out;
        };
        restoreWasmMatMul();
        const original = read(grads());
        useFastWasmMatMul({ rewrite: "auto", transposer: "auto" });
        const fast = read(grads());
        expect(fast.map((g) => g.shape)).toEqual([as, bs]);
        for (let i = 0; i < 2; i++) {
          expect(fast[i].shape).toEqual(original[i].shape);
          expect(maxAbsDiff(fast[i].data, original[i].data)).toBeLessThan(1e-3);
        }
      }
    }
  });

  it("a dense layer's training step gives the same weights as with the original kernels", () => {
    restoreWasmMatMul();
    const original = trainDenseLayer();
    useFastWasmMatMul();
    const fast = trainDenseLayer();
    expect(fast).toHaveLength(2);
    expect(maxAbsDiff(fast[0], original[0])).toBeLessThan(1e-5);
    expect(maxAbsDiff(fast[1], original[1])).toBeLessThan(1e-5);
    // The weights did move away from their initial values.
    expect(maxAbsDiff(fast[0], new Float32Array(fast[0].length).fill(0.01))).toBeGreaterThan(1e-3);
  });

  it("leaks neither tensors nor wasm buffers", () => {
    for (const [rewrite, transposer, skinny] of SETTINGS) {
      useFastWasmMatMul({ rewrite, transposer, skinny });
      const A = tf.tensor(values(256 * 784, 1), [256, 784]);
      const B = tf.tensor(values(256 * 10, 2), [256, 10]);
      const W = tf.tensor(values(784 * 10, 3), [784, 10]);
      const bias = tf.zeros([10]);
      const tensors = tf.memory().numTensors;
      const buffers = tf.engine().backend.numDataIds();
      for (let i = 0; i < 5; i++) {
        tf.dispose([
          tf.matMul(A, B, true, false),
          tf.matMul(B, W, false, true),
          tf.matMul(A, W),
          tf.matMul(W, A, true, true),
          tf.fused.matMul({ a: B, b: W, transposeB: true }),
          tf.fused.matMul({ a: A, b: B, transposeA: true, bias }),
          tf.tidy(() => tf.grads((w: tf.Tensor) => tf.sum(tf.matMul(A, w)))([W])),
        ]);
      }
      expect(tf.memory().numTensors).toBe(tensors);
      expect(tf.engine().backend.numDataIds()).toBe(buffers);
      tf.dispose([A, B, W, bias]);
    }
  });

  it("the SIMD transpose of the gradient's operands is exact, also after the backend's memory grew", () => {
    useFastWasmMatMul({ rewrite: "operands", transposer: "simd", skinny: false });
    for (const [m, n] of [[4, 4], [256, 784], [784, 256], [12, 40]]) {
      const a = values(m * n, m + n);
      const identity = tf.eye(m);
      // I·op(A) with A transposed is Aᵀ exactly: each output is one product by 1 and sums of zeros
      const t = run(() => tf.tidy(() => tf.matMul(identity, tf.tensor(a, [n, m]), false, true)));
      identity.dispose();
      expect(t.shape).toEqual([m, n]);
      let bad = 0;
      for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) if (t.data[i * n + j] !== a[j * m + i]) bad++;
      expect(bad).toBe(0);
    }
    // grow the heap (a 64 MB tensor), then transpose again: the kernel sees the new memory
    const big = tf.zeros([16 * 1024 * 1024]);
    const a = values(64 * 32, 5);
    const g = run(() => tf.tidy(() => tf.matMul(tf.tensor(a, [32, 64]), tf.eye(32), true, false)));
    big.dispose();
    expect(Array.from(g.data).every((v, k) => v === a[(k % 32) * 64 + Math.floor(k / 32)])).toBe(true);
    useFastWasmMatMul({ rewrite: "auto", transposer: "auto", skinny: true });
  });

  it("keeps the original kernel's errors for mismatched shapes", () => {
    const A = tf.zeros([3, 4]);
    const B = tf.zeros([5, 6]);
    expect(() => tf.matMul(A, B, true, false)).toThrow(/inner shapes/);
    expect(() => tf.matMul(A, B, false, true)).toThrow(/inner shapes/);
    tf.dispose([A, B]);
  });
});
