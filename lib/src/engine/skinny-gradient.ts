import * as tf from "@tensorflow/tfjs";
import {
  ADD, BR_IF_0, BLOCK, END, F32X4_ADD, F32X4_MUL, F32X4_RELAXED_MADD, GE_U, GT_S, I32, LOOP, LT_U, SHL, SUB, V128, ZERO_F32X4,
  brIf, extractF32, get, i32, load, loadSplat, locals, moduleWithImportedMemory, set, shuffle32, storeF32, tee, voidType,
} from "./wasm-asm";
import { type WasmBackendLike, wasmFunction } from "./wasm-kernels";
import { columnBlocks } from "./skinny-matmul";

/**
 * The weight gradient of a layer with few outputs, Aᵀ·B with B of at most 16 columns: softmax
 * regression's Xᵀ·dY (784×256 · 256×10, every training step of 3.6 and 3.7). It replaces
 * skinny-matmul.ts's broadcast kernel for these products (which splats op(A)'s elements, one pixel
 * at a time, against B's row padded to whole vectors: 12 columns computed for 10); here a vector
 * holds 4 neighbouring pixels (4 rows of C, read in place from a row of A) and each of B's n
 * columns has its own accumulator, so exactly n columns are computed: 784×256·256×10 in 75 µs
 * against 93 (CPU time, best of 20 × 20 calls, AMD EPYC Zen 5; about 94% of the machine's 128-bit
 * multiply-add peak). Each column's entry of B's row is splatted by a shuffle of B's row loaded as
 * vectors: splats loaded from memory were all hoisted by V8 above the multiply-adds and spilled
 * the accumulators (200 µs).
 *
 * Same floats as the broadcast kernel, bit for bit: each output is one chain of multiply-adds over
 * the inner dimension in order from +0 (`f32x4.relaxed_madd` where Node has relaxed SIMD, else a
 * multiply then an add, as the caller says), so 3.6's and 3.7's seeded digits stand.
 *
 * Not done, measured: skipping the rows of A whose 4 pixels are all zero (60% of Fashion-MNIST's
 * (image, 4 pixels) pairs are kept) ran no faster (78 against 75 µs): the branch is taken at random,
 * and a list of the rows kept costs as much to build as it saves. The same skipping in the forward
 * product X·W, 4 steps at a time for 3 images (84% of the steps kept), lost to the broadcast kernel.
 *
 * Reached through wasm-matmul.ts (BatchMatMul and _FusedMatMul without bias): float32, a single
 * batch, A transposed, B not, m a multiple of 4. `useFastWasmMatMul({ skinnyGradient: false })`
 * switches it off (the broadcast kernel again), `useSpeedups(false)` with every other kernel.
 */

/** acc + x·y on the stack: f32x4.relaxed_madd, or a multiply then an add. */
const madd = (relaxed: boolean, x: number, y: number, acc: number) =>
  relaxed ? [...get(x), ...get(y), ...get(acc), ...F32X4_RELAXED_MADD] : [...get(acc), ...get(x), ...get(y), ...F32X4_MUL, ...F32X4_ADD];

/** The most columns a block accumulates: 12 accumulators, a vector of A, B's row in up to 3 vectors and a splat (x86-64 has 16 SIMD registers, V8 allocates 15). */
export const COLUMN_BLOCK = 12;

/** The most columns of B (skinny-matmul.ts's SKINNY_MAX_COLUMNS). */
const MAX_COLUMNS = 16;


/** What a {@link gradientMatMulWasm} module computes (its constants). */
export interface GradientShape {
  /** Columns of B and C (1 to 16). */
  n: number;
  /** f32x4.relaxed_madd, else a multiply then an add. */
  relaxed: boolean;
}

/**
 * `f(a, b, c, m, k)`: C = Aᵀ·B, A k×m, B k×n, C m×n, row-major float32, m a multiple of 4. For each
 * 4 rows of C (4 neighbouring floats of each row of A) and each block of columns, the block's
 * accumulators walk A's k rows: per row a vector of A, and each column's entry of B's row splatted
 * and multiplied into it.
 */
