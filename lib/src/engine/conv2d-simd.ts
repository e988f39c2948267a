import * as tf from "@tensorflow/tfjs";
import {
  ADD, BLOCK, BR_IF_0, END, F32X4_ADD, F32X4_MUL, F32X4_RELAXED_MADD, I32, LOOP, MUL,
  V128, ZERO_F32X4, RELU_F32, RELU_F32X4, br, brIf, extractF32, get, i32, load, loadF32, loadSplat, locals, moduleWithImportedMemory, set, store,
  storeF32, tee, voidType,
} from "./wasm-asm";
import { relaxedSimdAvailable } from "./relaxed-simd";
import { type WasmBackendLike, type WasmKernel, findWasmReplacement, replaceWasmKernel, restoreWasmKernel, wasmFunction, wasmKernel } from "./wasm-kernels";
import { type KernelCall, SPLIT_PASS_FROM, SPLIT_PRODUCT_FROM, activeThreads, guidedRanges, runChunks, runSplit, runSplitCalls, splitRanges } from "./thread-pool";
import { packedPlan, skipsZeros } from "./packed-matmul";
import { installedPackedOptions } from "./wasm-matmul";
import { filterGradientHook } from "./wasm-conv-grad";
import { processState } from "./process-state";

/**
 * SIMD convolutions for the wasm backend, for the small-channel layers of chapter 6 (LeNet: 1 → 6
 * and 6 → 16 channels, 5×5 filters), where XNNPACK's forward pass is middling and the backend's
 * Conv2DBackpropInput is a scalar loop. NHWC, dilation 1, at most 16 output channels.
 *
 * Both kernels see a convolution as small matrix products along one row of the image: with the
 * input zero-padded (a copy, so every window is inside it), the FW·C values under one filter row
 * at output column ow are contiguous in x. So
 *
 * - forward (`convForwardWasm`): y[n, oh, ow..ow+R-1, :] = Σ_fh Σ_r x[n, oh·sh+fh, ow·sw + r] · w[fh, r, :],
 *   r over FW·C; a register block of R output columns × K channels (⌈K/4⌉ vectors), x splatted,
 *   the filter read as vectors (packed with K rounded up to 4, so loads need no tail);
 * - filter gradient (`filterGradWasm`): dw[fh, r..r+R-1, :] = Σ_{n, oh, ow} x[n, oh·sh+fh, ow·sw + r] · dy[n, oh, ow, :],
 *   a register block of R filter rows × K channels, x splatted, dy read as vectors;
 * - input gradient (stride 1): the forward kernel on dy padded by FH-1-top (etc.) with the filter
 *   flipped and its channel axes swapped (dx = dy ⋆ rot180(w)ᵀ);
 * - input gradient (any stride), as registered: the product cols = dy·Wᵀ by the backend's matMul
 *   kernel, then each row of cols added into dx under its window (`scatterWasm`).
 *
 * Each module is generated for its shape (every offset in the inner loop is a constant) and uses
 * `f32x4.relaxed_madd` where Node has relaxed SIMD, as packed-matmul.ts does.
 *
 * **What is registered** (measured in CPU time on LeNet's shapes, batch 256, AMD EPYC Zen 5, shared):
 * the forward convolution of one-channel images (LeNet's first layer: 3.4 ms against XNNPACK's 5.1);
 * the filter gradient (3-10 ms against 75-160 ms for the plain loop of wasm-conv-grad.ts); the input
 * gradient as product and scatter ({@link productInputGradient}: 5.1 ms for LeNet's second layer,
 * against tfjs's scalar Conv2DBackpropInput's 45, XNNPACK's Conv2D on dy with the flipped filter's
 * 9.7 and our SIMD forward's 23 there, both of which multiply the padding's zeros too). With more
 * input channels the forward kernel is not registered: single-threaded, XNNPACK's Conv2D is faster
 * on LeNet's second layer (5.4 against 7.4 ms). {@link simdConv2d} and {@link simdInputGradient} are
 * kept, tested, for the thread pool (a worker cannot call into XNNPACK's module, but can run ours on a
 * range of images).
 */

/** Convolutions of at least this many multiply-adds split their images across threads (as packed-matmul.ts's products). */
const SPLIT_FROM = SPLIT_PRODUCT_FROM;

/**
 * Images whose product dy·Wᵀ is computed and scattered at a time, so the product (1.9 MB for 32 of
 * LeNet's second layer, 15 MB for the whole batch) is still in cache when the scatter reads it:
 * 5.1-5.2 → 4.3-4.4 ms CPU for LeNet's batch of 256 (16 and 64 images: 4.6).
 */
const SCATTER_CHUNK = 32;

/** Passes over memory (a padding copy alone) of at least this many floats split their images across threads. */
export const SPLIT_ELEMENTS_FROM = SPLIT_PASS_FROM;

/** The wasm backend's memory (shared where initBackend made it so; then runSplit uses threads). */
const memoryOf = (backend: WasmBackendLike) => backend.wasm?.asm?.memory as WebAssembly.Memory;

/**
 * Output columns the filter gradient's inner loop takes at a time: 4 where neighbouring columns
 * share x values (stride · channels below the block's filter rows: LeNet's first layer, 0.47 → 0.255
 * ms per 32 images), else 1 (its second layer: unrolled, 0.30 → 0.47-0.60).
 */
const filterUnroll = (s: ConvShape, rows: number) => (s.sw * s.c < rows ? 4 : 1);
/** Images per partial sum of the filter gradient (fixed, so the result does not depend on the split). */
export const FILTER_CHUNK = 32;
/** Chunks of images (FILTER_CHUNK or SCATTER_CHUNK) a thread takes in one job (a worker's job has a bounded length). */
const MAX_CHUNKS = 16;
/**
 * Chunks of images a guided split (thread-pool.ts's guidedRanges) makes at most: a worker's job lists
 * every chunk's calls (a bounded length), and the last, smallest chunks are at least 1/64 of the batch.
 */
const MAX_GUIDED = 64;
/** The largest number of output channels the kernels handle (4 vectors). */
export const MAX_CHANNELS = 16;

/** i32.lt_s, i32.ge_s, i32.gt_s, i32.sub */
const LT_S = 0x48;

const F32X4_REPLACE_LANE = (lane: number) => [0xfd, 0x20, lane];
/** v128.load32_zero / v128.load64_zero: one or two floats into the low lanes, zeros above. */
const load32Zero = (offset: number) => [0xfd, 0x5c, 0x02, ...leb(offset)];
const load64Zero = (offset: number) => [0xfd, 0x5d, 0x03, ...leb(offset)];
function leb(n: number): number[] {
  return n < 128 ? [n] : [(n & 127) | 128, ...leb(n >>> 7)];
}

/** The vectors of `k` channels, the register block's rows for them (accumulators + operands within 16 registers). */
const vectorsOf = (k: number) => Math.ceil(k / 4);
export const blockRows = (k: number) => Math.max(1, Math.floor((13 - vectorsOf(k)) / vectorsOf(k)));

