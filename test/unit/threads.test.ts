import * as tf from "@tensorflow/tfjs";
import { spawn } from "node:child_process";
import { afterAll, describe, expect, it } from "vitest";
import { useSpeedups } from "../../lib/src/engine";
import { productInputGradient, simdConv2d, simdFilterGradient, simdInputGradient } from "../../lib/src/engine/conv2d-simd";
import {
  CHUNK_FROM, SPLIT_FROM, claimedRows, packedMatMul, registerBlock, rowChunks, rowRanges, useClaimedRows,
} from "../../lib/src/engine/packed-matmul";
import { withSharedMemory } from "../../lib/src/engine/shared-memory";
import { DEFAULT_SPIN_US, activeThreads, busyThreads, getThreads, guidedRanges, runChunks, runSplit, setSpin, setThreads, splitCount, splitRanges, wakeThreads } from "../../lib/src/engine/thread-pool";
import { ADD, END, IF, get, i32, loadI32, moduleWithImportedMemory, storeI32, voidType } from "../../lib/src/engine/wasm-asm";
import { type WasmBackendLike, wasmKernel } from "../../lib/src/engine/wasm-kernels";
import { values } from "./kernel-fixtures";

const onWasm = tf.getBackend() === "wasm";
const initialThreads = getThreads();
const initialClaimed = claimedRows();
afterAll(() => {
  setThreads(initialThreads);
  useClaimedRows(initialClaimed);
});

/** The ways packed-matmul.ts can split a large product (op(B) packed once): halves of op(A)'s rows, or chunks of them the threads claim. */
const SPLITS: Array<[string, () => void]> = [
  ["row halves", () => useClaimedRows(false)],
  ["claimed rows", () => useClaimedRows(true)],
];
/** Runs `f` with each way of splitting, and the defaults restored after. */
function eachSplit(f: (name: string) => void): void {
  const claimed = claimedRows();
  try {
    for (const [name, set] of SPLITS) {
      set();
      f(name);
    }
  } finally {
    useClaimedRows(claimed);
  }
}

