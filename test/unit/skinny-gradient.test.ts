import * as tf from "@tensorflow/tfjs";
import { describe, expect, it } from "vitest";
import { COLUMN_BLOCK, gradientMatMul, gradientMatMulWasm } from "../../lib/src/engine/skinny-gradient";
import { broadcastMatMul } from "../../lib/src/engine/skinny-matmul";
import { relaxedSimdAvailable } from "../../lib/src/engine/relaxed-simd";
import { restoreWasmMatMul, useFastWasmMatMul } from "../../lib/src/engine/wasm-matmul";
import { values } from "./kernel-fixtures";

const onWasm = tf.getBackend() === "wasm";

describe.skipIf(!onWasm)("gradientMatMul (wasm backend)", () => {
  const backend = () => tf.backend() as unknown as Parameters<typeof gradientMatMul>[0];
  const info = (t: tf.Tensor): tf.TensorInfo => ({ dataId: t.dataId, shape: t.shape, dtype: t.dtype });
  const read = (out: tf.TensorInfo) => {
    const t = tf.engine().makeTensorFromTensorInfo(out);
    const data = t.dataSync().slice() as Float32Array;
    t.dispose();
    return data;
  };
  const relaxedModes = [false, ...(relaxedSimdAvailable() ? [true] : [])];
  /** Float bits, NaN as one value (a NaN's payload is not what is compared). */
  const bits = (xs: Float32Array) => Array.from(xs, (x) => (Number.isNaN(x) ? "NaN" : new Uint32Array(new Float32Array([x]).buffer)[0]));

  /**
   * Aᵀ·B (A k×m, B k×n) by the kernel: against float64 within a k-term float32 sum's rounding, and
   * bit for bit against the broadcast kernel it replaces (with and without relaxed SIMD).
   */
  function check(k: number, m: number, n: number, edit?: (a: Float32Array, b: Float32Array) => void): void {
    const av = values(k * m, 7 + m);
    const bv = values(k * n, 11 + n);
    edit?.(av, bv);
    const a = tf.tensor(av, [k, m]);
    const b = tf.tensor(bv, [k, n]);
    for (const relaxed of relaxedModes) {
      const ours = read(gradientMatMul(backend(), info(a), info(b), relaxed)!);
      const theirs = read(broadcastMatMul(backend(), info(a), info(b), true, false, undefined, relaxed)!);
      expect(bits(ours), `${k}×${m}ᵀ·${k}×${n} relaxed ${relaxed}`).toEqual(bits(theirs));
      if (edit === undefined) {
        let worst = 0;
        for (let i = 0; i < m; i++) {
          for (let j = 0; j < n; j++) {
            let exact = 0;
            for (let p = 0; p < k; p++) exact += av[p * m + i] * bv[p * n + j];
            worst = Math.max(worst, Math.abs(ours[i * n + j] - exact));
          }
        }
        expect(worst).toBeLessThan(1e-6 * (k + 1));
      }
    }
    tf.dispose([a, b]);
  }

  it("computes softmax regression's weight gradient Xᵀ·dY (784×256 · 256×10) as the broadcast kernel does, bit for bit", () => {
    check(256, 784, 10);
  });

  it("takes every column count from 1 to 16 (one block or two), m from 4 and k from 1", () => {
    for (let n = 1; n <= 16; n++) check(9, 12, n);
    check(1, 4, 10);
    check(3, 4, 16);
    check(5, 8, COLUMN_BLOCK + 1);
  });

  it("gives NaN and ±Infinity where the broadcast kernel (and the original kernel) puts them", () => {
    const edit = (a: Float32Array, b: Float32Array) => {
      a[0] = NaN; // row 0 of C (all columns)
      a[5 * 12 + 3] = Infinity; // row 3 of C
      a[2 * 12 + 7] = 0;
      b[2 * 10 + 4] = Infinity; // 0·Inf in column 4 where A is 0
      b[6 * 10 + 9] = -Infinity;
      b[1 * 10 + 1] = NaN;
    };
    check(9, 12, 10, edit);
    // against tfjs's own wasm kernel (a scalar loop): the same non-finite values in the same places
    const av = values(9 * 12, 19);
    const bv = values(9 * 10, 23);
    edit(av, bv);
    const a = tf.tensor(av, [9, 12]);
    const b = tf.tensor(bv, [9, 10]);
    const ours = read(gradientMatMul(backend(), info(a), info(b), true)!);
    restoreWasmMatMul();
    try {
      const original = tf.tidy(() => tf.matMul(a, b, true, false).dataSync().slice() as Float32Array);
      const kind = (x: number) => (Number.isNaN(x) ? "NaN" : Number.isFinite(x) ? "finite" : x > 0 ? "+Inf" : "-Inf");
      expect(Array.from(ours, kind)).toEqual(Array.from(original, kind));
      expect(Array.from(ours, kind)).toContain("NaN");
      expect(Array.from(ours, kind)).toContain("-Inf");
      for (let i = 0; i < ours.length; i++) if (Number.isFinite(ours[i])) expect(Math.abs(ours[i] - original[i])).toBeLessThan(1e-5);
    } finally {
      useFastWasmMatMul();
    }
    tf.dispose([a, b]);
  });

  it("is what tf.matMul(X, dY, true, false) runs, and { skinnyGradient: false } gives the same floats", () => {
    const a = tf.tensor(values(64 * 784, 3), [64, 784]);
    const b = tf.tensor(values(64 * 10, 4), [64, 10]);
    const direct = read(gradientMatMul(backend(), info(a), info(b), true)!);
    const registered = tf.tidy(() => tf.matMul(a, b, true, false).dataSync().slice() as Float32Array);
    expect(bits(registered)).toEqual(bits(direct));
    useFastWasmMatMul({ skinnyGradient: false });
    try {
      const broadcast = tf.tidy(() => tf.matMul(a, b, true, false).dataSync().slice() as Float32Array);
      expect(bits(broadcast)).toEqual(bits(direct));
    } finally {
      useFastWasmMatMul({ skinnyGradient: true });
    }
    tf.dispose([a, b]);
  });

  it("declines m not a multiple of 4, several batches, more than 16 columns and other dtypes, and leaves no buffer behind", () => {
    const buffers = tf.engine().backend.numDataIds();
    const odd = tf.tensor(values(8 * 10, 1), [8, 10]);
    const b = tf.tensor(values(8 * 3, 2), [8, 3]);
    const wide = tf.tensor(values(8 * 17, 2), [8, 17]);
    const batches = tf.tensor(values(2 * 8 * 8, 1), [2, 8, 8]);
    const ints = tf.zeros([8, 8], "int32");
    const plain = tf.tensor(values(8 * 8, 3), [8, 8]);
    expect(gradientMatMul(backend(), info(odd), info(b), true)).toBeUndefined();
    expect(gradientMatMul(backend(), info(plain), info(wide), true)).toBeUndefined();
    expect(gradientMatMul(backend(), info(batches), info(b), true)).toBeUndefined();
    expect(gradientMatMul(backend(), info(ints), info(ints), true)).toBeUndefined();
    const short = tf.tensor(values(6 * 3, 4), [6, 3]);
    expect(gradientMatMul(backend(), info(plain), info(short), true)).toBeUndefined(); // inner sizes 8 and 6
    short.dispose();
    for (let i = 0; i < 3; i++) tf.engine().backend.disposeData(gradientMatMul(backend(), info(plain), info(b), true)!.dataId);
    tf.dispose([odd, b, wide, batches, ints, plain]);
    expect(tf.engine().backend.numDataIds()).toBe(buffers);
  });

  it("rejects a column count it cannot make", () => {
    expect(() => gradientMatMulWasm({ n: 0, relaxed: false })).toThrow(/n must be an integer from 1 to 16/);
    expect(() => gradientMatMulWasm({ n: 17, relaxed: false })).toThrow(/n must be an integer from 1 to 16/);
  });
});
