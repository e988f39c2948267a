import * as tf from "@tensorflow/tfjs";
import { afterAll, describe, expect, it } from "vitest";
import { useSpeedups } from "../../lib/src/engine";
import { softmax, useFusedSoftmax } from "../../lib/src/engine/fused-softmax";
import { values, withKernelNames } from "./kernel-fixtures";

const onWasm = tf.getBackend() === "wasm";

/** Logits [n, K] spread over [-12, 12), with (n > 3) a row that overflows exp, a NaN, -Infinity and +Infinity. */
function logits(n: number, k: number): tf.Tensor2D {
  const x = values(n * k, 5 + k).map((v) => 12 * v);
  if (n > 3) {
    x[k] = 1000; // exp overflows: Inf / Inf = NaN in the book's softmax (3.6's exercise 1)
    x[2 * k + 1] = NaN;
    x[3 * k] = -Infinity; // exp(-Inf) = 0
    x[3 * k + k - 1] = -0;
  }
  if (n > 4) x[4 * k + 1] = Infinity;
  return tf.tensor2d(x, [n, k]);
}

/** Float bits, every NaN as one value (tfjs's ops and ours may differ in a NaN's payload, not in where NaN is). */
const bits = (t: tf.Tensor) => Array.from(t.dataSync() as Float32Array, (x) => (Number.isNaN(x) ? "NaN" : new Uint32Array(new Float32Array([x]).buffer)[0]));

/** softmax(X) and the gradient of Σ softmax(X)·w with respect to X (w spread over [0, 2)), as bits. */
function outputAndGradient(n: number, k: number): [(number | string)[], (number | string)[]] {
  const X = logits(n, k);
  const x = tf.variable(X);
  const [y, grad] = tf.tidy(() => {
    const w = tf.tensor2d(values(n * k, 97).map((v) => 1 + v), [n, k]);
    const { grads } = tf.variableGrads(() => softmax(x).mul(w).sum() as tf.Scalar, [x]);
    return [softmax(x), grads[x.name]];
  });
  const out: [(number | string)[], (number | string)[]] = [bits(y), bits(grad)];
  tf.dispose([X, x, y, grad]);
  return out;
}

describe.skipIf(!onWasm)("fused softmax (wasm backend)", () => {
  afterAll(() => useSpeedups(true));
  it.each([[256, 10], [96, 10], [5, 3], [7, 1], [1, 13]])("gives the ops' output and gradient bit for bit: n %i, K %i", (n, k) => {
    useFusedSoftmax(false);
    const [opsY, opsGrad] = outputAndGradient(n, k);
    useFusedSoftmax(true);
    const before = tf.memory().numTensors;
    const [fusedY, fusedGrad] = outputAndGradient(n, k);
    expect(tf.memory().numTensors).toBe(before);
    expect(fusedY).toEqual(opsY);
    expect(fusedGrad).toEqual(opsGrad);
    if (n > 4) {
      expect(fusedY).toContain("NaN"); // the overflowing row, as the book's softmax gives it
      expect(fusedGrad).toContain("NaN");
    }
  });

  it("runs one kernel forward and one for the gradient, and the ops for other ranks and dtypes", () => {
    useFusedSoftmax(true);
    const X = logits(8, 4);
    const { names } = withKernelNames(() => tf.tidy(() => {
      tf.grad((x: tf.Tensor) => softmax(x).sum())(X);
    }));
    expect(names.filter((name) => name.startsWith("D2lSoftmax"))).toEqual(["D2lSoftmax", "D2lSoftmaxGrad"]);
    expect(names).not.toContain("RealDiv");
    expect(names).not.toContain("Exp"); // called by the kernel directly, not through the engine
    const cube = tf.tensor3d(values(2 * 3 * 4, 9), [2, 3, 4]);
    const { names: opsNames } = withKernelNames(() => tf.tidy(() => softmax(cube)));
    expect(opsNames).toContain("RealDiv");
    tf.dispose([X, cube]);
  });

  it("matches the ops in a second-order gradient by taking them there", () => {
    useFusedSoftmax(true);
    const X = logits(3, 4);
    const secondOrder = () => tf.tidy(() => {
      const g = (x: tf.Tensor) => tf.grad((z: tf.Tensor) => softmax(z).square().sum())(x).sum();
      return tf.grad(g)(X).dataSync().slice();
    });
    const fused = secondOrder();
    useFusedSoftmax(false);
    expect(Array.from(fused)).toEqual(Array.from(secondOrder()));
    X.dispose();
  });
});
