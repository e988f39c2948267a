import * as tf from "@tensorflow/tfjs";
import {
  ADD, BLOCK, BR_IF_0, END, F32X4_ADD, F32X4_MUL, F32X4_RELAXED_MADD, F32_ADD, GE_U, GT_S, I32, IF, LE_U, LOOP, LT_U, MUL, SHL, SUB, V128,
  ZERO_F32X4,
  br, brIf, extractF32, get, i32, load, loadF32, loadSplat, locals, moduleWithImportedMemory, set, shuffle32, store, storeF32,
  tee, voidType,
} from "./wasm-asm";
import { relaxedSimdAvailable } from "./relaxed-simd";
import { gradientMatMul } from "./skinny-gradient";
import { type WasmBackendLike, singleBatch, wasmFunction } from "./wasm-kernels";
import { sizeFromShape } from "./tf-direct";

/**
 * WebAssembly SIMD kernels for the products of chapter 3, whose result has few columns: the
 * softmax regression's X·W (256×784 · 784×10) and its weight gradient Xᵀ·dY (784×256 · 256×10).
 * XNNPACK, which the wasm backend uses, computes output columns in panels of 8 and so does the
 * work of 16 columns for 10; these kernels compute exactly the columns there are. Each module is
 * generated for its shape (the inner dimension and the number of columns are constants, so every
 * address in the inner loop is a base plus a constant offset) and works in the backend's memory.
 */

/** At most this many accumulating columns at a time: 2 × 5 accumulators and 3 operands fill 13 of the 16 SIMD registers of x86-64. */
const MAX_BLOCK = 5;

/** Splits n columns into blocks of at most `most` (MAX_BLOCK), as even as possible: 10 -> [5, 5], 16 -> [4, 4, 4, 4]. */
export function columnBlocks(n: number, most = MAX_BLOCK): [start: number, width: number][] {
  const count = Math.ceil(n / most);
  const blocks: [number, number][] = [];
  for (let b = 0, start = 0; b < count; b++) {
    const width = Math.floor(n / count) + (b < n % count ? 1 : 0);
    blocks.push([start, width]);
    start += width;
  }
  return blocks;
}

/** acc + x·y on the stack: one `f32x4.relaxed_madd` (an FMA where the machine has one), or a multiply then an add. */
const multiplyAdd = (relaxed: boolean, acc: number, x: number, y: number) =>
  relaxed ? [...get(x), ...get(y), ...get(acc), ...F32X4_RELAXED_MADD] : [...get(acc), ...get(x), ...get(y), ...F32X4_MUL, ...F32X4_ADD];

/** The four lanes of the vector on the stack summed into one float (lanes paired: (0+2) + (1+3)). */
const horizontalSum = (v: number) => [
  ...get(v), ...get(v), ...get(v), ...shuffle32([2, 3, 0, 1]), ...F32X4_ADD, ...tee(v),
  ...get(v), ...get(v), ...shuffle32([1, 0, 3, 2]), ...F32X4_ADD, ...extractF32(0),
];

/**
 * `f(a, b, bias, c, m, t)`: C = A·B (+ bias), A m×k, B k×n, C m×n, row-major float32, for the
 * k and n the module is made for (k a multiple of 4). Unless `bTransposed` (then b holds Bᵀ,
 * n×k, as the product A·Bᵀ passes it), B is first transposed into the scratch area t (n·k
 * floats), so that each output is the dot product of two contiguous rows. With `withBias`, bias
 * (n floats) is added to every row. Rows are taken two at a time (one at the end when m is odd)
 * and columns in blocks of up to 5, each accumulating in its own SIMD register.
 */
