import * as tf from "@tensorflow/tfjs";
import { afterAll, describe, expect, it } from "vitest";
import { crossEntropy } from "../../lib/src/losses";
import { softmax } from "../../lib/src/models";
import { backward, sgd } from "../../lib/src/optim";
import { restoreWasmBuffers, useSharedWasmBuffers } from "../../lib/src/engine/wasm-share";

const onWasm = tf.getBackend() === "wasm";

/** The wasm backend's count of live buffers (the engine's numDataBuffers counts them too). */
function buffers(): number {
  return tf.memory().numDataBuffers;
}

/** Three steps of 3.6's scratch softmax regression from fixed weights and data; the trained W and b. */
function threeSteps(): [Float32Array, Float32Array] {
  const W = tf.tidy(() => tf.variable(tf.tensor2d(Float32Array.from({ length: 12 * 3 }, (_, i) => Math.sin(i) / 10), [12, 3])));
  const b = tf.tidy(() => tf.variable(tf.zeros([3])));
  const X = tf.tensor2d(Float32Array.from({ length: 8 * 12 }, (_, i) => Math.cos(i * 0.7)), [8, 12]);
  const y = tf.tensor1d([0, 1, 2, 0, 1, 2, 0, 1], "int32");
  for (let step = 0; step < 3; step++) {
    tf.tidy(() => {
      backward(() => crossEntropy(softmax(tf.matMul(X, W).add(b)), y).sum() as tf.Scalar);
      sgd([W, b], 0.5, 8);
    });
  }
  const out: [Float32Array, Float32Array] = [W.dataSync() as Float32Array, b.dataSync() as Float32Array];
  tf.dispose([W, b, X, y]);
  return out;
}

describe.runIf(onWasm)("useSharedWasmBuffers (wasm backend)", () => {
  afterAll(() => {
    useSharedWasmBuffers(); // what initBackend installs
  });

  it("is installed by initBackend, idempotent, and can be undone", () => {
    expect(useSharedWasmBuffers()).toBe(true);
    expect(restoreWasmBuffers()).toBe(true);
    expect(restoreWasmBuffers()).toBe(false);
    expect(useSharedWasmBuffers()).toBe(true);
    expect(useSharedWasmBuffers()).toBe(true);
  });

  it("clone() shares the buffer, and the clone outlives its source with the same values", () => {
    const x = tf.tensor2d([[1, 2, 3], [4, 5, 6]]);
    const before = buffers();
    const c = x.clone();
    expect(buffers()).toBe(before); // no new buffer
    x.dispose();
    expect(Array.from(c.dataSync())).toEqual([1, 2, 3, 4, 5, 6]);
    expect(c.shape).toEqual([2, 3]);
    c.dispose();
    expect(buffers()).toBe(before - 1); // the last reference frees it
  });

  it("casts to the same dtype share; casts to another dtype still convert", () => {
    const x = tf.tensor1d([1.5, -2.25, 3]);
    const before = buffers();
    const same = x.cast("float32");
    expect(buffers()).toBe(before);
    const ints = x.cast("int32");
    expect(buffers()).toBe(before + 1);
    expect(ints.dtype).toBe("int32");
    expect(Array.from(ints.dataSync())).toEqual([1, -2, 3]);
    const y = tf.tensor1d([7, 8], "int32");
    const floats = y.cast("float32");
    expect(floats.dtype).toBe("float32");
    expect(Array.from(floats.dataSync())).toEqual([7, 8]);
    const bools = tf.tensor1d([1, 0], "bool").cast("bool");
    expect(Array.from(bools.dataSync())).toEqual([1, 0]);
    x.dispose();
    expect(Array.from(same.dataSync())).toEqual([1.5, -2.25, 3]);
    tf.dispose([same, ints, y, floats, bools]);
  });

  it("a variable's assign replaces its buffer: its earlier clones, and the copies saved for gradients, keep the old values", () => {
    const v = tf.tidy(() => tf.variable(tf.tensor1d([1, 2, 3])));
    const snapshot = v.clone();
    tf.tidy(() => v.assign(tf.tensor1d([10, 20, 30])));
    expect(Array.from(snapshot.dataSync())).toEqual([1, 2, 3]);
    expect(Array.from(v.dataSync())).toEqual([10, 20, 30]);
    // a tensor saved for a gradient is such a clone: tfjs reads it in backprop, after the forward pass
    const w = tf.tidy(() => tf.variable(tf.tensor1d([2, 3]), true, "share_test_w"));
    const { value, grads } = tf.variableGrads(() => {
      const loss = w.square().sum() as tf.Scalar; // saves w for the gradient 2w
      tf.tidy(() => w.assign(tf.tensor1d([100, 100]))); // replaced before the backward pass reads the saved w
      return loss;
    }, [w]);
    expect(value.dataSync()[0]).toBe(13);
    expect(Array.from(grads[w.name].dataSync())).toEqual([4, 6]);
    tf.dispose([v, snapshot, w, value, grads[w.name]]);
  });

  it("string tensors still clone", () => {
    const s = tf.tensor1d(["a", "bc"], "string");
    const c = s.clone();
    s.dispose();
    expect(c.dataSync()).toEqual(["a", "bc"]);
    c.dispose();
  });

  it("trains to exactly the same parameters as the copying kernels, and leaves no buffer behind", () => {
    restoreWasmBuffers();
    const copying = threeSteps();
    useSharedWasmBuffers();
    const before = { tensors: tf.memory().numTensors, buffers: buffers() };
    const sharing = threeSteps();
    expect(tf.memory().numTensors).toBe(before.tensors);
    expect(buffers()).toBe(before.buffers);
    expect(Array.from(sharing[0])).toEqual(Array.from(copying[0]));
    expect(Array.from(sharing[1])).toEqual(Array.from(copying[1]));
  });
});
