import * as tf from "@tensorflow/tfjs";
import { afterAll, describe, expect, it } from "vitest";
import { restoreFusedMatMul, useDenseKernel, useLazyFusedMatMulGradient } from "../../lib/src/engine/fused-matmul-grad";
import { trainDenseLayer, values, withKernelNames } from "./kernel-fixtures";

/** The product kernels (D2lDenseLinear: X·W + b while recording on wasm, fused-matmul-grad.ts). */
const PRODUCTS = new Set<string>([tf.BatchMatMul, tf._FusedMatMul, "D2lDenseLinear"]);

/** The kernels `f` runs, by name. */
async function kernelsOf(f: () => tf.TensorContainer): Promise<string[]> {
  const info = await tf.profile(f);
  return info.kernels.map((k) => k.name);
}

describe("useLazyFusedMatMulGradient", () => {
  afterAll(() => {
    useLazyFusedMatMulGradient();
  });

  const X = tf.tensor(values(32 * 20, 1), [32, 20]);
  const W = tf.variable(tf.tensor(values(20 * 6, 2), [20, 6]));
  const b = tf.variable(tf.tensor1d(values(6, 3)));
  const weights = tf.tensor(values(32 * 6, 4), [32, 6]);
  /** A dense layer's loss: only W and b are trained, X is data. */
  const loss = () => tf.sum(tf.mul(tf.fused.matMul({ a: X, b: W, bias: b }), weights)) as tf.Scalar;

  it("is installed by initBackend; installing again is a no-op and restoring puts tfjs's back", () => {
    const installed = tf.fused.matMul;
    expect(useLazyFusedMatMulGradient()).toBe(true);
    expect(tf.fused.matMul).toBe(installed);
    expect(restoreFusedMatMul()).toBe(true);
    expect(tf.fused.matMul).not.toBe(installed);
    expect(restoreFusedMatMul()).toBe(false);
    expect(useLazyFusedMatMulGradient()).toBe(true);
    expect(tf.fused.matMul).not.toBe(installed); // a new wrapper of the same original
  });

  it("a dense layer's training step multiplies twice, not three times (no gradient for the data)", async () => {
    const step = () => {
      const { value, grads } = tf.variableGrads(loss, [W, b]);
      return [value, ...Object.values(grads)];
    };
    restoreFusedMatMul();
    const original = (await kernelsOf(step)).filter((k) => PRODUCTS.has(k));
    useLazyFusedMatMulGradient();
    const lazy = (await kernelsOf(step)).filter((k) => PRODUCTS.has(k));
    expect(original).toHaveLength(3);
    expect(lazy).toHaveLength(2);
  });

  it("outside of gradients it stays one fused kernel", async () => {
    const kernels = await kernelsOf(() => tf.fused.matMul({ a: X, b: W, bias: b }));
    expect(kernels.filter((k) => PRODUCTS.has(k))).toEqual([tf._FusedMatMul]);
    expect(kernels).not.toContain(tf.Add);
  });

  it("gives tfjs's gradients for A, B and the bias, with every transpose, with and without bias, linear and relu", () => {
    for (const [tA, tB] of [[false, false], [true, false], [false, true], [true, true]]) {
      for (const withBias of [true, false]) {
        for (const activation of ["linear", "relu"] as const) {
          const a = tf.tensor(values(12 * 8, 5), tA ? [8, 12] : [12, 8]);
          const bm = tf.tensor(values(8 * 5, 6), tB ? [5, 8] : [8, 5]);
          const bias = tf.tensor1d(values(5, 7));
          const w = tf.tensor(values(12 * 5, 8), [12, 5]);
          const f = (x: tf.Tensor, y: tf.Tensor, z: tf.Tensor) =>
            tf.sum(tf.mul(tf.fused.matMul({
              a: x as tf.Tensor2D, b: y as tf.Tensor2D, transposeA: tA, transposeB: tB, bias: withBias ? z : undefined, activation,
            }), w));
          const grads = () => tf.tidy(() => {
            const [ga, gb] = tf.grads((x: tf.Tensor, y: tf.Tensor) => f(x, y, bias))([a, bm]);
            const gBias = withBias ? tf.grad((z: tf.Tensor) => f(a, bm, z))(bias) : tf.zeros([5]);
            return [ga, gb, gBias].map((g) => Array.from(g.dataSync()));
          });
          restoreFusedMatMul();
          const original = grads();
          useLazyFusedMatMulGradient();
          const lazy = grads();
          for (let i = 0; i < 3; i++) {
            expect(lazy[i].length).toBe(original[i].length);
            lazy[i].forEach((v, j) => expect(Math.abs(v - original[i][j])).toBeLessThan(1e-5));
          }
          expect(original[1].some((v) => v !== 0)).toBe(true);
          tf.dispose([a, bm, bias, w]);
        }
      }
    }
  });

  it("trains a tf.layers.dense model to the same weights, without leaking tensors", () => {
    restoreFusedMatMul();
    const original = trainDenseLayer();
    useLazyFusedMatMulGradient();
    const lazy = trainDenseLayer();
    expect(lazy[0].some((v) => Math.abs(v - 0.01) > 1e-3)).toBe(true); // it did train
    for (let i = 0; i < 2; i++) lazy[i].forEach((v, j) => expect(Math.abs(v - original[i][j])).toBeLessThan(1e-5));
  });

  it.skipIf(tf.getBackend() !== "wasm")("on wasm runs X·W + b as one kernel while recording, with the two ops' floats and gradients bit for bit", () => {
    const bits = (xs: Float32Array[]) => xs.map((x) => Array.from(new Uint32Array(Float32Array.from(x).buffer)));
    useDenseKernel(false);
    const ops = bits(trainDenseLayer());
    useDenseKernel(true);
    const fused = bits(trainDenseLayer());
    expect(fused).toEqual(ops);
    const { names } = withKernelNames(() => tf.tidy(() => tf.variableGrads(loss, [W, b])));
    expect(names).toContain("D2lDenseLinear");
    expect(names).not.toContain(tf.Add);
    expect(names.filter((n) => PRODUCTS.has(n))).toEqual(["D2lDenseLinear", tf.BatchMatMul]); // and dW = Xᵀ·dY; no dX for the data
    // gradients for every input where asked, equal to the ops'
    const grads = () => tf.tidy(() => tf.grads((x: tf.Tensor, y: tf.Tensor, z: tf.Tensor) => tf.sum(tf.mul(tf.fused.matMul({ a: x as tf.Tensor2D, b: y as tf.Tensor2D, bias: z }), weights)))([X, W, b]).map((g) => bits([g.dataSync() as Float32Array])[0]));
    const withKernel = grads();
    useDenseKernel(false);
    expect(withKernel).toEqual(grads());
    useDenseKernel(true);
  });

  it.skipIf(tf.getBackend() !== "wasm")("on wasm a relu layer is relu(D2lDenseLinear) while recording: tfjs's values and gradients bit for bit, with NaNs and zeros", () => {
    const bits = (x: tf.Tensor) => Array.from(new Uint32Array(Float32Array.from(x.dataSync() as Float32Array).buffer));
    // a row of X with a NaN, and a column of W with ±Infinity, so that NaNs of both signs and exact zeros reach the relu
    const x = tf.tensor(values(32 * 20, 11).map((v, i) => (i === 3 ? NaN : i % 5 === 0 ? 0 : v)), [32, 20]);
    const w = tf.tensor(values(20 * 6, 12).map((v, i) => (i === 7 ? Infinity : i === 13 ? -Infinity : v)), [20, 6]);
    const bias = tf.tensor1d(values(6, 13).map((v, i) => (i === 2 ? -0 : v)));
    const dy = tf.tensor(values(32 * 6, 14), [32, 6]);
    /** relu(X·W + b) recorded (its bits), the gradients of Σ relu(X·W + b)·dy for X, W and b, and the kernels run. */
    const run = () => {
      let y: number[] = [];
      const { result, names } = withKernelNames(() => tf.tidy(() => tf.grads((p: tf.Tensor, q: tf.Tensor, r: tf.Tensor) => {
        const out = tf.fused.matMul({ a: p as tf.Tensor2D, b: q as tf.Tensor2D, bias: r, activation: "relu" });
        y = bits(out);
        return out.mul(dy).sum();
      })([x, w, bias]).map(bits)));
      return { out: [y, ...result], names };
    };
    useDenseKernel(false);
    const ops = run();
    useDenseKernel(true);
    const numTensors = tf.memory().numTensors;
    const fused = run();
    expect(tf.memory().numTensors).toBe(numTensors);
    expect(fused.out).toEqual(ops.out);
    expect(ops.names).toContain(tf.Add);
    expect(fused.names).toContain("D2lDenseLinear");
    expect(fused.names).toContain(tf.Relu);
    expect(fused.names).not.toContain(tf.Add);
    const isNaN = (u: number) => Number.isNaN(new Float32Array(new Uint32Array([u]).buffer)[0]);
    expect(fused.out[0].some(isNaN)).toBe(true); // NaNs reached the relu's output...
    expect(fused.out[0].filter((u) => u === 0).length).toBeGreaterThan(10); // ...and zeros
    expect(fused.out[2].some(isNaN)).toBe(true); // and the gradients
    tf.dispose([x, w, bias, dy]);
  });
});
