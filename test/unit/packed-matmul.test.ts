import * as tf from "@tensorflow/tfjs";
import { describe, expect, it } from "vitest";
import { DEFAULT_ROWS, TALL_MARGIN, TALL_ROWS, denseRows, packedMatMul, pickRows, timeBlockRounds, timeBlocks } from "../../lib/src/engine/packed-matmul";
import { relaxedSimdAvailable } from "../../lib/src/engine/relaxed-simd";
import { useSpeedups } from "../../lib/src/engine";
import { bitsOf, values } from "./kernel-fixtures";

const onWasm = tf.getBackend() === "wasm";

/**
 * How far two float32 computations of the same product may be apart, element by element: each
 * differs from the exact value by at most γ_k·Σ|a_i·b_i| with γ_k = k·u/(1 - k·u), u = 2⁻²⁴,
 * whatever the order of the additions and whether products are rounded (mul then add) or not
 * (fused multiply-add) (Higham, Accuracy and Stability of Numerical Algorithms, 3.1). So ours
 * and tfjs's are within 2·γ_k·(|A|·|B|) of each other, plus the bias's rounding.
 */
function tolerance(absProduct: tf.Tensor, k: number): tf.Tensor {
  const u = 2 ** -24;
  const gamma = (k * u) / (1 - k * u);
  return tf.tidy(() => absProduct.mul(2 * gamma).add(4 * u));
}

