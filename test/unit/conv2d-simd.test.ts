import * as tf from "@tensorflow/tfjs";
import { afterAll, describe, expect, it } from "vitest";
import { productInputGradient, simdConv2d, simdFilterGradient, simdInputGradient, useSimdConv2d } from "../../lib/src/engine/conv2d-simd";
import { onCpu, size, values } from "./kernel-fixtures";

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
      tf.conv2d(x, w, c.strides, c.pad).dataSync().slice() as Float32Array, // the registered kernel (ours for one channel)
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

  it("give the same bits on every run, and leak no tensors", () => {
    const c = cases[1];
    const first = runDirect(c, true);
    const before = tf.memory().numTensors;
    const again = runDirect(c, true);
    expect(tf.memory().numTensors).toBe(before);
    for (let i = 0; i < first.length; i++) expect(again[i]).toEqual(first[i]);
  });


});
