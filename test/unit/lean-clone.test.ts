import * as tf from "@tensorflow/tfjs";
import { afterAll, describe, expect, it } from "vitest";
import { restoreLeanClone, useLeanClone } from "../../lib/src/engine/lean-clone";
import { kernelCalls, trainDenseLayer } from "./kernel-fixtures";

const onWasm = tf.getBackend() === "wasm";

describe.skipIf(!onWasm)("useLeanClone (wasm backend)", () => {
  afterAll(() => useLeanClone());

  it("trains a dense layer to the same weights bit for bit, with no tensor left over", () => {
    restoreLeanClone();
    const tfjs = trainDenseLayer(); // it checks that the number of tensors stays put
    useLeanClone();
    const lean = trainDenseLayer();
    expect(lean.map((w) => Array.from(w))).toEqual(tfjs.map((w) => Array.from(w)));
  });

  it("saves tensors for a gradient without the Identity kernel, and frees them with the tape", () => {
    useLeanClone();
    const x = tf.variable(tf.tensor2d([[1, -2], [3, 0.5]]));
    const w = tf.tensor2d([[0.5, 1], [-1, 2]]);
    const before = tf.memory().numTensors;
    let grad: tf.Tensor | undefined;
    const calls = kernelCalls(() => {
      // matMul and relu save their inputs or outputs for the gradient
      grad = tf.variableGrads(() => tf.relu(tf.matMul(x, w)).square().sum() as tf.Scalar, [x]).grads[x.name];
    });
    expect(calls.get("Identity")).toBeUndefined();
    expect(tf.memory().numTensors).toBe(before + 2); // the gradient and the value
    restoreLeanClone();
    let tfjsGrad: tf.Tensor | undefined;
    const tfjsCalls = kernelCalls(() => {
      tfjsGrad = tf.variableGrads(() => tf.relu(tf.matMul(x, w)).square().sum() as tf.Scalar, [x]).grads[x.name];
    });
    expect(tfjsCalls.get("Identity")).toBeGreaterThan(0);
    expect(Array.from(grad!.dataSync())).toEqual(Array.from(tfjsGrad!.dataSync()));
    useLeanClone();
    tf.dispose([x, w, grad!, tfjsGrad!]);
  });

  it("keeps tfjs's clone under nested tapes: a second derivative through saved tensors", () => {
    useLeanClone();
    const x = tf.tensor1d([0.5, -1, 2]);
    const f = (a: tf.Tensor) => a.square().mul(a).sum(); // Square and Mul save their inputs; d²/da² Σ a³ = 6a
    const before = tf.memory().numTensors;
    const second = tf.grad((a: tf.Tensor) => tf.grad(f)(a).sum())(x);
    expect(Array.from(second.dataSync())).toEqual([3, -6, 12]);
    expect(tf.memory().numTensors).toBe(before + 1);
    tf.dispose([x, second]);
  });
});
