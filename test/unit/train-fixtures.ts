import * as tf from "@tensorflow/tfjs";
import { createRequire } from "module";
import { vi } from "vitest";

/** Counts the device reads (dataSync, arraySync, data) that run inside `f`. */
export function countReads<T>(f: () => T): { result: T; reads: number } {
  const backend = tf.backend();
  const spy = vi.spyOn(backend, "readSync");
  const asyncSpy = vi.spyOn(backend, "read");
  try {
    const result = f();
    return { result, reads: spy.mock.calls.length + asyncSpy.mock.calls.length };
  } finally {
    spy.mockRestore();
    asyncSpy.mockRestore();
  }
}

/** Three well-separated Gaussian blobs in 4-D, labelled 0, 1, 2: an easy problem. */
export function blobs(n: number): [tf.Tensor2D, tf.Tensor1D] {
  return tf.tidy(() => {
    const y = tf.tensor1d(Array.from({ length: n }, (_, i) => i % 3), "int32");
    const centers = tf.tensor2d([[4, 0, 0, 0], [0, 4, 0, 0], [0, 0, 4, 0]]);
    const X = tf.randomNormal([n, 4], 0, 0.5).add(tf.gather(centers, y)) as tf.Tensor2D;
    return [X, y] as [tf.Tensor2D, tf.Tensor1D];
  });
}


/** What tslab's kernel would receive: each display message, and whether it updates an earlier one. */
export interface Sent {
  data: Record<string, unknown>;
  displayId?: string;
  update: boolean;
}

/**
 * Runs `f` as if inside a tslab kernel: d2l finds tslab's display writer in the module cache
 * (see display.ts), so a module entry at tslab's path with a writer that records the messages
 * stands in for the kernel. The front-end test drives the real one.
 */
export function inFakeKernel(f: () => void): Sent[] {
  const require = createRequire(import.meta.url);
  const key = "/fake/node_modules/tslab/dist/jupyter.js";
  const sent: Sent[] = [];
  const writer = (msg: { data: Record<string, unknown>; transient: { display_id?: string } }, update: boolean) => {
    sent.push({ data: msg.data, displayId: msg.transient.display_id, update });
  };
  require.cache[key] = { exports: { lastWriteDisplayData: writer } } as unknown as NodeJS.Module;
  try {
    f();
  } finally {
    delete require.cache[key];
  }
  return sent;
}