export function rowDotMatMulWasm(k: number, n: number, withBias: boolean, bTransposed = false): number[] {
  if (k % 4 !== 0 || k < 4 || n < 1) throw new Error(`rowDotMatMulWasm: k must be a positive multiple of 4 and n positive; got k=${k}, n=${n}`);
  const [A, B, BIAS, C, M, T, I, PA, PC, O, P, Q, J] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
  const V = 13; // first v128 local: 2 row vectors, the column vector, then 2 × MAX_BLOCK accumulators
  const [ROW0, COL, ACC] = [V, V + 2, V + 3];
  const rowBytes = 4 * k;

  // T[j][kk] = B[kk][j]: for each kk, the n floats of row kk scattered with stride k.
  const transposeB = bTransposed ? [...get(B), ...set(T)] : [
    ...get(B), ...set(P), ...get(T), ...set(Q), ...i32(k), ...set(J),
    ...LOOP,
    ...Array.from({ length: n }, (_, j) => [...get(Q), ...get(P), ...loadF32(4 * j), ...storeF32(j * rowBytes)]).flat(),
    ...get(P), ...i32(4 * n), ADD, ...set(P),
    ...get(Q), ...i32(4), ADD, ...set(Q),
    ...get(J), ...i32(1), SUB, ...tee(J), ...i32(0), GT_S, ...BR_IF_0,
    END,
  ];

  /** One block: `rows` rows from PA, columns start..start+width, into C at PC. */
  const block = (rows: number, start: number, width: number) => {
    const acc = (r: number, j: number) => ACC + r * MAX_BLOCK + j;
    const out: number[] = [];
    for (let r = 0; r < rows; r++) for (let j = 0; j < width; j++) out.push(...ZERO_F32X4, ...set(acc(r, j)));
    out.push(...i32(0), ...set(O));
    out.push(...LOOP);
    out.push(...get(PA), ...get(O), ADD, ...set(P)); // P = this step's 4 floats of row 0
    out.push(...get(T), ...get(O), ADD, ...set(Q)); // Q = the same 4 floats of column 0 (a row of T)
    for (let r = 0; r < rows; r++) out.push(...get(P), ...load(r * rowBytes), ...set(ROW0 + r));
    for (let j = 0; j < width; j++) {
      out.push(...get(Q), ...load((start + j) * rowBytes), ...set(COL));
      for (let r = 0; r < rows; r++) {
        out.push(...multiplyAdd(false, acc(r, j), ROW0 + r, COL), ...set(acc(r, j)));
      }
    }
    out.push(...get(O), ...i32(16), ADD, ...tee(O), ...i32(rowBytes), LT_U, ...BR_IF_0);
    out.push(END);
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < width; j++) {
        out.push(...get(PC), ...horizontalSum(acc(r, j)));
        if (withBias) out.push(...get(BIAS), ...loadF32(4 * (start + j)), F32_ADD);
        out.push(...storeF32(4 * (r * n + start + j)));
      }
    }
    return out;
  };
  const blocks = columnBlocks(n);
  const rowsAt = (rows: number) => [
    ...blocks.flatMap(([start, width]) => block(rows, start, width)),
    ...get(PA), ...i32(rows * rowBytes), ADD, ...set(PA),
    ...get(PC), ...i32(rows * 4 * n), ADD, ...set(PC),
    ...get(I), ...i32(rows), ADD, ...set(I),
  ];
  const body = [
    ...locals([7, I32], [3 + 2 * MAX_BLOCK, V128]),
    ...transposeB,
    ...get(A), ...set(PA), ...get(C), ...set(PC), ...i32(0), ...set(I),
    // while (i + 2 <= m) two rows; then one if m is odd
    ...BLOCK, ...LOOP,
    ...get(I), ...i32(2), ADD, ...get(M), GT_S, ...brIf(1), // to the block's end
    ...rowsAt(2),
    ...br(0), // to the loop's start
    END, END,
    ...get(I), ...get(M), LT_U, ...IF, ...rowsAt(1), END,
    END,
  ];
  return moduleWithImportedMemory(voidType(6), "f", body);
}

/**
 * `g(a, b, c, k)`: C = Aᵀ·B, A k×m, B k×n, C m×n, row-major float32, for the m and n the module
 * is made for (m a multiple of 4): the weight gradient Xᵀ·dY without transposing X. Eight
 * outputs of a column (two vectors of four rows of C) accumulate A's row segment times B's entry,
 * splatted, over the k rows; columns go in blocks of up to 5.
 */