/**
 * The forward kernel's register block (output columns). Neighbouring columns share x values when
 * the input has one channel and stride 1; then up to 14 accumulators (LeNet's first layer: 7
 * columns, 0.232 → 0.205 ms per 32 images against 5; 0.32 before the splats were shared);
 * otherwise R·V accumulators within 13 registers (LeNet's second layer: 2 columns, 3 and 4 slower).
 */
export const forwardBlock = (s: ConvShape) =>
  s.c * s.sw === 1 ? Math.max(blockRows(s.k), Math.floor(14 / vectorsOf(s.k))) : blockRows(s.k);

/** What a forward module computes (its constants). */
export interface ConvShape {
  /** The (padded) input's height and width, channels. */
  hp: number;
  wp: number;
  c: number;
  /** The output's height, width, channels. */
  oh: number;
  ow: number;
  k: number;
  fh: number;
  fw: number;
  sh: number;
  sw: number;
  relaxed: boolean;
}

/** The forward kernel's options. */
export interface ForwardShape extends ConvShape {
  bias: boolean;
  relu: boolean;
  /** Output columns in a register block; by default {@link forwardBlock}. */
  rows?: number;
  /**
   * Channel vectors a block computes at once (the block then runs once for each group of them); by
   * default all (LeNet's second layer: 2 columns × 4 vectors 1.08 ms per 64 images; 4 × 2: 1.14, 5 × 1: 1.03-1.2).
   */
  vectors?: number;
}

const madd = (relaxed: boolean, a: number, b: number, c: number) =>
  relaxed ? [...get(a), ...get(b), ...get(c), ...F32X4_RELAXED_MADD] : [...get(c), ...get(a), ...get(b), ...F32X4_MUL, ...F32X4_ADD];

/** Stores vector `v` of an accumulator (channels 4v..) at `ptr` + `offset`, whole or lane by lane for the last, partial one. */
function storeChannels(ptr: number, accLocal: number, offset: number, v: number, k: number, epilogue: (lane: boolean) => number[] = () => []): number[] {
  if (4 * v + 4 <= k) return [...get(ptr), ...get(accLocal), ...epilogue(false), ...store(offset)];
  const out: number[] = [];
  for (let lane = 0; 4 * v + lane < k; lane++) {
    out.push(...get(ptr), ...get(accLocal), ...extractF32(lane), ...epilogue(true), ...storeF32(offset + 4 * lane));
  }
  return out;
}

/**
 * Bytecode zeroing images [local n0, local n1) of the tensor at local `base` (`perImage` bytes each):
 * local `p` walks from the first byte to local `end`, whole vectors, then single floats.
 */
function zeroImages(base: number, n0: number, n1: number, perImage: number, p: number, end: number): number[] {
  return [
    ...get(base), ...get(n0), ...i32(perImage), MUL, ADD, ...set(p),
    ...get(base), ...get(n1), ...i32(perImage), MUL, ADD, ...set(end),
    ...BLOCK, ...LOOP,
    ...get(p), ...i32(16), ADD, ...get(end), 0x4b, ...brIf(1), // while (p + 16 <= end)
    ...get(p), ...ZERO_F32X4, ...store(0),
    ...get(p), ...i32(16), ADD, ...set(p), ...br(0), END, END,
    ...BLOCK, ...LOOP,
    ...get(p), ...get(end), 0x4f, ...brIf(1), // while (p < end)
    ...get(p), 0x43, 0, 0, 0, 0, ...storeF32(0),
    ...get(p), ...i32(4), ADD, ...set(p), ...br(0), END, END,
  ];
}

/**
 * `f(x, w, bias, y, nStart, nEnd)`: y[n] = conv(x[n], w) (+ bias) (relu) for n in [nStart, nEnd):
 * x [N, hp, wp, c] (already padded), w packed as [fh, fw·c, kp] (kp = 4⌈k/4⌉, zeros past k),
 * bias kp floats, y [N, oh, ow, k].
 */
export function convForwardWasm(s: ForwardShape): number[] {
  const V = vectorsOf(s.k);
  const R = s.rows ?? forwardBlock(s);
  const kp = 4 * V;
  const rowsPerFilterRow = s.fw * s.c;
  const [X, W, BIAS, Y, N0, N1] = [0, 1, 2, 3, 4, 5];
  const [N, OH, PXROW, PY, PX, PW, FH, BLK] = [6, 7, 8, 9, 10, 11, 12, 13];
  const VB = Math.min(V, s.vectors ?? V);
  const SPLAT = 14; // v128: a splat, R × VB accumulators, then the filter row's rowsPerFilterRow × VB vectors
  const acc = (j: number, v: number) => SPLAT + 1 + j * VB + v;
  const wv = (r: number, v: number) => SPLAT + 1 + R * VB + r * VB + v;
  /** Channel vectors [v0, v1) of `rows` output columns from PXROW, written at PY. */
  const group = (rows: number, v0: number, v1: number) => {
    const out: number[] = [];
    for (let j = 0; j < rows; j++) {
      for (let v = v0; v < v1; v++) out.push(...(s.bias ? [...get(BIAS), ...load(16 * v)] : ZERO_F32X4), ...set(acc(j, v - v0)));
    }
    out.push(...get(PXROW), ...set(PX), ...get(W), ...set(PW), ...i32(s.fh), ...set(FH));
    out.push(...LOOP);
    // Output column j under filter tap r reads x at u = j·sw·c + r: walking u, each x value is
    // splatted once for every (j, r) that shares it (with stride 1 and one channel, R + FW - 1
    // splats instead of R·FW), and each filter vector is loaded at its first use and kept (V8
    // keeps what fits in registers). Each accumulator still adds its taps in order of r.
    const step = s.sw * s.c;
    const loaded = new Set<number>();
    for (let u = 0; u <= (rows - 1) * step + rowsPerFilterRow - 1; u++) {
      const js = Array.from({ length: rows }, (_, j) => j).filter((j) => u - j * step >= 0 && u - j * step < rowsPerFilterRow);
      if (js.length === 0) continue;
      out.push(...get(PX), ...loadSplat(4 * u), ...set(SPLAT));
      for (const j of js) {
        const r = u - j * step;
        for (let v = v0; v < v1; v++) {
          if (!loaded.has(wv(r, v - v0))) {
            out.push(...get(PW), ...load(4 * (r * kp + 4 * v)), ...set(wv(r, v - v0)));
            loaded.add(wv(r, v - v0));
          }
          out.push(...madd(s.relaxed, SPLAT, wv(r, v - v0), acc(j, v - v0)), ...set(acc(j, v - v0)));
        }
      }
    }
    out.push(...get(PX), ...i32(4 * s.wp * s.c), ADD, ...set(PX));
    out.push(...get(PW), ...i32(4 * rowsPerFilterRow * kp), ADD, ...set(PW));
    out.push(...get(FH), ...i32(1), 0x6b, ...tee(FH), ...i32(0), 0x4a, ...BR_IF_0, END); // while (--fh > 0)
    const relu = (lane: boolean) => (!s.relu ? [] : lane ? RELU_F32 : RELU_F32X4);
    for (let j = 0; j < rows; j++) {
      for (let v = v0; v < v1; v++) out.push(...storeChannels(PY, acc(j, v - v0), 4 * (j * s.k + 4 * v), v, s.k, relu));
    }
    return out;
  };
  /** One block of `rows` output columns from PXROW, written at PY, a group of VB channel vectors at a time; advances both. */
  const block = (rows: number) => {
    const out: number[] = [];
    for (let v0 = 0; v0 < V; v0 += VB) out.push(...group(rows, v0, Math.min(V, v0 + VB)));
    out.push(...get(PXROW), ...i32(4 * rows * s.sw * s.c), ADD, ...set(PXROW));
    out.push(...get(PY), ...i32(4 * rows * s.k), ADD, ...set(PY));
    return out;
  };
  const fullBlocks = Math.floor(s.ow / R);
  const rest = s.ow % R;
  const body = [
    ...locals([8, I32], [1 + R * VB + rowsPerFilterRow * VB, V128]),
    ...get(N0), ...set(N),
    ...BLOCK, ...get(N), ...get(N1), 0x4e, ...brIf(0), // if (n >= nEnd) return
    ...LOOP,
    ...i32(0), ...set(OH),
    ...get(Y), ...get(N), ...i32(4 * s.oh * s.ow * s.k), MUL, ADD, ...set(PY),
    ...LOOP, // each output row
    ...get(X), ...get(N), ...i32(s.hp), MUL, ...get(OH), ...i32(s.sh), MUL, ADD, ...i32(4 * s.wp * s.c), MUL, ADD, ...set(PXROW),
    ...(fullBlocks > 0 ? [...i32(fullBlocks), ...set(BLK), ...LOOP, ...block(R), ...get(BLK), ...i32(1), 0x6b, ...tee(BLK), ...i32(0), 0x4a, ...BR_IF_0, END] : []),
    ...(rest > 0 ? block(rest) : []),
    ...get(OH), ...i32(1), ADD, ...tee(OH), ...i32(s.oh), LT_S, ...BR_IF_0, END,
    ...get(N), ...i32(1), ADD, ...tee(N), ...get(N1), LT_S, ...BR_IF_0, END,
    END,
    END,
  ];
  return moduleWithImportedMemory(voidType(6), "f", body);
}

