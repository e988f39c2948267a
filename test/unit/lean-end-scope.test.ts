import * as tf from "@tensorflow/tfjs";
import { afterAll, describe, expect, it } from "vitest";
import { restoreEndScope, useLeanEndScope } from "../../lib/src/engine/lean-end-scope";
import { trainDenseLayer } from "./kernel-fixtures";

/** What `body` leaves: the change in tf.memory().numTensors, and the values of the tensors it returns (then disposed). */
function leaves(body: () => tf.Tensor[]): { added: number; values: number[][] } {
  const before = tf.memory().numTensors;
  const out = body();
  const after = tf.memory().numTensors;
  const values = out.map((t) => Array.from(t.dataSync()));
  tf.dispose(out);
  return { added: after - before, values };
}

/** `body` with tfjs's endScope and with ours: what each leaves. */
function bothWays(body: () => tf.Tensor[]) {
  restoreEndScope();
  const tfjs = leaves(body);
  useLeanEndScope();
  const lean = leaves(body);
  return { tfjs, lean };
}

describe("useLeanEndScope", () => {
  afterAll(() => useLeanEndScope());

  it("keeps a tidy's result and frees the rest, through nested tidies and ops", () => {
    const a = tf.tensor1d([1, 2, 3]);
    const { tfjs, lean } = bothWays(() => {
      const r = tf.tidy(() => {
        const inner = tf.tidy(() => a.mul(2).add(1)); // its temporaries freed, its result handed to the outer scope
        tf.tidy(() => void a.square()); // returns nothing: all freed
        return inner.sub(a); // inner freed here, as a temporary of the outer scope
      });
      return [r];
    });
    expect(lean).toEqual({ added: 1, values: [[2, 3, 4]] });
    expect(lean).toEqual(tfjs);
    a.dispose();
  });

  it("frees an inner result the outer tidy does not return (it was tracked in the outer scope)", () => {
    const a = tf.tensor1d([1, 2]);
    const { tfjs, lean } = bothWays(() => {
      tf.tidy(() => {
        tf.tidy(() => a.add(1));
      });
      return [];
    });
    expect(lean).toEqual({ added: 0, values: [] });
    expect(lean).toEqual(tfjs);
    a.dispose();
  });

  it("leaves kept tensors, returned inputs and variables alone, and hands arrays to tfjs's method", () => {
    const a = tf.tensor1d([5]);
    const v = tf.variable(tf.tensor1d([7]));
    const { tfjs, lean } = bothWays(() => {
      let kept: tf.Tensor | undefined;
      const same = tf.tidy(() => a); // made outside: not tracked again, not freed
      const fromVariable = tf.tidy(() => v); // a variable comes back as itself
      const pair = tf.tidy(() => {
        kept = tf.keep(a.mul(3));
        return [a.add(1), a.add(2)]; // an array: tfjs's own endScope
      });
      expect(same).toBe(a);
      expect(fromVariable).toBe(v);
      expect(a.isDisposed || v.isDisposed).toBe(false);
      return [...pair, kept!];
    });
    expect(lean).toEqual({ added: 3, values: [[6], [7], [15]] });
    expect(lean).toEqual(tfjs);
    tf.dispose([a, v]);
  });

  it("trains a dense layer to the same weights, with no tensor left over", () => {
    restoreEndScope();
    const tfjs = trainDenseLayer(); // it checks that the number of tensors stays put
    useLeanEndScope();
    const lean = trainDenseLayer();
    expect(lean.map((w) => Array.from(w))).toEqual(tfjs.map((w) => Array.from(w)));
  });

  it("closes an op's scope when the op throws, as tfjs does", () => {
    useLeanEndScope();
    const a = tf.tensor1d([1, 2]);
    const b = tf.tensor1d([1, 2, 3]);
    const before = tf.memory().numTensors;
    expect(() => tf.tidy(() => a.add(1).add(b))).toThrow(/Operands could not be broadcast/);
    expect(tf.memory().numTensors).toBe(before);
    const state = (tf.engine() as unknown as { state: { scopeStack: unknown[]; activeScope: unknown } }).state;
    expect(state.scopeStack.length).toBe(0);
    expect(state.activeScope).toBeNull();
    tf.dispose([a, b]);
  });
});

describe("useSpeedups and the engine's lean methods", () => {
  it("useSpeedups(false) gives tfjs's own Engine.gradients and endScope back, and (true) installs ours again", async () => {
    const { useSpeedups } = await import("../../lib/src/engine/index");
    const engine = tf.engine() as unknown as Record<string, unknown>;
    const proto = Object.getPrototypeOf(engine) as Record<string, unknown>;
    useSpeedups(false);
    try {
      expect(engine.gradients).toBe(proto.gradients);
      expect(engine.endScope).toBe(proto.endScope);
    } finally {
      useSpeedups(true);
    }
    expect(engine.gradients).not.toBe(proto.gradients);
    expect(engine.endScope).not.toBe(proto.endScope);
    expect(Object.prototype.hasOwnProperty.call(engine, "gradients") && Object.prototype.hasOwnProperty.call(engine, "endScope")).toBe(true);
  });
});
