import * as tf from "@tensorflow/tfjs";
import { runInThisContext } from "vm";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { loadArray } from "../../lib/src/data";
import { recoverFromInterrupt, useInterruptRecovery } from "../../lib/src/engine/interrupt";
import { crossEntropy, softmaxCrossEntropy } from "../../lib/src/losses";
import { softmax } from "../../lib/src/models";
import { backward, sgd } from "../../lib/src/optim";
import { trainCh3 } from "../../lib/src/train";
import { ImageDataset } from "../../lib/src/image-data";
import { blobs } from "./train-fixtures";

/**
 * An interrupt as tslab's kernel delivers one: Node's vm stops the script on the spot without
 * running catch or finally blocks. tslab uses `breakOnSigint`; the `timeout` option terminates a
 * script the same way (V8's TerminateExecution), at a moment the test chooses. The kernel test
 * (test/e2e/interrupt.test.ts) presses the real Stop button.
 */
function interruptAfter(ms: number, job: () => void): boolean {
  const g = globalThis as { __d2lJob?: () => void };
  g.__d2lJob = job;
  try {
    runInThisContext("__d2lJob()", { timeout: ms });
    return false;
  } catch (error) {
    expect(String(error)).toMatch(/timed out/);
    return true;
  } finally {
    delete g.__d2lJob;
  }
}

/** The next cell: a later turn of the event loop. */
const nextTurn = () => new Promise((resolve) => setTimeout(resolve, 0));

const state = () => tf.engine().state as unknown as { scopeStack: unknown[]; gradientDepth: number; kernelDepth: number; activeTape: unknown };

function scratch(numInputs: number) {
  const W = tf.tidy(() => tf.variable(tf.randomNormal([numInputs, 3], 0, 0.01)));
  const b = tf.tidy(() => tf.variable(tf.zeros([3])));
  const net = (X: tf.Tensor) => softmax(tf.matMul(X.reshape([-1, numInputs]), W).add(b));
  return { W, b, net };
}

let log: ReturnType<typeof vi.spyOn>;
beforeEach(() => {
  log = vi.spyOn(console, "log").mockImplementation(() => undefined);
});
afterEach(() => vi.restoreAllMocks());

const messages = () => log.mock.calls.map((c) => String(c[0])).filter((m) => m.startsWith("d2l: the previous run"));