/**
 * `g(x, dy, dw, nStart, nEnd)`: dw = Σ_{n in [nStart, nEnd)} (filter gradient of image n), written
 * (not added) as [fh, fw, c, k]: x [N, hp, wp, c] (already padded), dy [N, oh, ow, k].
 */
export function filterGradWasm(s: ConvShape & { /** columns a step of the inner loop takes (by default as measured best) */ unroll?: number }): number[] {
  const V = vectorsOf(s.k);
  const R = Math.min(blockRows(s.k), s.fw * s.c);
  const U = Math.min(s.unroll ?? filterUnroll(s, R), s.ow);
  const rowsPerFilterRow = s.fw * s.c;
  const [X, DY, DW, N0, N1] = [0, 1, 2, 3, 4];
  const [N, OH, PX, PD, OW, FH, R0, PDW, BLK] = [5, 6, 7, 8, 9, 10, 11, 12, 13];
  // v128 locals: R × V accumulators, then U × V dy vectors, then a splat for each x offset of a group of U columns
  const acc = (j: number, v: number) => 14 + j * V + v;
  const dv = (t: number, v: number) => 14 + R * V + t * V + v;
  const splatOf = (u: number) => 14 + R * V + U * V + u;
  const splats = (U - 1) * s.sw * s.c + R;
  /** dy's vector v at PD + t positions: whole, or the last channels with zeros above (never reading past the position's k floats). */
  const loadDy = (t: number, v: number) => {
    const at = 4 * s.k * t + 16 * v;
    const left = s.k - 4 * v;
    if (left >= 4) return [...get(PD), ...load(at)];
    if (left === 1) return [...get(PD), ...load32Zero(at)];
    if (left === 2) return [...get(PD), ...load64Zero(at)];
    return [...get(PD), ...load64Zero(at), ...get(PD), ...loadF32(at + 8), ...F32X4_REPLACE_LANE(2)];
  };
  /**
   * `cols` output columns at PX / PD (U, or the row's last few) for `rows` filter rows: every
   * accumulator adds x·dy in order of the column, as one column at a time would; an x value that two
   * (column, filter row) pairs share is splatted once (stride 1, one channel: U + R - 1 splats, not U·R).
   */
  const columns = (cols: number, rows: number) => {
    const out: number[] = [];
    const splatted = new Set<number>();
    for (let t = 0; t < cols; t++) {
      for (let v = 0; v < V; v++) out.push(...loadDy(t, v), ...set(dv(t, v)));
      for (let j = 0; j < rows; j++) {
        const u = t * s.sw * s.c + j;
        if (!splatted.has(u)) out.push(...get(PX), ...loadSplat(4 * u), ...set(splatOf(u)));
        splatted.add(u);
        for (let v = 0; v < V; v++) out.push(...madd(s.relaxed, splatOf(u), dv(t, v), acc(j, v)), ...set(acc(j, v)));
      }
    }
    out.push(...get(PX), ...i32(4 * cols * s.sw * s.c), ADD, ...set(PX));
    out.push(...get(PD), ...i32(4 * cols * s.k), ADD, ...set(PD));
    return out;
  };
  /** Filter rows R0..R0+rows-1 of filter row FH: the sum over every image, row and column; stored at PDW; R0 and PDW advance. */
  const block = (rows: number) => {
    const out: number[] = [];
    for (let j = 0; j < rows; j++) for (let v = 0; v < V; v++) out.push(...ZERO_F32X4, ...set(acc(j, v)));
    out.push(...get(N0), ...set(N));
    out.push(...BLOCK, ...get(N), ...get(N1), 0x4e, ...brIf(0), ...LOOP);
    out.push(...i32(0), ...set(OH));
    out.push(...get(DY), ...get(N), ...i32(4 * s.oh * s.ow * s.k), MUL, ADD, ...set(PD));
    out.push(...LOOP); // each output row
    // PX = x + 4·(((n·hp + oh·sh + fh)·wp)·c + r0)
    out.push(...get(N), ...i32(s.hp), MUL, ...get(OH), ...i32(s.sh), MUL, ADD, ...get(FH), ADD, ...i32(4 * s.wp * s.c), MUL);
    out.push(...get(X), ADD, ...get(R0), ...i32(4), MUL, ADD, ...set(PX));
    const groups = Math.floor(s.ow / U);
    if (groups > 0) {
      out.push(...i32(groups), ...set(OW), ...LOOP); // each group of U output columns
      out.push(...columns(U, rows));
      out.push(...get(OW), ...i32(1), 0x6b, ...tee(OW), ...i32(0), 0x4a, ...BR_IF_0, END);
    }
    if (s.ow % U > 0) out.push(...columns(s.ow % U, rows));
    out.push(...get(OH), ...i32(1), ADD, ...tee(OH), ...i32(s.oh), LT_S, ...BR_IF_0, END);
    out.push(...get(N), ...i32(1), ADD, ...tee(N), ...get(N1), LT_S, ...BR_IF_0, END, END);
    for (let j = 0; j < rows; j++) {
      for (let v = 0; v < V; v++) out.push(...storeChannels(PDW, acc(j, v), 4 * (j * s.k + 4 * v), v, s.k));
    }
    out.push(...get(R0), ...i32(rows), ADD, ...set(R0));
    out.push(...get(PDW), ...i32(4 * rows * s.k), ADD, ...set(PDW));
    return out;
  };
  const fullBlocks = Math.floor(rowsPerFilterRow / R);
  const rest = rowsPerFilterRow % R;
  const body = [
    ...locals([9, I32], [R * V + U * V + splats, V128]),
    ...get(DW), ...set(PDW), ...i32(0), ...set(FH),
    ...LOOP, // each filter row
    ...i32(0), ...set(R0),
    ...(fullBlocks > 0 ? [...i32(fullBlocks), ...set(BLK), ...LOOP, ...block(R), ...get(BLK), ...i32(1), 0x6b, ...tee(BLK), ...i32(0), 0x4a, ...BR_IF_0, END] : []),
    ...(rest > 0 ? block(rest) : []),
    ...get(FH), ...i32(1), ADD, ...tee(FH), ...i32(s.fh), LT_S, ...BR_IF_0, END,
    END,
  ];
  return moduleWithImportedMemory(voidType(5), "g", body);
}

