import * as tf from "@tensorflow/tfjs";
import { afterAll, describe, expect, it } from "vitest";
import { useLeanScalarOps } from "../../lib/src/engine/lean-scalar-ops";
import { useSpeedups } from "../../lib/src/engine";
import { Accumulator } from "../../lib/src/metrics";
import { kernelCalls } from "./kernel-fixtures";

const onWasm = tf.getBackend() === "wasm";

/** float32 scalars by their bits: ±0, the smallest subnormals, ±1, the largest float, ±Infinity, a quiet NaN, a negative NaN with a payload, a signalling NaN. */
const FLOAT_BITS = [0x00000000, 0x80000000, 0x00000001, 0x80000001, 0x3f800000, 0xbf800000, 0x7f7fffff, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00123, 0x7f800001];
const INTS = [0, -1, 1, 2 ** 31 - 1, -(2 ** 31)];

/** A rank-0 float32 tensor holding exactly these bits. */
const floatScalar = (bits: number) => tf.tensor(new Float32Array(new Uint32Array([bits]).buffer), [], "float32");
/** The bits of a tensor's one value. */
const bitsOf = (t: tf.Tensor) => new Uint32Array(Float32Array.from(t.dataSync() as Float32Array).buffer)[0];

describe.skipIf(!onWasm)("lean scalar ops (wasm backend)", () => {
  afterAll(() => useLeanScalarOps(true));

  it("sums one float32 value to the Sum kernel's bits, and runs no kernel unless the value is −0 or NaN", () => {
    for (const bits of FLOAT_BITS) {
      const x = floatScalar(bits);
      useLeanScalarOps(false);
      const kernel = x.sum();
      useLeanScalarOps(true);
      const before = tf.memory().numTensors;
      let lean: tf.Tensor | undefined;
      const calls = kernelCalls(() => (lean = x.sum()));
      expect(tf.memory().numTensors).toBe(before + 1);
      expect([bits, bitsOf(lean!)]).toEqual([bits, bitsOf(kernel)]);
      const special = bits === 0x80000000 || (bits & 0x7f800000) === 0x7f800000 && (bits & 0x007fffff) !== 0;
      expect([bits, calls.get("Sum")]).toEqual([bits, special ? 1 : undefined]);
      tf.dispose([x, kernel, lean!]);
    }
  });

  it("sums one int32 value without a kernel, to the same value", () => {
    for (const v of INTS) {
      const x = tf.scalar(v, "int32");
      useLeanScalarOps(false);
      const kernel = x.sum();
      useLeanScalarOps(true);
      let lean: tf.Tensor | undefined;
      const calls = kernelCalls(() => (lean = x.sum()));
      expect(calls.size).toBe(0);
      expect(lean!.dtype).toBe("int32");
      expect(lean!.dataSync()[0]).toBe(kernel.dataSync()[0]);
      tf.dispose([x, kernel, lean!]);
    }
  });

  it("casts to a tensor's own dtype without a kernel; other casts, sums over axes and bool sums run tfjs's ops", () => {
    useLeanScalarOps(true);
    const x = tf.tensor2d([[1.5, -0], [NaN, 3]]);
    const i = tf.tensor1d([3, -4], "int32");
    const b = tf.scalar(true, "bool");
    const outs: tf.Tensor[] = [];
    const lean = kernelCalls(() => outs.push(x.cast("float32"), i.cast("int32"), tf.scalar(2).cast("float32")));
    expect(lean.size).toBe(0);
    expect(outs.map((t) => [t.dtype, t.shape])).toEqual([["float32", [2, 2]], ["int32", [2]], ["float32", []]]);
    expect(Array.from(outs[0].dataSync(), (v) => Object.is(v, -0) ? "-0" : v)).toEqual([1.5, "-0", NaN, 3]);
    expect(Array.from(outs[1].dataSync())).toEqual([3, -4]);
    const tfjs = kernelCalls(() => outs.push(x.cast("int32"), x.sum(), x.sum(0), tf.scalar(5).sum([]), tf.scalar(5).sum(undefined, true), b.sum()));
    expect(tfjs.get("Cast")).toBe(2); // to int32, and bool to int32 before the bool's sum
    expect(tfjs.get("Sum")).toBe(5);
    expect(outs[8].dtype).toBe("int32");
    expect(outs[8].dataSync()[0]).toBe(1);
    tf.dispose([x, i, b, ...outs]);
  });

  it("keeps a shared value when either tensor is freed first, and leaves no tensor or buffer behind", () => {
    useLeanScalarOps(true);
    const tensors = tf.memory().numTensors;
    const buffers = tf.memory().numDataBuffers;
    const x = tf.scalar(2.5);
    const s = x.sum();
    const c = x.cast("float32");
    x.dispose();
    expect([s.dataSync()[0], c.dataSync()[0]]).toEqual([2.5, 2.5]);
    s.dispose();
    expect(c.dataSync()[0]).toBe(2.5);
    c.dispose();
    expect(tf.memory().numTensors).toBe(tensors);
    expect(tf.memory().numDataBuffers).toBe(buffers);
    expect(() => x.sum()).toThrow(/disposed/);
    expect(() => x.cast("float32")).toThrow(/disposed/);
  });

  it("runs the kernels under a gradient tape, so gradients still flow through them", () => {
    useLeanScalarOps(true);
    const x = tf.scalar(3);
    let grad: tf.Tensor | undefined;
    const calls = kernelCalls(() => (grad = tf.grad((a: tf.Tensor) => a.sum().cast("float32").mul(a))(x)));
    expect(calls.get("Sum")).toBe(1);
    expect(grad!.dataSync()[0]).toBe(6); // d(a·a)/da at 3
    tf.dispose([x, grad!]);
  });

  it("is switched off by useSpeedups(false) and on again by useSpeedups(true)", () => {
    const x = tf.scalar(1.5);
    useSpeedups(false);
    const off = kernelCalls(() => tf.dispose([x.sum(), x.cast("float32")]));
    useSpeedups(true);
    const on = kernelCalls(() => tf.dispose([x.sum(), x.cast("float32")]));
    expect([off.get("Sum"), off.get("Cast")]).toEqual([1, 1]);
    expect(on.size).toBe(0);
    x.dispose();
  });

  it("gives an Accumulator the same totals, with two Sum kernels fewer for two scalars", () => {
    const scalars = () => [tf.scalar(-0), tf.scalar(0.1), tf.scalar(NaN), tf.scalar(3, "int32"), tf.scalar(1e-45), tf.scalar(-2.5)];
    const totals = (metric: Accumulator) => {
      const xs = scalars();
      const pairs = [[xs[0], xs[3]], [xs[1], xs[3]], [xs[4], xs[3]], [xs[5], xs[3]]];
      const calls = kernelCalls(() => pairs.forEach(([a, b]) => metric.add(a, b)));
      const out = [metric.get(0), metric.get(1)];
      metric.add(xs[2], xs[3]);
      const withNaN = [metric.get(0), metric.get(1)];
      tf.dispose(xs);
      metric.reset();
      return { out, withNaN, sums: calls.get("Sum") ?? 0 };
    };
    const before = tf.memory().numTensors;
    useLeanScalarOps(false);
    const tfjs = totals(new Accumulator(2));
    useLeanScalarOps(true);
    const lean = totals(new Accumulator(2));
    expect(tf.memory().numTensors).toBe(before);
    expect(lean.out).toEqual(tfjs.out);
    expect(Object.is(lean.out[0], tfjs.out[0])).toBe(true);
    expect(lean.withNaN).toEqual(tfjs.withNaN);
    expect(tfjs.sums).toBe(8);
    expect(lean.sums).toBe(1); // the −0: the kernel makes it +0
  });
});
