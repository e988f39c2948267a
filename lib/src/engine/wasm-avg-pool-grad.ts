import * as tf from "@tensorflow/tfjs";
import { type WasmBackendLike, findWasmReplacement, replaceWasmKernel, restoreWasmKernel, wasmKernel } from "./wasm-kernels";
import { SPLIT_PASS_FROM, activeThreads, runGuided } from "./thread-pool";
import {
  ADD, BLOCK, BR_IF_0, END, F32X4_ADD, F32X4_MUL, F32_ADD, I32, LOOP, MUL, V128, brIf, get, i32, load, loadF32, locals,
  moduleWithImportedMemory, set, store, storeF32, tee, voidType,
} from "./wasm-asm";

/** The sizes both tiling kernels are generated for; `scale` is 1/(fh·fw). */
type TileShape = { h: number; w: number; c: number; oh: number; ow: number; fh: number; fw: number; scale: number };

/**
 * The loop nest both tiling kernels share, over images [nStart, nEnd) (parameters 2 and 3) and each
 * image's windows: local 7 points at the window's pooled pixel (c values; parameter `pooled` is the
 * pooled tensor), local 8 at the window's top-left pixel of parameter `image`, and `pixel` handles one window.
 */
function overWindows(s: TileShape, pooled: number, image: number, pixel: number[]): number[] {
  const [N0, N1, N, OH, OW, PP, PX] = [2, 3, 4, 5, 6, 7, 8];
  return [
    ...get(N0), ...set(N), ...get(pooled), ...get(N0), ...i32(4 * s.oh * s.ow * s.c), MUL, ADD, ...set(PP),
    ...BLOCK, ...get(N), ...get(N1), 0x4e, ...brIf(0), ...LOOP,
    ...i32(0), ...set(OH), ...LOOP,
    // PX = image + 4·((n·h + oh·fh)·w·c)
    ...get(N), ...i32(s.h), MUL, ...get(OH), ...i32(s.fh), MUL, ADD, ...i32(4 * s.w * s.c), MUL, ...get(image), ADD, ...set(PX),
    ...i32(s.ow), ...set(OW), ...LOOP,
    ...pixel,
    ...get(PP), ...i32(4 * s.c), ADD, ...set(PP), ...get(PX), ...i32(4 * s.fw * s.c), ADD, ...set(PX),
    ...get(OW), ...i32(1), 0x6b, ...tee(OW), ...i32(0), 0x4a, ...BR_IF_0, END,
    ...get(OH), ...i32(1), ADD, ...tee(OH), ...i32(s.oh), 0x48, ...BR_IF_0, END,
    ...get(N), ...i32(1), ADD, ...tee(N), ...get(N1), 0x48, ...BR_IF_0, END, END, END,
  ];
}

/**
 * `p(dy, dx, nStart, nEnd)`: the SIMD form of {@link tileAvgPoolGrad} for whole windows (dx's rows
 * and columns past the last window are left as they are: the caller zeroes them): for images
 * [nStart, nEnd), each dy pixel's c values times `scale` into its fh×fw window.
 */
export function tileAvgPoolGradWasm(s: TileShape): number[] {
  const [DY, DX] = [0, 1]; // parameters 2 and 3 are the image range, locals 4-8 overWindows's
  const [PD, PX] = [7, 8];
  const [K, V] = [9, 10];
  const scaleBytes = Array.from(new Uint8Array(new Float32Array([s.scale]).buffer));
  const body: number[] = [...locals([5, I32], [2, V128]), 0x43, ...scaleBytes, 0xfd, 0x13, ...set(K)];
  const pixel: number[] = [];
  for (let v = 0; v + 4 <= s.c; v += 4) {
    pixel.push(...get(PD), ...load(4 * v), ...get(K), ...F32X4_MUL, ...set(V));
    for (let i = 0; i < s.fh; i++) for (let j = 0; j < s.fw; j++) pixel.push(...get(PX), ...get(V), ...store(4 * ((i * s.w + j) * s.c + v)));
  }
  for (let e = s.c - (s.c % 4); e < s.c; e++) {
    for (let i = 0; i < s.fh; i++) {
      for (let j = 0; j < s.fw; j++) pixel.push(...get(PX), ...get(PD), ...loadF32(4 * e), 0x43, ...scaleBytes, 0x94, ...storeF32(4 * ((i * s.w + j) * s.c + e)));
    }
  }
  body.push(...overWindows(s, DY, DX, pixel));
  return moduleWithImportedMemory(voidType(4), "p", body);
}