describe("splitRanges", () => {
  it("cuts [0, total) into whole grains, as even as they allow, the last taking the remainder", () => {
    expect(splitRanges(256, 2, 4)).toEqual([[0, 128], [128, 256]]);
    expect(splitRanges(784, 8, 4)).toEqual([[0, 96], [96, 196], [196, 292], [292, 392], [392, 488], [488, 588], [588, 684], [684, 784]]);
    expect(splitRanges(10, 3, 4)).toEqual([[0, 4], [4, 10]]);
    expect(splitRanges(3, 4, 4)).toEqual([[0, 3]]);
    // fewer parts when each would have less than the minimum
    expect(splitRanges(40, 8, 4, 16)).toEqual([[0, 20], [20, 40]]);
    for (const [total, parts, grain] of [[97, 5, 2], [1000, 7, 4], [8, 8, 1]]) {
      const ranges = splitRanges(total, parts, grain);
      expect(ranges[0][0]).toBe(0);
      expect(ranges[ranges.length - 1][1]).toBe(total);
      ranges.forEach(([s, e], i) => {
        expect(s % grain).toBe(0);
        expect(e).toBeGreaterThan(s);
        if (i > 0) expect(s).toBe(ranges[i - 1][1]);
      });
    }
  });

  it("guidedRanges cuts [0, total) into shrinking chunks of whole grains, none below the minimum", () => {
    expect(guidedRanges(256, 2)).toEqual([[0, 64], [64, 112], [112, 148], [148, 175], [175, 196], [196, 211], [211, 223], [223, 232],
      [232, 238], [238, 243], [243, 247], [247, 250], [250, 252], [252, 253], [253, 254], [254, 255], [255, 256]]);
    expect(guidedRanges(256, 2, 1, 8).map(([s, e]) => e - s)).toEqual([64, 48, 36, 27, 21, 15, 12, 9, 8, 8, 8]);
    expect(guidedRanges(10, 1, 1, 4)).toEqual([[0, 10]]);
    expect(guidedRanges(10, 2, 1, 4)).toEqual([[0, 4], [4, 10]]);
    expect(guidedRanges(3, 2, 1, 4)).toEqual([[0, 3]]);
    for (const [total, threads, grain, minimum] of [[1000, 2, 4, 16], [97, 8, 2, 2], [784, 3, 4, 13]]) {
      const ranges = guidedRanges(total, threads, grain, minimum);
      expect(ranges[0][0]).toBe(0);
      expect(ranges[ranges.length - 1][1]).toBe(total);
      ranges.forEach(([s, e], i) => {
        expect(s % grain).toBe(0);
        expect(e - s).toBeGreaterThanOrEqual(Math.min(total, minimum));
        if (i > 0) expect(s).toBe(ranges[i - 1][1]);
        if (i > 0 && i < ranges.length - 1) expect(e - s).toBeLessThanOrEqual(ranges[i - 1][1] - ranges[i - 1][0]);
      });
    }
  });

  it("a product whose op(B) is small is cut into chunks of at least 64 rows from CHUNK_FROM multiply-adds (LeNet's dense layers; not the MLP's)", () => {
    expect(rowChunks(256, 120, 84, 4, 2)).toEqual([[0, 64], [64, 128], [128, 192], [192, 256]]); // 2.6 M
    expect(rowChunks(400, 256, 120, 2, 2)?.every(([s, e], i, all) => s % 2 === 0 && e - s >= 64 && (i === 0 || s === all[i - 1][1]))).toBe(true);
    expect(rowChunks(256, 120, 84, 4, 1)).toBeUndefined(); // one thread
    expect(rowChunks(120, 256, 84, 4, 2)).toBeUndefined(); // too few rows
    expect(rowChunks(256, 784, 256, 2, 2)).toBeUndefined(); // the MLP's W1: packed once a thread, halves
    expect(rowChunks(784, 256, 256, 2, 2)).toBeUndefined(); // its dH (65536 floats)
    expect(rowChunks(64, 64, 64, 4, 2)).toBeUndefined();
    expect(64 * 64 * 64).toBeLessThan(CHUNK_FROM);
  });

  it("a product is split only from SPLIT_FROM multiply-adds on, at multiples of its register block's rows", () => {
    expect(rowRanges(16, 784, 64, 4, 2)).toEqual([[0, 16]]); // 0.8 M multiply-adds
    expect(16 * 784 * 64).toBeLessThan(SPLIT_FROM);
    expect(rowRanges(256, 784, 256, 2, 2)).toEqual([[0, 128], [128, 256]]);
    expect(rowRanges(784, 256, 256, 4, 1)).toEqual([[0, 784]]);
  });

  it("setThreads and D2L_THREADS take integers from 1 to 256, and say so otherwise", () => {
    expect(() => setThreads(0)).toThrow(/setThreads: n must be an integer from 1 to 256, got 0/);
    expect(() => setThreads(1.5)).toThrow(/got 1.5/);
    setThreads(3);
    expect(getThreads()).toBe(3);
    setThreads(initialThreads);
  });

  it("setSpin takes whole microseconds from 0 to 100000, and says so otherwise", () => {
    expect(() => setSpin(-1)).toThrow(/setSpin: micros must be an integer from 0 to 100000, got -1/);
    expect(() => setSpin(2.5)).toThrow(/got 2.5/);
    expect(() => setSpin(100_001)).toThrow(/got 100001/);
    setSpin(DEFAULT_SPIN_US);
  });
});

describe("the shared-memory patch", () => {
  it("flips the one limits flag of a bounded ordinary memory, and leaves other binaries alone", () => {
    // (module (memory (export "m") 1 2)): header, memory section [count 1, flag 1, min 1, max 2], export section
    const exportM = [7, 5, 1, 1, 0x6d, 2, 0];
    const bytes = Uint8Array.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 5, 4, 1, 1, 1, 2, ...exportM]);
    const shared = withSharedMemory(bytes)!;
    expect([...shared]).toEqual([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 5, 4, 1, 3, 1, 2, ...exportM]);
    const { m } = new WebAssembly.Instance(new WebAssembly.Module(shared)).exports as { m: WebAssembly.Memory };
    expect(m.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(m.grow(1)).toBe(1);
    expect(m.buffer.byteLength).toBe(2 * 65536);
    expect(withSharedMemory(Uint8Array.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 5, 3, 1, 0, 1]))).toBeUndefined(); // no maximum
    expect(withSharedMemory(Uint8Array.from([1, 2, 3]))).toBeUndefined();
  });
});

