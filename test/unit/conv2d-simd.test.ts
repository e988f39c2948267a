import * as tf from "@tensorflow/tfjs";
import { afterAll, describe, expect, it } from "vitest";
import { padWasm, productInputGradient, simdConv2d, simdFilterGradient, simdInputGradient, useSimdConv2d } from "../../lib/src/engine/conv2d-simd";
import { useSpeedups } from "../../lib/src/engine";
import { bitsOf, onCpu, size, values } from "./kernel-fixtures";

const onWasm = tf.getBackend() === "wasm";


type Pad = tf.Conv2DAttrs["pad"];

interface Case {
  x: [number, number, number, number];
  filter: [number, number, number, number];
  strides: number | [number, number];
  pad: Pad;
}

/**
 * The convolution y, its input gradient, filter gradient and bias gradient for a fixed upstream
 * gradient, through the public ops (tf.conv2d, tf.fused.conv2d with a bias and relu), and the
 * scale Σ|x|·|w| of each output's sum (the same ops on absolute values) for the rounding bound.
 */
function run(c: Case): Float32Array[] {
  return tf.tidy(() => {
    const x = tf.tensor4d(values(size(c.x), 51), c.x);
    const w = tf.tensor4d(values(size(c.filter), 52), c.filter);
    const b = tf.tensor1d(values(c.filter[3], 53));
    const y = tf.conv2d(x, w, c.strides, c.pad);
    const dy = tf.tensor(values(size(y.shape), 54), y.shape);
    const fusedY = tf.fused.conv2d({ x, filter: w, strides: c.strides, pad: c.pad, bias: b, activation: "relu" });
    const [dx, dw] = tf.grads((a: tf.Tensor, f: tf.Tensor) => tf.conv2d(a as tf.Tensor4D, f as tf.Tensor4D, c.strides, c.pad).mul(dy).sum())([x, w]);
    const [ax, aw, ady] = [x.abs(), w.abs(), dy.abs()];
    const [sx, sw] = tf.grads((a: tf.Tensor, f: tf.Tensor) => tf.conv2d(a as tf.Tensor4D, f as tf.Tensor4D, c.strides, c.pad).mul(ady).sum())([ax, aw]);
    const sy = tf.conv2d(ax, aw, c.strides, c.pad);
    return [y, fusedY, dx, dw, sy, sy.add(b.abs()), sx, sw].map((t) => t.dataSync().slice() as Float32Array);
  });
}

const inputGradientApplies = (c: Case) => {
  const conv = tf.backend_util.computeConv2DInfo(c.x, c.filter, c.strides, 1, c.pad);
  return conv.strideHeight === 1 && conv.strideWidth === 1 && conv.padInfo.top < c.filter[0] && conv.padInfo.left < c.filter[1];
};

/**
 * On wasm, the kernels called directly: [y, relu(y + b), dx, dw] as {@link run} orders them, y and
 * relu(y + b) by {@link simdConv2d}, dx by {@link simdInputGradient} where it applies (else the
 * registered kernel), dw by {@link simdFilterGradient}; then dx by the registered kernel (XNNPACK's
 * forward on the flipped filter) and dw by the registered kernel.
 */
function runDirect(c: Case, relaxed: boolean): Float32Array[] {
  const backend = tf.backend() as unknown as Parameters<typeof simdConv2d>[0];
  const info = (t: tf.Tensor): tf.TensorInfo => ({ dataId: t.dataId, shape: t.shape, dtype: t.dtype });
  const read = (out: tf.TensorInfo | undefined) => {
    expect(out).toBeDefined();
    return tf.engine().makeTensorFromTensorInfo(out!).dataSync().slice() as Float32Array;
  };
  return tf.tidy(() => {
    const conv = tf.backend_util.computeConv2DInfo(c.x, c.filter, c.strides, 1, c.pad);
    const x = tf.tensor4d(values(size(c.x), 51), c.x);
    const w = tf.tensor4d(values(size(c.filter), 52), c.filter);
    const b = tf.tensor1d(values(c.filter[3], 53));
    const dy = tf.tensor(values(size(conv.outShape), 54), conv.outShape);
    const [dxPublic, dwPublic] = tf.grads((a: tf.Tensor, f: tf.Tensor) => tf.conv2d(a as tf.Tensor4D, f as tf.Tensor4D, c.strides, c.pad).mul(dy).sum())([x, w]);
    return [
      read(simdConv2d(backend, info(x), info(w), conv, {}, { relaxed })),
      read(simdConv2d(backend, info(x), info(w), conv, { bias: info(b), relu: true }, { relaxed })),
      inputGradientApplies(c) ? read(simdInputGradient(backend, info(dy), info(w), conv, { relaxed })) : dxPublic.dataSync().slice() as Float32Array,
      read(simdFilterGradient(backend, info(x), info(dy), conv, { relaxed })),
      dxPublic.dataSync().slice() as Float32Array,
      dwPublic.dataSync().slice() as Float32Array,
      read(productInputGradient(backend, info(dy), info(w), conv)),
      tf.conv2d(x, w, c.strides, c.pad).dataSync().slice() as Float32Array, // the registered kernel (ours for at most 16 input channels)
      tf.fused.conv2d({ x, filter: w, strides: c.strides, pad: c.pad, bias: b, activation: "relu" }).dataSync().slice() as Float32Array,
    ];
  });
}

