import * as tf from "@tensorflow/tfjs";
import { afterAll, describe, expect, it } from "vitest";
import { filterTape, restoreGradients, useLeanGradients } from "../../lib/src/engine/lean-gradients";
import { softmaxCrossEntropy } from "../../lib/src/engine/fused-softmax-ce";
import { bitsOf, trainDenseLayer, values } from "./kernel-fixtures";

const onWasm = tf.getBackend() === "wasm";

/** `f` with tfjs's Engine.gradients and with ours: their results (as float32 bits) and the tensors each left. */
function bothWays(f: () => tf.Tensor[]): { tfjs: Uint32Array[]; lean: Uint32Array[] } {
  const run = () => {
    const before = tf.memory().numTensors;
    const out = tf.tidy(f);
    const bits = out.map((t) => new Uint32Array(Float32Array.from(t.dataSync() as Float32Array).buffer));
    tf.dispose(out);
    expect(tf.memory().numTensors).toBe(before);
    return bits;
  };
  restoreGradients();
  const tfjs = run();
  useLeanGradients();
  const lean = run();
  return { tfjs, lean };
}

describe("useLeanGradients", () => {
  afterAll(() => useLeanGradients());

  it("trains a dense layer to the same weights bit for bit, with no tensor left over", () => {
    restoreGradients();
    const tfjs = trainDenseLayer(); // it checks that the number of tensors stays put
    useLeanGradients();
    const lean = trainDenseLayer();
    expect(lean.map((w) => Array.from(w))).toEqual(tfjs.map((w) => Array.from(w)));
  });

  it("gives tfjs's gradients for reused tensors, branches, unused outputs of a split and an unconnected variable", () => {
    const a = tf.variable(tf.tensor2d(values(12, 1), [3, 4]));
    const b = tf.variable(tf.tensor2d(values(8, 2), [4, 2]));
    const unused = tf.variable(tf.tensor1d([1, 2]));
    const f = () => {
      const h = tf.matMul(a, b); // [3, 2]
      const [left] = tf.split(h, 2, 1); // the right half leads nowhere: its dy must be zeros
      const s = tf.sigmoid(left).mul(h.sum(1, true)).add(a.sum()); // a reaches the loss twice, h three times
      return s.square().mean() as tf.Scalar;
    };
    const { tfjs, lean } = bothWays(() => {
      const { value, grads } = tf.variableGrads(f, [a, b, unused]);
      expect(grads[unused.name]).toBeUndefined(); // as tfjs: no connection, no gradient
      return [value, grads[a.name], grads[b.name]];
    });
    expect(lean).toEqual(tfjs);
    // and the split's unused half really got zeros: b's gradient differs from one where the half counted
    expect(new Float32Array(lean[2].buffer).some((v) => v !== 0)).toBe(true);
    tf.dispose([a, b, unused]);
  });

  it("gives tfjs's second derivative (nested tapes keep the tape of the outer gradient)", () => {
    const x = tf.tensor1d([0.5, -1, 2, 3]);
    const f = (t: tf.Tensor) => t.square().mul(t).sin().sum(); // sin(x³)
    const { tfjs, lean } = bothWays(() => [tf.grad((t: tf.Tensor) => tf.grad(f)(t).sum())(x)]);
    expect(lean).toEqual(tfjs);
    x.dispose();
  });

  it("filters a tape as tfjs does: the nodes from x to y in order, inputs pruned to those from x", () => {
    const t = (id: number) => ({ id }) as tf.Tensor;
    const [x, c, u, v, w, z, y] = [1, 2, 3, 4, 5, 6, 7].map(t);
    const node = (id: number, inputs: Record<string, tf.Tensor>, outputs: tf.Tensor[]) => ({ id, kernelName: `K${id}`, inputs, outputs });
    const tape = [
      node(10, { a: x, b: c }, [u]), // from x, leads to y: keeps a, drops the constant b
      node(11, { a: c }, [v]), // not from x
      node(12, { a: u }, [w, z]), // from x; w leads to y
      node(13, { a: x }, [t(8)]), // from x, leads nowhere
      node(14, { a: w, b: v }, [y]), // keeps a only
    ];
    const filtered = filterTape(tape, [x], y);
    expect(filtered.map((n) => n.id)).toEqual([10, 12, 14]);
    expect(filtered.map((n) => Object.keys(n.inputs))).toEqual([["a"], ["a"], ["a"]]);
    expect(filtered[1].outputs).toEqual([w, z]);
    expect(Object.keys(tape[0].inputs)).toEqual(["a", "b"]); // the tape itself is untouched
  });

  it("throws tfjs's error when y does not depend on x, and returns no gradient with allowNoGradients", () => {
    const x = tf.variable(tf.scalar(2));
    const c = tf.scalar(3);
    expect(() => tf.grad(() => c.square())(x)).toThrow(/Cannot compute gradient of y=f\(x\) with respect to x/);
    const before = tf.memory().numTensors;
    const { value, grads } = tf.engine().gradients(() => c.square(), [x], undefined, true);
    expect(grads[0]).toBeUndefined();
    expect(value.dataSync()[0]).toBe(9);
    value.dispose();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, c]);
  });

  it.skipIf(!onWasm)("gives the fused softmax cross-entropy's gradient without writing zeros for its unused output", () => {
    const logits = tf.variable(tf.tensor2d(values(64 * 10, 3), [64, 10]));
    const labels = tf.tensor1d(Array.from({ length: 64 }, (_, i) => (i * 7) % 10), "int32");
    const gradient = () => tf.variableGrads(() => softmaxCrossEntropy(logits, labels).mean() as tf.Scalar, [logits]).grads[logits.name];
    // the floats written into the backend from JavaScript during a gradient (tfjs: the seed 1 and 640 zeros)
    const written = (body: () => void) => {
      const backend = tf.backend() as unknown as { write: (values: ArrayLike<number>, ...rest: unknown[]) => unknown };
      const own = backend.write;
      let floats = 0;
      backend.write = function (this: unknown, vals: ArrayLike<number>, ...rest: unknown[]) {
        floats += vals?.length ?? 0; // makeOutput writes null: an empty buffer
        return own.call(this, vals, ...rest);
      };
      try {
        body();
      } finally {
        backend.write = own;
      }
      return floats;
    };
    restoreGradients();
    let tfjs = new Uint32Array();
    expect(written(() => (tfjs = bitsOf(gradient)))).toBe(1 + 640);
    useLeanGradients();
    let lean = new Uint32Array();
    expect(written(() => (lean = bitsOf(gradient)))).toBe(1);
    expect(Array.from(lean)).toEqual(Array.from(tfjs));
    tf.dispose([logits, labels]);
  });
});
