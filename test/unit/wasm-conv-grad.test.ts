import * as tf from "@tensorflow/tfjs";
import { describe, expect, it } from "vitest";
import { useWasmConvGradients } from "../../lib/src/engine/wasm-conv-grad";
import { restoreSimdConv2d, useSimdConv2d } from "../../lib/src/engine/conv2d-simd";
import { onCpu, size, values } from "./kernel-fixtures";

const onWasm = tf.getBackend() === "wasm";


const read = (t: tf.Tensor) => t.dataSync() as Float32Array;

type Pad = tf.Conv2DBackpropFilterAttrs["pad"];

interface Case {
  x: number[];
  filter: number[];
  strides: number | [number, number];
  pad: Pad;
  dimRoundingMode?: "floor" | "round" | "ceil";
}

/** The convolution's output shape (from tfjs-core: the wasm Conv2D aborts the process on some roundings, e.g. "ceil" with stride 3). */
function outShape(c: Case): [number, number, number, number] {
  const info = tf.backend_util.computeConv2DInfo(c.x as [number, number, number, number], c.filter as [number, number, number, number],
    c.strides, 1, c.pad, c.dimRoundingMode);
  return info.outShape;
}

/** dW of `c` for a dy of values in [-1, 1) (seeded), and the same for |x|, |dy| (the scale of the sum's rounding). */
function filterGradient(c: Case): { dw: Float32Array; scale: Float32Array; shape: number[] } {
  return tf.tidy(() => {
    const x = tf.tensor4d(values(size(c.x), 11), c.x as [number, number, number, number]);
    const yShape = outShape(c);
    const dy = tf.tensor4d(values(size(yShape), 12), yShape);
    const attrs = { strides: c.strides, pad: c.pad, dataFormat: "NHWC", dimRoundingMode: c.dimRoundingMode, filterShape: c.filter };
    const run = (a: tf.Tensor, b: tf.Tensor) => tf.engine().runKernel(tf.Conv2DBackpropFilter, { x: a, dy: b }, attrs as never) as tf.Tensor;
    const dw = run(x, dy);
    return { dw: read(dw).slice(), scale: read(run(x.abs(), dy.abs())).slice(), shape: dw.shape };
  });
}

/**
 * The bound on |ours - cpu's| per element: ours adds k = N·OH·OW products in float32, within
 * γ_k·Σ|x·dy| of the exact sum (Higham 3.1), the cpu backend in float64 (within u of it once rounded).
 */
function expectClose(ours: Float32Array, reference: Float32Array, scale: Float32Array, k: number): void {
  const u = 2 ** -24;
  const gamma = (k * u) / (1 - k * u);
  expect(ours.length).toBe(reference.length);
  let worst = -Infinity;
  for (let i = 0; i < ours.length; i++) {
    worst = Math.max(worst, Math.abs(ours[i] - reference[i]) - ((gamma + 2 * u) * scale[i] + 1e-30));
  }
  expect(worst).toBeLessThanOrEqual(0);
}

