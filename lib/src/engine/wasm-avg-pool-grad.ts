import * as tf from "@tensorflow/tfjs";
import { type WasmBackendLike, findWasmReplacement, replaceWasmKernel, restoreWasmKernel } from "./wasm-kernels";

/**
 * The wasm backend's AvgPoolGrad (@tensorflow/tfjs-backend-wasm 4.x) loops over every input pixel
 * and, for each, over every window that could hold it, with a division and bounds tests per step:
 * about 28 ms a LeNet step for the first pooling layer's gradient (256×28×28×6), a tenth of the step.
 * For windows that tile the input (stride = window, no padding: d2l's `AvgPool2d(2, 2)`), each
 * input pixel lies in at most one window, so dx is dy / (window area) copied into its window (and
 * zero in the rows and columns past the last whole window): one pass over dx, 1-2 ms. Other pooling
 * keeps the original kernel. Images are independent, so {@link tileAvgPoolGrad} takes a range of
 * them (for the thread pool). Same floats as the cpu backend for power-of-two windows (dy/4 is exact).
 */

const MARK = Symbol.for("d2l.useFastWasmAvgPoolGrad");

/** dx for images [start, end): each dy value times 1/(fh·fw) into its fh×fw window (NHWC; dx zero elsewhere, written here too). */
export function tileAvgPoolGrad(dy: Float32Array, dx: Float32Array, info: tf.backend_util.Conv2DInfo, start: number, end: number): void {
  const { inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW, filterHeight: FH, filterWidth: FW } = info;
  const scale = Math.fround(1 / (FH * FW));
  dx.fill(0, start * H * W * C, end * H * W * C);
  for (let n = start; n < end; n++) {
    for (let oh = 0; oh < OH; oh++) {
      for (let ow = 0; ow < OW; ow++) {
        const g = ((n * OH + oh) * OW + ow) * C;
        for (let i = 0; i < FH; i++) {
          for (let j = 0; j < FW; j++) {
            const p = ((n * H + oh * FH + i) * W + ow * FW + j) * C;
            for (let c = 0; c < C; c++) dx[p + c] = dy[g + c] * scale;
          }
        }
      }
    }
  }
}

function fastAvgPoolGrad(original: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const { dy, input } = args.inputs as { dy: tf.TensorInfo; input: tf.TensorInfo };
    const { filterSize, strides, pad } = args.attrs as unknown as tf.AvgPoolGradAttrs;
    const backend = args.backend as unknown as WasmBackendLike;
    if (dy.dtype !== "float32" || input.dtype !== "float32" || input.shape.length !== 4 || backend.wasm?.HEAPU8 === undefined) return original(args);
    const info = tf.backend_util.computePool2DInfo(input.shape as [number, number, number, number], filterSize, strides, 1, pad);
    const { top, left, bottom, right } = info.padInfo;
    const tiles = info.strideHeight === info.filterHeight && info.strideWidth === info.filterWidth && top === 0 && left === 0 && bottom === 0 && right === 0;
    if (!tiles || info.outHeight * info.filterHeight > info.inHeight || info.outWidth * info.filterWidth > info.inWidth) return original(args);
    const out = backend.makeOutput(input.shape, "float32");
    // views after the allocation, which may have grown (replaced) the memory's buffer
    const heap = backend.wasm.HEAPU8.buffer;
    const dyv = new Float32Array(heap, backend.getMemoryOffset(dy.dataId), tf.util.sizeFromShape(dy.shape));
    const dx = new Float32Array(heap, backend.getMemoryOffset(out.dataId), tf.util.sizeFromShape(input.shape));
    tileAvgPoolGrad(dyv, dx, info, 0, info.batchSize);
    return out;
  };
}

/**
 * Makes the wasm backend's AvgPoolGrad copy each gradient into its window when the windows tile the
 * input (stride = window size, no padding). Idempotent; false when the wasm kernel is not registered.
 * Not in d2l: it works around @tensorflow/tfjs-backend-wasm 4.x, see lib/src/engine/wasm-avg-pool-grad.ts.
 */
export function useFastWasmAvgPoolGrad(): boolean {
  if (findWasmReplacement(tf.AvgPoolGrad, MARK) !== undefined) return true;
  return replaceWasmKernel(tf.AvgPoolGrad, MARK, undefined, fastAvgPoolGrad);
}

/** Puts the original wasm AvgPoolGrad back; returns whether it was replaced. */
export function restoreWasmAvgPoolGrad(): boolean {
  return restoreWasmKernel(tf.AvgPoolGrad, MARK);
}