type Forward = (x: number, w: number, bias: number, y: number, n0: number, n1: number) => void;
type FilterGrad = (x: number, dy: number, dw: number, n0: number, n1: number) => void;

const heapOf = (backend: WasmBackendLike) => {
  const heap = backend.wasm?.HEAPU8;
  if (heap === undefined) throw new Error("d2l's SIMD convolutions: the wasm backend's memory is not reachable");
  return heap.buffer;
};
const f32 = (backend: WasmBackendLike, t: tf.TensorInfo, length = tf.util.sizeFromShape(t.shape)) =>
  new Float32Array(heapOf(backend), backend.getMemoryOffset(t.dataId), length);

interface Padding { top: number; bottom: number; left: number; right: number }

/** What a padding module copies (its constants): an image's height, width, channels, and where it goes in the padded one. */
export interface PadShape { h: number; w: number; c: number; hp: number; wp: number; top: number; left: number }

/**
 * `p(x, xp, nStart, nEnd)`: images [nStart, nEnd) of x [N, h, w, c] into xp [N, hp, wp, c] at
 * (top, left), zeros around them: the padded images zeroed (whole vectors, then single floats), then
 * each row of w·c floats copied. Images are independent (the thread pool splits them).
 */
export function padWasm(s: PadShape): number[] {
  const [X, XP, N0, N1] = [0, 1, 2, 3];
  const [N, Y, PS, PD] = [4, 5, 6, 7];
  const row = s.w * s.c;
  const copyRow: number[] = [];
  for (let e = 0; e + 4 <= row; e += 4) copyRow.push(...get(PD), ...get(PS), ...load(4 * e), ...store(4 * e));
  for (let e = row - (row % 4); e < row; e++) copyRow.push(...get(PD), ...get(PS), ...loadF32(4 * e), ...storeF32(4 * e));
  const perImage = 4 * s.hp * s.wp * s.c;
  const body = [
    ...locals([4, I32]),
    // xp[nStart..nEnd) = 0
    ...zeroImages(XP, N0, N1, perImage, PD, PS),
    ...get(N0), ...set(N),
    ...BLOCK, ...get(N), ...get(N1), 0x4e, ...brIf(0),
    ...LOOP, ...i32(0), ...set(Y),
    ...LOOP,
    // PS = x + 4·((n·h + y)·w·c); PD = xp + 4·(((n·hp + y + top)·wp + left)·c)
    ...get(N), ...i32(s.h), MUL, ...get(Y), ADD, ...i32(4 * row), MUL, ...get(X), ADD, ...set(PS),
    ...get(N), ...i32(s.hp), MUL, ...get(Y), ADD, ...i32(s.top), ADD, ...i32(4 * s.wp * s.c), MUL, ...get(XP), ADD, ...i32(4 * s.left * s.c), ADD, ...set(PD),
    ...copyRow,
    ...get(Y), ...i32(1), ADD, ...tee(Y), ...i32(s.h), LT_S, ...BR_IF_0, END,
    ...get(N), ...i32(1), ADD, ...tee(N), ...get(N1), LT_S, ...BR_IF_0, END,
    END,
    END,
  ];
  return moduleWithImportedMemory(voidType(4), "p", body);
}

/**
 * x [n, h, w, c] copied into a fresh tensor [n, h + top + bottom, w + left + right, c] with zeros
 * around it (the caller disposes it); x itself when there is no padding. By {@link padWasm}, split
 * by images across threads from 2¹⁸ floats (LeNet's first layer, twice a step: 0.36 ms in the
 * JavaScript loop, 0.043 in the module, CPU); the loop remains where the module cannot be made.
 */
function padded(backend: WasmBackendLike, x: tf.TensorInfo, p: Padding): { info: tf.TensorInfo; temp: boolean } {
  const plan = paddingPlan(backend, x, p);
  if (plan.pad !== undefined) {
    const n = x.shape[0];
    const threads = tf.util.sizeFromShape(plan.info.shape) >= SPLIT_ELEMENTS_FROM ? activeThreads() : 1;
    const ranges = guidedRanges(n, threads, 1, Math.ceil(n / MAX_GUIDED));
    runChunks(memoryOf(backend), ranges.length, threads, (c) => [plan.pad!(ranges[c][0], ranges[c][1])]);
  }
  return plan;
}

/**
 * The padded tensor of {@link padded}, allocated, and the call that fills images [start, end) of it
 * (for the caller to run on each thread's images before the kernel that reads them: one hand-off
 * for both); undefined when there is nothing to fill (no padding) or it was filled here already
 * (no module: the JavaScript loop).
 */
function paddingPlan(backend: WasmBackendLike, x: tf.TensorInfo, p: Padding): { info: tf.TensorInfo; temp: boolean; pad?: (start: number, end: number) => KernelCall } {
  if (p.top === 0 && p.bottom === 0 && p.left === 0 && p.right === 0) return { info: x, temp: false };
  const [n, h, w, c] = x.shape;
  const hp = h + p.top + p.bottom;
  const wp = w + p.left + p.right;
  const out = backend.makeOutput([n, hp, wp, c], "float32");
  const shape: PadShape = { h, w, c, hp, wp, top: p.top, left: p.left };
  const pad = wasmKernel(backend, `conv-pad ${JSON.stringify(shape)}`, () => padWasm(shape), "p");
  if (pad !== undefined) {
    const [px, pxp] = [backend.getMemoryOffset(x.dataId), backend.getMemoryOffset(out.dataId)];
    return { info: out, temp: true, pad: (start, end) => [pad, [px, pxp, start, end]] };
  }
  const src = f32(backend, x);
  const dst = f32(backend, out);
  dst.fill(0);
  const row = w * c;
  for (let i = 0; i < n; i++) {
    for (let y = 0; y < h; y++) {
      const from = (i * h + y) * row;
      dst.set(src.subarray(from, from + row), ((i * hp + y + p.top) * wp + p.left) * c);
    }
  }
  return { info: out, temp: true };
}