describe.skipIf(!onWasm)("packedMatMul (wasm backend)", () => {
  const backend = () => tf.backend() as unknown as Parameters<typeof packedMatMul>[0];
  const info = (t: tf.Tensor): tf.TensorInfo => ({ dataId: t.dataId, shape: t.shape, dtype: t.dtype });

  /** Runs the kernel on A, B (values in [-1, 1)) and checks it against tfjs's matMul (+ bias, relu) within {@link tolerance}. */
  function check(aShape: number[], bShape: number[], tA: boolean, tB: boolean,
    opts: { bias?: boolean; relu?: boolean; relaxed?: boolean; rows?: number } = {}): number[] {
    const size = (s: number[]) => s.reduce((p, d) => p * d, 1);
    const a = tf.tensor(values(size(aShape), 3), aShape);
    const b = tf.tensor(values(size(bShape), 4), bShape);
    const n = tB ? bShape[bShape.length - 2] : bShape[bShape.length - 1];
    const k = tA ? aShape[aShape.length - 2] : aShape[aShape.length - 1];
    const bias = opts.bias ? tf.tensor1d(values(n, 5)) : undefined;
    const out = packedMatMul(backend(), info(a), info(b), tA, tB, { bias: bias && info(bias), relu: opts.relu },
      { relaxed: opts.relaxed ?? true, rows: opts.rows ?? DEFAULT_ROWS });
    expect(out).toBeDefined();
    const ours = tf.engine().makeTensorFromTensorInfo(out!);
    const [expected, bound] = tf.tidy(() => {
      let p = tf.matMul(a, b, tA, tB);
      if (bias) p = p.add(bias);
      if (opts.relu) p = tf.relu(p);
      let abs = tf.matMul(a.abs(), b.abs(), tA, tB);
      if (bias) abs = abs.add(bias.abs());
      return [p, tolerance(abs, k)];
    });
    expect(ours.shape).toEqual(expected.shape);
    const excess = tf.tidy(() => tf.max(tf.sub(tf.abs(tf.sub(ours, expected)), bound)).dataSync()[0]);
    expect(excess).toBeLessThanOrEqual(0);
    const shape = ours.shape;
    tf.dispose([a, b, ours, expected, bound, ...(bias ? [bias] : [])]);
    return shape;
  }

  it("computes the MLP's products: X·W1 + b1 with relu, Xᵀ·dH, dH·W1ᵀ", () => {
    expect(check([256, 784], [784, 256], false, false, { bias: true, relu: true })).toEqual([256, 256]);
    expect(check([256, 784], [256, 256], true, false)).toEqual([784, 256]);
    expect(check([256, 256], [784, 256], false, true)).toEqual([256, 784]);
  });

  it("handles odd sizes, 1 row, 1 column, both operands transposed, every remainder of rows and columns", () => {
    for (const [m, k, n] of [[1, 1, 1], [1, 37, 19], [13, 7, 1], [3, 5, 8], [7, 9, 9], [11, 3, 17], [6, 10, 12]]) {
      for (const [tA, tB] of [[false, false], [true, false], [false, true], [true, true]]) {
        check(tA ? [k, m] : [m, k], tB ? [n, k] : [k, n], tA, tB, { bias: m % 2 === 1, relu: n % 2 === 1 });
      }
    }
    for (let rows = 1; rows <= 6; rows++) check([rows + 7, 12], [12, 21], false, false, { rows });
  });

  it("handles batches, matching or broadcasting one matrix", () => {
    expect(check([3, 5, 6], [3, 6, 9], false, false)).toEqual([3, 5, 9]);
    expect(check([2, 6, 5], [1, 6, 9], true, false)).toEqual([2, 5, 9]);
    expect(check([5, 6], [4, 9, 6], false, true)).toEqual([4, 5, 9]);
  });

  it("gives the same results with and without relaxed SIMD, within the tolerance fused multiply-adds imply", () => {
    // relaxed_madd may skip the rounding of each product; the bound above covers both.
    check([33, 100], [100, 40], false, false, { relaxed: false });
    check([33, 100], [100, 40], false, false, { relaxed: true });
    // V8 has compiled relaxed SIMD since Node 20 (behind a flag there, which relaxed-simd.ts sets)
    const major = Number(process.versions.node.split(".")[0]);
    if (process.env.D2L_RELAXED_SIMD !== "0" && major >= 20) expect(relaxedSimdAvailable()).toBe(true);
  });

  it("gives the same floats bit for bit whatever the register block (each element one chain over k in order), fenced rows included", () => {
    const floats = (a: tf.Tensor, b: tf.Tensor, tA: boolean, tB: boolean, rows: number, bias: tf.Tensor, relaxed: boolean) => {
      const out = packedMatMul(backend(), info(a), info(b), tA, tB, { bias: info(bias), relu: true }, { relaxed, rows, skipZeros: false });
      expect(out).toBeDefined();
      const t = tf.engine().makeTensorFromTensorInfo(out!);
      const text = Array.from(t.dataSync(), (v) => (Object.is(v, -0) ? "-0" : String(v)));
      t.dispose();
      return text;
    };
    let compared = 0;
    for (const [m, k, n] of [[1, 5, 9], [7, 37, 19], [13, 64, 33], [25, 100, 40]]) {
      for (const [tA, tB] of [[false, false], [true, false], [false, true], [true, true]]) {
        const a = tf.tensor(values(m * k, 21), tA ? [k, m] : [m, k]);
        const b = tf.tensor(values(k * n, 22), tB ? [n, k] : [k, n]);
        const bias = tf.tensor1d(values(n, 23));
        for (const relaxed of [true, false]) {
          const reference = floats(a, b, tA, tB, DEFAULT_ROWS, bias, relaxed);
          for (const rows of [1, 3, 5, TALL_ROWS]) {
            expect(floats(a, b, tA, tB, rows, bias, relaxed), `${m}x${k}x${n} ${tA} ${tB} rows ${rows} relaxed ${relaxed}`).toEqual(reference);
            compared++;
          }
        }
        tf.dispose([a, b, bias]);
      }
    }
    expect(compared).toBe(4 * 4 * 2 * 4);
  });

  it("chooses the dense block by timing both on this machine, once per process", () => {
    const times = timeBlocks(true, [DEFAULT_ROWS, TALL_ROWS]);
    expect(times.every((ms) => ms > 0 && Number.isFinite(ms))).toBe(true);
    const rows = denseRows(true);
    expect([DEFAULT_ROWS, TALL_ROWS]).toContain(rows);
    expect(denseRows(true)).toBe(rows); // cached
    const rounds = timeBlockRounds(true, [DEFAULT_ROWS, TALL_ROWS], 5);
    expect(rounds).toHaveLength(5);
    expect(rounds.flat().every((ms) => ms > 0 && Number.isFinite(ms))).toBe(true);
  });

  it("keeps the tall block unless the median of paired rounds finds it clearly slower", () => {
    const rounds = (ratios: number[]) => ratios.map((r, i) => [0.05 * (1 + i / 10), 0.05 * (1 + i / 10) * r]);
    expect(pickRows(rounds([0.9, 0.88, 0.91, 0.9, 0.89]))).toBe(TALL_ROWS);
    // bursts of another process's work in two of seven rounds, against the tall block: still tall
    expect(pickRows(rounds([0.9, 1.6, 0.88, 0.91, 2.5, 0.9, 0.89]))).toBe(TALL_ROWS);
    // within the margin: tall; beyond it: short
    expect(pickRows(rounds([1 + TALL_MARGIN / 2, 1, 1 + TALL_MARGIN]))).toBe(TALL_ROWS);
    expect(pickRows(rounds([1.08, 1.1, 1.07, 0.95, 1.09]))).toBe(DEFAULT_ROWS);
    // a tall block that does not compile, or no rounds: short
    expect(pickRows([[0.05, Infinity], [0.05, Infinity], [0.06, Infinity]])).toBe(DEFAULT_ROWS);
    expect(pickRows([])).toBe(DEFAULT_ROWS);
  });

  it("applies relu as the backend's Relu does: a signed-integer max with 0 (NaNs with the sign bit and -0 become +0, other NaNs pass)", () => {
    const signOf = (bits: Uint32Array) => ({ negativeNaN: bits.filter((b) => (b & 0x7fffffff) > 0x7f800000 && b >>> 31 === 1).length, positiveNaN: bits.filter((b) => (b & 0x7fffffff) > 0x7f800000 && b >>> 31 === 0).length });
    for (const [m, k, n] of [[7, 5, 19], [6, 50, 17], [13, 9, 8]]) {
      const av = values(m * k, 21);
      const bits = new Uint32Array(av.buffer);
      for (let r = 0; r < m; r++) bits[r * k + (r % k)] = [0xffc00000, 0x7fc01234, 0x7f800000, 0xff800000, 0x80000000][r % 5]; // -NaN, +NaN, ±Inf, -0
      const bv = values(k * n, 22).map((v, i) => (i % 3 === 0 ? 0 : v)); // Inf·0: a NaN with the sign bit set on x86
      const a = tf.tensor(av, [m, k]);
      const b = tf.tensor(bv, [k, n]);
      const run = (relu: boolean) => bitsOf(() => tf.engine().makeTensorFromTensorInfo(packedMatMul(backend(), info(a), info(b), false, false, { relu }, { relaxed: true, rows: DEFAULT_ROWS })!));
      const pre = run(false);
      const specials = signOf(pre);
      expect(specials.negativeNaN, `${m}x${k}x${n}`).toBeGreaterThan(0);
      expect(specials.positiveNaN, `${m}x${k}x${n}`).toBeGreaterThan(0);
      expect(Array.from(run(true)), `${m}x${k}x${n}`).toEqual(Array.from(pre, (x) => ((x | 0) > 0 ? x : 0)));
      tf.dispose([a, b]);
    }
    // and through the public op, against tfjs's own kernels: a product the packed kernel computes, a row of NaNs with the sign bit
    const a = tf.concat([tf.fill([1, 300], Infinity), tf.tensor(values(299 * 300, 23), [299, 300])]);
    const b = tf.concat([tf.zeros([1, 300]), tf.tensor(values(299 * 300, 24), [299, 300])]);
    const fused = () => bitsOf(() => tf.fused.matMul({ a: a as tf.Tensor2D, b: b as tf.Tensor2D, activation: "relu" }));
    const ours = fused();
    useSpeedups(false);
    const tfjs = fused();
    useSpeedups(true);
    // row 0 is Inf·0 + ... (a NaN with the sign bit) before the relu; the other rows differ from XNNPACK's by rounding
    expect(Array.from(tfjs.slice(0, 300))).toEqual(Array(300).fill(0));
    expect(Array.from(ours.slice(0, 300))).toEqual(Array(300).fill(0));
    tf.dispose([a, b]);
  });

  it("declines what it does not compute and leaves no buffer behind", () => {
    const opts = { relaxed: true, rows: DEFAULT_ROWS };
    const i = tf.zeros([4, 4], "int32");
    expect(packedMatMul(backend(), info(i), info(i), false, false, {}, opts)).toBeUndefined();
    const a = tf.ones([4, 5]);
    expect(packedMatMul(backend(), info(a), info(a), false, false, {}, opts)).toBeUndefined(); // inner sizes 5 and 4
    const b = tf.ones([2, 5, 3]);
    const c = tf.ones([3, 3, 4]);
    expect(packedMatMul(backend(), info(b), info(c), false, false, {}, opts)).toBeUndefined(); // batches 2 and 3
    const buffers = tf.engine().backend.numDataIds();
    const out = packedMatMul(backend(), info(a), info(a), false, true, {}, opts)!;
    expect(tf.engine().backend.numDataIds()).toBe(buffers + 1);
    tf.engine().backend.disposeData(out.dataId);
    tf.dispose([i, a, b, c]);
  });
});

