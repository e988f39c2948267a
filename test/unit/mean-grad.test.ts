import * as tf from "@tensorflow/tfjs";
import { afterAll, describe, expect, it } from "vitest";
import { useSpeedups } from "../../lib/src/engine";
import { restoreMeanGrad, useOneKernelMeanGrad } from "../../lib/src/engine/mean-grad";
import { values, withKernelNames } from "./kernel-fixtures";

const onWasm = tf.getBackend() === "wasm";

/** The gradient of w · mean(x^2 over `axis`) (summed) with respect to x, as float32 bits. */
function meanGradient(shape: number[], axis: number | undefined, w: number): Uint32Array {
  const x = tf.tensor(values(shape.reduce((a, b) => a * b, 1), 5), shape);
  const g = tf.grad((a: tf.Tensor) => a.square().mean(axis).mul(w).sum())(x);
  const bits = new Uint32Array(Float32Array.from(g.dataSync() as Float32Array).buffer);
  tf.dispose([x, g]);
  return bits;
}

describe.skipIf(!onWasm)("useOneKernelMeanGrad (wasm backend)", () => {
  afterAll(() => useSpeedups(true));
  it.each([[[256], undefined, 1], [[7, 3], undefined, 0.37], [[96], undefined, -3], [[4, 5], 1, 2]] as [number[], number | undefined, number][])(
    "gives tfjs's gradient bit for bit: shape %j, axis %s, weight %f", (shape, axis, w) => {
      restoreMeanGrad();
      const tfjs = meanGradient(shape, axis, w);
      useOneKernelMeanGrad();
      const before = tf.memory().numTensors;
      const ours = meanGradient(shape, axis, w);
      expect(tf.memory().numTensors).toBe(before);
      expect(ours).toEqual(tfjs);
    });

  it("runs one kernel for a mean over every axis, tfjs's ops for a mean over some", () => {
    useOneKernelMeanGrad();
    const x = tf.tensor2d([[1, 2], [3, 4]]);
    const { result: all, names: overAll } = withKernelNames(() => tf.grad((a: tf.Tensor) => a.mean())(x));
    expect(overAll.filter((n) => n !== "Mean")).toEqual(["D2lMeanGrad"]);
    const { result: some, names: overSome } = withKernelNames(() => tf.grad((a: tf.Tensor) => a.mean(1).sum())(x));
    expect(overSome).not.toContain("D2lMeanGrad");
    expect(Array.from(all.dataSync())).toEqual([0.25, 0.25, 0.25, 0.25]);
    expect(Array.from(some.dataSync())).toEqual([0.5, 0.5, 0.5, 0.5]);
    // a second derivative keeps tfjs's differentiable ops
    const second = tf.grad((a: tf.Tensor) => tf.grad((b: tf.Tensor) => b.square().mean())(a).sum())(x);
    expect(Array.from(second.dataSync())).toEqual([0.5, 0.5, 0.5, 0.5]);
    tf.dispose([x, all, some, second]);
  });
});