/** Whether the kernels handle this convolution: NHWC float32, dilation 1, 1..16 output channels, an output of at least one pixel. */
function handles(info: tf.backend_util.Conv2DInfo): boolean {
  return info.dataFormat === "channelsLast" && info.dilationHeight === 1 && info.dilationWidth === 1 &&
    info.outChannels >= 1 && info.outChannels <= MAX_CHANNELS && info.outHeight >= 1 && info.outWidth >= 1 && info.batchSize >= 1 &&
    info.padInfo.top >= 0 && info.padInfo.left >= 0 && info.padInfo.bottom >= 0 && info.padInfo.right >= 0;
}

/** The padding that puts every window of `info` inside the input: tfjs's, and more at the bottom/right when windows need it ("ceil" rounding). */
function paddingOf(info: tf.backend_util.Conv2DInfo): Padding {
  const { top, left } = info.padInfo;
  const needH = (info.outHeight - 1) * info.strideHeight + info.filterHeight;
  const needW = (info.outWidth - 1) * info.strideWidth + info.filterWidth;
  return { top, left, bottom: Math.max(0, needH - info.inHeight - top), right: Math.max(0, needW - info.inWidth - left) };
}

/** The settings of the installed kernels (shared through the kernel registry's marks). */
interface Settings { relaxed: boolean }

/**
 * The forward convolution of x [n, h, w, c] with w [fh, fw, c, k] (+ bias) (relu), by the SIMD
 * kernel, or undefined where it does not handle the case.
 */
export function simdConv2d(
  backend: WasmBackendLike, x: tf.TensorInfo, filter: tf.TensorInfo, info: tf.backend_util.Conv2DInfo,
  epilogue: { bias?: tf.TensorInfo; relu?: boolean } = {}, settings: Settings = { relaxed: true },
): tf.TensorInfo | undefined {
  if (!handles(info) || x.dtype !== "float32" || filter.dtype !== "float32") return undefined;
  const { bias, relu = false } = epilogue;
  if (bias !== undefined && (bias.dtype !== "float32" || tf.util.sizeFromShape(bias.shape) !== info.outChannels)) return undefined;
  const p = paddingOf(info);
  const k = info.outChannels;
  const kp = 4 * vectorsOf(k);
  const shape: ForwardShape = {
    hp: info.inHeight + p.top + p.bottom, wp: info.inWidth + p.left + p.right, c: info.inChannels, oh: info.outHeight, ow: info.outWidth,
    k, fh: info.filterHeight, fw: info.filterWidth, sh: info.strideHeight, sw: info.strideWidth, relaxed: settings.relaxed && relaxedSimdAvailable(),
    bias: bias !== undefined, relu,
  };
  const key = `conv ${JSON.stringify(shape)}`;
  const f = wasmKernel(backend, key, () => convForwardWasm(shape), "f");
  if (f === undefined) return undefined;
  const xp = paddingPlan(backend, x, p);
  const packed = backend.makeOutput([info.filterHeight * info.filterWidth * info.inChannels * kp + kp], "float32");
  const out = backend.makeOutput(info.outShape, "float32");
  {
    const src = f32(backend, filter);
    const dst = f32(backend, packed);
    dst.fill(0);
    const rows = info.filterHeight * info.filterWidth * info.inChannels;
    for (let r = 0; r < rows; r++) dst.set(src.subarray(r * k, r * k + k), r * kp);
    if (bias !== undefined) dst.set(f32(backend, bias), rows * kp);
  }
  const off = (t: tf.TensorInfo) => backend.getMemoryOffset(t.dataId);
  const pw = off(packed);
  // chunks of images claimed by the threads (thread-pool.ts), each padding its images and convolving them: each
  // image's output is computed as on one thread
  const [px, pbias, py] = [off(xp.info), pw + 4 * info.filterHeight * info.filterWidth * info.inChannels * kp, off(out)];
  const work = info.batchSize * info.outHeight * info.outWidth * info.filterHeight * info.filterWidth * info.inChannels * k;
  const threads = work >= SPLIT_FROM ? activeThreads() : 1;
  const ranges = guidedRanges(info.batchSize, threads, 1, Math.ceil(info.batchSize / MAX_GUIDED));
  runChunks(memoryOf(backend), ranges.length, threads, (c) => {
    const [start, end] = ranges[c];
    return [...(xp.pad ? [xp.pad(start, end)] : []), [f, [px, pw, pbias, py, start, end]]];
  });
  backend.disposeData(packed.dataId);
  if (xp.temp) backend.disposeData(xp.info.dataId);
  return out;
}

/** The filter gradient by the SIMD kernel (per fixed chunks of images, added in order), or undefined where it does not handle the case. */
export function simdFilterGradient(
  backend: WasmBackendLike, x: tf.TensorInfo, dy: tf.TensorInfo, info: tf.backend_util.Conv2DInfo, settings: Settings = { relaxed: true },
): tf.TensorInfo | undefined {
  if (!handles(info) || x.dtype !== "float32" || dy.dtype !== "float32") return undefined;
  const p = paddingOf(info);
  const shape: ConvShape = {
    hp: info.inHeight + p.top + p.bottom, wp: info.inWidth + p.left + p.right, c: info.inChannels, oh: info.outHeight, ow: info.outWidth,
    k: info.outChannels, fh: info.filterHeight, fw: info.filterWidth, sh: info.strideHeight, sw: info.strideWidth,
    relaxed: settings.relaxed && relaxedSimdAvailable(),
  };
  const key = `conv-filter-grad ${JSON.stringify(shape)}`;
  const g = wasmKernel(backend, key, () => filterGradWasm(shape), "g");
  if (g === undefined) return undefined;
  const size = info.filterHeight * info.filterWidth * info.inChannels * info.outChannels;
  const chunks = Math.ceil(info.batchSize / FILTER_CHUNK);
  const xp = paddingPlan(backend, x, p);
  const partials = chunks > 1 ? backend.makeOutput([chunks * size], "float32") : undefined;
  const out = backend.makeOutput(info.filterShape, "float32");
  const off = (t: tf.TensorInfo) => backend.getMemoryOffset(t.dataId);
  const [px, pdy] = [off(xp.info), off(dy)];
  if (partials === undefined) {
    runSplitCalls(memoryOf(backend), 1, () => [...(xp.pad ? [xp.pad(0, info.batchSize)] : []), [g, [px, pdy, off(out), 0, info.batchSize]]]);
  } else {
    const base = off(partials);
    // each chunk's partial sum by one thread (thread-pool.ts): the threads claim chunks, each padding the chunk's images
    // and summing them (one hand-off for the whole gradient, in rounds of at most MAX_CHUNKS chunks a thread: a
    // worker's job has a bounded length)
    const threads = activeThreads();
    const images = (i: number) => Math.min(info.batchSize, i * FILTER_CHUNK);
    for (let r0 = 0; r0 < chunks; r0 += threads * MAX_CHUNKS) {
      const round = Math.min(chunks - r0, threads * MAX_CHUNKS);
      runChunks(memoryOf(backend), round, threads, (c) => {
        const i = r0 + c;
        return [...(xp.pad ? [xp.pad(images(i), images(i + 1))] : []), [g, [px, pdy, base + 4 * size * i, images(i), images(i + 1)]]];
      });
    }
    // the partial sums, added in chunk order (float32 rounding at each add)
    const sums = f32(backend, partials);
    const dw = f32(backend, out);
    dw.set(sums.subarray(0, size));
    for (let i = 1; i < chunks; i++) {
      for (let e = 0; e < size; e++) dw[e] += sums[i * size + e];
    }
    backend.disposeData(partials.dataId);
  }
  if (xp.temp) backend.disposeData(xp.info.dataId);
  return out;
}