describe.skipIf(!onWasm)("packedMatMul skipping op(A)'s zeros (wasm backend)", () => {
  const backend = () => tf.backend() as unknown as Parameters<typeof packedMatMul>[0];
  const info = (t: tf.Tensor): tf.TensorInfo => ({ dataId: t.dataId, shape: t.shape, dtype: t.dtype });

  /** Values in [-1, 1) with runs of zeros (a plain background), scattered zeros and -0, and NaN at `nanAt`. */
  function sparse(n: number, seed: number, nanAt = -1): Float32Array {
    const out = values(n, seed);
    for (let i = 0; i < n; i++) {
      if (i % 37 < 15 || out[i] > 0.6) out[i] = 0;
      else if (out[i] < -0.9) out[i] = -0;
    }
    if (nanAt >= 0 && nanAt < n) out[nanAt] = NaN;
    return out;
  }

  /** Every float of the product with zeros skipped and without, as strings (NaN equal to NaN, -0 unequal to 0). */
  function both(a: tf.Tensor, b: tf.Tensor, tA: boolean, tB: boolean, block: { rows?: number; panels?: number },
    epilogue: { bias?: tf.Tensor; relu?: boolean } = {}, relaxed = true): [string[], string[]] {
    const run = (skipZeros: boolean) => {
      const out = packedMatMul(backend(), info(a), info(b), tA, tB, { bias: epilogue.bias && info(epilogue.bias), relu: epilogue.relu },
        { relaxed, skipZeros, ...block });
      expect(out).toBeDefined();
      const t = tf.engine().makeTensorFromTensorInfo(out!);
      const floats = Array.from(t.dataSync(), (v) => (Object.is(v, -0) ? "-0" : String(v)));
      t.dispose();
      return floats;
    };
    return [run(true), run(false)];
  }

  it("gives the dense kernel's floats bit for bit: every transpose, odd sizes, row remainders, both register blocks, bias and relu, FMA or not", () => {
    let cases = 0;
    for (const [m, k, n] of [[1, 1, 1], [7, 37, 19], [13, 9, 8], [5, 64, 33], [6, 50, 17], [32, 100, 40]]) {
      for (const [tA, tB] of [[false, false], [true, false], [false, true], [true, true]]) {
        for (const block of [{ rows: 4, panels: 1 }, { rows: 2, panels: 2 }, { rows: 3, panels: 1 }, { rows: 1, panels: 1 }, { rows: 1, panels: 4 }, { rows: 2, panels: 3 }, {}]) {
          const a = tf.tensor(sparse(m * k, 3, m * k > 20 ? 11 : -1), tA ? [k, m] : [m, k]);
          const b = tf.tensor(values(k * n, 4), tB ? [n, k] : [k, n]);
          const bias = tf.tensor1d(values(n, 5));
          const relaxed = cases % 2 === 0; // relaxed_madd (one rounding) and mul then add (two)
          const [skipped, dense] = both(a, b, tA, tB, block, { bias: m % 2 ? bias : undefined, relu: n % 2 === 1 }, relaxed);
          expect(skipped, `${m}x${k}x${n} ${tA} ${tB} ${JSON.stringify(block)} relaxed ${relaxed}`).toEqual(dense);
          tf.dispose([a, b, bias]);
          cases++;
        }
      }
    }
    expect(cases).toBe(6 * 4 * 7);
  });

  it("computes every step where op(B) holds an infinity or NaN (0 × ∞ is NaN), and gives +0 for all-zero rows", () => {
    const a = tf.tensor(sparse(9 * 20, 7), [9, 20]);
    // 12 columns: B scanned apart from its packing; 16: while packing it (whole panels); an infinity in the last row too
    for (const [n, at] of [[12, 5 * 12 + 3], [16, 5 * 16 + 3], [16, 19 * 16 + 15]]) {
      const bValues = values(20 * n, 8);
      bValues[at] = Infinity;
      const b = tf.tensor(bValues, [20, n]);
      const [skipped, dense] = both(a, b, false, false, {});
      expect(skipped, `${n} columns, infinity at ${at}`).toEqual(dense);
      expect(dense.filter((v) => v === "NaN").length).toBeGreaterThan(0); // a zero of A met the infinity
      b.dispose();
    }
    const zeros = tf.zeros([5, 20]);
    const [fromZeros, denseZeros] = both(zeros, tf.tensor(values(20 * 12, 9), [20, 12]), false, false, {});
    expect(fromZeros).toEqual(denseZeros);
    expect(new Set(fromZeros)).toEqual(new Set(["0"]));
    tf.dispose([a, zeros]);
  });

  it("is chosen by \"auto\" for a quarter zeros or more, and leaves no buffer behind", () => {
    const a = tf.tensor(sparse(40 * 30, 11), [40, 30]);
    const b = tf.tensor(values(30 * 24, 12), [30, 24]);
    const buffers = tf.engine().backend.numDataIds();
    const auto = packedMatMul(backend(), info(a), info(b), false, false, {}, { relaxed: true })!;
    expect(tf.engine().backend.numDataIds()).toBe(buffers + 1); // the output; the scratch and the list are freed
    const [skipped] = both(a, b, false, false, {});
    const t = tf.engine().makeTensorFromTensorInfo(auto);
    expect(Array.from(t.dataSync(), String)).toEqual(skipped);
    tf.dispose([a, b, t]);
  });
});
