import * as tf from "@tensorflow/tfjs";
import { type GradientMap, type WasmBackendLike, heapF32, replaceGradient, restoreGradient } from "./wasm-kernels";
import { getBackend, getKernel, tfEngine } from "./tf-direct";

/**
 * tfjs-core 4.x's gradient of Mean is `reshape(dy) · ones(x.shape) / n`: a Reshape, a tensor of ones
 * written to the backend, a Mul, a scalar n written and a RealDiv, each through tfjs's engine (scopes,
 * tracking, ~5-10 µs apiece), to fill 256 floats. A tfjs optimizer steps on the gradient of the
 * mean loss, so every step of 3.7's and 4.3's training takes this gradient once. On wasm, where the
 * mean is over every axis (dy a single value), the gradient registered here fills x's shape with
 * dy / n in one kernel: the same float as tfjs's (dy · 1 is dy; dy / n rounded to float32 once).
 * Elsewhere (other backends, a mean over some axes, higher-order gradients, whose tape needs
 * differentiable ops) it calls tfjs's own. `useSpeedups(false)` puts tfjs's gradient back.
 */

const KERNEL = "D2lMeanGrad";
const MARK = Symbol.for("d2l.useOneKernelMeanGrad");

/** dy (one float32 value) to a float32 tensor of `shape` holding dy / n everywhere. */
function meanGradKernel(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: unknown }): tf.TensorInfo {
  const { dy } = args.inputs as { dy: tf.TensorInfo };
  const { shape, n } = args.attrs as unknown as { shape: number[]; n: number };
  const backend = args.backend as WasmBackendLike;
  const out = backend.makeOutput(shape, "float32");
  const value = heapF32(backend, dy, 1)[0] / n;
  heapF32(backend, out).fill(value); // rounded to float32 as stored
  return out;
}

/** The gradient by our kernel, or undefined where tfjs's applies (another backend, a higher order, a mean over some axes). */
function oneKernelGradient(dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]): GradientMap | undefined {
  const [x] = saved;
  const g = dy as tf.Tensor;
  const ours = getBackend() === "wasm" && (tfEngine().state as { gradientDepth: number }).gradientDepth === 0 &&
    g.size === 1 && g.dtype === "float32" && x.dtype === "float32" && x.size > 0 && getKernel(KERNEL, "wasm") !== undefined;
  if (!ours) return undefined;
  // dy is a single value only when every axis was reduced: n is x's size
  const kernelAttrs = { shape: x.shape, n: x.size } as unknown as tf.NamedAttrMap;
  return { x: () => tfEngine().runKernel(KERNEL, { dy: g }, kernelAttrs) as tf.Tensor };
}

/** Makes the gradient of a mean over every axis one wasm kernel (see above). Idempotent; false where tfjs has no Mean gradient. */
export function useOneKernelMeanGrad(): boolean {
  if (getKernel(KERNEL, "wasm") === undefined && tf.findBackend("wasm") !== null) {
    tf.registerKernel({ kernelName: KERNEL, backendName: "wasm", kernelFunc: meanGradKernel as unknown as tf.KernelFunc });
  }
  return replaceGradient(tf.Mean, MARK, oneKernelGradient);
}

/** Puts tfjs's own Mean gradient back; returns whether it was replaced. */
export function restoreMeanGrad(): boolean {
  return restoreGradient(tf.Mean, MARK);
}