describe.skipIf(!onWasm)("convolution gradients on wasm (wasm-conv-grad.ts)", () => {
  it("are registered by initBackend", () => {
    expect(useWasmConvGradients()).toBe(true);
    for (const name of [tf.Conv2DBackpropFilter, tf.DepthwiseConv2dNativeBackpropFilter, tf.DepthwiseConv2dNativeBackpropInput]) {
      expect(tf.getKernel(name, "wasm")).toBeDefined();
    }
  });

  const cases: Case[] = [
    // odd sizes, several channels, batch > 1; every kind of padding
    { x: [2, 7, 9, 3], filter: [3, 4, 3, 5], strides: 1, pad: "same" },
    { x: [2, 7, 9, 3], filter: [3, 4, 3, 5], strides: 1, pad: "valid" },
    { x: [3, 8, 5, 2], filter: [3, 3, 2, 4], strides: 1, pad: 1 },
    { x: [1, 6, 7, 1], filter: [2, 5, 1, 3], strides: 1, pad: [[0, 0], [2, 0], [1, 3], [0, 0]] },
    // strides, with each padding and rounding
    { x: [2, 9, 11, 3], filter: [3, 3, 3, 2], strides: 2, pad: "same" },
    { x: [2, 9, 11, 3], filter: [3, 2, 3, 2], strides: [2, 3], pad: "valid" },
    { x: [2, 10, 10, 2], filter: [4, 4, 2, 3], strides: [3, 2], pad: 1, dimRoundingMode: "floor" },
    { x: [2, 10, 10, 2], filter: [4, 4, 2, 3], strides: 3, pad: 2, dimRoundingMode: "ceil" },
    { x: [2, 10, 10, 2], filter: [4, 4, 2, 3], strides: 3, pad: 1, dimRoundingMode: "round" },
    { x: [2, 5, 6, 4], filter: [1, 1, 4, 7], strides: 2, pad: "same" },
    { x: [1, 3, 3, 1], filter: [5, 5, 1, 1], strides: 1, pad: "same" }, // a filter larger than the image
    // LeNet's two layers
    { x: [8, 28, 28, 1], filter: [5, 5, 1, 6], strides: 1, pad: 2 },
    { x: [8, 14, 14, 6], filter: [5, 5, 6, 16], strides: 1, pad: "valid" },
  ];

  for (const simd of [false, true]) {
  it.each(cases)(`Conv2DBackpropFilter (${simd ? "SIMD kernel" : "plain loop"}) equals the cpu backend's: x $x, filter $filter, strides $strides, pad $pad`, async (c) => {
    if (simd) useSimdConv2d();
    else restoreSimdConv2d();
    const ours = filterGradient(c);
    useSimdConv2d();
    const reference = await onCpu(() => filterGradient(c));
    expect(ours.shape).toEqual(c.filter);
    expect(reference.shape).toEqual(c.filter);
    const yShape = outShape(c);
    expectClose(ours.dw, reference.dw, reference.scale, yShape[0] * yShape[1] * yShape[2]);
  });
  }

  it("gives tf.grad of tf.conv2d for both the input and the filter, leaking no tensors", async () => {
    const grads = () => tf.tidy(() => {
      const x = tf.tensor4d(values(2 * 9 * 8 * 3, 21), [2, 9, 8, 3]);
      const f = tf.tensor4d(values(3 * 3 * 3 * 4, 22), [3, 3, 3, 4]);
      const w = tf.tensor4d(values(2 * 5 * 4 * 4, 23), [2, 5, 4, 4]);
      const g = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, "same").mul(w).sum());
      return g([x, f]).map((t) => read(t).slice());
    });
    const before = tf.memory().numTensors;
    const ours = grads();
    expect(tf.memory().numTensors).toBe(before);
    const reference = await onCpu(grads);
    for (let i = 0; i < 2; i++) {
      ours[i].forEach((v, j) => expect(Math.abs(v - reference[i][j])).toBeLessThan(1e-5));
    }
  });

  it("refuses what tfjs-core refuses on every backend (dilated gradients) and NCHW with a clear message", () => {
    const x = tf.zeros([1, 8, 8, 1]) as tf.Tensor4D;
    const f = tf.zeros([3, 3, 1, 1]) as tf.Tensor4D;
    expect(() => tf.grad((a: tf.Tensor) => tf.conv2d(x, a as tf.Tensor4D, 1, "same", "NHWC", 2).sum())(f)).toThrow(/dilation rates greater than 1/);
    const dy = tf.zeros([1, 1, 8, 8]);
    expect(() => tf.engine().runKernel(tf.Conv2DBackpropFilter, { x: tf.zeros([1, 1, 8, 8]), dy },
      { strides: 1, pad: "same", dataFormat: "NCHW", filterShape: [3, 3, 1, 1] } as never)).toThrow(/dataFormat must be NHWC/);
    tf.dispose([x, f, dy]);
  });

  it("gives tf.grad of tf.depthwiseConv2d (input and filter, channel multiplier 2) as the cpu backend does", async () => {
    const cases: [number[], number[], number | [number, number], Pad][] = [
      [[2, 7, 9, 3], [3, 3, 3, 2], 1, "same"],
      [[2, 9, 8, 2], [2, 3, 2, 1], [2, 2], "valid"],
      [[1, 6, 6, 4], [3, 3, 4, 2], 2, 1],
    ];
    for (const [xs, fs, strides, pad] of cases) {
      const grads = () => tf.tidy(() => {
        const x = tf.tensor4d(values(size(xs), 31), xs as [number, number, number, number]);
        const f = tf.tensor4d(values(size(fs), 32), fs as [number, number, number, number]);
        const y = tf.depthwiseConv2d(x, f, strides, pad);
        const w = tf.tensor(values(size(y.shape), 33), y.shape);
        const g = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.depthwiseConv2d(a as tf.Tensor4D, b as tf.Tensor4D, strides, pad).mul(w).sum());
        return g([x, f]).map((t) => read(t).slice());
      });
      const ours = grads();
      const reference = await onCpu(grads);
      for (let i = 0; i < 2; i++) {
        expect(ours[i].length).toBe(reference[i].length);
        ours[i].forEach((v, j) => expect(Math.abs(v - reference[i][j])).toBeLessThan(1e-5));
      }
    }
  });
});

