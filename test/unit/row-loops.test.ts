import * as tf from "@tensorflow/tfjs";
import { afterAll, describe, expect, it } from "vitest";
import { useSpeedups } from "../../lib/src/engine";
import { useVectorRowPasses, useWasmRowLoops } from "../../lib/src/engine/row-loops";
import { softmaxCrossEntropy } from "../../lib/src/engine/fused-softmax-ce";
import { softmax } from "../../lib/src/engine/fused-softmax";
import { crossEntropy } from "../../lib/src/engine/fused-cross-entropy";
import { accuracy } from "../../lib/src/engine/fused-accuracy";
import { values } from "./kernel-fixtures";

const onWasm = tf.getBackend() === "wasm";

/** Float bits, every NaN as one value. */
const bits = (t: tf.Tensor) => Array.from(t.dataSync() as Float32Array, (x) => (Number.isNaN(x) ? "NaN" : new Uint32Array(new Float32Array([x]).buffer)[0]));

/** Logits with a NaN first in a row, a NaN later, ±Infinity, and labels out of range (K, −1, 2³⁰ + 1, whose 4·label wraps to 4). */
function inputs(n: number, k: number): { x: tf.Tensor2D; y: tf.Tensor1D } {
  const x = values(n * k, 31 + k).map((v) => 9 * v);
  const labels = Int32Array.from({ length: n }, (_, i) => (i * 3 + 1) % k);
  if (n >= 6) {
    x[0] = NaN;
    x[k + 2] = NaN;
    x[2 * k + 1] = Infinity;
    x[3 * k] = -Infinity;
    labels[3] = k;
    labels[4] = -1;
    labels[5] = 2 ** 30 + 1;
  }
  return { x: tf.tensor2d(x, [n, k]), y: tf.tensor1d(labels, "int32") };
}

/** Each fused op's value and gradient (of Σ value·w) for these inputs, as bits. */
function run(n: number, k: number): (number | string)[][] {
  const { x, y } = inputs(n, k);
  const v = tf.variable(x);
  const out = tf.tidy(() => {
    const p = tf.tidy(() => tf.softmax(x.add(0).mul(tf.isNaN(x).logicalNot().cast("float32")))); // finite probabilities for crossEntropy
    const vp = tf.variable(p);
    const result: tf.Tensor[] = [];
    for (const f of [(z: tf.Tensor) => softmaxCrossEntropy(z, y), (z: tf.Tensor) => softmaxCrossEntropy(z, y, 0.1), (z: tf.Tensor) => softmax(z)]) {
      const w = tf.tensor(values(f(v).size, 5).map((e) => 1 + e), f(v).shape);
      const { value, grads } = tf.variableGrads(() => f(v).mul(w).sum() as tf.Scalar, [v]);
      result.push(f(v), grads[v.name], value);
    }
    const w = tf.tensor1d(values(n, 6).map((e) => 1 + e));
    const { grads } = tf.variableGrads(() => crossEntropy(vp, y).mul(w).sum() as tf.Scalar, [vp]);
    result.push(crossEntropy(vp, y), grads[vp.name], accuracy(x, y), accuracy(p, y));
    vp.dispose();
    return result;
  });
  const b = out.map(bits);
  tf.dispose([x, y, v, ...out]);
  return b;
}

describe.skipIf(!onWasm)("row loops in WebAssembly (wasm backend)", () => {
  afterAll(() => {
    useWasmRowLoops(true);
    useVectorRowPasses(true);
    useSpeedups(true);
  });
  it.each([[256, 10], [9, 3], [6, 2], [1, 1], [2, 17]])("give the JavaScript loops' floats bit for bit: n %i, K %i", (n, k) => {
    if (k < 2) {
      // softmaxCrossEntropy and crossEntropy need K ≥ 2 (they take the ops below); softmax alone
      useWasmRowLoops(false);
      const { x } = inputs(n, k);
      const js = bits(tf.tidy(() => softmax(x)));
      useWasmRowLoops(true);
      expect(bits(tf.tidy(() => softmax(x)))).toEqual(js);
      x.dispose();
      return;
    }
    useWasmRowLoops(false);
    const js = run(n, k);
    useWasmRowLoops(true);
    const before = tf.memory().numTensors;
    const wasm = run(n, k);
    expect(tf.memory().numTensors).toBe(before);
    expect(wasm).toEqual(js);
    useVectorRowPasses(false); // one float a step throughout
    const scalar = run(n, k);
    useVectorRowPasses(true);
    expect(scalar).toEqual(js);
  });
});
