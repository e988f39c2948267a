import * as tf from "@tensorflow/tfjs";
import { afterAll, describe, expect, it } from "vitest";
import { getThreads, setThreads, splitCount } from "../../lib/src/engine/thread-pool";
import { restoreSplitWasmSigmoid, sigmoidScalar, useSplitWasmSigmoid } from "../../lib/src/engine/wasm-sigmoid";
import { differences, values } from "./kernel-fixtures";

const onWasm = tf.getBackend() === "wasm";
const initialThreads = getThreads();
afterAll(() => {
  setThreads(initialThreads);
  useSplitWasmSigmoid();
});

/** n floats: every sign and magnitude a sigmoid meets (|x| from 1e-8 to 200), the special values first. */
function inputs(n: number): Float32Array {
  const x = values(n, 91).map((v, i) => v * 2 * 10 ** ((i % 11) - 8) * (i % 5 === 0 ? 1e8 : 1));
  x.set([NaN, -NaN, Infinity, -Infinity, 0, -0, 87.3, -87.3, 88, -88, 103, -103, 1e-40, -1e-40].slice(0, n));
  return x;
}

/** The float32 bits of sigmoid(x) on the wasm backend as registered now. */
function sigmoidBits(x: Float32Array, shape: number[]): Uint32Array {
  const t = tf.tidy(() => tf.sigmoid(tf.tensor(x, shape)));
  const bits = new Uint32Array(Float32Array.from(t.dataSync() as Float32Array).buffer);
  t.dispose();
  return bits;
}

describe.skipIf(!onWasm)("the split Sigmoid (wasm-sigmoid.ts)", () => {
  it("gives XNNPACK's bits, value for value, with 2 and 8 threads (SIMD kernel and its scalar tail), and splits", () => {
    // LeNet's first and second layers (1.2 M and 0.4 M floats), and a size 3 past a whole vector (the tail by the scalar copy)
    for (const shape of [[256, 28, 28, 6], [256, 10, 10, 16], [1 << 18 | 3]]) {
      const n = shape.reduce((p, d) => p * d, 1);
      const x = inputs(n);
      restoreSplitWasmSigmoid();
      const xnnpack = sigmoidBits(x, shape);
      useSplitWasmSigmoid();
      for (const threads of [2, 8]) {
        setThreads(threads);
        const splits = splitCount();
        const ours = sigmoidBits(x, shape);
        expect(splitCount() - splits, `${shape} on ${threads} threads`).toBe(1);
        expect(differences(ours, xnnpack), `${shape} on ${threads} threads`).toEqual([]);
      }
    }
  });

  it("its scalar copy gives XNNPACK's bits on every kind of value", () => {
    const x = inputs(100_003);
    restoreSplitWasmSigmoid();
    const xnnpack = sigmoidBits(x, [x.length]);
    useSplitWasmSigmoid();
    const y = new Float32Array(x.length);
    sigmoidScalar(x, y, 0, x.length);
    expect(differences(new Uint32Array(y.buffer), xnnpack)).toEqual([]);
  });

  it("leaves small tensors, and one thread, to XNNPACK's kernel, and leaks nothing", () => {
    const before = tf.memory().numTensors;
    const x = inputs(1 << 20);
    setThreads(1);
    let splits = splitCount();
    sigmoidBits(x, [x.length]);
    expect(splitCount() - splits).toBe(0);
    setThreads(2);
    splits = splitCount();
    sigmoidBits(x.subarray(0, (1 << 18) - 4), [(1 << 18) - 4]);
    expect(splitCount() - splits).toBe(0);
    expect(tf.memory().numTensors).toBe(before);
  });
});
