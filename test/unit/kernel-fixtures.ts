import * as tf from "@tensorflow/tfjs";
import { expect } from "vitest";

/** `f` run on the cpu backend (the reference kernels); the wasm backend active again afterwards. */
export async function onCpu<T>(f: () => T): Promise<T> {
  await tf.setBackend("cpu");
  try {
    return f();
  } finally {
    await tf.setBackend("wasm");
  }
}

/** The number of elements of a shape. */
export const size = (shape: number[]): number => shape.reduce((p, d) => p * d, 1);

/** Deterministic values in [-1, 1), the same for the same seed. */
export function values(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

/**
 * Three steps of tf.train.sgd(0.1) on a tf.layers.dense(10) over 64 fixed examples of 784 values,
 * from a kernel of 0.01 everywhere; the trained [kernel, bias]. Checks that steps after the first
 * (the optimizer keeps a tensor of its own from then on) leave the number of tensors unchanged.
 */
export function trainDenseLayer(): Float32Array[] {
  const model = tf.sequential({
    layers: [tf.layers.dense({ units: 10, inputShape: [784], kernelInitializer: tf.initializers.constant({ value: 0.01 }) })],
  });
  const optimizer = tf.train.sgd(0.1);
  const X = tf.tensor(values(64 * 784, 1), [64, 784]);
  const y = tf.oneHot(tf.tensor1d(Array.from({ length: 64 }, (_, i) => i % 10), "int32"), 10);
  const step = () => optimizer.minimize(() => tf.losses.softmaxCrossEntropy(y, model.predict(X) as tf.Tensor) as tf.Scalar);
  step();
  const tensors = tf.memory().numTensors;
  step();
  step();
  expect(tf.memory().numTensors).toBe(tensors);
  const weights = model.getWeights().map((t) => t.dataSync().slice() as Float32Array);
  tf.dispose([X, y]);
  optimizer.dispose();
  model.dispose();
  return weights;
}

/** Runs `body` with tfjs's engine noting the name of every kernel it runs; returns body's result and the names. */
export function withKernelNames<T>(body: () => T): { result: T; names: string[] } {
  const names: string[] = [];
  const engine = tf.engine() as unknown as { runKernel: (name: string, ...rest: unknown[]) => unknown };
  const own = engine.runKernel;
  engine.runKernel = function (this: unknown, name: string, ...rest: unknown[]) {
    names.push(name);
    return own.call(this, name, ...rest);
  };
  try {
    return { result: body(), names };
  } finally {
    delete (engine as { runKernel?: unknown }).runKernel;
  }
}

/** How many times each kernel runs through the engine while `body` runs. */
export function kernelCalls(body: () => void): Map<string, number> {
  const counts = new Map<string, number>();
  for (const name of withKernelNames(body).names) counts.set(name, (counts.get(name) ?? 0) + 1);
  return counts;
}

/** The float32 bits of the tensor `f` makes in a tidy (disposed after). */
export function bitsOf(f: () => tf.Tensor): Uint32Array {
  const t = tf.tidy(f);
  const bits = new Uint32Array(Float32Array.from(t.dataSync() as Float32Array).buffer);
  t.dispose();
  return bits;
}

/** Indices where a and b differ (NaN equal to NaN, whatever its payload), at most 5. */
export function differences(a: Uint32Array, b: Uint32Array): number[] {
  const fa = new Float32Array(a.buffer);
  const fb = new Float32Array(b.buffer);
  const out: number[] = [];
  for (let i = 0; i < a.length && out.length < 5; i++) if (a[i] !== b[i] && !(Number.isNaN(fa[i]) && Number.isNaN(fb[i]))) out.push(i);
  return out;
}
