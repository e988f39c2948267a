import * as tf from "@tensorflow/tfjs";
import { afterAll, describe, expect, it } from "vitest";
import { useSpeedups } from "../../lib/src/engine";
import { crossEntropy, useFusedCrossEntropy } from "../../lib/src/engine/fused-cross-entropy";
import { values, withKernelNames } from "./kernel-fixtures";

const onWasm = tf.getBackend() === "wasm";

/** Rows of probabilities (softmax of spread logits), a row with a 0 at the label, one with NaN, one label out of range. */
function inputs(n: number, k: number): { yHat: tf.Tensor2D; y: tf.Tensor1D } {
  const labels = Int32Array.from({ length: n }, (_, i) => (i * 7 + 3) % k);
  const p = tf.tidy(() => tf.softmax(tf.tensor2d(values(n * k, 3 + k).map((v) => 12 * v), [n, k])).dataSync() as Float32Array);
  if (n > 3) {
    p[k + labels[1]] = 0; // log 0: an infinite loss, an infinite gradient
    p[2 * k] = NaN;
    labels[3] = k; // out of range: a row of zeros in the one-hot
  }
  return { yHat: tf.tensor2d(p, [n, k]), y: tf.tensor1d(labels, "int32") };
}

/** The loss and the gradient of Σ loss·w with respect to ŷ, as float32 bits. */
function lossAndGradient(n: number, k: number): [Uint32Array, Uint32Array] {
  const bits = (t: tf.Tensor) => new Uint32Array(Float32Array.from(t.dataSync() as Float32Array).buffer);
  const { yHat, y } = inputs(n, k);
  const x = tf.variable(yHat);
  const [loss, grad] = tf.tidy(() => {
    const w = tf.tensor1d(values(n, 98).map((v) => 1 + v));
    const { grads } = tf.variableGrads(() => crossEntropy(x, y).mul(w).sum() as tf.Scalar, [x]);
    return [crossEntropy(x, y), grads[x.name]];
  });
  const out: [Uint32Array, Uint32Array] = [bits(loss), bits(grad)];
  tf.dispose([yHat, y, x, loss, grad]);
  return out;
}

describe.skipIf(!onWasm)("fused crossEntropy (wasm backend)", () => {
  afterAll(() => useSpeedups(true));
  it.each([[256, 10], [96, 10], [5, 3], [3, 2]])("gives the ops' loss and gradient bit for bit: n %i, K %i", (n, k) => {
    useFusedCrossEntropy(false);
    const [opsLoss, opsGrad] = lossAndGradient(n, k);
    useFusedCrossEntropy(true);
    const before = tf.memory().numTensors;
    const [fusedLoss, fusedGrad] = lossAndGradient(n, k);
    expect(tf.memory().numTensors).toBe(before);
    expect(fusedLoss).toEqual(opsLoss);
    expect(fusedGrad).toEqual(opsGrad);
  });

  it("runs one kernel forward and one for the gradient", () => {
    useFusedCrossEntropy(true);
    const { yHat, y } = inputs(8, 4);
    const { names } = withKernelNames(() => tf.tidy(() => {
      tf.grad((x: tf.Tensor) => crossEntropy(x, y).sum())(yHat);
    }));
    expect(names.filter((n) => n.startsWith("D2lCrossEntropy"))).toEqual(["D2lCrossEntropy", "D2lCrossEntropyGrad"]);
    expect(names).not.toContain("OneHot");
    expect(names).not.toContain("Log");
    tf.dispose([yHat, y]);
  });
});
