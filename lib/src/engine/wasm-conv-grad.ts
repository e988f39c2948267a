import * as tf from "@tensorflow/tfjs";
import type { WasmBackendLike } from "./wasm-kernels";
import { processState } from "./process-state";

/**
 * The gradients of a convolution that the wasm backend (@tensorflow/tfjs-backend-wasm 4.x) lacks:
 * it registers Conv2D and Conv2DBackpropInput but no Conv2DBackpropFilter, and DepthwiseConv2dNative
 * but neither of its gradients, so any gradient through `tf.conv2d`, `tf.layers.conv2d` or a
 * depthwise convolution threw "Kernel 'Conv2DBackpropFilter' not registered for backend 'wasm'".
 * This file registers the three kernels (**a fix**: always on, since tfjs has no path to fall back
 * on), written in plain TypeScript over the backend's memory, for NHWC data (the only layout the
 * wasm Conv2D accepts), every padding ('same', 'valid', numbers, explicit), stride and dimension
 * rounding that tfjs-core computes, and dilation where the kernel's attributes carry it (tfjs-core's
 * gradients of conv2d and depthwiseConv2d refuse dilations above 1 on every backend).
 *
 * Sums are float32, added image by image, output row by output row, in a fixed order: the same
 * inputs give the same bits. The cpu backend adds in float64 in another order; the unit tests
 * compare the two within the rounding bound of a float32 sum. conv2d-simd.ts replaces the filter
 * gradient with SIMD code on the shapes it handles.
 */

/** The float32 views of the backend's memory for the given tensors, made after every allocation (a grow replaces the buffer). */
function views(backend: WasmBackendLike, ...infos: tf.TensorInfo[]): Float32Array[] {
  const heap = backend.wasm?.HEAPU8;
  if (heap === undefined) throw new Error("d2l's wasm convolution gradients: the wasm backend's memory is not reachable");
  return infos.map((t) => new Float32Array(heap.buffer, backend.getMemoryOffset(t.dataId), tf.util.sizeFromShape(t.shape)));
}

function checkFloat32(kernel: string, inputs: Record<string, tf.TensorInfo>): void {
  for (const [name, t] of Object.entries(inputs)) {
    if (t.dtype !== "float32") throw new Error(`${kernel} on wasm: ${name} must be float32; got ${t.dtype}`);
  }
}

/**
 * dW[fh, fw, ci, co] = Σ_{n, oh, ow} x[n, oh·sh + fh·dh - top, ow·sw + fw·dw - left, ci] · dy[n, oh, ow, co]
 * for the images [start, end), added into `dw` (FH·FW·Cin·Cout floats). Pixels outside x are zero padding.
 */
export function addFilterGradient(x: Float32Array, dy: Float32Array, dw: Float32Array, info: tf.backend_util.Conv2DInfo, start: number, end: number): void {
  const { inChannels: C, outChannels: K } = info;
  forEachTap(info, start, end, (xPixel, yPixel, tap) => {
    const [p, g, q] = [xPixel * C, yPixel * K, tap * C * K];
    for (let ci = 0; ci < C; ci++) {
      const v = x[p + ci];
      const r = q + ci * K;
      for (let co = 0; co < K; co++) dw[r + co] += v * dy[g + co];
    }
  });
}

/**
 * Calls `visit(xPixel, yPixel, tap)` for every filter tap (fh, fw) of every output pixel (n, oh, ow) of the
 * images [start, end) whose input pixel lies inside x (the rest is zero padding): xPixel = (n·H + ih)·W + iw,
 * yPixel = (n·OH + oh)·OW + ow, tap = fh·FW + fw, in the order n, oh, fh, ow, fw (the gradients' summation order).
 */
function forEachTap(info: tf.backend_util.Conv2DInfo, start: number, end: number, visit: (xPixel: number, yPixel: number, tap: number) => void): void {
  const { inHeight: H, inWidth: W, outHeight: OH, outWidth: OW } = info;
  const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dwid, filterHeight: FH, filterWidth: FW } = info;
  const { top, left } = info.padInfo;
  for (let n = start; n < end; n++) {
    for (let oh = 0; oh < OH; oh++) {
      for (let fh = 0; fh < FH; fh++) {
        const ih = oh * sh + fh * dh - top;
        if (ih < 0 || ih >= H) continue;
        for (let ow = 0; ow < OW; ow++) {
          for (let fw = 0; fw < FW; fw++) {
            const iw = ow * sw + fw * dwid - left;
            if (iw < 0 || iw >= W) continue;
            visit((n * H + ih) * W + iw, (n * OH + oh) * OW + ow, fh * FW + fw);
          }
        }
      }
    }
  }
}

/** The Conv2DInfo of a kernel's attributes, NHWC only (as the wasm backend's Conv2D). */
function convInfo(
  kernel: string, xShape: number[], filterShape: number[], strides: number | [number, number], dilations: number | [number, number],
  pad: tf.Conv2DBackpropFilterAttrs["pad"],
  dimRoundingMode: "floor" | "round" | "ceil" | undefined, depthwise: boolean, dataFormat: string = "NHWC",
): tf.backend_util.Conv2DInfo {
  if (dataFormat !== "NHWC") throw new Error(`${kernel} on wasm: dataFormat must be NHWC (as the wasm backend's Conv2D); got ${dataFormat}`);
  return tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number], filterShape as [number, number, number, number], strides, dilations,
    pad, dimRoundingMode, depthwise, "channelsLast",
  );
}