/**
 * The input gradient dx [n, h, w, c] of a stride-1 convolution: the forward kernel on dy padded by
 * (FH-1-top, FW-1-left, ...) with the filter flipped and its channel axes swapped; undefined where
 * it does not apply (strides, dilation, more than 16 input channels, padding beyond the filter).
 */
export function simdInputGradient(
  backend: WasmBackendLike, dy: tf.TensorInfo, filter: tf.TensorInfo, info: tf.backend_util.Conv2DInfo, settings: Settings = { relaxed: true },
): tf.TensorInfo | undefined {
  const { filterHeight: FH, filterWidth: FW, inChannels: C, outChannels: K } = info;
  if (info.strideHeight !== 1 || info.strideWidth !== 1 || info.dilationHeight !== 1 || info.dilationWidth !== 1) return undefined;
  if (info.dataFormat !== "channelsLast" || C > MAX_CHANNELS || dy.dtype !== "float32" || filter.dtype !== "float32") return undefined;
  const top = FH - 1 - info.padInfo.top;
  const left = FW - 1 - info.padInfo.left;
  const bottom = info.inHeight + info.padInfo.top - info.outHeight;
  const right = info.inWidth + info.padInfo.left - info.outWidth;
  if (top < 0 || left < 0 || bottom < 0 || right < 0) return undefined;
  // rot180(w) with c and k swapped: wt[FH-1-a, FW-1-b, co, ci] = w[a, b, ci, co]
  const wt = backend.makeOutput([FH, FW, K, C], "float32");
  {
    const src = f32(backend, filter);
    const dst = f32(backend, wt);
    for (let a = 0; a < FH; a++) {
      for (let b = 0; b < FW; b++) {
        for (let ci = 0; ci < C; ci++) {
          for (let co = 0; co < K; co++) dst[(((FH - 1 - a) * FW + (FW - 1 - b)) * K + co) * C + ci] = src[((a * FW + b) * C + ci) * K + co];
        }
      }
    }
  }
  const dyp = padded(backend, dy, { top, left, bottom, right });
  const transposed = tf.backend_util.computeConv2DInfo(
    dyp.info.shape as [number, number, number, number], [FH, FW, K, C], 1, 1, "valid", undefined, false, "channelsLast");
  const out = simdConv2d(backend, dyp.info, wt, transposed, {}, settings);
  backend.disposeData(wt.dataId);
  if (dyp.temp) backend.disposeData(dyp.info.dataId);
  return out;
}

/** What a scatter module computes (its constants). */
export interface ScatterShape {
  /** The (padded) gradient's height and width, channels; the output's height and width; the filter's. */
  hp: number;
  wp: number;
  c: number;
  oh: number;
  ow: number;
  fh: number;
  fw: number;
  sh: number;
  sw: number;
}

/**
 * `s(cols, dx, nStart, nEnd)`: for images n in [nStart, nEnd), adds each row of cols [N·oh·ow, fh·fw·c]
 * (the product dy·Wᵀ: what output pixel (oh, ow) sends back through each filter tap) into the
 * (padded) input gradient dx [N, hp, wp, c] under its window: for each filter row, fw·c contiguous
 * floats. dx's images [nStart, nEnd) are zeroed first. Images write disjoint parts of dx; within
 * one, additions run in a fixed order (so the thread pool splits by images).
 */
export function scatterWasm(s: ScatterShape): number[] {
  const seg = s.fw * s.c;
  const [COLS, DX, N0, N1] = [0, 1, 2, 3];
  const [N, OH, FH, OW, PD, PC] = [4, 5, 6, 7, 8, 9];
  const add: number[] = [];
  for (let v = 0; v + 4 <= seg; v += 4) add.push(...get(PD), ...get(PD), ...load(4 * v), ...get(PC), ...load(4 * v), ...F32X4_ADD, ...store(4 * v));
  for (let e = seg - (seg % 4); e < seg; e++) add.push(...get(PD), ...get(PD), ...loadF32(4 * e), ...get(PC), ...loadF32(4 * e), 0x92, ...storeF32(4 * e));
  const perImage = 4 * s.hp * s.wp * s.c; // bytes of dx an image
  const body = [
    ...locals([6, I32]),
    ...get(N0), ...set(N),
    ...BLOCK, ...get(N), ...get(N1), 0x4e, ...brIf(0),
    // dx[nStart..nEnd) = 0
    ...zeroImages(DX, N0, N1, perImage, PD, PC),
    ...LOOP, ...i32(0), ...set(OH),
    ...LOOP, ...i32(0), ...set(FH),
    ...LOOP,
    // PD = dx + 4·((n·hp + oh·sh + fh)·wp·c); PC = cols + 4·(((n·oh + oh)·ow)·fh·seg + fh·seg)
    ...get(N), ...i32(s.hp), MUL, ...get(OH), ...i32(s.sh), MUL, ADD, ...get(FH), ADD, ...i32(4 * s.wp * s.c), MUL, ...get(DX), ADD, ...set(PD),
    ...get(N), ...i32(s.oh), MUL, ...get(OH), ADD, ...i32(4 * s.ow * s.fh * seg), MUL, ...get(FH), ...i32(4 * seg), MUL, ADD, ...get(COLS), ADD, ...set(PC),
    ...i32(s.ow), ...set(OW), ...LOOP,
    ...add,
    ...get(PD), ...i32(4 * s.sw * s.c), ADD, ...set(PD),
    ...get(PC), ...i32(4 * s.fh * seg), ADD, ...set(PC),
    ...get(OW), ...i32(1), 0x6b, ...tee(OW), ...i32(0), 0x4a, ...BR_IF_0, END,
    ...get(FH), ...i32(1), ADD, ...tee(FH), ...i32(s.fh), LT_S, ...BR_IF_0, END,
    ...get(OH), ...i32(1), ADD, ...tee(OH), ...i32(s.oh), LT_S, ...BR_IF_0, END,
    ...get(N), ...i32(1), ADD, ...tee(N), ...get(N1), LT_S, ...BR_IF_0, END,
    END,
    END,
  ];
  return moduleWithImportedMemory(voidType(4), "s", body);
}