/**
 * `a(x, y, nStart, nEnd)`: average pooling over windows that tile x (stride = window, no padding)
 * for images [nStart, nEnd): each output value the window's values added in row-major order, times
 * `scale` (1/(fh·fw); exact for power-of-two windows, so the sum is divided as the cpu backend
 * divides it), c channels as whole vectors, then single floats.
 */
export function tileAvgPoolWasm(s: TileShape): number[] {
  const [X, Y] = [0, 1]; // parameters 2 and 3 are the image range, locals 4-8 overWindows's
  const [PY, PX] = [7, 8];
  const K = 9;
  const scaleBytes = Array.from(new Uint8Array(new Float32Array([s.scale]).buffer));
  const body: number[] = [...locals([5, I32], [1, V128]), 0x43, ...scaleBytes, 0xfd, 0x13, ...set(K)];
  const at = (i: number, j: number, e: number) => 4 * ((i * s.w + j) * s.c + e);
  const pixel: number[] = [];
  for (let v = 0; v + 4 <= s.c; v += 4) {
    pixel.push(...get(PY), ...get(PX), ...load(at(0, 0, v)));
    for (let t = 1; t < s.fh * s.fw; t++) pixel.push(...get(PX), ...load(at(Math.floor(t / s.fw), t % s.fw, v)), ...F32X4_ADD);
    pixel.push(...get(K), ...F32X4_MUL, ...store(4 * v));
  }
  for (let e = s.c - (s.c % 4); e < s.c; e++) {
    pixel.push(...get(PY), ...get(PX), ...loadF32(at(0, 0, e)));
    for (let t = 1; t < s.fh * s.fw; t++) pixel.push(...get(PX), ...loadF32(at(Math.floor(t / s.fw), t % s.fw, e)), F32_ADD);
    pixel.push(0x43, ...scaleBytes, 0x94, ...storeF32(4 * e));
  }
  body.push(...overWindows(s, Y, X, pixel));
  return moduleWithImportedMemory(voidType(4), "a", body);
}

/**
 * The wasm backend's AvgPoolGrad (@tensorflow/tfjs-backend-wasm 4.x) loops over every input pixel
 * and, for each, over every window that could hold it, with a division and bounds tests per step:
 * about 28 ms a LeNet step for the first pooling layer's gradient (256×28×28×6), a tenth of the step.
 * For windows that tile the input (stride = window, no padding: d2l's `AvgPool2d(2, 2)`), each
 * input pixel lies in at most one window, so dx is dy / (window area) copied into its window (and
 * zero in the rows and columns past the last whole window): one pass over dx, a SIMD module per shape
 * ({@link tileAvgPoolGradWasm}; the plain loop {@link tileAvgPoolGrad} where SIMD cannot run). Other pooling
 * keeps the original kernel. Images are independent, so {@link tileAvgPoolGrad} takes a range of
 * them; the SIMD module runs split by images across the thread pool (each image written by one
 * thread). Same floats as the cpu backend for power-of-two windows (dy/4 is exact).
 *
 * The forward AvgPool of tiling windows is here too ({@link tileAvgPoolWasm}): XNNPACK's pooling
 * cannot be split across threads, and ours is faster alone (LeNet's first pooling, 256×28×28×6:
 * 0.56 → 0.21 ms CPU; its second 0.175 → 0.11; best of 40). Its sums run in row-major order, so
 * about a third of its values differ from XNNPACK's in the last bit (both within one rounding of
 * the cpu backend's). Other pooling keeps the original kernels; `useSpeedups(false)` restores both.
 */

const MARK = Symbol.for("d2l.useFastWasmAvgPoolGrad");
/**
 * Poolings reading, and gradients writing, at least this many floats split their images across
 * threads (thread-pool.ts's runChunks): both of LeNet's poolings (1.2 and 0.4 M floats read) and
 * their gradients. (Split in halves, with a worker that woke late, the smaller ones lost time:
 * 0.15 → 0.25 ms a step; claimed chunks do not wait for a late worker.)
 */
