import * as tf from "@tensorflow/tfjs";
import { afterAll, describe, expect, it } from "vitest";
import { useSpeedups } from "../../lib/src/engine";
import { softmaxCrossEntropy, useFusedSoftmaxCrossEntropy } from "../../lib/src/engine/fused-softmax-ce";
import { kernelCalls, values } from "./kernel-fixtures";

const onWasm = tf.getBackend() === "wasm";

/**
 * Logits spread over [-scale, scale), a row of equal logits, a row with one huge logit; labels 0..k-1 and one out of range.
 * With `specials` (n ≥ 9), rows 3-8 hold NaN first, NaN later, +Infinity, −Infinity, both, and −Infinity everywhere.
 */
function inputs(n: number, k: number, scale: number, specials = false): { logits: tf.Tensor2D; y: tf.Tensor1D } {
  const o = values(n * k, 7 + k).map((v) => scale * v);
  o.fill(0.25, 0, k); // row 0: all equal
  if (n > 1) o[k + 1] = 80; // row 1: exp would overflow without the shift
  if (specials) {
    o[3 * k] = NaN; // the row's max stays NaN (nothing is > NaN)
    o[4 * k + 1] = NaN; // a NaN after the max
    o[5 * k + 1] = Infinity; // the max: Inf − Inf is NaN
    o[6 * k] = -Infinity; // exp(−Inf) = 0
    o[7 * k] = Infinity;
    o[7 * k + 1] = -Infinity;
    o.fill(-Infinity, 8 * k, 9 * k); // the max −Inf: −Inf − (−Inf) is NaN
  }
  const labels = Int32Array.from({ length: n }, (_, i) => (i * 7 + 3) % k);
  if (n > 2) labels[2] = k; // out of range: tf.oneHot gives a row of zeros (ε/K with smoothing)
  return { logits: tf.tensor2d(o, [n, k]), y: tf.tensor1d(labels, "int32") };
}

/** The loss per example and the gradient of Σ loss·w (w a fixed weight per example) with respect to the logits, as float32 bits. */
function lossAndGradient(n: number, k: number, scale: number, labelSmoothing: number, specials = false): [Uint32Array, Uint32Array] {
  const bits = (t: tf.Tensor) => new Uint32Array(Float32Array.from(t.dataSync() as Float32Array).buffer);
  const { logits, y } = inputs(n, k, scale, specials);
  const x = tf.variable(logits);
  const [loss, grad] = tf.tidy(() => {
    const w = tf.tensor1d(values(n, 99).map((v) => 1 + v));
    const { grads } = tf.variableGrads(() => softmaxCrossEntropy(x, y, labelSmoothing).mul(w).sum() as tf.Scalar, [x]);
    return [softmaxCrossEntropy(x, y, labelSmoothing), grads[x.name]];
  });
  const out: [Uint32Array, Uint32Array] = [bits(loss), bits(grad)];
  tf.dispose([logits, y, x, loss, grad]);
  return out;
}

describe.skipIf(!onWasm)("fused softmaxCrossEntropy (wasm backend)", () => {
  afterAll(() => useSpeedups(true));
  const cases: [number, number, number, number][] = [
    [256, 10, 8, 0], // softmax regression's batch
    [96, 10, 30, 0], // the last batch of an epoch, wide logits
    [5, 3, 2, 0.1], // label smoothing
    [3, 2, 1, 0], // two classes (tf.oneHot rejects one: so do the ops, which then run)
  ];
  it.each(cases)("gives the ops' loss and gradient bit for bit: n %i, K %i, logits ±%f, ε %f", (n, k, scale, eps) => {
    useFusedSoftmaxCrossEntropy(false);
    const [opsLoss, opsGrad] = lossAndGradient(n, k, scale, eps);
    useFusedSoftmaxCrossEntropy(true);
    const before = tf.memory().numTensors;
    const [fusedLoss, fusedGrad] = lossAndGradient(n, k, scale, eps);
    expect(tf.memory().numTensors).toBe(before);
    expect(fusedLoss).toEqual(opsLoss);
    expect(fusedGrad).toEqual(opsGrad);
  });

  it.each([[12, 10, 0], [12, 3, 0.1], [9, 2, 0.25]])("gives the ops' bits on NaN and ±Infinity logits too: n %i, K %i, ε %f", (n, k, eps) => {
    useFusedSoftmaxCrossEntropy(false);
    const [opsLoss, opsGrad] = lossAndGradient(n, k, 4, eps, true);
    useFusedSoftmaxCrossEntropy(true);
    const [fusedLoss, fusedGrad] = lossAndGradient(n, k, 4, eps, true);
    const nonFinite = (x: Uint32Array, width: number) => Array.from({ length: n }, (_, i) => new Float32Array(x.buffer).subarray(i * width, (i + 1) * width).some((v) => !Number.isFinite(v)));
    expect(nonFinite(opsLoss, 1)).toEqual(Array.from({ length: n }, (_, i) => i >= 3 && i < 9)); // the specials reach the loss, only in their rows
    expect(nonFinite(opsGrad, k).filter(Boolean).length).toBeGreaterThanOrEqual(5);
    expect(fusedLoss).toEqual(opsLoss);
    expect(fusedGrad).toEqual(opsGrad);
  });

  it("runs one kernel forward and one for the gradient", () => {
    useFusedSoftmaxCrossEntropy(true);
    const counts = kernelCalls(() => {
      tf.tidy(() => {
        const { logits, y } = inputs(8, 4, 1);
        tf.grad((x: tf.Tensor) => softmaxCrossEntropy(x, y).sum())(logits);
      });
    });
    expect(counts.get("D2lSoftmaxCrossEntropy")).toBe(1);
    expect(counts.get("D2lSoftmaxCrossEntropyGrad")).toBe(1);
    expect(counts.get("Exp")).toBeUndefined();
    expect(counts.get("OneHot")).toBeUndefined();
  });

  it("leaves float labels and the speed-ups off to the ops, with the same values", () => {
    useFusedSoftmaxCrossEntropy(true);
    const { logits, y } = inputs(6, 4, 3);
    const fused = softmaxCrossEntropy(logits, y);
    useSpeedups(false);
    const ops = softmaxCrossEntropy(logits, y);
    useSpeedups(true);
    expect(Array.from(fused.dataSync())).toEqual(Array.from(ops.dataSync()));
    // float32 labels: tf.oneHot rejects them, as before
    expect(() => softmaxCrossEntropy(logits, y.cast("float32"))).toThrow(/int32/);
    tf.dispose([logits, y, fused, ops]);
  });
});
