import * as tf from "@tensorflow/tfjs";
import { afterAll, describe, expect, it } from "vitest";
import { restoreWasmOneHot, useWasmOneHotFix } from "../../lib/src/engine/wasm-onehot";

const onWasm = tf.getBackend() === "wasm";

describe.skipIf(!onWasm)("useWasmOneHotFix (wasm backend)", () => {
  afterAll(() => {
    useWasmOneHotFix();
  });
  const indices = [0, 2, 1, 9, -1, 10]; // the last two are out of range: rows of offValue
  const read = (dtype: tf.DataType, on = 1, off = 0) =>
    tf.tidy(() => Array.from(tf.oneHot(tf.tensor1d(indices, "int32"), 10, on, off, dtype).dataSync()));
  /** The cpu backend's one-hot: the reference. */
  function expected(on: number, off: number): number[] {
    return indices.flatMap((j) => Array.from({ length: 10 }, (_, k) => (k === j ? on : off)));
  }

  it("is installed by initBackend: float32 masks and fractional values come out right", () => {
    expect(useWasmOneHotFix()).toBe(true);
    expect(read("float32")).toEqual(expected(1, 0));
    read("float32", 0.9, 0.1 / 9).forEach((v, i) => expect(v).toBeCloseTo(expected(0.9, 0.1 / 9)[i], 7));
    expect(read("bool")).toEqual(expected(1, 0));
    expect(read("int32", 3, -1)).toEqual(expected(3, -1)); // int32 keeps the original kernel
  });

  it("fixes what the original kernel gets wrong", () => {
    restoreWasmOneHot();
    const broken = read("float32", 0.9, 0.05);
    useWasmOneHotFix();
    expect(broken).not.toEqual(read("float32", 0.9, 0.05));
    expect(broken.some((v, i) => Math.abs(v - expected(0.9, 0.05)[i]) > 0.01)).toBe(true);
  });

  it("handles 2-D indices and leaks nothing", () => {
    const before = tf.memory().numTensors;
    const t = tf.tidy(() => tf.oneHot(tf.tensor2d([[1, 0], [2, 2]], [2, 2], "int32"), 3, 1, 0, "float32"));
    expect(t.shape).toEqual([2, 2, 3]);
    expect(Array.from(t.dataSync())).toEqual([0, 1, 0, 1, 0, 0, 0, 0, 1, 0, 0, 1]);
    t.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});
