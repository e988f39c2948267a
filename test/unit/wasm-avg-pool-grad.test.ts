import * as tf from "@tensorflow/tfjs";
import { afterAll, describe, expect, it } from "vitest";
import { restoreWasmAvgPoolGrad, useFastWasmAvgPoolGrad } from "../../lib/src/engine/wasm-avg-pool-grad";
import { getThreads, setThreads, splitCount } from "../../lib/src/engine/thread-pool";
import { onCpu, size, values } from "./kernel-fixtures";

const onWasm = tf.getBackend() === "wasm";



/** The gradient of Σ avgPool(x) · w with respect to x, for fixed x and w. */
function poolGradient(shape: [number, number, number, number], filter: number | [number, number], strides: number | [number, number], pad: "valid" | "same" | number): Float32Array {
  return tf.tidy(() => {
    const x = tf.tensor4d(values(size(shape), 71), shape);
    const y = tf.avgPool(x, filter, strides, pad);
    const w = tf.tensor(values(size(y.shape), 72), y.shape);
    return tf.grad((a: tf.Tensor) => tf.avgPool(a as tf.Tensor4D, filter, strides, pad).mul(w).sum())(x).dataSync().slice() as Float32Array;
  });
}

describe.skipIf(!onWasm)("useFastWasmAvgPoolGrad (wasm backend)", () => {
  afterAll(() => {
    useFastWasmAvgPoolGrad();
  });
  const cases: [[number, number, number, number], number | [number, number], number | [number, number], "valid" | "same" | number][] = [
    [[4, 28, 28, 6], 2, 2, "valid"], // LeNet's first pooling
    [[4, 10, 10, 16], 2, 2, "valid"], // and its second
    [[2, 7, 9, 3], 2, 2, "valid"], // odd sizes: the last row and column lie in no window
    [[2, 9, 9, 5], 3, 3, "valid"], // 1/9 is not exact
    [[2, 8, 6, 2], [2, 3], [2, 3], "valid"],
    [[2, 7, 7, 3], 3, 2, "valid"], // overlapping windows, padding: the original kernel
    [[2, 7, 7, 3], 2, 2, "same"],
  ];
  it.each(cases)("gives the cpu backend's gradient: x %j, window %j, strides %j, pad %j", async (shape, filter, strides, pad) => {
    useFastWasmAvgPoolGrad();
    const ours = poolGradient(shape, filter, strides, pad);
    const reference = await onCpu(() => poolGradient(shape, filter, strides, pad));
    expect(ours.length).toBe(reference.length);
    // one rounding of a product (tiling windows) or of a sum of a few (overlapping: the original kernel), against cpu's float64
    const largest = Math.max(...reference.map(Math.abs));
    ours.forEach((v, i) => expect(Math.abs(v - reference[i])).toBeLessThanOrEqual(2 ** -22 * largest));
  });

  it.each(cases)("its forward pass gives the cpu backend's average: x %j, window %j, strides %j, pad %j", async (shape, filter, strides, pad) => {
    useFastWasmAvgPoolGrad();
    const run = () => tf.tidy(() => tf.avgPool(tf.tensor4d(values(size(shape), 73), shape), filter, strides, pad).dataSync().slice() as Float32Array);
    const ours = run();
    const reference = await onCpu(run);
    expect(ours.length).toBe(reference.length);
    // a float32 sum of at most 9 values, times 1/(window area): a few roundings of values below 1 (cpu sums in float64)
    ours.forEach((v, i) => expect(Math.abs(v - reference[i])).toBeLessThanOrEqual(2 ** -21));
  });

  it("its forward pass splits by images from 2²⁰ output floats (a batch of 1024 of LeNet's first layer): the same bits with 1, 2 and 8 threads, no leak", () => {
    const x = tf.tensor4d(values(1024 * 28 * 28 * 6, 74), [1024, 28, 28, 6]);
    const before = tf.memory().numTensors;
    const initial = getThreads();
    const splits = splitCount();
    const results = [1, 2, 8].map((n) => {
      setThreads(n);
      return tf.tidy(() => Array.from(new Uint32Array(Float32Array.from(tf.avgPool(x, 2, 2, "valid").dataSync()).buffer)));
    });
    setThreads(initial);
    expect(splitCount() - splits).toBeGreaterThanOrEqual(2);
    expect(results[1]).toEqual(results[0]);
    expect(results[2]).toEqual(results[0]);
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
  });

  it("is what the kernel runs, same bits as the original for 2x2 windows, and leaks nothing", () => {
    const before = tf.memory().numTensors;
    const ours = poolGradient([3, 28, 28, 6], 2, 2, "valid");
    expect(tf.memory().numTensors).toBe(before);
    restoreWasmAvgPoolGrad();
    const theirs = poolGradient([3, 28, 28, 6], 2, 2, "valid");
    useFastWasmAvgPoolGrad();
    expect(Array.from(ours)).toEqual(Array.from(theirs));
  });
});