/** d2l's LeNet (6.6) in tf.layers: sigmoid, average pooling, Xavier (glorot) uniform weights from fixed seeds. */
function lenet(): tf.Sequential {
  const init = (seed: number) => tf.initializers.glorotUniform({ seed });
  return tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 6, kernelSize: 5, padding: "same", activation: "sigmoid", kernelInitializer: init(1) }),
      tf.layers.averagePooling2d({ poolSize: 2, strides: 2 }),
      tf.layers.conv2d({ filters: 16, kernelSize: 5, activation: "sigmoid", kernelInitializer: init(2) }),
      tf.layers.averagePooling2d({ poolSize: 2, strides: 2 }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 120, activation: "sigmoid", kernelInitializer: init(3) }),
      tf.layers.dense({ units: 84, activation: "sigmoid", kernelInitializer: init(4) }),
      tf.layers.dense({ units: 10, kernelInitializer: init(5) }),
    ],
  });
}

/** The gradients of the mean softmax cross-entropy of LeNet on a batch of 32 fixed images (the cpu backend takes ~30 s for one filter gradient of 256) in [0, 1), by variable, with the weights given. */
function lenetGradients(weights: Float32Array[]): Float32Array[] {
  const model = lenet();
  const shapes = model.getWeights().map((w) => w.shape);
  model.setWeights(weights.map((w, i) => tf.tensor(w, shapes[i])));
  const grads = tf.tidy(() => {
    const X = tf.tensor4d(values(32 * 784, 41), [32, 28, 28, 1]).add(1).div(2);
    const y = tf.oneHot(tf.tensor1d(Array.from(values(32, 42), (v) => Math.floor((v + 1) * 5)), "int32"), 10);
    const { grads } = tf.variableGrads(() => tf.losses.softmaxCrossEntropy(y, model.predict(X) as tf.Tensor) as tf.Scalar);
    return model.trainableWeights.map((w) => read(grads[w.originalName]).slice());
  });
  model.dispose();
  return grads;
}

describe.skipIf(!onWasm)("a LeNet batch on wasm", () => {
  it("has the cpu backend's gradients within relative 1e-3 (each variable, largest element)", async () => {
    const model = lenet();
    const weights = model.getWeights().map((w) => read(w).slice());
    model.dispose();
    const ours = lenetGradients(weights);
    const reference = await onCpu(() => lenetGradients(weights));
    expect(ours.length).toBe(10);
    for (let i = 0; i < ours.length; i++) {
      const scale = Math.max(...reference[i].map(Math.abs));
      expect(scale).toBeGreaterThan(0);
      const error = Math.max(...ours[i].map((v, j) => Math.abs(v - reference[i][j])));
      expect(error / scale).toBeLessThan(1e-3);
    }
  });
});