/** |ours - cpu's| within γ_k·scale + u·scale per element (float32 sums of k terms against cpu's float64 ones). */
function expectClose(ours: Float32Array, reference: Float32Array, scale: Float32Array, k: number): void {
  const u = 2 ** -24;
  const gamma = (k * u) / (1 - k * u);
  expect(ours.length).toBe(reference.length);
  let worst = -Infinity;
  for (let i = 0; i < ours.length; i++) worst = Math.max(worst, Math.abs(ours[i] - reference[i]) - ((gamma + 2 * u) * scale[i] + 1e-30));
  expect(worst).toBeLessThanOrEqual(0);
}

describe.skipIf(!onWasm)("SIMD convolutions on wasm (conv2d-simd.ts)", () => {
  afterAll(() => {
    useSimdConv2d({ relaxed: true });
  });
  const cases: Case[] = [
    { x: [8, 28, 28, 1], filter: [5, 5, 1, 6], strides: 1, pad: 2 }, // LeNet's first layer
    { x: [8, 14, 14, 6], filter: [5, 5, 6, 16], strides: 1, pad: "valid" }, // and its second
    { x: [2, 7, 9, 3], filter: [3, 4, 3, 5], strides: 1, pad: "same" },
    { x: [3, 8, 5, 2], filter: [3, 3, 2, 7], strides: 1, pad: 1 },
    { x: [1, 6, 7, 1], filter: [2, 5, 1, 3], strides: 1, pad: [[0, 0], [2, 0], [1, 3], [0, 0]] },
    { x: [2, 9, 11, 3], filter: [3, 3, 3, 2], strides: 2, pad: "same" },
    { x: [2, 9, 11, 4], filter: [3, 2, 4, 9], strides: [2, 3], pad: "valid" },
    { x: [2, 5, 6, 13], filter: [1, 1, 13, 16], strides: 1, pad: "same" },
    { x: [40, 6, 6, 2], filter: [3, 3, 2, 1], strides: 1, pad: "valid" }, // more than one chunk of images, one channel
    { x: [1, 3, 3, 1], filter: [5, 5, 1, 4], strides: 1, pad: "same" }, // a filter larger than the image
  ];

  for (const relaxed of [true, false]) {
    it.each(cases)(`equal the cpu backend's (relaxed ${relaxed}): x $x, filter $filter, strides $strides, pad $pad`, async (c) => {
      useSimdConv2d({ relaxed });
      const ours = runDirect(c, relaxed);
      const reference = await onCpu(() => run(c));
      const [y, fusedY, dx, dw, sy, sfused, sx, sw] = reference;
      const info = tf.backend_util.computeConv2DInfo(c.x, c.filter, c.strides, 1, c.pad);
      const taps = c.filter[0] * c.filter[1] * c.filter[2];
      expectClose(ours[0], y, sy, taps);
      expectClose(ours[1], fusedY, sfused, taps + 1);
      expectClose(ours[2], dx, sx, c.filter[0] * c.filter[1] * c.filter[3]);
      expectClose(ours[3], dw, sw, info.batchSize * info.outHeight * info.outWidth);
      expectClose(ours[4], dx, sx, c.filter[0] * c.filter[1] * c.filter[3]);
      expectClose(ours[5], dw, sw, info.batchSize * info.outHeight * info.outWidth);
      expectClose(ours[6], dx, sx, c.filter[0] * c.filter[1] * c.filter[3]);
      expectClose(ours[7], y, sy, taps);
      expectClose(ours[8], fusedY, sfused, taps + 1);
    });
  }

  it("apply relu as the backend's Relu does: a NaN with the sign bit becomes +0, other NaNs pass", () => {
    for (const c of [cases[0], cases[1]]) {
      const xv = values(size(c.x), 31);
      const bits = new Uint32Array(xv.buffer);
      bits[3 * c.x[3] + 1] = 0xffc00000; // near the top left of image 0: NaN with the sign bit
      bits[size(c.x) - 5 * c.x[3]] = 0x7fc01234; // near the bottom right of the last image: NaN without
      const x = tf.tensor4d(xv, c.x);
      const w = tf.tensor4d(values(size(c.filter), 32), c.filter);
      const b = tf.tensor1d(values(c.filter[3], 33));
      const fused = () => bitsOf(() => tf.fused.conv2d({ x, filter: w, strides: c.strides, pad: c.pad, bias: b, activation: "relu" }));
      const ours = fused();
      useSpeedups(false);
      const tfjs = fused();
      const pre = bitsOf(() => tf.conv2d(x, w, c.strides, c.pad).add(b));
      useSpeedups(true);
      const isNaN = (u: number) => (u & 0x7fffffff) > 0x7f800000;
      const nans = Array.from(pre.keys()).filter((i) => isNaN(pre[i]));
      // both kinds reach the relu: NaNs with the sign bit (tfjs gives +0) and without (tfjs passes them)
      expect(nans.filter((i) => pre[i] >>> 31 === 1 && tfjs[i] === 0).length, `${c.x}`).toBeGreaterThan(0);
      expect(nans.filter((i) => pre[i] >>> 31 === 0 && isNaN(tfjs[i])).length, `${c.x}`).toBeGreaterThan(0);
      for (const i of nans) expect(ours[i], `${c.x} at ${i}`).toBe(tfjs[i]);
      tf.dispose([x, w, b]);
    }
  });

  it("give the same bits on every run, and leak no tensors", () => {
    const c = cases[1];
    const first = runDirect(c, true);
    const before = tf.memory().numTensors;
    const again = runDirect(c, true);
    expect(tf.memory().numTensors).toBe(before);
    for (let i = 0; i < first.length; i++) expect(again[i]).toEqual(first[i]);
  });


});

