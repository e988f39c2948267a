import * as tf from "@tensorflow/tfjs";
import { afterAll, describe, expect, it } from "vitest";
import { restoreWasmEmptyReductions, useWasmEmptyReductions } from "../../lib/src/engine/wasm-empty-reductions";
import { findWasmReplacement } from "../../lib/src/engine/wasm-kernels";
import { useSpeedups } from "../../lib/src/engine";

const onWasm = tf.getBackend() === "wasm";

/** The values of an op's result, read and freed. */
const values = (f: () => tf.Tensor) => tf.tidy(() => Array.from(f().dataSync()));

describe.skipIf(!onWasm)("useWasmEmptyReductions (wasm backend)", () => {
  afterAll(() => {
    useSpeedups(true);
    useWasmEmptyReductions();
  });

  it("is installed by initBackend: the reduction of nothing is 0, 1, NaN, false, true", () => {
    expect(useWasmEmptyReductions()).toBe(true);
    const none = () => tf.tensor1d([]);
    expect(values(() => tf.sum(none()))).toEqual([0]);
    expect(values(() => tf.prod(none()))).toEqual([1]);
    expect(values(() => tf.mean(none()))).toEqual([NaN]);
    expect(values(() => tf.any(none().cast("bool")))).toEqual([0]);
    expect(values(() => tf.all(none().cast("bool")))).toEqual([1]);
    expect(values(() => tf.sum(tf.tensor1d([], "int32")))).toEqual([0]);
    expect(tf.tidy(() => tf.sum(tf.tensor1d([], "int32")).dtype)).toBe("int32");
    expect(tf.tidy(() => tf.mean(tf.tensor1d([], "int32")).dtype)).toBe("float32");
  });

  it("gives every kept position the empty reduction, with keepDims, and leaves non-empty axes to the original", () => {
    expect(values(() => tf.sum(tf.zeros([0, 3]), 0))).toEqual([0, 0, 0]);
    const kept = tf.tidy(() => tf.prod(tf.zeros([2, 0, 3]), 1, true));
    expect(kept.shape).toEqual([2, 1, 3]);
    expect(Array.from(kept.dataSync())).toEqual([1, 1, 1, 1, 1, 1]);
    kept.dispose();
    expect(values(() => tf.mean(tf.zeros([3, 0]), 1))).toEqual([NaN, NaN, NaN]);
    // an empty result is the original kernel's (nothing to write), a non-empty input too
    expect(tf.tidy(() => tf.sum(tf.zeros([0, 3]), 1).shape)).toEqual([0]);
    expect(values(() => tf.sum(tf.tensor2d([[1, 2, 3], [4, 5, 6]]), 0))).toEqual([5, 7, 9]);
    expect(values(() => tf.max(tf.tensor1d([-3, 2, -1])))).toEqual([2]);
  });

  it("throws for the maximum, minimum, argMax and argMin of nothing, naming the op, shape and axis", () => {
    expect(() => tf.max(tf.tensor1d([]))).toThrow("tf.max: x of shape [0] has no elements along axis 0, and the maximum of nothing is undefined");
    expect(() => tf.min(tf.zeros([2, 0]), 1)).toThrow("tf.min: x of shape [2, 0] has no elements along axis 1");
    expect(() => tf.argMax(tf.zeros([0, 4]), 0)).toThrow("tf.argMax: x of shape [0, 4] has no elements along axis 0");
    expect(() => tf.argMin(tf.tensor1d([]))).toThrow("tf.argMin");
  });

  it("fixes what the original kernels get wrong: they return what memory held", () => {
    restoreWasmEmptyReductions();
    const broken: number[] = [];
    for (let i = 0; i < 5; i++) {
      tf.tidy(() => tf.fill([64], 7).dataSync()); // leaves 7s in freed memory for the next allocation
      broken.push(values(() => tf.sum(tf.tensor1d([])))[0]);
    }
    useWasmEmptyReductions();
    expect(broken.some((v) => v !== 0)).toBe(true);
    expect(values(() => tf.sum(tf.tensor1d([])))).toEqual([0]);
  });

  it("stays on when the speed-ups stacked on the same kernels go off and come back", () => {
    const columnSum = Symbol.for("d2l.useFastWasmColumnSum");
    const fix = Symbol.for("d2l.useWasmEmptyReductions");
    expect(findWasmReplacement(tf.Sum, fix)).toBeDefined();
    useSpeedups(false);
    expect(findWasmReplacement(tf.Sum, columnSum)).toBeUndefined();
    expect(findWasmReplacement(tf.Sum, fix)).toBeDefined();
    expect(values(() => tf.sum(tf.zeros([0, 3]), 0))).toEqual([0, 0, 0]);
    useSpeedups(true);
    useWasmEmptyReductions(); // idempotent: finds itself under the speed-up
    expect(findWasmReplacement(tf.Sum, columnSum)).toBeDefined();
    expect(values(() => tf.sum(tf.zeros([0, 3]), 0))).toEqual([0, 0, 0]);
    expect(values(() => tf.sum(tf.tensor2d([[1, 2], [3, 4]]), 0))).toEqual([4, 6]);
    // each layer once: taking the speed-up out again, then the fix, leaves tfjs's own kernel
    useSpeedups(false);
    expect(findWasmReplacement(tf.Sum, columnSum)).toBeUndefined();
    expect(values(() => tf.sum(tf.tensor1d([])))).toEqual([0]);
    restoreWasmEmptyReductions();
    expect(Object.getOwnPropertySymbols(tf.getKernel(tf.Sum, "wasm")!.kernelFunc)).toEqual([]);
    useWasmEmptyReductions();
    useSpeedups(true);
  });

  it("leaks nothing", () => {
    const before = tf.memory().numTensors;
    values(() => tf.sum(tf.zeros([0, 3]), 0));
    expect(() => tf.tidy(() => tf.max(tf.zeros([0, 3]), 0))).toThrow();
    expect(tf.memory().numTensors).toBe(before);
  });
});