export function gradientMatMulWasm(shape: GradientShape): number[] {
  const { n, relaxed } = shape;
  if (!(Number.isInteger(n) && n >= 1 && n <= MAX_COLUMNS)) throw new Error(`gradientMatMulWasm: n must be an integer from 1 to ${MAX_COLUMNS}; got ${JSON.stringify(shape)}`);
  const [A, B, C, M, K] = [0, 1, 2, 3, 4];
  const [PA, PB, PC, MI, LEFT, STRIDE] = [5, 6, 7, 8, 9, 10];
  const V = 11; // v128: the vector of A, a splat, the accumulators, then B's row vectors
  const [AV, SPLAT, ACC] = [V, V + 1, V + 2];
  const BV = ACC + COLUMN_BLOCK;

  /**
   * B's row at PB as whole vectors (the last one overlapping the one before where n is not a multiple
   * of 4, so nothing past the row is read): column j is lane `lane` of vector `vector`.
   */
  const rowVectors = n >= 4 ? Math.ceil(n / 4) : 0;
  const vectorOffset = (v: number) => Math.min(16 * v, 4 * (n - 4));
  const where = (j: number) => {
    const vector = Math.min(j >> 2, rowVectors - 1);
    return { vector, lane: j - vectorOffset(vector) / 4 };
  };
  /** Row PA of A (its vector in AV) times B's row at PB, into the accumulators of columns start..start+width. */
  const columns = (start: number, width: number) => {
    const out: number[] = [];
    if (rowVectors === 0) {
      // fewer than 4 columns: splats loaded from memory (few registers needed)
      for (let j = 0; j < width; j++) {
        out.push(...get(PB), ...loadSplat(4 * (start + j)), ...set(SPLAT));
        out.push(...madd(relaxed, AV, SPLAT, ACC + j), ...set(ACC + j));
      }
      return out;
    }
    const first = where(start).vector;
    const last = where(start + width - 1).vector;
    for (let v = first; v <= last; v++) out.push(...get(PB), ...load(vectorOffset(v)), ...set(BV + v - first));
    for (let j = 0; j < width; j++) {
      const { vector, lane } = where(start + j);
      const bv = BV + vector - first;
      out.push(...get(bv), ...get(bv), ...shuffle32([lane, lane, lane, lane]), ...set(SPLAT));
      out.push(...madd(relaxed, AV, SPLAT, ACC + j), ...set(ACC + j));
    }
    return out;
  };
  /** The block of columns start..start+width for the 4 rows of C at MI. */
  const block = (start: number, width: number) => {
    const out: number[] = [];
    for (let j = 0; j < width; j++) out.push(...ZERO_F32X4, ...set(ACC + j));
    out.push(...get(A), ...get(MI), ...i32(2), SHL, ADD, ...set(PA), ...get(B), ...set(PB), ...get(K), ...set(LEFT));
    out.push(...LOOP);
    out.push(...get(PA), ...load(0), ...set(AV), ...columns(start, width));
    out.push(...get(PA), ...get(STRIDE), ADD, ...set(PA));
    out.push(...get(PB), ...i32(4 * n), ADD, ...set(PB));
    out.push(...get(LEFT), ...i32(1), SUB, ...tee(LEFT), ...i32(0), GT_S, ...BR_IF_0);
    out.push(END);
    for (let j = 0; j < width; j++) {
      for (let lane = 0; lane < 4; lane++) {
        out.push(...get(PC), ...get(ACC + j), ...extractF32(lane), ...storeF32(4 * (lane * n + start + j)));
      }
    }
    return out;
  };
  const body = [
    ...locals([6, I32], [2 + COLUMN_BLOCK + 3, V128]),
    ...get(M), ...i32(2), SHL, ...set(STRIDE),
    ...get(C), ...set(PC), ...i32(0), ...set(MI),
    // for each 4 rows of C (none when m is 0; k ≥ 1 is the caller's)
    ...BLOCK, ...get(MI), ...get(M), GE_U, ...brIf(0), ...LOOP,
    ...columnBlocks(n, COLUMN_BLOCK).flatMap(([start, width]) => block(start, width)),
    ...get(PC), ...i32(16 * n), ADD, ...set(PC),
    ...get(MI), ...i32(4), ADD, ...tee(MI), ...get(M), LT_U, ...BR_IF_0,
    END, END,
    END,
  ];
  return moduleWithImportedMemory(voidType(5), "f", body);
}

type Gradient = (a: number, b: number, c: number, m: number, k: number) => void;

/**
 * Aᵀ·B with {@link gradientMatMulWasm}, in the wasm backend's memory: float32, a single batch, A
 * transposed (stored k×m, m a multiple of 4), B plain (k×n, n ≤ 16), k ≥ 1. Otherwise (or where the
 * module cannot run) undefined, and the caller uses another kernel.
 */
export function gradientMatMul(
  backend: WasmBackendLike, a: tf.TensorInfo, b: tf.TensorInfo, relaxed: boolean,
): tf.TensorInfo | undefined {
  if (a.dtype !== "float32" || b.dtype !== "float32" || a.shape.length < 2 || b.shape.length < 2) return undefined;
  if (tf.util.sizeFromShape(a.shape.slice(0, -2)) !== 1 || tf.util.sizeFromShape(b.shape.slice(0, -2)) !== 1) return undefined;
  const [k, m] = a.shape.slice(-2);
  const [kb, n] = b.shape.slice(-2);
  if (k !== kb || k < 1 || m < 4 || m % 4 !== 0 || n < 1 || n > MAX_COLUMNS) return undefined;
  const f = wasmFunction<Gradient>(backend, `gradient ${n} ${+relaxed}`, () => gradientMatMulWasm({ n, relaxed }), "f");
  if (f === undefined) return undefined;
  const batch = (a.shape.length >= b.shape.length ? a.shape : b.shape).slice(0, -2);
  const out = backend.makeOutput([...batch, m, n], "float32");
  // offsets are read after the allocation: it may grow (and move) the memory's buffer, not the offsets
  f(backend.getMemoryOffset(a.dataId), backend.getMemoryOffset(b.dataId), backend.getMemoryOffset(out.dataId), m, k);
  return out;
}
