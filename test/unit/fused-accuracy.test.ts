import * as tf from "@tensorflow/tfjs";
import { afterAll, describe, expect, it } from "vitest";
import { useSpeedups } from "../../lib/src/engine";
import { accuracy, useFusedAccuracy } from "../../lib/src/engine/fused-accuracy";
import { values, withKernelNames } from "./kernel-fixtures";

const onWasm = tf.getBackend() === "wasm";

/** Scores [n, k] with ties, NaN (first and later in a row), ±Infinity and equal rows; labels 0..k-1, one out of range. */
function inputs(n: number, k: number): { scores: tf.Tensor2D; y: tf.Tensor1D } {
  const x = values(n * k, 11 + k);
  const special = [NaN, Infinity, -Infinity, 0.5, 0.5];
  for (let i = 0; i < n; i += 3) x[i * k + ((i / 3) % k)] = special[(i / 3) % special.length]; // a special value somewhere in every third row
  if (n > 1) x.fill(0.25, k, 2 * k); // row 1: all equal
  // labels: half from the scores' argmax as JavaScript finds it (so many rows are right), half arbitrary
  const labels = Int32Array.from({ length: n }, (_, i) => (i % 2 ? (i * 5) % k : Math.max(0, x.subarray(i * k, i * k + k).indexOf(Math.max(...x.subarray(i * k, i * k + k))))));
  if (n > 2) labels[2] = k;
  return { scores: tf.tensor2d(x, [n, k]), y: tf.tensor1d(labels, "int32") };
}

describe.skipIf(!onWasm)("fused accuracy (wasm backend)", () => {
  afterAll(() => useSpeedups(true));
  it.each([[256, 10], [97, 3], [4, 2], [0, 5]])("counts what the ops count: %i rows of %i scores", (n, k) => {
    const { scores, y } = inputs(n, k);
    useFusedAccuracy(false);
    const ops = accuracy(scores, y);
    useFusedAccuracy(true);
    const before = tf.memory().numTensors;
    const fused = accuracy(scores, y);
    expect(tf.memory().numTensors).toBe(before + 1);
    expect(fused.dtype).toBe("float32");
    expect(fused.shape).toEqual([]);
    // no rows: 0 (tfjs's wasm Sum of an empty tensor returns whatever its output buffer held)
    expect(fused.dataSync()[0]).toBe(n === 0 ? 0 : ops.dataSync()[0]);
    if (n >= 97) expect(fused.dataSync()[0]).toBeGreaterThan(n / 4); // the test has right rows to count
    tf.dispose([scores, y, ops, fused]);
  });

  it("runs one kernel, and leaves predicted classes and float labels to the ops", () => {
    useFusedAccuracy(true);
    const { scores, y } = inputs(8, 4);
    const { result: fused, names } = withKernelNames(() => accuracy(scores, y));
    expect(names).toEqual(["D2lCorrectCount"]);
    const asFloat = accuracy(scores, y.cast("float32"));
    const classes = accuracy(scores.argMax(1), y);
    expect(asFloat.dataSync()[0]).toBe(fused.dataSync()[0]);
    expect(classes.dataSync()[0]).toBe(fused.dataSync()[0]);
    tf.dispose([scores, y, fused, asFloat, classes]);
  });
});