describe("the zero padding module (padWasm)", () => {
  it.each([
    { h: 28, w: 28, c: 1, top: 2, left: 2, bottom: 2, right: 2 }, // LeNet's first layer
    { h: 5, w: 7, c: 3, top: 1, left: 3, bottom: 0, right: 2 }, // rows of 21 floats: vectors and single floats
    { h: 3, w: 2, c: 2, top: 0, left: 0, bottom: 3, right: 1 },
  ])("puts images [1, 3) of x in place with zeros around them, and writes nothing else: %o", (p) => {
    const n = 4;
    const [hp, wp] = [p.h + p.top + p.bottom, p.w + p.left + p.right];
    const memory = new WebAssembly.Memory({ initial: 4 });
    const module = new WebAssembly.Module(new Uint8Array(padWasm({ h: p.h, w: p.w, c: p.c, hp, wp, top: p.top, left: p.left })));
    const pad = new WebAssembly.Instance(module, { e: { m: memory } }).exports.p as (x: number, xp: number, n0: number, n1: number) => void;
    const [xSize, xpSize] = [n * p.h * p.w * p.c, n * hp * wp * p.c];
    const x = new Float32Array(memory.buffer, 0, xSize);
    x.set(values(xSize, 61));
    const xp = new Float32Array(memory.buffer, 4 * xSize, xpSize);
    xp.fill(7); // garbage, to be zeroed inside images 1 and 2 and left alone in 0 and 3
    pad(0, 4 * xSize, 1, 3);
    for (let i = 0; i < n; i++) {
      for (let y = 0; y < hp; y++) {
        for (let col = 0; col < wp; col++) {
          for (let ch = 0; ch < p.c; ch++) {
            const got = xp[((i * hp + y) * wp + col) * p.c + ch];
            const [sy, sx] = [y - p.top, col - p.left];
            const inside = sy >= 0 && sy < p.h && sx >= 0 && sx < p.w;
            const want = i === 0 || i === 3 ? 7 : inside ? x[((i * p.h + sy) * p.w + sx) * p.c + ch] : 0;
            if (got !== want) expect({ i, y, col, ch, got }).toEqual({ i, y, col, ch, got: want });
          }
        }
      }
    }
  });
});
