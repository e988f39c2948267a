import * as tf from "@tensorflow/tfjs";
import { afterAll, describe, expect, it } from "vitest";
import { restoreWasmColumnSum, useFastWasmColumnSum } from "../../lib/src/engine/wasm-column-sum";
import { restoreWasmBinary, useFastWasmBinary } from "../../lib/src/engine/wasm-binary";
import { getThreads, setThreads, splitCount } from "../../lib/src/engine/thread-pool";

const onWasm = tf.getBackend() === "wasm";

/** Values where maximum, minimum and comparisons differ by implementation: NaN, ±0, ±Infinity, a denormal. */
const SPECIAL = [NaN, -0, 0, 1, -1, Infinity, -Infinity, 2, 0.5, 3e38, -1e-45];

function values(n: number, seed: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => SPECIAL[(i * 7 + seed) % SPECIAL.length] * (i % 3 ? 1 : -1));
}

/** Dtype, shape and every value (NaN equal to NaN, -0 unequal to 0) of a tensor, then disposes it. */
function exactly(t: tf.Tensor): { dtype: string; shape: number[]; values: string[] } {
  const out = { dtype: t.dtype, shape: t.shape, values: Array.from(t.dataSync(), (v) => (Object.is(v, -0) ? "-0" : String(v))) };
  t.dispose();
  return out;
}

/** `f` computed by the original kernels and then by ours. */
function bothWays<T>(restore: () => boolean, use: () => boolean, f: () => T): [T, T] {
  restore();
  const original = f();
  use();
  return [original, f()];
}

const OPS = ["maximum", "minimum", "equal", "notEqual", "less", "greater", "lessEqual", "greaterEqual", "add", "sub", "mul", "div"] as const;
/**
 * Same shapes, a scalar on either side, a [1, 1] against a vector, rows repeated (a bias: rows of
 * 1, 7, 16 and 37 values, either side, with leading 1s), columns repeated (softmax's [256, 10] / [256, 1];
 * rows of 4, 10, 16 and 37 values, either side, rank 3), sizes below, at and past 16 (the SIMD turn).
 */
const SHAPES: [number[], number[]][] = [
  [[37], [37]], [[16], [16]], [[3], [3]], [[5, 7], []], [[], [3, 17]], [[1], [37]], [[1, 1], [7]], [[256, 256], []],
  [[5, 7], [7]], [[7], [6, 7]], [[3, 2, 37], [1, 37]], [[4, 16], [16]], [[256, 256], [256]], [[9, 1], [1]], [[2, 3, 4], [3, 4]],
  [[3, 4], [3, 1]], [[3, 1], [3, 4]], [[256, 10], [256, 1]], [[5, 16], [5, 1]], [[2, 3, 37], [2, 3, 1]], [[7, 1], [7, 37]],
  // short rows tiled to lcm(row, 16) values, whole tiles and a tail of rows: a convolution's bias (6 channels), 3, 5, 12
  [[2, 9, 9, 6], [6]], [[6], [4, 7, 6]], [[19, 3], [3]], [[5], [33, 5]], [[13, 12], [12]], [[2, 2], [2]],
];