describe("after an interrupted cell", () => {
  it("a learner's loop over image batches cut off while a batch is made: what was made is freed", async () => {
    const n = 64;
    const images = Uint8Array.from({ length: n * 784 }, (_, j) => (j * 7) & 255);
    const labels = Uint8Array.from({ length: n }, (_, i) => i % 10);
    const data = new ImageDataset(images, labels, 28, 28);
    const source = data.batches(16);
    for (const [X] of source) if (X.shape[0] !== 16) throw new Error("a batch of 16"); // the dataset's copy in the backend, made once
    await nextTurn();
    const counts = () => ({ tensors: tf.memory().numTensors, buffers: tf.engine().backend.numDataIds() });
    const before = counts();
    // the images are made; the Stop lands while the labels are (deterministically: they never finish)
    const labelsOf = vi.spyOn(data, "labelsOf").mockImplementation(() => {
      for (;;);
    });
    let seen = 0;
    expect(interruptAfter(50, () => {
      for (const [X] of source) seen += X.shape[0];
    })).toBe(true);
    expect(labelsOf).toHaveBeenCalledTimes(1);
    expect(seen).toBe(0);
    labelsOf.mockRestore();
    await nextTurn();
    recoverFromInterrupt();
    expect(counts()).toEqual(before);
    for (const [X, y] of source) seen += X.shape[0] + y.shape[0]; // the next loop runs
    expect(seen).toBe(2 * n);
    expect(counts()).toEqual(before);
  });

  it("trainCh3 cut off at many moments: the next one trains, and only the user's tensors remain", async () => {
    const [X, y] = blobs(3000);
    const data = loadArray([X, y], 32);
    const { W, b, net } = scratch(4);
    await nextTurn();
    const before = tf.memory().numTensors;
    let interrupted = 0;
    // interrupts that cut into tfjs's engine (a scope, the tape or a kernel open); one between two steps, outside
    // every scope, leaves nothing to repair and says nothing (more likely, the faster the steps)
    let cutIn = 0;
    for (const ms of [5, 13, 29, 41, 67, 90]) {
      tf.tidy(() => W.assign(tf.randomNormal([4, 3], 0, 0.01)));
      if (interruptAfter(ms, () => trainCh3(net, data, data, crossEntropy, 50, (n) => sgd([W, b], 0.1, n)))) interrupted++;
      const s = state();
      if (s.scopeStack.length > 0 || s.gradientDepth > 0 || s.kernelDepth > 0) cutIn++;
      await nextTurn();
      const metrics = trainCh3(net, data, data, crossEntropy, 2, (n) => sgd([W, b], 0.1, n));
      expect(metrics.testAcc).toBeGreaterThan(0.9);
      expect(state().scopeStack).toEqual([]);
      expect(tf.memory().numTensors).toBe(before);
      await nextTurn();
    }
    expect(interrupted).toBe(6);
    expect(cutIn).toBeGreaterThanOrEqual(4);
    expect(messages()).toHaveLength(cutIn);
    expect(messages()[0]).toMatch(/^d2l: the previous run was interrupted; freed \d+ tensors? it left behind($|; )/);
    tf.dispose([X, y, W, b]);
  });

  it("a long loop in one turn keeps its note of the turn's tensors short, and a cut after many of them frees the ones left", async () => {
    const recovery = (globalThis as Record<symbol, { created: unknown[] }>)[Symbol.for("d2l.interruptRecovery")];
    await nextTurn();
    const before = tf.memory().numTensors;
    const kept: tf.Tensor[] = [];
    let made = 0;
    let longest = 0;
    // 12,000 tensors (several times the shortest note that is cleared, 1024), then a wait for the cut, in the open scope
    const cut = interruptAfter(2000, () =>
      tf.tidy(() => {
        while (made < 12000) {
          const t = tf.scalar(made++);
          if (made % 10 === 0) kept.push(t);
          else t.dispose();
          longest = Math.max(longest, recovery.created.length);
        }
        for (;;);
      }),
    );
    expect(cut).toBe(true);
    expect(made).toBe(12000);
    expect(longest).toBeLessThanOrEqual(2 * kept.length + 1024 + 1); // disposed ones dropped as it doubles
    await nextTurn();
    expect(recoverFromInterrupt()).toBe(kept.length);
    expect(kept.every((t) => t.isDisposed)).toBe(true);
    expect(tf.memory().numTensors).toBe(before);
  });

  it("a layers model with a tfjs optimizer trains after an interrupt; its weights and the optimizer's state survive", async () => {
    const [X, y] = blobs(3000);
    const data = loadArray([X, y], 32);
    const model = tf.sequential({ layers: [tf.layers.dense({ units: 3, inputShape: [4] })] });
    const optimizer = tf.train.momentum(0.05, 0.9);
    trainCh3(model, data, data, softmaxCrossEntropy, 1, optimizer); // builds the momentum accumulators
    await nextTurn();
    const before = tf.memory().numTensors;
    expect(interruptAfter(40, () => trainCh3(model, data, data, softmaxCrossEntropy, 50, optimizer))).toBe(true);
    await nextTurn();
    const kernel = model.getWeights()[0];
    expect(kernel.isDisposed).toBe(false);
    expect(trainCh3(model, data, data, softmaxCrossEntropy, 2, optimizer).testAcc).toBeGreaterThan(0.9);
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
    optimizer.dispose();
    tf.dispose([X, y]);
  });

  it("a learner's plain tf.tidy cell: the dead scope is closed before the next cell's tensors could fall into it", async () => {
    const kept = tf.tensor1d([1, 2, 3]);
    const w = tf.variable(tf.zeros([200, 200]));
    tf.tidy(() => tf.randomNormal([200, 200]).matMul(tf.ones([200, 200])).dataSync()); // warm up the kernels
    await nextTurn();
    const before = tf.memory().numTensors;
    let last = 0;
    const interrupted = interruptAfter(100, () =>
      tf.tidy(() => {
        for (let i = 1; ; i++) {
          const a = tf.randomNormal([200, 200]).matMul(tf.ones([200, 200]));
          w.assign(a.mul(0).add(i)); // the user's variable, assigned a value made inside the scope
          last = i;
        }
      }),
    );
    expect(interrupted).toBe(true);
    expect(last).toBeGreaterThan(0);
    expect(state().scopeStack.length).toBeGreaterThan(0); // what tfjs is left with, before any repair
    await nextTurn();
    const next = tf.tensor1d([4, 5]); // the next cell's first tensor: the repair runs before it is tracked
    expect(state().scopeStack).toEqual([]);
    expect(tf.memory().numTensors).toBe(before + 1);
    expect(Array.from(next.dataSync())).toEqual([4, 5]);
    expect(Array.from(kept.dataSync())).toEqual([1, 2, 3]);
    expect(w.isDisposed).toBe(false);
    expect([last, last + 1]).toContain(w.dataSync()[0]); // the last value assigned survives the repair
    expect(messages()).toHaveLength(1);
    tf.dispose([kept, w, next]);
  });

  it("the wasm memory grown under its views (cut off between Emscripten's grow and its new views): the views are made anew", async () => {
    const wasm = (tf.backend() as unknown as { wasm: { asm: { memory: WebAssembly.Memory }; HEAPU8: Uint8Array; HEAPF32: Float32Array } }).wasm;
    const kept = tf.tensor1d([1, 2, 3]);
    await nextTurn();
    const before = tf.memory().numTensors;
    const cutOff = tf.zeros([1000]); // the interrupted cell's tensor
    wasm.asm.memory.grow(1); // what the interrupt leaves: the memory grown, every view on the old buffer
    // detached where the memory is ordinary; where it is shared (for threads), the old, shorter SharedArrayBuffer
    expect(wasm.HEAPU8.buffer).not.toBe(wasm.asm.memory.buffer);
    expect(wasm.HEAPU8.byteLength).toBeLessThan(wasm.asm.memory.buffer.byteLength);
    await nextTurn();
    const next = tf.tensor1d([4, 5]); // without the repair: "Cannot perform %TypedArray%.prototype.set on a detached ArrayBuffer"
    expect(wasm.HEAPU8.buffer).toBe(wasm.asm.memory.buffer);
    expect(wasm.HEAPF32.buffer).toBe(wasm.asm.memory.buffer);
    expect(Array.from(next.dataSync())).toEqual([4, 5]);
    expect(Array.from(kept.dataSync())).toEqual([1, 2, 3]);
    expect(cutOff.isDisposed).toBe(true);
    // The module's own copies of the views are new too: a kernel given shapes (ccall) writes them through those.
    const big = tf.tidy(() => tf.add(tf.fill([3, 1], 2), tf.fill([1, 4], 3)));
    expect(Array.from(big.dataSync())).toEqual(new Array(12).fill(5));
    expect(tf.memory().numTensors).toBe(before + 2);
    expect(messages()).toHaveLength(1);
    tf.dispose([kept, next, big]);
  });

  it("a release cut off inside the wasm module's free: the tensor is disposed once, and the message asks for a restart", async () => {
    const t = tf.tensor1d([1, 2, 3]);
    await nextTurn();
    const before = tf.memory().numTensors;
    // What such a cut leaves (set by hand: an interrupt cannot be aimed at it): tfjs counted the tensor down,
    // the backend counted its buffer down to 0 and entered free, and none of the three returned.
    const backend = tf.backend() as unknown as { dataIdMap: { get(id: object): { refCount: number; memoryOffset: number } }; disposeData(id: object, force: boolean): boolean };
    const data = backend.dataIdMap.get(t.dataId);
    const recovery = (globalThis as Record<symbol, Record<string, unknown>>)[Symbol.for("d2l.interruptRecovery")];
    tf.scalar(0).dispose(); // this turn's first engine call, so that the notes below are this turn's
    recovery.disposing = { tensor: t, numTensors: before, numBytes: 0, done: false };
    recovery.releasing = { dataId: t.dataId, refCount: 1, done: false, freed: false, free: { pointer: data.memoryOffset, done: false } };
    (tf.engine().state as unknown as { numTensors: number }).numTensors--;
    data.refCount--;
    await nextTurn();
    recoverFromInterrupt();
    expect(t.isDisposed).toBe(true);
    expect(tf.memory().numTensors).toBe(before - 1);
    expect(messages()).toHaveLength(1);
    expect(messages()[0]).toMatch(/the wasm memory was cut off while freeing a buffer.*restart the kernel/);
    backend.disposeData(t.dataId, true); // the buffer left behind (here it was never freed)
  });

  it("a disposal or an assignment cut off between tfjs's count of tensors and its count of bytes: both end where they should", async () => {
    const state = tf.engine().state as unknown as { numTensors: number; numBytes: number };
    const memory = () => ({ tensors: tf.memory().numTensors, bytes: tf.memory().numBytes });
    const recovery = (globalThis as Record<symbol, Record<string, unknown>>)[Symbol.for("d2l.interruptRecovery")];
    // What such a cut leaves (set by hand: an interrupt cannot be aimed at it): tfjs's disposeTensor counted the
    // tensor down, then called bytesPerElement (a function's entry, where V8 delivers an interrupt), and stopped.
    const t = tf.tensor1d([1, 2, 3]);
    await nextTurn();
    const before = memory();
    tf.scalar(0).dispose(); // this turn's first engine call, so that the notes below are this turn's
    recovery.disposing = { tensor: t, numTensors: state.numTensors, numBytes: state.numBytes, done: false };
    recovery.releasing = undefined;
    state.numTensors--;
    await nextTurn();
    recoverFromInterrupt();
    expect(t.isDisposed).toBe(true);
    expect(memory()).toEqual({ tensors: before.tensors - 1, bytes: before.bytes - 12 });
    // The same inside Variable.assign, whose first step disposes the old value: the assignment is finished, and the
    // value made in the cut cell is freed, so the counts are those before that cell.
    const W = tf.variable(tf.zeros([4, 3]));
    await nextTurn();
    const start = memory();
    const value = tf.ones([4, 3]);
    recovery.assigning = { variable: W, value, done: false };
    recovery.tracking = undefined;
    recovery.disposing = { tensor: W, numTensors: state.numTensors, numBytes: state.numBytes, done: false };
    recovery.releasing = undefined;
    state.numTensors--;
    await nextTurn();
    recoverFromInterrupt();
    expect(Array.from(W.dataSync())).toEqual(Array(12).fill(1));
    expect(memory()).toEqual(start);
    expect(messages()).toHaveLength(2);
    W.dispose();
    expect(memory()).toEqual({ tensors: start.tensors - 1, bytes: start.bytes - 48 });
  });

  it("a gradient cut off mid-way: the tape and kernel depth are reset, so the next gradient finds its variables", async () => {
    const [X, y] = blobs(20000);
    const { W, b, net } = scratch(4);
    await nextTurn();
    const before = tf.memory().numTensors;
    const interrupted = interruptAfter(20, () => {
      tf.tidy(() => {
        for (;;) backward(() => crossEntropy(net(X), y).sum()); // a scope is open whenever the interrupt lands
      });
    });
    expect(interrupted).toBe(true);
    await nextTurn();
    expect(recoverFromInterrupt()).toBeGreaterThan(0);
    const s = state();
    expect([s.scopeStack.length, s.gradientDepth, s.kernelDepth, s.activeTape]).toEqual([0, 0, 0, null]);
    backward(() => crossEntropy(net(X.slice(0, 64)), y.slice(0, 64)).sum());
    sgd([W, b], 0.1, 64);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([X, y, W, b]);
  });

  it("does nothing after a cell whose tfjs call threw an error (a wrong assign, a disposed tensor): that is not an interrupt", async () => {
    const v = tf.variable(tf.zeros([2]));
    await nextTurn();
    const x = tf.ones([3]); // the failing cell's own tensor, which it keeps
    expect(() => v.assign(x)).toThrow(/shape/);
    const gone = tf.ones([2]);
    gone.dispose();
    expect(() => gone.add(1)).toThrow(/disposed/);
    await nextTurn();
    expect(recoverFromInterrupt()).toBe(0);
    expect(x.isDisposed).toBe(false);
    expect(Array.from(v.dataSync())).toEqual([0, 0]);
    expect(messages()).toEqual([]);
    tf.dispose([v, x]);
  });

  it("does nothing between ordinary cells, nor to tensors and tidies that span awaits", async () => {
    const a = tf.tensor1d([1, 2]);
    await nextTurn();
    const b = tf.tidy(() => a.mul(2));
    await nextTurn();
    expect(recoverFromInterrupt()).toBe(0);
    expect(Array.from(b.dataSync())).toEqual([2, 4]);
    expect(messages()).toEqual([]);
    tf.dispose([a, b]);
  });

  it("can be switched off, which leaves tfjs's engine broken after an interrupt (what the repair is for)", async () => {
    const [X, y] = blobs(20000);
    const { W, b, net } = scratch(4);
    useInterruptRecovery(false);
    try {
      await nextTurn();
      interruptAfter(20, () => {
        tf.tidy(() => {
        for (;;) backward(() => crossEntropy(net(X), y).sum()); // a scope is open whenever the interrupt lands
      });
      });
      await nextTurn();
      expect(state().scopeStack.length).toBeGreaterThan(0);
    } finally {
      useInterruptRecovery(true);
    }
    await nextTurn();
    expect(recoverFromInterrupt()).toBeGreaterThan(0);
    expect(state().scopeStack).toEqual([]);
    tf.dispose([X, y, W, b]);
  });
});
