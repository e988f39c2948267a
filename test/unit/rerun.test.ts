import * as tf from "@tensorflow/tfjs";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { LeakCheck, disposeOnRerun } from "../../lib/src/rerun";

beforeEach(() => {
  vi.spyOn(console, "log").mockImplementation(() => undefined);
});
afterEach(() => vi.restoreAllMocks());

/** A notebook in miniature: a first cell with the check, a cell making parameters, a last cell. */
function runAll(extra?: () => void): () => void {
  const check = new LeakCheck();
  const W = tf.tidy(() => tf.variable(tf.randomNormal([3, 2])));
  const b = tf.tidy(() => tf.variable(tf.zeros([2])));
  disposeOnRerun("leak-test-params", W, b);
  const toy = tf.tensor1d([1, 2, 3]);
  disposeOnRerun("leak-test-toy", toy);
  extra?.();
  toy.dispose();
  return () => check.expect(2, "W and b");
}

describe("LeakCheck", () => {
  it("passes on a first and a second Run All in one kernel, where the old W and b are freed mid-run", () => {
    const start = tf.memory().numTensors;
    runAll()();
    expect(tf.memory().numTensors).toBe(start + 2);
    runAll()(); // the count at its start included the first run's W and b
    expect(tf.memory().numTensors).toBe(start + 2);
    runAll()();
  });

  it("fails on a real leak, on any pass, naming how many tensors", () => {
    const leaked: tf.Tensor[] = [];
    expect(runAll(() => leaked.push(tf.ones([4]))), "sanity").toBeTypeOf("function");
    expect(() => runAll(() => leaked.push(tf.ones([4])))()).toThrow(/this notebook leaked 1 tensor\(s\): 3 added, 2 kept on purpose/);
    expect(() => runAll(() => leaked.push(tf.ones([4]), tf.ones([4])))()).toThrow(/leaked 2 tensor/);
    tf.dispose(leaked);
  });

  it("is not fooled by a cell re-run within the same pass", () => {
    const finish = runAll(() => {
      const W2 = tf.tidy(() => tf.variable(tf.zeros([3, 2])));
      const b2 = tf.tidy(() => tf.variable(tf.zeros([2])));
      disposeOnRerun("leak-test-params", W2, b2); // the parameters cell again: frees this run's own W and b
    });
    finish();
  });

  it("fails when a tensor the notebook should keep was freed", () => {
    const finish = runAll(() => tf.dispose(tf.engine().state.registeredVariables[Object.keys(tf.engine().state.registeredVariables).pop()!]));
    expect(finish).toThrow(/freed 1 tensor\(s\) it should keep/);
  });
});
