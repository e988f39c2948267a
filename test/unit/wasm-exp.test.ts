import * as tf from "@tensorflow/tfjs";
import { afterAll, describe, expect, it } from "vitest";
import { useSpeedups } from "../../lib/src/engine";
import { exp2Table, restoreWasmExp, useSimdWasmExp } from "../../lib/src/engine/wasm-exp";

const onWasm = tf.getBackend() === "wasm";

/** tf.exp(x)'s float bits with the backend's own kernel (false) or ours (true). */
function expBits(x: Float32Array, ours: boolean, dtype: "float32" | "int32" = "float32"): Uint32Array {
  if (ours) useSimdWasmExp();
  else restoreWasmExp();
  const out = tf.tidy(() => tf.exp(tf.tensor(dtype === "int32" ? Int32Array.from(x) : x, [x.length], dtype)).dataSync() as Float32Array);
  return new Uint32Array(Float32Array.from(out).buffer);
}

/** The floats whose bits run from `from` to `to` (inclusive) in steps of `step`. */
function floatRange(from: number, to: number, step: number): Float32Array {
  const bits: number[] = [];
  for (let b = from; b <= to; b += step) bits.push(b);
  return new Float32Array(Uint32Array.from(bits).buffer);
}

describe("exp2Table", () => {
  it("holds 2^(i/32) rounded to the nearest double, minus i << 47, as musl's exp2f_data.c", () => {
    const table = exp2Table();
    expect(table).toHaveLength(32);
    expect(table[0]).toBe(0x3ff0000000000000n);
    expect(table[16]).toBe(0x3feea09e667f3bcdn); // √2 = 0x1.6a09e667f3bcdp+0
    expect(table[31]).toBe(0x3fefd0765b6e4540n);
    for (let i = 0; i < 32; i++) {
      const value = new Float64Array(new BigUint64Array([table[i] + (BigInt(i) << 47n)]).buffer)[0];
      expect(Math.abs(value - 2 ** (i / 32))).toBeLessThanOrEqual(2 ** -52);
    }
  });
});

describe.skipIf(!onWasm)("SIMD Exp (wasm backend)", () => {
  afterAll(() => useSpeedups(true));

  it("gives the backend's expf bit for bit on every 4096th float of [-104, 89] and beyond", () => {
    const positive = floatRange(0, 0x42b20000, 4096); // +0 .. 89
    const negative = floatRange(0x80000000, 0xc2d00000, 4096); // -0 .. -104
    const far = floatRange(0x42b20000, 0x7f7fffff, 1 << 20); // 89 .. the largest float: overflow
    const x = new Float32Array([...positive, ...negative, ...far, ...far.map((v) => -v)]);
    const theirs = expBits(x, false);
    const ours = expBits(x, true);
    let differ = 0;
    for (let i = 0; i < x.length; i++) if (theirs[i] !== ours[i]) differ++;
    expect(x.length).toBeGreaterThan(500_000);
    expect(differ).toBe(0);
  });

  it("gives the same overflow, underflow, infinities, NaN, signed zeros and subnormals, for every length mod 4", () => {
    const special = [0, -0, 88.72283, 88.722839, 88.72284, 89, -87.3365, -103.97207, -103.972084, -104, Infinity, -Infinity, NaN, 1e-45, -1e-45, 1, -1];
    for (let length = 1; length <= special.length; length++) {
      const x = new Float32Array(special.slice(0, length));
      expect(Array.from(expBits(x, true)), `length ${length}`).toEqual(Array.from(expBits(x, false)));
    }
    const ours = new Float32Array(expBits(new Float32Array([Infinity, -Infinity, NaN, 100, -200]), true).buffer);
    expect(Array.from(ours.slice(0, 2))).toEqual([Infinity, 0]);
    expect(Number.isNaN(ours[2])).toBe(true);
    expect(Array.from(ours.slice(3))).toEqual([Infinity, 0]);
  });

  it("leaves int32 inputs and empty tensors to the backend's kernel, and no tensor or buffer behind", () => {
    const ints = new Float32Array([0, 1, 2, -3, 40]);
    expect(Array.from(expBits(ints, true, "int32"))).toEqual(Array.from(expBits(ints, false, "int32")));
    useSimdWasmExp();
    const tensors = tf.memory().numTensors;
    const buffers = tf.engine().backend.numDataIds();
    tf.tidy(() => {
      expect(tf.exp(tf.zeros([0, 3])).shape).toEqual([0, 3]);
      tf.exp(tf.ones([7, 3])).dataSync();
    });
    expect(tf.memory().numTensors).toBe(tensors);
    expect(tf.engine().backend.numDataIds()).toBe(buffers);
  });
});