type KernelArgs = Parameters<tf.KernelFunc>[0];

/** The settings conv2d-simd.ts may install: a faster filter gradient for the shapes it handles. */
export interface FilterGradientHook {
  /** The filter gradient into a fresh output, or undefined to leave it to the plain loop. */
  run?: (backend: WasmBackendLike, x: tf.TensorInfo, dy: tf.TensorInfo, info: tf.backend_util.Conv2DInfo) => tf.TensorInfo | undefined;
}

const hook = processState<FilterGradientHook>("d2l.conv2dFilterGradientHook", () => ({}));
/** The hook the SIMD kernels fill (one object per process, whichever copy of this module asks). */
export function filterGradientHook(): FilterGradientHook {
  return hook;
}

function conv2DBackpropFilter(args: KernelArgs): tf.TensorInfo {
  const { x, dy } = args.inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
  const { strides, pad, dataFormat, dimRoundingMode, filterShape } = args.attrs as unknown as tf.Conv2DBackpropFilterAttrs;
  checkFloat32(tf.Conv2DBackpropFilter, { x, dy });
  const backend = args.backend as unknown as WasmBackendLike;
  const info = convInfo(tf.Conv2DBackpropFilter, x.shape, filterShape, strides, 1, pad, dimRoundingMode, false, dataFormat);
  const fast = filterGradientHook().run?.(backend, x, dy, info);
  if (fast !== undefined) return fast;
  const out = backend.makeOutput(filterShape, "float32");
  const [xv, dyv, dw] = views(backend, x, dy, out);
  dw.fill(0);
  addFilterGradient(xv, dyv, dw, info, 0, info.batchSize);
  return out;
}

function depthwiseBackpropFilter(args: KernelArgs): tf.TensorInfo {
  const { x, dy } = args.inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
  const { strides, dilations, pad, dimRoundingMode, filterShape } = args.attrs as unknown as tf.DepthwiseConv2dNativeBackpropFilterAttrs;
  checkFloat32(tf.DepthwiseConv2dNativeBackpropFilter, { x, dy });
  const backend = args.backend as unknown as WasmBackendLike;
  const info = convInfo(tf.DepthwiseConv2dNativeBackpropFilter, x.shape, filterShape, strides, dilations, pad, dimRoundingMode, true);
  const out = backend.makeOutput(filterShape, "float32");
  const [xv, dyv, dw] = views(backend, x, dy, out);
  dw.fill(0);
  const { batchSize: N, inChannels: C, outChannels: K } = info;
  const mult = K / C; // output channel c·mult + m reads input channel c; dW[fh, fw, c, m]
  forEachTap(info, 0, N, (xPixel, yPixel, tap) => {
    const [p, g, q] = [xPixel * C, yPixel * K, tap * K];
    for (let c = 0; c < C; c++) {
      const v = xv[p + c];
      for (let m = 0; m < mult; m++) dw[q + c * mult + m] += v * dyv[g + c * mult + m];
    }
  });
  return out;
}

function depthwiseBackpropInput(args: KernelArgs): tf.TensorInfo {
  const { dy, filter } = args.inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
  const { strides, dilations, pad, dimRoundingMode, inputShape } = args.attrs as unknown as tf.DepthwiseConv2dNativeBackpropInputAttrs;
  checkFloat32(tf.DepthwiseConv2dNativeBackpropInput, { dy, filter });
  const backend = args.backend as unknown as WasmBackendLike;
  const info = convInfo(tf.DepthwiseConv2dNativeBackpropInput, inputShape, filter.shape, strides, dilations, pad, dimRoundingMode, true);
  const out = backend.makeOutput(inputShape, "float32");
  const [dyv, fv, dx] = views(backend, dy, filter, out);
  dx.fill(0);
  const { batchSize: N, inChannels: C, outChannels: K } = info;
  const mult = K / C;
  forEachTap(info, 0, N, (xPixel, yPixel, tap) => {
    const [p, g, q] = [xPixel * C, yPixel * K, tap * K];
    for (let c = 0; c < C; c++) {
      let s = dx[p + c];
      for (let m = 0; m < mult; m++) s += fv[q + c * mult + m] * dyv[g + c * mult + m];
      dx[p + c] = s;
    }
  });
  return out;
}

const KERNELS: [string, (args: KernelArgs) => tf.TensorInfo][] = [
  [tf.Conv2DBackpropFilter, conv2DBackpropFilter],
  [tf.DepthwiseConv2dNativeBackpropFilter, depthwiseBackpropFilter],
  [tf.DepthwiseConv2dNativeBackpropInput, depthwiseBackpropInput],
];

/**
 * Registers the wasm kernels for the convolution gradients the wasm backend lacks
 * (Conv2DBackpropFilter, DepthwiseConv2dNativeBackpropFilter and -Input), unless some are already
 * registered (by an earlier call, or a later tfjs that has them). Returns whether all three are registered.
 * Not in d2l: it works around @tensorflow/tfjs-backend-wasm 4.x, see lib/src/engine/wasm-conv-grad.ts.
 */
export function useWasmConvGradients(): boolean {
  for (const [kernelName, kernelFunc] of KERNELS) {
    if (tf.getKernel(kernelName, "wasm") !== undefined) continue;
    tf.registerKernel({ kernelName, backendName: "wasm", kernelFunc: kernelFunc as unknown as tf.KernelFunc });
  }
  return KERNELS.every(([name]) => tf.getKernel(name, "wasm") !== undefined);
}
