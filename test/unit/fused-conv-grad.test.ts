import * as tf from "@tensorflow/tfjs";
import { afterAll, describe, expect, it } from "vitest";
import { restoreLazyFusedConv2d, useLazyFusedConv2dGradient } from "../../lib/src/engine/fused-conv-grad";
import { values } from "./kernel-fixtures";

describe("useLazyFusedConv2dGradient", () => {
  afterAll(() => {
    useLazyFusedConv2dGradient();
  });
  /** The filter and bias gradients of a fused convolution fed by data, and the kernels the step ran. */
  async function step(): Promise<{ grads: Float32Array[]; kernels: string[] }> {
    const x = tf.tensor4d(values(4 * 9 * 9 * 2, 61), [4, 9, 9, 2]);
    const w = tf.variable(tf.tensor4d(values(3 * 3 * 2 * 5, 62), [3, 3, 2, 5]));
    const b = tf.variable(tf.tensor1d(values(5, 63)));
    let grads: Float32Array[] = [];
    const info = await tf.profile(() => {
      const { grads: g } = tf.variableGrads(() => tf.fused.conv2d({ x, filter: w, strides: 1, pad: "same", bias: b }).square().sum() as tf.Scalar, [w, b]);
      grads = [g[w.name], g[b.name]].map((t) => t.dataSync().slice() as Float32Array);
      tf.dispose(g);
    });
    tf.dispose([x, w, b]);
    return { grads, kernels: info.kernelNames };
  }

  it("computes the same filter and bias gradients without the input gradient nobody asked for", async () => {
    expect(useLazyFusedConv2dGradient()).toBe(true);
    const lazy = await step();
    restoreLazyFusedConv2d();
    const eager = await step();
    useLazyFusedConv2dGradient();
    expect(eager.kernels).toContain("Conv2DBackpropInput");
    expect(lazy.kernels).not.toContain("Conv2DBackpropInput");
    expect(lazy.kernels).toContain("Conv2DBackpropFilter");
    for (let i = 0; i < 2; i++) lazy.grads[i].forEach((v, j) => expect(Math.abs(v - eager.grads[i][j])).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(v))));
  });

  it("makes tf.layers.conv2d with a sigmoid (activation null in tf.fused.conv2d) skip the input gradient of a layer fed by data", async () => {
    const layer = tf.layers.conv2d({ filters: 3, kernelSize: 3, activation: "sigmoid", inputShape: [6, 6, 1] });
    const x = tf.tensor4d(values(2 * 36, 64), [2, 6, 6, 1]);
    layer.apply(x);
    const info = await tf.profile(() => tf.dispose(tf.variableGrads(() => (layer.apply(x) as tf.Tensor).sum() as tf.Scalar).grads));
    expect(info.kernelNames).toContain("Conv2DBackpropFilter");
    expect(info.kernelNames).not.toContain("Conv2DBackpropInput");
    x.dispose();
    layer.dispose();
  });

  it("leaves evaluation (no gradient recorded) to the fused kernel", async () => {
    const info = await tf.profile(() => {
      const y = tf.fused.conv2d({ x: tf.ones([1, 5, 5, 1]) as tf.Tensor4D, filter: tf.ones([3, 3, 1, 2]) as tf.Tensor4D, strides: 1, pad: "valid", bias: tf.ones([2]) });
      expect(Array.from(y.dataSync())).toEqual(Array(18).fill(10));
    });
    expect(info.kernelNames).toContain("FusedConv2D");
  });
});
