import * as tf from "@tensorflow/tfjs";
import { afterAll, describe, expect, it } from "vitest";
import { useSpeedups } from "../../lib/src/engine";
import { SPLIT_FROM, restoreSgd, useOneKernelSgd, useSplitSgdStep } from "../../lib/src/engine/sgd-step";
import { getThreads, setThreads, splitCount } from "../../lib/src/engine/thread-pool";
import { trainDenseLayer, values, withKernelNames } from "./kernel-fixtures";

const onWasm = tf.getBackend() === "wasm";

/** Five tf.train.sgd steps on variables of these shapes (loss Σ sin(v)·w), their values after as float32 bits. */
function stepVariables(shapes: number[][], lr: number): Uint32Array[] {
  const vars = shapes.map((s, i) => tf.variable(tf.tensor(values(s.reduce((a, b) => a * b, 1), 30 + i).map((v) => 3 * v), s)));
  const weights = shapes.map((s, i) => tf.tensor(values(s.reduce((a, b) => a * b, 1), 40 + i).map((v) => 10 ** (i - 2) * v), s));
  const optimizer = tf.train.sgd(lr);
  const loss = () => tf.addN(vars.map((v, i) => tf.sin(v).mul(weights[i]).sum())) as tf.Scalar;
  optimizer.minimize(loss);
  const before = tf.memory().numTensors;
  for (let k = 0; k < 4; k++) optimizer.minimize(loss);
  expect(tf.memory().numTensors).toBe(before);
  const out = vars.map((v) => new Uint32Array(Float32Array.from(v.dataSync() as Float32Array).buffer));
  tf.dispose([...vars, ...weights]);
  optimizer.dispose();
  return out;
}

describe.skipIf(!onWasm)("useOneKernelSgd (wasm backend)", () => {
  afterAll(() => useSpeedups(true));
  it("steps variables to tfjs's values bit for bit (vectors and a remainder, odd learning rates)", () => {
    for (const lr of [0.1, 0.0123, 7]) {
      const shapes = [[784, 256], [10], [3, 5], [1]];
      restoreSgd();
      const tfjs = stepVariables(shapes, lr);
      useOneKernelSgd();
      const ours = stepVariables(shapes, lr);
      expect(ours).toEqual(tfjs);
    }
  });

  it("trains a dense layer to tfjs's weights, one kernel a variable", () => {
    restoreSgd();
    const tfjs = trainDenseLayer();
    useOneKernelSgd();
    const { result: ours, names } = withKernelNames(trainDenseLayer);
    expect(ours.map((w) => Array.from(w))).toEqual(tfjs.map((w) => Array.from(w)));
    expect(names.filter((n) => n === "D2lSgdStep")).toHaveLength(2 * 3); // kernel and bias, three steps
  });

  it("with useSplitSgdStep(true), splits a large variable's step across 2 threads (whole rows) with the same bits as one thread and tfjs", () => {
    const initial = getThreads();
    useSplitSgdStep(true);
    try {
      const shapes = [[784, 256], [10], [SPLIT_FROM + 3]]; // the MLP's W1; a bias; an odd 1-D one with a remainder
      restoreSgd();
      const tfjs = stepVariables(shapes, 0.1);
      useOneKernelSgd();
      setThreads(1);
      const splitsBefore = splitCount();
      const one = stepVariables(shapes, 0.1);
      expect(splitCount()).toBe(splitsBefore);
      for (const threads of [2]) {
        setThreads(threads);
        const before = splitCount();
        const split = stepVariables(shapes, 0.1);
        expect(splitCount() - before).toBe(2 * 5); // W1 and the 1-D one, five steps
        expect(split).toEqual(one);
      }
      expect(one).toEqual(tfjs);
      useSplitSgdStep(false); // the default: no split
      setThreads(2);
      const before = splitCount();
      expect(stepVariables(shapes, 0.1)).toEqual(one);
      expect(splitCount()).toBe(before);
    } finally {
      useSplitSgdStep(false);
      setThreads(initial);
    }
  });
});