describe.skipIf(!onWasm)("threads on the wasm backend", () => {
  const memory = () => (tf.backend() as unknown as { wasm: { asm: { memory: WebAssembly.Memory } } }).wasm.asm.memory;

  it("runChunks: each chunk runs exactly once whichever thread claims it; a trap in a chunk is an error, with no worker left computing", () => {
    // c(p, trap): *p += 1, then traps if asked
    const body = [0x00, ...get(0), ...get(0), ...loadI32(), ...i32(1), ADD, ...storeI32(), ...get(1), ...IF, 0x00, END, END];
    const bytes = moduleWithImportedMemory(voidType(2), "c", body);
    const backend = tf.backend() as unknown as WasmBackendLike;
    const kernel = wasmKernel(backend, "test-count", () => bytes, "c")!;
    expect(kernel).toBeDefined();
    setThreads(2);
    const counts = tf.zeros([40], "int32");
    const base = backend.getMemoryOffset(counts.dataId);
    const splits = splitCount();
    for (let round = 0; round < 20; round++) runChunks(memory(), 40, 2, (c) => [[kernel, [base + 4 * c, 0]]]);
    expect(splitCount() - splits).toBe(20);
    expect([...counts.dataSync()]).toEqual(Array<number>(40).fill(20));
    for (const bad of [0, 39, 17]) {
      expect(() => runChunks(memory(), 40, 2, (c) => [[kernel, [base + 4 * c, c === bad ? 1 : 0]]])).toThrow(/unreachable|trapped/);
      expect(busyThreads()).toBe(0);
    }
    counts.dispose();
    setThreads(initialThreads);
  });

  it("idle workers watch for the next job as long as setSpin says, or sleep at once; every chunk still runs exactly once", () => {
    const body = [0x00, ...get(0), ...get(0), ...loadI32(), ...i32(1), ADD, ...storeI32(), ...get(1), ...IF, 0x00, END, END];
    const kernel = wasmKernel(tf.backend() as unknown as WasmBackendLike, "test-count", () => moduleWithImportedMemory(voidType(2), "c", body), "c")!;
    setThreads(2);
    const counts = tf.zeros([40], "int32");
    const base = (tf.backend() as unknown as WasmBackendLike).getMemoryOffset(counts.dataId);
    const pause = new Int32Array(new SharedArrayBuffer(4));
    /** CPU milliseconds of the process (every thread) while this thread sleeps `ms` after waking the workers. */
    const idleCpu = (ms: number) => {
      const c0 = process.cpuUsage();
      wakeThreads();
      Atomics.wait(pause, 0, 0, ms);
      const c = process.cpuUsage(c0);
      return (c.user + c.system) / 1000;
    };
    let rounds = 0;
    for (const spin of [0, 50, 200, 5000]) {
      setSpin(spin);
      for (let r = 0; r < 5; r++, rounds++) {
        runChunks(memory(), 40, 2, (c) => [[kernel, [base + 4 * c, 0]]]);
        if (r % 2 === 1) Atomics.wait(pause, 0, 0, 2); // a worker that has gone to sleep
        wakeThreads();
      }
    }
    expect([...counts.dataSync()]).toEqual(Array<number>(40).fill(rounds));
    expect(busyThreads()).toBe(0);
    // with no watch a woken worker sleeps at once (with one, it watches unless taken off its core: the machine's load
    // decides how long, so ab-step measures that, not this test)
    setSpin(0);
    Atomics.wait(pause, 0, 0, 20); // the last watch (5 ms) ends
    // the least of three (the process's CPU counts V8's background threads too: a garbage collection can fall in one)
    expect(Math.min(idleCpu(150), idleCpu(150), idleCpu(150))).toBeLessThan(10);
    setSpin(DEFAULT_SPIN_US);
    counts.dispose();
    setThreads(initialThreads);
  });

  it("the backend's memory is shared, and the speed-ups' switch turns threads off and on", () => {
    expect(memory().buffer).toBeInstanceOf(SharedArrayBuffer);
    setThreads(2);
    useSpeedups(false);
    expect(activeThreads()).toBe(1);
    useSpeedups(true);
    expect(activeThreads()).toBe(2);
  });

  /** Bits of a float32 tensor's values. */
  const bits = (t: tf.Tensor) => new Uint32Array(Float32Array.from(t.dataSync() as Float32Array).buffer);
  /**
   * Fills and frees a buffer of `size` floats with NaNs: the next output of that size is likely put
   * there, so an element a split leaves uncomputed reads NaN, not an earlier run's right answer.
   */
  const poison = (size: number) => tf.fill([size], NaN).dispose();
  /** How many values of `b` differ from `a` in any bit (the length's difference counted in); toEqual is slow on a million values. */
  const differing = (a: Uint32Array[], b: Uint32Array[]) =>
    a.reduce((sum, x, j) => {
      let count = Math.abs(x.length - b[j].length);
      for (let i = 0; i < Math.min(x.length, b[j].length); i++) if (x[i] !== b[j][i]) count++;
      return sum + count;
    }, Math.abs(a.length - b.length));

  /**
   * Every product of the packed kernel in the notebooks, logged while running 3.7 and 4.1-4.8 (the
   * MLPs: hidden layers of 256, 128 or 64, batches of 256 and the last batches of 96 and 16; tf.layers'
   * dense layers in batches of one matrix; 4.4's polynomial features): A's shape, B's, the transpose
   * flags, and bias and relu (fused). A has zeros (about half its values), as a batch of images or
   * of relu activations has, so the zero-skipping kernels run where they would.
   */
  const SHAPES: Array<[number[], number[], string, string]> = [
    [[1,16,256], [1,256,128], "00", "11"],
    [[1,16,256], [1,256,256], "00", "11"],
    [[1,16,784], [1,784,256], "00", "00"],
    [[1,16,784], [1,784,256], "00", "11"],
    [[1,256,256], [1,256,128], "00", "11"],
    [[1,256,256], [1,256,256], "00", "11"],
    [[1,256,784], [1,784,256], "00", "00"],
    [[1,256,784], [1,784,256], "00", "11"],
    [[100,1], [1,100], "00", "00"],
    [[100,1], [1,91], "00", "00"],
    [[100,1], [1,92], "00", "00"],
    [[100,1], [1,93], "00", "00"],
    [[100,1], [1,94], "00", "00"],
    [[100,1], [1,95], "00", "00"],
    [[100,1], [1,96], "00", "00"],
    [[100,1], [1,97], "00", "00"],
    [[100,1], [1,98], "00", "00"],
    [[100,1], [1,99], "00", "00"],
    [[16,256], [256,256], "00", "00"],
    [[16,784], [784,256], "00", "00"],
    [[16,784], [784,64], "00", "00"],
    [[256,10], [128,10], "01", "00"],
    [[256,10], [256,10], "01", "00"],
    [[256,10], [64,10], "01", "00"],
    [[256,128], [256,128], "01", "00"],
    [[256,256], [256,128], "00", "00"],
    [[256,256], [256,128], "10", "00"],
    [[256,256], [256,256], "00", "00"],
    [[256,256], [256,256], "01", "00"],
    [[256,256], [256,256], "10", "00"],
    [[256,784], [256,256], "10", "00"],
    [[256,784], [256,64], "10", "00"],
    [[256,784], [784,256], "00", "00"],
    [[256,784], [784,64], "00", "00"],
    [[512,256], [256,256], "00", "00"],
    [[64,64], [64,64], "00", "00"],
    [[64,64], [64,64], "01", "00"],
    [[64,64], [64,64], "10", "00"],
    [[96,10], [128,10], "01", "00"],
    [[96,10], [256,10], "01", "00"],
    [[96,10], [64,10], "01", "00"],
    [[96,128], [256,128], "01", "00"],
    [[96,256], [256,128], "00", "00"],
    [[96,256], [256,256], "00", "00"],
    [[96,256], [256,256], "01", "00"],
    [[96,256], [96,128], "10", "00"],
    [[96,256], [96,256], "10", "00"],
    [[96,784], [784,256], "00", "00"],
    [[96,784], [784,64], "00", "00"],
    [[96,784], [96,256], "10", "00"],
    [[96,784], [96,64], "10", "00"],
  ];

  it("every product shape the notebooks use: the same floats, bit for bit, with 1, 2, 3 and 8 threads, split in halves or claimed chunks of rows", async () => {
    let split = 0;
    for (const [aShape, bShape, flags, epilogue] of SHAPES) {
      await new Promise(setImmediate); // lets vitest's worker answer its runner between shapes
      const [tA, tB, bias, relu] = [flags[0] === "1", flags[1] === "1", epilogue[0] === "1", epilogue[1] === "1"];
      const size = (shape: number[]) => shape.reduce((p, d) => p * d, 1);
      const A = tf.tensor(values(size(aShape), 1).map((v, i) => (i % 3 === 0 || v < 0 ? 0 : v)), aShape);
      const B = tf.tensor(values(size(bShape), 2), bShape);
      const [m, k] = tA ? aShape.slice(-2).reverse() : aShape.slice(-2);
      const n = tB ? bShape[bShape.length - 2] : bShape[bShape.length - 1];
      const b = bias ? tf.tensor1d(values(n, 3)) : undefined;
      if (rowRanges(m, k, n, registerBlock(tA, true).rows, 2).length > 1) split++;
      const run = (threads: number) => {
        setThreads(threads);
        poison(m * n * (aShape.length === 3 ? aShape[0] : 1));
        const product = tf.fused.matMul({ a: A, b: B, transposeA: tA, transposeB: tB, bias: b, activation: relu ? "relu" : "linear" });
        const result = bits(product);
        product.dispose();
        return [result];
      };
      const one = run(1);
      const label = `${aShape}·${bShape} ${flags} ${epilogue}`;
      expect(one[0].length, label).toBe(m * n * (aShape.length === 3 ? aShape[0] : 1));
      eachSplit((how) => {
        for (const threads of [2, 3, 8]) expect(differing(one, run(threads)), `${label}, ${threads} threads, ${how}`).toBe(0);
      });
      tf.dispose([A, B, ...(b ? [b] : [])]);
    }
    expect(split).toBeGreaterThanOrEqual(15); // the large ones were split (17 of 51 with SPLIT_FROM = 2²³)
    expect(busyThreads()).toBe(0);
  }, 120_000);

  it("image batches (runs of zeros, as Fashion-MNIST's): X·W1 + b with relu and Xᵀ·dH skipping zeros on 1, 2, 3 and 8 threads, each way of splitting, give the dense kernel's floats on one", () => {
    // 256 images of 28×28: an ellipse of nonzero pixels (some inside it zero) on a zero background, as clothes on Fashion-MNIST's
    const noise = values(256 * 784, 7);
    const pixels = noise.map((v, i) => {
      const [image, y, x] = [Math.floor(i / 784), Math.floor((i % 784) / 28), i % 28];
      const [cy, cx, ry, rx] = [14 + (image % 5) - 2, 14 + (image % 3) - 1, 6 + (image % 7), 4 + (image % 9)];
      return ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1 && v > -0.8 ? Math.abs(v) : 0;
    });
    const X = tf.tensor(pixels, [256, 784]);
    const W1 = tf.tensor(values(784 * 256, 8).map((v) => 0.05 * v), [784, 256]);
    const b1 = tf.tensor1d(values(256, 9));
    const dH = tf.tensor(values(256 * 256, 10), [256, 256]);
    const backend = () => tf.backend() as unknown as Parameters<typeof packedMatMul>[0];
    const info = (t: tf.Tensor): tf.TensorInfo => ({ dataId: t.dataId, shape: t.shape, dtype: t.dtype });
    const run = (transposeA: boolean, skipZeros: boolean) => {
      poison((transposeA ? 784 : 256) * 256);
      const out = packedMatMul(backend(), info(X), info(transposeA ? dH : W1), transposeA, false,
        transposeA ? {} : { bias: info(b1), relu: true }, { relaxed: true, skipZeros });
      expect(out).toBeDefined();
      const t = tf.engine().makeTensorFromTensorInfo(out!);
      const result = bits(t);
      t.dispose();
      return result;
    };
    const sent = splitCount();
    for (const transposeA of [false, true]) {
      setThreads(1);
      const dense = run(transposeA, false);
      setThreads(1);
      expect(differing([dense], [run(transposeA, true)]), `transposeA ${transposeA}, 1 thread`).toBe(0);
      eachSplit((how) => {
        for (const threads of [2, 3, 8]) {
          setThreads(threads);
          expect(differing([dense], [run(transposeA, true)]), `transposeA ${transposeA}, ${threads} threads, ${how}`).toBe(0);
        }
      });
    }
    expect(splitCount() - sent).toBe(2 * 3 * SPLITS.length); // both products split with 2, 3 and 8 threads, each way
    tf.dispose([X, W1, b1, dH]);
  });

  it("a split product packs op(B) once for all threads: with a NaN and an infinity in op(B) (no zeros skipped, 0·NaN is NaN) the same bits as on one thread", () => {
    // a zero background (pixel 0 of every image) meets the NaN: skipping it would leave finite values where the dense product has NaN
    const X = tf.tensor(values(256 * 784, 11).map((v, i) => (i % 784 < 100 || v < 0 ? 0 : v)), [256, 784]);
    const w = values(784 * 256, 12).map((v) => 0.05 * v);
    w[0 * 256 + 3] = NaN;
    w[500 * 256 + 200] = Infinity;
    const W1 = tf.tensor(w, [784, 256]);
    const backend = () => tf.backend() as unknown as Parameters<typeof packedMatMul>[0];
    const info = (t: tf.Tensor): tf.TensorInfo => ({ dataId: t.dataId, shape: t.shape, dtype: t.dtype });
    const run = (skipZeros: boolean) => {
      poison(256 * 256);
      const t = tf.engine().makeTensorFromTensorInfo(packedMatMul(backend(), info(X), info(W1), false, false, {}, { relaxed: true, skipZeros })!);
      const result = bits(t);
      t.dispose();
      return result;
    };
    setThreads(1);
    const dense = run(false);
    expect(dense.filter((_, i) => i % 256 === 3).every((b) => (b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff) !== 0)).toBe(true); // column 3: NaN
    const sent = splitCount();
    eachSplit((how) => {
      for (const threads of [2, 3, 8]) {
        setThreads(threads);
        expect(differing([dense], [run(true)]), `${threads} threads, ${how}`).toBe(0);
        expect(differing([dense], [run(false)]), `${threads} threads, dense, ${how}`).toBe(0);
      }
    });
    expect(splitCount() - sent).toBe(2 * 3 * SPLITS.length);
    tf.dispose([X, W1]);
  });

  it("seeded training steps of an MLP give the same weights, bit for bit, with 1, 2 and 8 threads", () => {
    const X = tf.tensor(values(256 * 784, 4).map((v) => Math.max(v, 0)), [256, 784]);
    const y = tf.oneHot(tf.tensor1d(Array.from({ length: 256 }, (_, i) => i % 10), "int32"), 10);
    const train = (threads: number) => {
      setThreads(threads);
      const W1 = tf.variable(tf.tensor(values(784 * 256, 5).map((v) => 0.05 * v), [784, 256]));
      const W2 = tf.variable(tf.tensor(values(256 * 10, 6).map((v) => 0.05 * v), [256, 10]));
      const optimizer = tf.train.sgd(0.1);
      for (let step = 0; step < 3; step++) {
        optimizer.minimize(() => tf.losses.softmaxCrossEntropy(y, tf.matMul(tf.relu(tf.matMul(X, W1)), W2)) as tf.Scalar);
      }
      const out = [bits(W1), bits(W2)];
      tf.dispose([W1, W2]);
      optimizer.dispose();
      return out;
    };
    const sent = splitCount();
    const [one, two, eight] = [train(1), train(2), train(8)];
    expect(splitCount() - sent).toBe(2 * 3 * 2); // X·W1 and Xᵀ·dH split (dY·W2ᵀ is too small), 3 steps, with 2 and with 8 threads
    expect(one[0].length).toBe(784 * 256);
    expect(differing(one, two)).toBe(0);
    expect(differing(one, eight)).toBe(0);
    tf.dispose([X, y]);
  });

  /** dx of a stride-1 convolution from cols = dy·Wᵀ: each row of cols added under its window, in order of the output pixel (float32). */
  function scatterRows(cols: Float32Array, x: number[], filter: number[], oh: number, ow: number, top: number, left: number): Float32Array {
    const [n, h, w, c] = x;
    const [fh, fw] = filter;
    const taps = fh * fw * c;
    const dx = new Float32Array(n * h * w * c);
    for (let i = 0; i < n; i++) {
      for (let r = 0; r < oh; r++) {
        for (let q = 0; q < ow; q++) {
          const row = ((i * oh + r) * ow + q) * taps;
          for (let a = 0; a < fh; a++) {
            const y = r + a - top;
            if (y < 0 || y >= h) continue;
            for (let b = 0; b < fw; b++) {
              const xx = q + b - left;
              if (xx < 0 || xx >= w) continue;
              const at = ((i * h + y) * w + xx) * c;
              const from = row + (a * fw + b) * c;
              for (let e = 0; e < c; e++) dx[at + e] = Math.fround(dx[at + e] + cols[from + e]);
            }
          }
        }
      }
    }
    return dx;
  }

  it("LeNet's convolutions (6.6) by the SIMD kernels: forward, input and filter gradients the same bits with 1, 2 and 8 threads", () => {
    type Backend = Parameters<typeof simdConv2d>[0];
    const backend = tf.backend() as unknown as Backend;
    const info = (t: tf.Tensor): tf.TensorInfo => ({ dataId: t.dataId, shape: t.shape, dtype: t.dtype });
    const read = (out: tf.TensorInfo | undefined) => {
      expect(out).toBeDefined();
      const t = tf.engine().makeTensorFromTensorInfo(out!);
      const result = bits(t);
      t.dispose();
      return result;
    };
    const cases: Array<{ x: [number, number, number, number]; filter: [number, number, number, number]; pad: "same" | "valid" }> = [
      { x: [256, 28, 28, 1], filter: [5, 5, 1, 6], pad: "same" },
      { x: [256, 14, 14, 6], filter: [5, 5, 6, 16], pad: "valid" },
      { x: [96, 14, 14, 6], filter: [5, 5, 6, 16], pad: "valid" }, // an epoch's last batch (60,000 = 234·256 + 96)
    ];
    const splits = splitCount();
    for (const c of cases) {
      const size = (shape: number[]) => shape.reduce((p, d) => p * d, 1);
      const x = tf.tensor4d(values(size(c.x), 11).map((v) => Math.max(v, 0)), c.x);
      const w = tf.tensor4d(values(size(c.filter), 12), c.filter);
      const conv = tf.backend_util.computeConv2DInfo(c.x, c.filter, 1, 1, c.pad);
      const dy = tf.tensor(values(size(conv.outShape), 13), conv.outShape);
      const results = [1, 2, 8].map((threads) => {
        setThreads(threads);
        return [
          read(simdConv2d(backend, info(x), info(w), conv)),
          read(simdFilterGradient(backend, info(x), info(dy), conv)),
          read(simdInputGradient(backend, info(dy), info(w), conv)),
          // as registered (Conv2DBackpropInput): each thread the product dy·Wᵀ and the scatter of its own images
          read(productInputGradient(backend, info(dy), info(w), conv)),
        ];
      });
      expect(results[0][1].length).toBe(size(c.filter));
      // the registered input gradient is the registered product dy·Wᵀ, each row added into dx in order (float32)
      setThreads(1);
      const [dy2, w2] = [dy.reshape([-1, c.filter[3]]), w.reshape([-1, c.filter[3]])];
      const product = tf.matMul(dy2, w2, false, true);
      const cols = product.dataSync() as Float32Array;
      tf.dispose([dy2, w2, product]);
      const dx = scatterRows(cols, c.x, c.filter, conv.outHeight, conv.outWidth, conv.padInfo.top, conv.padInfo.left);
      expect(differing([results[0][3]], [new Uint32Array(dx.buffer)]), JSON.stringify(c)).toBe(0);
      expect(differing(results[0], results[1]), JSON.stringify(c)).toBe(0);
      expect(differing(results[0], results[2]), JSON.stringify(c)).toBe(0);
      tf.dispose([x, w, dy]);
    }
    expect(splitCount() - splits).toBeGreaterThanOrEqual(12);
  });

  it("seeded training steps of 6.6's LeNet give the same weights, bit for bit, with 1, 2 and 8 threads, its heavy kernels split", () => {
    // LeNet as 6.6 builds it (sigmoid, average pooling), fixed weights, one batch of 256 in [0, 1]
    const X = tf.tensor4d(values(256 * 28 * 28, 21).map((v) => Math.min(Math.max(v + 0.5, 0), 1)), [256, 28, 28, 1]);
    const y = tf.oneHot(tf.tensor1d(Array.from({ length: 256 }, (_, i) => (i * 7) % 10), "int32"), 10);
    const train = (threads: number) => {
      setThreads(threads);
      const net = tf.sequential({
        layers: [
          tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 6, kernelSize: 5, padding: "same", activation: "sigmoid" }),
          tf.layers.averagePooling2d({ poolSize: 2, strides: 2 }),
          tf.layers.conv2d({ filters: 16, kernelSize: 5, activation: "sigmoid" }),
          tf.layers.averagePooling2d({ poolSize: 2, strides: 2 }),
          tf.layers.flatten(),
          tf.layers.dense({ units: 120, activation: "sigmoid" }),
          tf.layers.dense({ units: 84, activation: "sigmoid" }),
          tf.layers.dense({ units: 10 }),
        ],
      });
      const weights = net.getWeights().map((w, i) => tf.tensor(values(w.size, 30 + i).map((v) => 0.4 * v), w.shape));
      net.setWeights(weights);
      tf.dispose(weights);
      const optimizer = tf.train.sgd(0.9);
      for (let step = 0; step < 2; step++) {
        // the whole batch at once, as d2l's training loop runs it (predict would cut it into batches of 32)
        optimizer.minimize(() => tf.losses.softmaxCrossEntropy(y, net.apply(X) as tf.Tensor) as tf.Scalar);
      }
      const out = net.getWeights().map(bits);
      net.dispose();
      optimizer.dispose();
      return out;
    };
    const numTensors = tf.memory().numTensors;
    const one = train(1);
    const sent = splitCount();
    const two = train(2);
    // splits a step with 2 threads, one job a thread each (thread-pool.ts's thresholds): both forwards with their
    // padding (2), both filter gradients (each thread its range of 32-image chunks: 2), layer 2's input gradient (dy·Wᵀ
    // and the scatter of each thread's images: 1), the first pooling's gradient (1.2 M floats: 1), the first sigmoid's
    // gradient (wasm-sigmoid-grad.ts: 1), both sigmoids (wasm-sigmoid.ts: 2), the dense layers' three 12 M multiply-add
    // products (3), both poolings (reading 1.2 and 0.4 M floats: 2), both bias adds (wasm-binary.ts: 2), the second
    // pooling's and sigmoid's gradients (0.4 M floats: 2), the 2.6 M products of 256 rows (as chunks: 2; not Hᵀ·dY's 120)
    const perStep = (splitCount() - sent) / 2;
    const eight = train(8);
    expect(perStep).toBe(2 + 2 + 1 + 1 + 1 + 2 + 3 + 2 + 2 + 2 + 2);
    expect(one.length).toBe(10);
    expect(differing(one, two)).toBe(0);
    expect(differing(one, eight)).toBe(0);
    expect(tf.memory().numTensors).toBe(numTensors);
    tf.dispose([X, y]);
  }, 120_000);

  /** Runs `script` (an ES module) in a fresh Node with `env`; its output and exit code (null: killed after 50 s). */
  async function runNode(script: string, env: Record<string, string>): Promise<{ out: string; code: number | null }> {
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env },
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        resolve(null);
      }, 50_000);
      child.on("exit", (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    return { out, code };
  }

  it("D2L_THREADS sets the count; a process that split products across its workers exits by itself", async () => {
    const script = `
      import * as tf from "@tensorflow/tfjs";
      import * as d2l from "d2l";
      await d2l.initBackend("wasm", { quiet: true });
      const y = tf.matMul(tf.randomNormal([256, 784]), tf.randomNormal([784, 256]));
      console.log("done", y.shape.join("x"), d2l.getThreads());
    `;
    const { out, code } = await runNode(script, { D2L_THREADS: "3" });
    expect(out.trim()).toBe("done 256x256 3");
    expect(code).toBe(0);
    // workers that watch for their next job (D2L_SPIN_US) let the process exit too; a bad watch is named
    const watching = await runNode(script, { D2L_THREADS: "2", D2L_SPIN_US: "200" });
    expect(watching.out.trim()).toBe("done 256x256 2");
    expect(watching.code).toBe(0);
    const badSpin = await runNode(script, { D2L_THREADS: "2", D2L_SPIN_US: "-5" });
    expect(badSpin.out).toMatch(/D2L_SPIN_US must be an integer from 0 to 100000, got "-5"/);
    expect(badSpin.code).not.toBe(0);
    const bad = await runNode(`import * as d2l from "d2l"; console.log(d2l.getThreads());`, { D2L_THREADS: "two" });
    expect(bad.out).toMatch(/D2L_THREADS must be an integer from 1 to 256, got "two"/);
    expect(bad.code).not.toBe(0);
  });
});
