import * as tf from "@tensorflow/tfjs";
import { afterEach, describe, expect, it, vi } from "vitest";
import { restoreSequentialCall, useDirectLayerCalls, useDirectSequential } from "../../lib/src/engine/sequential-call";

/** Counts the calls of the functional model inside a Sequential (tfjs's graph executor path). */
function countExecutor(net: tf.Sequential): { count: number } {
  const counter = { count: 0 };
  net.apply(tf.zeros([1, ...(net.inputs[0].shape.slice(1) as number[])])); // builds the inner model
  const inner = (net as unknown as { model: { call: (...a: unknown[]) => unknown } }).model;
  const call = inner.call.bind(inner);
  inner.call = (...args: unknown[]) => {
    counter.count++;
    return call(...args);
  };
  return counter;
}

function mlp(extra?: tf.layers.Layer): tf.Sequential {
  const layers: tf.layers.Layer[] = [tf.layers.dense({ units: 8, activation: "relu", inputShape: [5] }), tf.layers.dropout({ rate: 0.5 })];
  if (extra) layers.push(extra);
  layers.push(tf.layers.dense({ units: 1 }));
  return tf.sequential({ layers });
}

afterEach(() => useDirectSequential()); // the speed-ups' state, as initBackend leaves it

describe("useDirectSequential", () => {
  it("gives tfjs's values and gradients for a plain stack, without the graph executor", () => {
    const net = mlp();
    const X = tf.randomNormal([16, 5]);
    const lossOf = () => (net.apply(X) as tf.Tensor).square().mean() as tf.Scalar;
    const params = net.trainableWeights.map((w) => w.read() as tf.Variable);
    restoreSequentialCall();
    const theirs = tf.variableGrads(lossOf, params);
    const counter = countExecutor(net);
    const before = counter.count;
    useDirectSequential();
    const ours = tf.variableGrads(lossOf, params);
    expect(counter.count).toBe(before); // the executor was not used
    expect(ours.value.dataSync()[0]).toBe(theirs.value.dataSync()[0]);
    for (const p of params) expect(Array.from(ours.grads[p.name].dataSync())).toEqual(Array.from(theirs.grads[p.name].dataSync()));
    tf.dispose([X, ours.value, theirs.value, ...Object.values(ours.grads), ...Object.values(theirs.grads)]);
    net.dispose();
  });

  it("passes the training flag on: dropout drops only while training", () => {
    const net = tf.sequential({ layers: [tf.layers.dropout({ rate: 0.5, inputShape: [1000] })] });
    const X = tf.ones([1, 1000]);
    const train = Array.from((net.apply(X, { training: true }) as tf.Tensor).dataSync());
    const evaluate = Array.from((net.apply(X) as tf.Tensor).dataSync());
    expect(train.filter((v) => v === 0).length).toBeGreaterThan(400);
    expect(evaluate.every((v) => v === 1)).toBe(true);
    net.dispose();
    X.dispose();
  });

  it("leaves other Sequentials to tfjs's own path", () => {
    const net = mlp(tf.layers.batchNormalization());
    const counter = countExecutor(net);
    const before = counter.count;
    tf.tidy(() => {
      net.apply(tf.ones([2, 5]));
    });
    expect(counter.count).toBe(before + 1);
    net.dispose();
  });
  it("applied outside a tidy, leaves only its output, as tfjs's executor does", () => {
    const net = mlp();
    const X = tf.randomNormal([4, 5]);
    (net.apply(X) as tf.Tensor).dispose(); // builds the model
    const before = tf.memory().numTensors;
    const Y = net.apply(X) as tf.Tensor;
    expect(tf.memory().numTensors).toBe(before + 1);
    Y.dispose();
    tf.dispose([X]);
    net.dispose();
  });

  it("applies each layer as Layer.apply does: its input checks, and a copy of an output that is its input", () => {
    const net = mlp();
    const X = tf.randomNormal([4, 5]);
    (net.apply(X) as tf.Tensor).dispose(); // builds the model
    const wrong = tf.ones([4, 6]);
    const messageOf = (f: () => unknown) => {
      try {
        f();
      } catch (error) {
        return String(error);
      }
      return "no error";
    };
    const ours = messageOf(() => tf.tidy(() => net.apply(wrong) as tf.Tensor));
    restoreSequentialCall();
    const theirs = messageOf(() => tf.tidy(() => net.apply(wrong) as tf.Tensor));
    useDirectSequential();
    expect(ours).toContain("expected axis -1 of input shape to have value 5");
    expect(ours).toBe(theirs);
    // A lone Dropout outside training returns its input; apply hands back a copy, which outlives it.
    const dropout = tf.sequential({ layers: [tf.layers.dropout({ rate: 0.5, inputShape: [5] })] });
    (dropout.apply(X) as tf.Tensor).dispose();
    const before = tf.memory().numTensors;
    const Y = dropout.apply(X) as tf.Tensor;
    expect(Y).not.toBe(X);
    expect(tf.memory().numTensors).toBe(before + 1);
    Y.dispose();
    expect(X.isDisposed).toBe(false);
    tf.dispose([X, wrong]);
    net.dispose();
    dropout.dispose();
  });

  it("gives the same values and gradients with and without Layer.apply's generic part", () => {
    const net = mlp();
    const X = tf.randomNormal([16, 5]);
    const lossOf = () => (net.apply(X, { training: false }) as tf.Tensor).square().mean() as tf.Scalar;
    const params = net.trainableWeights.map((w) => w.read() as tf.Variable);
    useDirectLayerCalls(false);
    const theirs = tf.variableGrads(lossOf, params);
    useDirectLayerCalls(true);
    const ours = tf.variableGrads(lossOf, params);
    expect(ours.value.dataSync()[0]).toBe(theirs.value.dataSync()[0]);
    for (const p of params) expect(Array.from(ours.grads[p.name].dataSync())).toEqual(Array.from(theirs.grads[p.name].dataSync()));
    tf.dispose([X, ours.value, theirs.value, ...Object.values(ours.grads), ...Object.values(theirs.grads)]);
    net.dispose();
  });

  it("a second copy of the module (tsx and tslab load lib twice) sees the installed call and switches it", async () => {
    const proto = tf.Sequential.prototype as unknown as { call: unknown };
    useDirectSequential();
    const installed = proto.call;
    vi.resetModules();
    const copy = await import("../../lib/src/engine/sequential-call");
    expect(copy.useDirectSequential).not.toBe(useDirectSequential);
    copy.useDirectSequential();
    expect(proto.call).toBe(installed); // not wrapped twice
    const net = mlp();
    const X = tf.randomNormal([4, 5]);
    (net.apply(X) as tf.Tensor).dispose(); // builds the model
    const applied = vi.spyOn(net.layers[0], "apply");
    const run = () => tf.tidy(() => net.apply(X) as tf.Tensor).dispose();
    run();
    expect(applied).toHaveBeenCalledTimes(0); // the direct layer call
    copy.useDirectLayerCalls(false); // reaches the call this copy did not install
    run();
    expect(applied).toHaveBeenCalledTimes(1);
    copy.useDirectLayerCalls(true);
    run();
    expect(applied).toHaveBeenCalledTimes(1);
    const counter = countExecutor(net);
    const before = counter.count;
    copy.restoreSequentialCall(); // tfjs's own call, not the first copy's
    run();
    expect(counter.count).toBe(before + 1);
    useDirectSequential();
    run();
    expect(counter.count).toBe(before + 1);
    applied.mockRestore();
    X.dispose();
    net.dispose();
  });
});