export function colAxpyMatMulWasm(m: number, n: number): number[] {
  if (m % 4 !== 0 || m < 4 || n < 1) throw new Error(`colAxpyMatMulWasm: m must be a positive multiple of 4 and n positive; got m=${m}, n=${n}`);
  const [A, B, C, K, PA, PB, PC, LEFT, Mi] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  const V = 9; // first v128 local: 2 row segments of A, 2 × MAX_BLOCK accumulators, the splatted entry of B
  const [SEG0, ACC, SPLAT] = [V, V + 2, V + 2 + 2 * MAX_BLOCK];
  const blocks = columnBlocks(n);

  /** `vectors` (1 or 2) vectors of 4 rows of C starting at row Mi, columns start..start+width. */
  const block = (vectors: number, start: number, width: number) => {
    const acc = (v: number, j: number) => ACC + v * MAX_BLOCK + j;
    const out: number[] = [];
    for (let v = 0; v < vectors; v++) for (let j = 0; j < width; j++) out.push(...ZERO_F32X4, ...set(acc(v, j)));
    out.push(...get(A), ...get(Mi), ...i32(2), SHL, ADD, ...set(PA)); // PA = A + 4·mi
    out.push(...get(B), ...set(PB), ...get(K), ...set(LEFT));
    out.push(...LOOP);
    for (let v = 0; v < vectors; v++) out.push(...get(PA), ...load(16 * v), ...set(SEG0 + v));
    for (let j = 0; j < width; j++) {
      out.push(...get(PB), ...loadSplat(4 * (start + j)), ...set(SPLAT));
      for (let v = 0; v < vectors; v++) {
        out.push(...multiplyAdd(false, acc(v, j), SEG0 + v, SPLAT), ...set(acc(v, j)));
      }
    }
    out.push(...get(PA), ...i32(4 * m), ADD, ...set(PA));
    out.push(...get(PB), ...i32(4 * n), ADD, ...set(PB));
    out.push(...get(LEFT), ...i32(1), SUB, ...tee(LEFT), ...i32(0), GT_S, ...BR_IF_0);
    out.push(END);
    for (let v = 0; v < vectors; v++) {
      for (let j = 0; j < width; j++) {
        for (let lane = 0; lane < 4; lane++) {
          out.push(...get(PC), ...get(acc(v, j)), ...extractF32(lane), ...storeF32(4 * ((4 * v + lane) * n + start + j)));
        }
      }
    }
    return out;
  };
  const rowsAt = (vectors: number) => [
    ...blocks.flatMap(([start, width]) => block(vectors, start, width)),
    ...get(PC), ...i32(16 * vectors * n), ADD, ...set(PC),
    ...get(Mi), ...i32(4 * vectors), ADD, ...set(Mi),
  ];
  const body = [
    ...locals([5, I32], [3 + 2 * MAX_BLOCK, V128]),
    ...get(C), ...set(PC), ...i32(0), ...set(Mi),
    ...(m >= 8
      ? [...LOOP, ...rowsAt(2), ...get(Mi), ...i32(8), ADD, ...i32(m), LE_U, ...BR_IF_0, END] // while mi + 8 <= m
      : []),
    ...(m % 8 === 4 ? rowsAt(1) : []),
    END,
  ];
  return moduleWithImportedMemory(voidType(4), "g", body);
}

/** What a {@link broadcastMatMulWasm} module computes (its constants). */
export interface BroadcastShape {
  k: number;
  n: number;
  transposeA: boolean;
  transposeB: boolean;
  bias: boolean;
  /** f32x4.relaxed_madd (an FMA where the machine has one), else a multiply then an add. */
  relaxed: boolean;
  /** Rows of op(A) per block, each with ⌈n/4⌉ accumulating vectors. */
  rows: number;
}

/**
 * Rows of a block for n columns: as many as keep the accumulators, op(B)'s row and a splat within 13 of
 * x86-64's 16 SIMD registers (V8 needs a few of its own): for 10 columns (3 vectors), 3 rows ran 1.8x the
 * old kernels (100 against 180 µs for softmax's X·W and Xᵀ·dY, CPU time, Zen 5) and 4 rows (16 registers) 200 µs.
 */
export const broadcastRows = (n: number): number => Math.max(1, Math.min(6, Math.floor((13 - Math.ceil(n / 4)) / Math.ceil(n / 4))));