/**
 * The input gradient of a convolution (any stride, dilation 1) as a product and a scatter: cols =
 * dy·Wᵀ ([N·oh·ow, k] times [fh·fw·c, k]ᵀ, packed-matmul.ts's kernel, as the registered
 * BatchMatMul computes it), then each row of cols added into dx under its window; both a chunk of
 * {@link SCATTER_CHUNK} images at a time, so cols is still in cache when the scatter reads it.
 * Half the multiplications of the flipped-filter convolution, which also multiplies the padding's
 * zeros. Split by images: each thread runs the product and the scatter of its own images' chunks,
 * one hand-off for the whole gradient (LeNet's second layer had 16: a split product and a split
 * scatter per chunk), into scratch of its own; each dx image is computed by one thread as on one.
 */
export function productInputGradient(
  backend: WasmBackendLike, dy: tf.TensorInfo, filter: tf.TensorInfo, info: tf.backend_util.Conv2DInfo,
): tf.TensorInfo | undefined {
  if (info.dilationHeight !== 1 || info.dilationWidth !== 1 || info.dataFormat !== "channelsLast") return undefined;
  if (dy.dtype !== "float32" || filter.dtype !== "float32") return undefined;
  const { batchSize: N, inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW, outChannels: K, filterHeight: FH, filterWidth: FW } = info;
  const { top, left } = info.padInfo;
  if (top < 0 || left < 0) return undefined;
  const hp = Math.max((OH - 1) * info.strideHeight + FH, top + H);
  const wp = Math.max((OW - 1) * info.strideWidth + FW, left + W);
  const shape: ScatterShape = { hp, wp, c: C, oh: OH, ow: OW, fh: FH, fw: FW, sh: info.strideHeight, sw: info.strideWidth };
  const scatter = wasmKernel(backend, `conv-scatter ${JSON.stringify(shape)}`, () => scatterWasm(shape), "s");
  if (scatter === undefined) return undefined;
  const taps = FH * FW * C;
  const options = installedPackedOptions();
  const skipZeros = options === undefined ? false
    : options.skipZeros === "auto" ? skipsZeros(backend, backend.getMemoryOffset(dy.dataId), N * OH * OW * K) : options.skipZeros;
  const plan = options && packedPlan(backend, { k: K, n: taps, transposeA: false, transposeB: true, bias: false, relu: false }, { relaxed: options.relaxed, skipZeros });
  // the packed kernel off (useFastWasmMatMul({ packed: false })): the registered BatchMatMul, chunk by chunk
  if (plan === undefined) return inputGradientByMatMul(backend, dy, filter, info, scatter, shape);
  const direct = hp === H && wp === W && top === 0 && left === 0;
  const out = backend.makeOutput([N, H, W, C], "float32");
  const target = direct ? out : backend.makeOutput([N, hp, wp, C], "float32");
  // each part's scratch: a chunk's cols, op(B) packed, the kernel's list of steps
  const colsFloats = Math.min(SCATTER_CHUNK, N) * OH * OW * taps;
  const perPart = colsFloats + plan.scratchFloats + plan.listWords;
  const threads = N * OH * OW * K * taps >= SPLIT_FROM ? activeThreads() : 1;
  const scratch = backend.makeOutput([Math.min(threads, N) * perPart], "float32");
  const off = (t: tf.TensorInfo) => backend.getMemoryOffset(t.dataId);
  const [pdy, pw, ptarget, pscratch] = [off(dy), off(filter), off(target), off(scratch)];
  const perImage = OH * OW;
  // chunks of images claimed by the threads, each chunk's product and scatter 32 images at a time in the thread's
  // scratch; in rounds of 4 such groups a thread (a worker's job has a bounded length)
  const round = Math.min(threads, 16) * SCATTER_CHUNK * 4;
  for (let r0 = 0; r0 < N; r0 += round) {
    const chunks = guidedRanges(Math.min(N - r0, round), threads, 1, SCATTER_CHUNK / 4);
    runChunks(memoryOf(backend), chunks.length, threads, (c, slot) => {
      const pcols = pscratch + 4 * perPart * slot;
      const pt = pcols + 4 * colsFloats;
      const plist = pt + 4 * plan.scratchFloats;
      const calls: KernelCall[] = [];
      for (let n0 = r0 + chunks[c][0]; n0 < r0 + chunks[c][1]; n0 += SCATTER_CHUNK) {
        const n1 = Math.min(r0 + chunks[c][1], n0 + SCATTER_CHUNK);
        const rows = (n1 - n0) * perImage;
        // cols = these images' rows of dy times Wᵀ; then scattered into their dx, which the scatter indexes by absolute
        // image number: its base moved back by n0 images (i32 arithmetic wraps)
        calls.push([plan.kernel, [pdy + 4 * n0 * perImage * K, pw, 0, pcols, rows, pt, plist, rows]]);
        calls.push([scatter, [(pcols - 4 * n0 * perImage * taps) | 0, ptarget, n0, n1]]);
      }
      return calls;
    });
  }
  backend.disposeData(scratch.dataId);
  if (!direct) unpad(backend, target, out, info);
  return out;
}

/** dx [N, H, W, C] cut out of the padded gradient `target` [N, hp, wp, C] (top-left at the padding), and `target` freed. */
function unpad(backend: WasmBackendLike, target: tf.TensorInfo, out: tf.TensorInfo, info: tf.backend_util.Conv2DInfo): void {
  const [N, hp, wp] = target.shape;
  const { inHeight: H, inWidth: W, inChannels: C } = info;
  const { top, left } = info.padInfo;
  const src = f32(backend, target);
  const dst = f32(backend, out);
  const row = W * C;
  for (let n = 0; n < N; n++) {
    for (let y = 0; y < H; y++) {
      const from = ((n * hp + y + top) * wp + left) * C;
      dst.set(src.subarray(from, from + row), (n * H + y) * row);
    }
  }
  backend.disposeData(target.dataId);
}

/**
 * {@link productInputGradient} with the product by the registered BatchMatMul kernel (where the
 * packed kernel is off), a chunk of images at a time: the product (split by rows where large) and
 * then the scatter (split by images).
 */
