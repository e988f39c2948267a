import * as tf from "@tensorflow/tfjs";
import { afterAll, describe, expect, it } from "vitest";
import { useSpeedups } from "../../lib/src/engine";
import { getThreads, setThreads, splitCount } from "../../lib/src/engine/thread-pool";
import { restoreReluGrad, useOneKernelReluGrad } from "../../lib/src/engine/wasm-relu-grad";
import { bitsOf, differences, kernelCalls, size, values } from "./kernel-fixtures";

const onWasm = tf.getBackend() === "wasm";
const initialThreads = getThreads();

/** Float32 values of these bits. */
const fromBits = (...bits: number[]) => Array.from(new Float32Array(new Uint32Array(bits).buffer));
/** NaNs of both signs and with payloads (a quiet one, a signalling one), ±0, ±Infinity and the smallest subnormals. */
const SPECIAL = [NaN, 0, -0, Infinity, -Infinity, 1e-45, -1e-45, 1, -1, ...fromBits(0xffc00000, 0x7fc12345, 0xffc12345, 0x7f800001)];

/** x and dy in [-1, 1) with every special value of x against every one of dy at the start. */
function inputs(shape: number[]): { x: Float32Array; dy: Float32Array } {
  const n = size(shape);
  const x = values(n, 91);
  const dy = values(n, 92).map((v, i) => v * 10 ** ((i % 7) - 3));
  for (let i = 0, k = 0; i < SPECIAL.length && k < n; i++) {
    for (let j = 0; j < SPECIAL.length && k < n; j++, k++) {
      x[k] = SPECIAL[i];
      dy[k] = SPECIAL[j];
    }
  }
  return { x, dy };
}

/** The gradient of Σ f(x) · dy with respect to x (the Mul's gradient hands f exactly dy), as float32 bits. */
function gradient(shape: number[], f: (x: tf.Tensor) => tf.Tensor): Uint32Array {
  const { x, dy } = inputs(shape);
  return bitsOf(() => tf.grad((a: tf.Tensor) => f(a).mul(tf.tensor(dy, shape)).sum())(tf.tensor(x, shape)));
}

const RELUS: Record<string, (x: tf.Tensor) => tf.Tensor> = {
  "tf.relu (4.3's dense layer)": (x) => tf.relu(x),
  "tf.maximum(X, 0) (4.2's relu)": (x) => tf.maximum(x, 0),
  "tf.maximum(X, -0.5)": (x) => tf.maximum(x, -0.5),
};

describe.skipIf(!onWasm)("useOneKernelReluGrad (wasm backend)", () => {
  afterAll(() => {
    setThreads(initialThreads);
    useSpeedups(true);
  });
  const shapes = [
    [256, 256], // the MLP's hidden layer
    [(1 << 18) + 7], // split across threads, three floats past the last vector
    [13, 13], // every special value against every other
    [3],
  ];

  for (const [name, f] of Object.entries(RELUS)) {
    it.each(shapes.map((s) => [s]))(`${name}: tfjs's gradient bit for bit, with and without the other speed-ups, on 1 and 2 threads: %j`, (shape) => {
      useSpeedups(false);
      const tfjs = gradient(shape, f);
      useSpeedups(true);
      restoreReluGrad();
      const tfjsWithSpeedups = gradient(shape, f);
      expect(useOneKernelReluGrad()).toBe(true);
      for (const threads of [1, 2]) {
        setThreads(threads);
        const numTensors = tf.memory().numTensors;
        const ours = gradient(shape, f);
        expect(tf.memory().numTensors).toBe(numTensors);
        // the kernel alone splits from 2^18 elements
        const splits = splitCount();
        tf.tidy(() => tf.engine().runKernel("D2lReluGrad", { dy: tf.ones(shape), x: tf.ones(shape) }, { mode: "step" }));
        expect(splitCount() - splits).toBe(threads > 1 && size(shape) >= 1 << 18 ? 1 : 0);
        expect(ours.length).toBe(size(shape));
        expect(differences(ours, tfjs)).toEqual([]);
        expect(differences(ours, tfjsWithSpeedups)).toEqual([]);
      }
    });
  }

  it("is one kernel in place of three (Step or GreaterEqual, Cast, Multiply; Sum's gradient keeps its Multiply)", () => {
    useOneKernelReluGrad();
    const x = tf.tensor(values(256 * 256, 5), [256, 256]);
    for (const f of Object.values(RELUS)) {
      const calls = kernelCalls(() => tf.dispose(tf.grad((a: tf.Tensor) => f(a).sum())(x)));
      expect(calls.get("D2lReluGrad")).toBe(1);
      expect([calls.get("Step"), calls.get("GreaterEqual"), calls.get("Multiply")]).toEqual([undefined, undefined, 1]);
    }
    x.dispose();
  });

  it("leaves a second-order gradient to tfjs's ops", () => {
    useOneKernelReluGrad();
    const x = tf.tensor([-2, -0.5, 0.5, 2]);
    const second = tf.grad((a: tf.Tensor) => tf.grad((b: tf.Tensor) => tf.relu(b).square().sum())(a).sum())(x);
    expect(Array.from(second.dataSync())).toEqual([0, 0, 2, 2]);
    tf.dispose([x, second]);
  });
});