/**
 * `f(a, b, bias, c, m, t)`: C = op(A)·op(B) (+ bias), op(A) m×k, op(B) k×n (n ≤ 16), row-major
 * float32; t is scratch for op(B) packed as k rows of ⌈n/4⌉·4 floats (zero past n). A block of
 * `rows` rows of C keeps each row's n columns in ⌈n/4⌉ SIMD accumulators and walks the inner
 * dimension once: per step op(B)'s packed row (⌈n/4⌉ vectors) and each row's element of op(A),
 * splatted (A's rows when plain, its columns when transposed, read in place at constant offsets),
 * multiplied and added. Each output is the sum over the inner dimension in order, one
 * multiply-add a step from zero, then + bias: the packed kernel's (packed-matmul.ts) arithmetic,
 * so the same floats as it, for 10 columns in 3 vectors where its 8-column panels take 4.
 */
export function broadcastMatMulWasm(shape: BroadcastShape): number[] {
  const { k, n, transposeA, transposeB, relaxed, rows: R } = shape;
  const NV = Math.ceil(n / 4);
  if (!(k >= 1 && n >= 1 && n <= SKINNY_MAX_COLUMNS && R >= 1)) throw new Error(`broadcastMatMulWasm: bad shape ${JSON.stringify(shape)}`);
  const [A, B, BIAS, C, M, T] = [0, 1, 2, 3, 4, 5];
  const [I, PA0, PC, PA, PB, PEND, STRIDE, SRC, DST, LEFT] = [6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
  const V = 16; // v128 locals: a splat, NV vectors of op(B)'s row, then R × NV accumulators
  const [SPLAT, BV] = [V, V + 1];
  const ACC = BV + NV;
  const acc = (r: number, v: number) => ACC + NV * r + v;
  const rowBytes = 16 * NV; // a packed row of op(B)

  // T[kk][j] = op(B)[kk][j] for j < n, 0 for n <= j < 4·NV: B[kk][j] (stride 4n between kk) or B[j][kk] (stride 4)
  const pack = [
    ...get(B), ...set(SRC), ...get(T), ...set(DST), ...i32(k), ...set(LEFT),
    ...LOOP,
    ...(n % 4 === 0 ? [] : [...get(DST), ...ZERO_F32X4, ...store(16 * (NV - 1))]),
    ...Array.from({ length: n }, (_, j) => [...get(DST), ...get(SRC), ...loadF32(transposeB ? 4 * k * j : 4 * j), ...storeF32(4 * j)]).flat(),
    ...get(SRC), ...i32(transposeB ? 4 : 4 * n), ADD, ...set(SRC),
    ...get(DST), ...i32(rowBytes), ADD, ...set(DST),
    ...get(LEFT), ...i32(1), SUB, ...tee(LEFT), ...i32(0), GT_S, ...BR_IF_0,
    END,
  ];
  const aOffset = (r: number) => (transposeA ? 4 * r : 4 * k * r);
  /** `rows` rows of C at PC from op(A)'s rows at PA0. */
  const block = (rows: number) => {
    const out: number[] = [];
    for (let r = 0; r < rows; r++) for (let v = 0; v < NV; v++) out.push(...ZERO_F32X4, ...set(acc(r, v)));
    out.push(...get(PA0), ...set(PA), ...get(T), ...set(PB));
    out.push(...LOOP);
    for (let v = 0; v < NV; v++) out.push(...get(PB), ...load(16 * v), ...set(BV + v));
    for (let r = 0; r < rows; r++) {
      out.push(...get(PA), ...loadSplat(aOffset(r)), ...set(SPLAT));
      for (let v = 0; v < NV; v++) out.push(...multiplyAdd(relaxed, acc(r, v), SPLAT, BV + v), ...set(acc(r, v)));
    }
    out.push(...get(PA), ...(transposeA ? get(STRIDE) : i32(4)), ADD, ...set(PA));
    out.push(...get(PB), ...i32(rowBytes), ADD, ...tee(PB), ...get(PEND), LT_U, ...BR_IF_0);
    out.push(END);
    // + bias, then store: whole vectors where all 4 columns exist, else lane by lane
    for (let r = 0; r < rows; r++) {
      for (let v = 0; v < NV; v++) {
        const column = 4 * v;
        if (column + 4 <= n) {
          out.push(...get(PC), ...get(acc(r, v)));
          if (shape.bias) out.push(...get(BIAS), ...load(4 * column), ...F32X4_ADD);
          out.push(...store(4 * (r * n + column)));
        } else {
          for (let lane = 0; column + lane < n; lane++) {
            out.push(...get(PC), ...get(acc(r, v)), ...extractF32(lane));
            if (shape.bias) out.push(...get(BIAS), ...loadF32(4 * (column + lane)), F32_ADD);
            out.push(...storeF32(4 * (r * n + column + lane)));
          }
        }
      }
    }
    return out;
  };
  const rowStep = transposeA ? 4 : 4 * k;
  const advance = (rows: number) => [
    ...get(PA0), ...i32(rows * rowStep), ADD, ...set(PA0),
    ...get(PC), ...i32(rows * 4 * n), ADD, ...set(PC),
    ...get(I), ...i32(rows), ADD, ...set(I),
  ];
  const body = [
    ...locals([10, I32], [1 + NV + R * NV, V128]),
    ...pack,
    ...get(M), ...i32(4), MUL, ...set(STRIDE), // A's row in bytes, when it is transposed (k×m)
    ...get(T), ...i32(rowBytes * k), ADD, ...set(PEND),
    ...get(A), ...set(PA0), ...get(C), ...set(PC), ...i32(0), ...set(I),
    // while (i + R <= m) a block of R rows; then one row at a time
    ...BLOCK, ...LOOP,
    ...get(I), ...i32(R), ADD, ...get(M), GT_S, ...brIf(1),
    ...block(R), ...advance(R),
    ...br(0),
    END, END,
    ...BLOCK, ...LOOP,
    ...get(I), ...get(M), GE_U, ...brIf(1),
    ...block(1), ...advance(1),
    ...br(0),
    END, END,
    END,
  ];
  return moduleWithImportedMemory(voidType(6), "f", body);
}

/** Products with at most this many output columns take these kernels (measured faster than XNNPACK up to 16 at least). */
export const SKINNY_MAX_COLUMNS = 16;

/** Which kernels {@link skinnyMatMul} runs. */
export interface SkinnyOptions {
  /** {@link broadcastMatMulWasm} (any flags); else the row-dot and column-axpy kernels, with their floats. */
  broadcast: boolean;
  /** Its multiply-add is f32x4.relaxed_madd where Node has relaxed SIMD. */
  relaxed: boolean;
  /** With `broadcast`, Aᵀ·B (the weight gradient) runs skinny-gradient.ts's kernel, the same floats (default true). */
  skinnyGradient?: boolean;
}

/**
 * The sizes of op(A)·op(B) (+ bias) when the skinny kernels take it: float32 operands of a single
 * batch, at most {@link SKINNY_MAX_COLUMNS} columns, a bias of n values. Otherwise undefined.
 */
function skinnyShape(
  a: tf.TensorInfo, b: tf.TensorInfo, transposeA: boolean, transposeB: boolean, bias: tf.TensorInfo | undefined,
): { m: number; k: number; n: number; batch: number[] } | undefined {
  if (a.dtype !== "float32" || b.dtype !== "float32" || (bias !== undefined && bias.dtype !== "float32")) return undefined;
  if (!singleBatch(a.shape) || !singleBatch(b.shape)) return undefined;
  const [ar, ac] = a.shape.slice(-2);
  const [br, bc] = b.shape.slice(-2);
  const [m, k] = transposeA ? [ac, ar] : [ar, ac];
  const [kb, n] = transposeB ? [bc, br] : [br, bc];
  if (k !== kb || m < 1 || k < 1 || n < 1 || n > SKINNY_MAX_COLUMNS) return undefined;
  if (bias !== undefined && (sizeFromShape(bias.shape) !== n || bias.shape[bias.shape.length - 1] !== n)) return undefined;
  const batch = (a.shape.length >= b.shape.length ? a.shape : b.shape).slice(0, -2);
  return { m, k, n, batch };
}

type Broadcast = (a: number, b: number, bias: number, c: number, m: number, t: number) => void;

/**
 * op(A)·op(B) (+ bias) with {@link broadcastMatMulWasm}, in the wasm backend's memory: float32, a
 * single batch, at most {@link SKINNY_MAX_COLUMNS} columns, any flags. Otherwise undefined.
 */
export function broadcastMatMul(
  backend: WasmBackendLike, a: tf.TensorInfo, b: tf.TensorInfo, transposeA: boolean, transposeB: boolean, bias: tf.TensorInfo | undefined,
  relaxed: boolean, rows?: number,
): tf.TensorInfo | undefined {
  const sizes = skinnyShape(a, b, transposeA, transposeB, bias);
  if (sizes === undefined) return undefined;
  const { m, k, n, batch } = sizes;
  const shape: BroadcastShape = { k, n, transposeA, transposeB, bias: bias !== undefined, relaxed, rows: rows ?? broadcastRows(n) };
  const f = wasmFunction<Broadcast>(backend, `broadcast ${k} ${n} ${+transposeA}${+transposeB}${+shape.bias}${+relaxed} ${shape.rows}`,
    () => broadcastMatMulWasm(shape), "f");
  if (f === undefined) return undefined;
  const out = backend.makeOutput([...batch, m, n], "float32");
  const scratch = backend.makeOutput([4 * Math.ceil(n / 4) * k], "float32");
  // offsets are read after every allocation: an allocation may grow (and move) the memory's buffer, not the offsets
  const offset = (x: tf.TensorInfo) => backend.getMemoryOffset(x.dataId);
  f(offset(a), offset(b), bias === undefined ? 0 : offset(bias), offset(out), m, offset(scratch));
  backend.disposeData(scratch.dataId);
  return out;
}

type RowDot = (a: number, b: number, bias: number, c: number, m: number, t: number) => void;
type ColAxpy = (a: number, b: number, c: number, k: number) => void;

/**
 * op(A)·op(B) (+ bias over the rows) with the kernels above, in the wasm backend's memory, when
 * the product is one they compute: float32, a single batch, at most {@link SKINNY_MAX_COLUMNS}
 * columns, and either A untransposed with an inner size that is a multiple of 4, or A transposed,
 * B not, no bias and a number of rows that is a multiple of 4. Otherwise undefined, and the caller
 * uses the backend's own kernel (which also reports mismatched shapes).
 */
export function skinnyMatMul(
  backend: WasmBackendLike, a: tf.TensorInfo, b: tf.TensorInfo, transposeA: boolean, transposeB: boolean, bias?: tf.TensorInfo,
  options: SkinnyOptions = { broadcast: false, relaxed: false },
): tf.TensorInfo | undefined {
  if (options.broadcast && options.skinnyGradient !== false && transposeA && !transposeB && bias === undefined) {
    const product = gradientMatMul(backend, a, b, options.relaxed && relaxedSimdAvailable());
    if (product !== undefined) return product;
  }
  if (options.broadcast) {
    const product = broadcastMatMul(backend, a, b, transposeA, transposeB, bias, options.relaxed && relaxedSimdAvailable());
    if (product !== undefined) return product;
  }
  const sizes = skinnyShape(a, b, transposeA, transposeB, bias);
  if (sizes === undefined) return undefined;
  const { m, k, n, batch } = sizes;
  const offset = (x: tf.TensorInfo) => backend.getMemoryOffset(x.dataId);

  if (!transposeA && k % 4 === 0) {
    const f = wasmFunction<RowDot>(backend, `dot ${k} ${n} ${bias !== undefined} ${transposeB}`,
      () => rowDotMatMulWasm(k, n, bias !== undefined, transposeB), "f");
    if (f === undefined) return undefined;
    const out = backend.makeOutput([...batch, m, n], "float32");
    const scratch = transposeB ? undefined : backend.makeOutput([n * k], "float32");
    // offsets are read after every allocation: an allocation may grow (and move) the memory's buffer, not the offsets
    f(offset(a), offset(b), bias === undefined ? 0 : offset(bias), offset(out), m, scratch === undefined ? 0 : offset(scratch));
    if (scratch !== undefined) backend.disposeData(scratch.dataId);
    return out;
  }
  if (transposeA && !transposeB && bias === undefined && m % 4 === 0) {
    const g = wasmFunction<ColAxpy>(backend, `axpy ${m} ${n}`, () => colAxpyMatMulWasm(m, n), "g");
    if (g === undefined) return undefined;
    const out = backend.makeOutput([...batch, m, n], "float32");
    g(offset(a), offset(b), offset(out), k);
    return out;
  }
  return undefined;
}