function inputGradientByMatMul(
  backend: WasmBackendLike, dy: tf.TensorInfo, filter: tf.TensorInfo, info: tf.backend_util.Conv2DInfo, scatter: WasmKernel, shape: ScatterShape,
): tf.TensorInfo | undefined {
  const matMul = tf.getKernel(tf.BatchMatMul, "wasm");
  if (matMul === undefined) return undefined;
  const { batchSize: N, inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW, outChannels: K } = info;
  const { hp, wp } = shape;
  const taps = shape.fh * shape.fw * C;
  const direct = hp === H && wp === W && info.padInfo.top === 0 && info.padInfo.left === 0;
  const out = backend.makeOutput([N, H, W, C], "float32");
  const target = direct ? out : backend.makeOutput([N, hp, wp, C], "float32");
  const ptarget = backend.getMemoryOffset(target.dataId);
  const perImage = OH * OW * K;
  for (let n0 = 0; n0 < N; n0 += SCATTER_CHUNK) {
    const n1 = Math.min(N, n0 + SCATTER_CHUNK);
    // this chunk's rows of dy (a copy, unless the batch is one chunk), their product with Wᵀ, scattered into dx while in cache
    const a = n0 === 0 && n1 === N ? dy : backend.makeOutput([(n1 - n0) * perImage], "float32");
    if (a !== dy) f32(backend, a).set(f32(backend, dy).subarray(n0 * perImage, n1 * perImage));
    const cols = matMul.kernelFunc({
      inputs: { a: { ...a, shape: [1, (n1 - n0) * OH * OW, K] }, b: { ...filter, shape: [1, taps, K] } }, backend: backend as never,
      attrs: { transposeA: false, transposeB: true } as never,
    }) as tf.TensorInfo;
    // the scatter indexes cols by absolute image number: its base moved back by n0 images (i32 arithmetic wraps)
    const pcols = (backend.getMemoryOffset(cols.dataId) - 4 * n0 * OH * OW * taps) | 0;
    // ranges of images, one a thread (thread-pool.ts): each zeroes and fills its own images of dx
    const ranges = (n1 - n0) * hp * wp * C >= SPLIT_ELEMENTS_FROM ? splitRanges(n1 - n0, activeThreads()).map(([s0, s1]): [number, number] => [n0 + s0, n0 + s1]) : [[n0, n1] as [number, number]];
    runSplit(memoryOf(backend), scatter, ranges, (start, end) => [pcols, ptarget, start, end]);
    backend.disposeData(cols.dataId);
    if (a !== dy) backend.disposeData(a.dataId);
  }
  if (!direct) unpad(backend, target, out, info);
  return out;
}

type KernelArgs = Parameters<tf.KernelFunc>[0];
const MARK = Symbol.for("d2l.useSimdConv2d");

function infoOf(x: number[], filterShape: number[], attrs: { strides: number | [number, number]; pad: tf.Conv2DAttrs["pad"]; dilations?: number | [number, number]; dimRoundingMode?: "floor" | "round" | "ceil"; dataFormat?: string }) {
  if ((attrs.dataFormat ?? "NHWC") !== "NHWC") return undefined;
  return tf.backend_util.computeConv2DInfo(x as [number, number, number, number], filterShape as [number, number, number, number],
    attrs.strides, attrs.dilations ?? 1, attrs.pad, attrs.dimRoundingMode, false, "channelsLast");
}

/**
 * Which forward convolutions run our kernel rather than XNNPACK's: at most 16 input channels (and,
 * as every kernel here, at most 16 output channels). One channel (LeNet's first layer): ours 2.2
 * against XNNPACK's 4.5 ms CPU for a batch of 256. Six (its second layer): XNNPACK is faster on one
 * thread (3.6 against 4.2-5.2 ms), but cannot be split across threads (a worker cannot call into
 * the backend's module), and the kernel must not depend on the thread count (same floats with 1, 2
 * or 8 threads), so ours runs: with two threads it takes half its time (`scripts/bench-conv.ts`).
 */
const forwardByUs = (info: tf.backend_util.Conv2DInfo) => info.inChannels <= MAX_CHANNELS;

const WRAP: Record<string, (original: tf.KernelFunc, settings: Settings) => tf.KernelFunc> = {
  [tf.Conv2D]: (original, settings) => (args: KernelArgs) => {
    const { x, filter } = args.inputs as { x: tf.TensorInfo; filter: tf.TensorInfo };
    const info = infoOf(x.shape, filter.shape, args.attrs as unknown as tf.Conv2DAttrs);
    const out = info && forwardByUs(info) ? simdConv2d(args.backend as unknown as WasmBackendLike, x, filter, info, {}, settings) : undefined;
    return out ?? original(args);
  },
  [tf.FusedConv2D]: (original, settings) => (args: KernelArgs) => {
    const { x, filter, bias, preluActivationWeights } = args.inputs as Record<string, tf.TensorInfo | undefined> & { x: tf.TensorInfo; filter: tf.TensorInfo };
    const attrs = args.attrs as unknown as tf.FusedConv2DAttrs;
    if ((attrs.activation !== "linear" && attrs.activation !== "relu") || preluActivationWeights != null) return original(args);
    const info = infoOf(x.shape, filter.shape, attrs);
    const out = info && forwardByUs(info)
      ? simdConv2d(args.backend as unknown as WasmBackendLike, x, filter, info, { bias: bias ?? undefined, relu: attrs.activation === "relu" }, settings)
      : undefined;
    return out ?? original(args);
  },
  [tf.Conv2DBackpropInput]: (original) => (args: KernelArgs) => {
    const { dy, filter } = args.inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
    const attrs = args.attrs as unknown as tf.Conv2DBackpropInputAttrs;
    const info = infoOf(attrs.inputShape, filter.shape, { ...attrs, dilations: 1 });
    const out = info && productInputGradient(args.backend as unknown as WasmBackendLike, dy, filter, info);
    return out ?? original(args);
  },
};

/** The settings every copy of this module shares. */
const sharedSettings = processState<Settings>("d2l.simdConv2dSettings", () => ({ relaxed: true }));

/**
 * Makes the wasm backend's Conv2D and FusedConv2D (linear or relu) of one-channel images, and its
 * filter gradient (wasm-conv-grad.ts), run the SIMD kernels where they handle
 * the shape (NHWC, dilation 1, at most 16 output channels), and its Conv2DBackpropInput (NHWC,
 * dilation 1) run as a product and a scatter ({@link productInputGradient}). Idempotent; `relaxed: false` retunes
 * (for benchmarks). Returns false when the wasm kernels are not registered.
 * Not in d2l: it works around @tensorflow/tfjs-backend-wasm 4.x, see lib/src/engine/conv2d-simd.ts.
 */
export function useSimdConv2d(options: Partial<Settings> = {}): boolean {
  const settings = sharedSettings;
  Object.assign(settings, Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)));
  filterGradientHook().run = (backend, x, dy, info) => simdFilterGradient(backend, x, dy, info, settings);
  for (const name of Object.keys(WRAP)) {
    if (findWasmReplacement(name, MARK) !== undefined) continue;
    if (!replaceWasmKernel(name, MARK, settings, (original) => WRAP[name](original, settings))) return false;
  }
  return true;
}

/** Puts tfjs's Conv2D, FusedConv2D and Conv2DBackpropInput back, and the plain filter gradient loop; returns whether anything was replaced. */
export function restoreSimdConv2d(): boolean {
  filterGradientHook().run = undefined;
  return Object.keys(WRAP).map((name) => restoreWasmKernel(name, MARK)).some(Boolean);
}