const SPLIT_FROM = SPLIT_PASS_FROM;

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
    const shape = {
      h: info.inHeight, w: info.inWidth, c: info.inChannels, oh: info.outHeight, ow: info.outWidth,
      fh: info.filterHeight, fw: info.filterWidth, scale: Math.fround(1 / (info.filterHeight * info.filterWidth)),
    };
    const simd = wasmKernel(backend, `avg-pool-grad ${JSON.stringify(shape)}`, () => tileAvgPoolGradWasm(shape), "p");
    // views after the allocation, which may have grown (replaced) the memory's buffer
    const heap = backend.wasm.HEAPU8.buffer;
    const dyv = new Float32Array(heap, backend.getMemoryOffset(dy.dataId), tf.util.sizeFromShape(dy.shape));
    const dx = new Float32Array(heap, backend.getMemoryOffset(out.dataId), tf.util.sizeFromShape(input.shape));
    if (simd === undefined) {
      tileAvgPoolGrad(dyv, dx, info, 0, info.batchSize);
      return out;
    }
    // zeros only where no window reaches (rows and columns past the last whole one), then the windows
    if (info.outHeight * info.filterHeight !== info.inHeight || info.outWidth * info.filterWidth !== info.inWidth) dx.fill(0);
    // ranges of images, one a thread (thread-pool.ts): images write disjoint parts of dx
    const size = tf.util.sizeFromShape(input.shape);
    const threads = size >= SPLIT_FROM ? activeThreads() : 1;
    const [pdy, pdx] = [backend.getMemoryOffset(dy.dataId), backend.getMemoryOffset(out.dataId)];
    runGuided(backend.wasm.asm?.memory as WebAssembly.Memory, simd, info.batchSize, threads, (start, end) => [pdy, pdx, start, end]);
    return out;
  };
}

const MARK_FORWARD = Symbol.for("d2l.useFastWasmAvgPool");

/** wasm AvgPool by {@link tileAvgPoolWasm} where the windows tile the input (float32, NHWC), split by images from SPLIT_FROM input floats. */
function fastAvgPool(original: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    const { filterSize, strides, pad, dimRoundingMode } = args.attrs as unknown as tf.AvgPoolAttrs;
    const backend = args.backend as unknown as WasmBackendLike;
    if (x.dtype !== "float32" || x.shape.length !== 4) return original(args);
    const info = tf.backend_util.computePool2DInfo(x.shape as [number, number, number, number], filterSize, strides, 1, pad, dimRoundingMode);
    const { top, left, bottom, right } = info.padInfo;
    const tiles = info.strideHeight === info.filterHeight && info.strideWidth === info.filterWidth && top === 0 && left === 0 && bottom === 0 && right === 0;
    if (!tiles || info.outHeight * info.filterHeight > info.inHeight || info.outWidth * info.filterWidth > info.inWidth || info.outHeight < 1 || info.outWidth < 1) return original(args);
    const shape = {
      h: info.inHeight, w: info.inWidth, c: info.inChannels, oh: info.outHeight, ow: info.outWidth,
      fh: info.filterHeight, fw: info.filterWidth, scale: Math.fround(1 / (info.filterHeight * info.filterWidth)),
    };
    const simd = wasmKernel(backend, `avg-pool ${JSON.stringify(shape)}`, () => tileAvgPoolWasm(shape), "a");
    if (simd === undefined) return original(args);
    const out = backend.makeOutput(info.outShape, "float32");
    const threads = tf.util.sizeFromShape(x.shape) >= SPLIT_FROM ? activeThreads() : 1;
    const [px, py] = [backend.getMemoryOffset(x.dataId), backend.getMemoryOffset(out.dataId)];
    runGuided(backend.wasm?.asm?.memory as WebAssembly.Memory, simd, info.batchSize, threads, (start, end) => [px, py, start, end]);
    return out;
  };
}

/**
 * Makes the wasm backend's AvgPoolGrad copy each gradient into its window, and its AvgPool average
 * each window by a SIMD module split by images, when the windows tile the input (stride = window
 * size, no padding). Idempotent; false when the wasm kernels are not registered.
 * Not in d2l: it works around @tensorflow/tfjs-backend-wasm 4.x, see lib/src/engine/wasm-avg-pool-grad.ts.
 */
export function useFastWasmAvgPoolGrad(): boolean {
  const forward = findWasmReplacement(tf.AvgPool, MARK_FORWARD) !== undefined || replaceWasmKernel(tf.AvgPool, MARK_FORWARD, undefined, fastAvgPool);
  if (findWasmReplacement(tf.AvgPoolGrad, MARK) !== undefined) return forward;
  return replaceWasmKernel(tf.AvgPoolGrad, MARK, undefined, fastAvgPoolGrad) && forward;
}

/** Puts the original wasm AvgPool and AvgPoolGrad back; returns whether either was replaced. */
export function restoreWasmAvgPoolGrad(): boolean {
  const forward = restoreWasmKernel(tf.AvgPool, MARK_FORWARD);
  return restoreWasmKernel(tf.AvgPoolGrad, MARK) || forward;
}
