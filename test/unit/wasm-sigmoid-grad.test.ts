import * as tf from "@tensorflow/tfjs";
import { afterAll, describe, expect, it } from "vitest";
import { useSpeedups } from "../../lib/src/engine";
import { getThreads, setThreads, splitCount } from "../../lib/src/engine/thread-pool";
import { OURS_FROM, restoreWasmSigmoidGrad, useFastWasmSigmoidGrad } from "../../lib/src/engine/wasm-sigmoid-grad";
import { bitsOf, differences, size, values } from "./kernel-fixtures";

const onWasm = tf.getBackend() === "wasm";
const initialThreads = getThreads();

/** x spread over [-24, 24) (y from about 4e-11 to 1 − 6e-8, and exactly 1), with NaN and ±Infinity at the start; dy with magnitudes from 1e-6 to 1e4, signs mixed. */
function inputs(shape: number[]): { x: Float32Array; dy: Float32Array } {
  const n = size(shape);
  const x = values(n, 81).map((v) => 24 * v);
  const dy = values(n, 82).map((v, i) => v * 10 ** ((i % 11) - 6));
  x.set([NaN, Infinity, -Infinity, 0, -0, 90, -90].slice(0, n));
  dy.set([1, 2, -3, Infinity, NaN].slice(0, n), Math.min(7, n));
  return { x, dy };
}

/** The gradient of Σ sigmoid(x) · dy with respect to x (the Mul's gradient hands the Sigmoid exactly dy), as float32 bits. */
function sigmoidGradient(shape: number[]): Uint32Array {
  const { x, dy } = inputs(shape);
  return bitsOf(() => tf.grad((a: tf.Tensor) => tf.sigmoid(a).mul(tf.tensor(dy, shape)).sum())(tf.tensor(x, shape)));
}

describe.skipIf(!onWasm)("useFastWasmSigmoidGrad (wasm backend)", () => {
  afterAll(() => {
    setThreads(initialThreads);
    useSpeedups(true);
  });
  const shapes = [
    [256, 28, 28, 6], // LeNet's first layer: split across threads
    [256, 10, 10, 16], // its second
    [OURS_FROM + 3], // three floats past the last vector
    [OURS_FROM - 1], // below the threshold: tfjs's own ops
    [3, 5],
  ];

  it.each(shapes.map((s) => [s]))("gives tfjs's gradient bit for bit, with and without the other speed-ups: %j", (shape) => {
    useSpeedups(false);
    const tfjs = sigmoidGradient(shape);
    useSpeedups(true);
    restoreWasmSigmoidGrad();
    const tfjsWithSpeedups = sigmoidGradient(shape);
    expect(useFastWasmSigmoidGrad()).toBe(true);
    const numTensors = tf.memory().numTensors;
    const ours = sigmoidGradient(shape);
    expect(tf.memory().numTensors).toBe(numTensors);
    expect(ours.length).toBe(size(shape));
    expect(differences(ours, tfjs)).toEqual([]);
    expect(differences(ours, tfjsWithSpeedups)).toEqual([]);
    // the special values came through: 0·Infinity and NaN inputs give NaN, sigmoid(±90) a zero gradient
    const f = new Float32Array(ours.buffer);
    if (f.length > 12) {
      expect(Number.isNaN(f[0])).toBe(true);
      expect([f[1], f[2], f[5], f[6]].every((v) => v === 0)).toBe(true);
      expect(f[3]).toBe(Math.fround(inputs(shape).dy[3] * 0.25));
      expect(Number.isNaN(f[11])).toBe(true);
    }
  });

  it("runs as one kernel from OURS_FROM elements (no Sub or Mul), split by ranges with 2 threads, the same bits with 1, 2 and 8", async () => {
    useSpeedups(true);
    const shape = [256, 28, 28, 6];
    const { x, dy } = inputs(shape);
    const gradient = () => tf.grad((a: tf.Tensor) => tf.sigmoid(a).mul(tf.tensor(dy, shape)).sum())(tf.tensor(x, shape));
    const profile = await tf.profile(() => gradient());
    expect(profile.kernelNames).toContain("D2lSigmoidGrad");
    expect(profile.kernelNames).not.toContain("Sub");
    expect(profile.kernelNames.filter((k) => k === "Multiply").length).toBe(1); // the forward's mul by w (its gradient needs none: dy is 1)
    const run = (threads: number) => {
      setThreads(threads);
      const splits = splitCount();
      const bits = bitsOf(gradient);
      return { bits, splits: splitCount() - splits };
    };
    const one = run(1);
    const two = run(2);
    const eight = run(8);
    expect(one.splits).toBe(0);
    // the gradient, the forward sigmoid (wasm-sigmoid.ts), and the product by w and its gradient's (wasm-binary.ts)
    expect(two.splits).toBe(4);
    expect(differences(one.bits, two.bits)).toEqual([]);
    expect(differences(one.bits, eight.bits)).toEqual([]);
  });

  it("a second-order gradient (through dy) uses tfjs's differentiable ops and gives their values", () => {
    const shape = [OURS_FROM];
    const { x, dy } = inputs(shape);
    // d/dw Σ ∂/∂x Σ sigmoid(x)·w = y·(1 − y): the tape of the outer gradient records the inner one's ops
    const second = () =>
      bitsOf(() => {
        const x0 = tf.tensor(x, shape);
        return tf.grad((w: tf.Tensor) => tf.grad((a: tf.Tensor) => tf.sigmoid(a).mul(w).sum())(x0).sum())(tf.tensor(dy, shape));
      });
    useSpeedups(false);
    const tfjs = second();
    useSpeedups(true);
    const ours = second();
    expect(differences(ours, tfjs)).toEqual([]);
  });

  it("useSpeedups(false) puts tfjs's gradient back, useSpeedups(true) ours", () => {
    useSpeedups(false);
    expect(restoreWasmSigmoidGrad()).toBe(false);
    useSpeedups(true);
    expect(restoreWasmSigmoidGrad()).toBe(true);
    expect(useFastWasmSigmoidGrad()).toBe(true);
    expect(useFastWasmSigmoidGrad()).toBe(true);
  });
});