describe.skipIf(!onWasm)("fast maximum, minimum, comparisons and row broadcasts (wasm backend)", () => {
  afterAll(() => {
    useFastWasmBinary();
  });

  it("equal the original kernels bit for bit: NaN, -0, infinities, tails, either operand scalar or a row, int32", () => {
    let cases = 0;
    for (const op of OPS) {
      for (const dtype of ["float32", "int32"] as const) {
        if (op === "div" && dtype === "int32") continue; // tf.div of int32 is a floor division, not RealDiv
        for (const [shapeA, shapeB] of SHAPES) {
          const a = tf.tidy(() => tf.tensor(values(tf.util.sizeFromShape(shapeA), 1), shapeA).cast(dtype));
          const b = tf.tidy(() => tf.tensor(values(tf.util.sizeFromShape(shapeB), 4), shapeB).cast(dtype));
          const [original, ours] = bothWays(restoreWasmBinary, useFastWasmBinary, () => exactly(tf[op](a, b)));
          expect(ours, `${op} ${dtype} ${shapeA} ${shapeB}`).toEqual(original);
          tf.dispose([a, b]);
          cases++;
        }
      }
    }
    expect(cases).toBe((OPS.length * 2 - 1) * SHAPES.length);
  });

  it("LeNet's bias adds (1.2 M floats tiled, 0.4 M by rows of 16) and a product of one shape give the original's bits, split across 2 and 8 threads", () => {
    const initial = getThreads();
    const cases: Array<[number[], number[], "add" | "mul" | "greater"]> = [
      [[256, 28, 28, 6], [6], "add"], [[256, 10, 10, 16], [16], "add"], [[16], [256, 10, 10, 16], "add"],
      [[300001], [300001], "mul"], [[256, 1030], [1030], "greater"], [[6], [256, 28, 28, 6], "greater"],
    ];
    // the bytes of every value (NaN payloads, -0), then disposes it
    const bytes = (t: tf.Tensor) => {
      const data = t.dataSync();
      const out = { dtype: t.dtype, shape: t.shape, bytes: Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("base64") };
      t.dispose();
      return out;
    };
    for (const [shapeA, shapeB, op] of cases) {
      const a = tf.tensor(values(tf.util.sizeFromShape(shapeA), 5), shapeA);
      const b = tf.tensor(values(tf.util.sizeFromShape(shapeB), 6), shapeB);
      restoreWasmBinary();
      const original = bytes(tf[op](a, b));
      useFastWasmBinary();
      for (const threads of [1, 2, 8]) {
        setThreads(threads);
        const splits = splitCount();
        expect(bytes(tf[op](a, b)), `${op} ${shapeA} ${shapeB} on ${threads} threads`).toEqual(original);
        expect(splitCount() - splits).toBe(threads > 1 ? 1 : 0);
      }
      tf.dispose([a, b]);
    }
    setThreads(initial);
  });

  it("keeps the original for shapes it does not take (an outer broadcast, bool operands) and leaks nothing", () => {
    const before = tf.memory().numTensors;
    const x = tf.tensor2d(values(3, 2), [3, 1]);
    const column = tf.tensor2d([0, -1, NaN, 2], [1, 4]);
    for (const op of OPS) {
      const [original, ours] = bothWays(restoreWasmBinary, useFastWasmBinary, () => exactly(tf[op](x, column)));
      expect(ours, op).toEqual(original);
    }
    const flags = tf.tensor1d([true, false, true], "bool");
    const all = tf.tensor1d([true, true, true], "bool");
    expect(exactly(tf.equal(flags, all)).values).toEqual(["1", "0", "1"]);
    tf.tidy(() => {
      tf.greaterEqual(tf.maximum(x, 0), 0.5);
    });
    tf.dispose([x, column, flags, all]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it("relu's gradient through maximum(X, 0) is the step function, as before", () => {
    const x = tf.tensor1d([-2, -0, 0, 0.5, 3, NaN]);
    const grad = (xs: tf.Tensor) => tf.grad((t: tf.Tensor) => tf.maximum(t, 0).sum())(xs);
    const [original, ours] = bothWays(restoreWasmBinary, useFastWasmBinary, () => exactly(grad(x)));
    expect(ours).toEqual(original);
    expect(ours.values).toEqual(["0", "1", "1", "1", "1", "0"]);
    x.dispose();
  });
});

describe.skipIf(!onWasm)("fast sum over leading axes (wasm backend)", () => {
  afterAll(() => {
    useFastWasmColumnSum();
  });

  const CASES: [number[], number | number[], boolean][] = [
    [[256, 256], 0, false], [[7, 37], 0, true], [[3, 4, 5], [0, 1], false], [[3, 4, 5], 0, false], [[3, 4, 5], [1, 0], true],
    [[1, 33], 0, false], [[33, 1], 0, false], [[5, 16], -2, false], [[300, 19], 0, false], [[4, 6], 1, false],
    // every count of last columns (cols mod 16) in one walk: 2, 3, 6 (LeNet's first bias gradient), 7, 14, 15
    [[64, 28, 28, 6], [0, 1, 2], false], [[200, 2], 0, false], [[11, 7], 0, true], [[9, 4, 14], [0, 1], false], [[5, 2, 3], [0, 1], false],
    [[13, 31], 0, false],
  ];

  it("equals the original Sum bit for bit (float32 and int32, keepDims, axes in either order)", () => {
    for (const dtype of ["float32", "int32"] as const) {
      for (const [shape, axis, keepDims] of CASES) {
        const n = tf.util.sizeFromShape(shape);
        // sums whose rounding depends on the order of the additions
        const x = tf.tidy(() => tf.tensor(Float32Array.from({ length: n }, (_, i) => Math.sin(i * 1.7) * 10 ** (i % 7)), shape).cast(dtype));
        const [original, ours] = bothWays(restoreWasmColumnSum, useFastWasmColumnSum, () => exactly(tf.sum(x, axis, keepDims)));
        expect(ours, `${dtype} ${shape} axis ${axis}`).toEqual(original);
        x.dispose();
      }
    }
  });

  it("a bias gradient (axis 0 of a batch) is unchanged and leaks nothing", () => {
    const before = tf.memory().numTensors;
    const X = tf.tensor2d(values(8 * 20, 3).map((v) => (Number.isFinite(v) ? v : 1)), [8, 20]);
    const b = tf.zeros([20]);
    const grad = () => tf.grad((bias: tf.Tensor) => tf.add(X, bias).square().sum())(b);
    const [original, ours] = bothWays(restoreWasmColumnSum, useFastWasmColumnSum, () => exactly(grad()));
    expect(ours).toEqual(original);
    tf.dispose([X, b]);
    expect(tf.memory().numTensors).toBe(before);
  });
});
