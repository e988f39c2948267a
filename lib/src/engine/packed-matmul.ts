import * as tf from "@tensorflow/tfjs";
import {
  ADD, BLOCK, BR_IF_0, END, F32X4_ADD, F32X4_MAX, F32X4_MUL, F32X4_RELAXED_MADD, F32_ADD, F32_MAX, GT_S, I32, LOOP,
  LT_U, MUL, NE, SUB, V128, ZERO_F32X4, br, brIf, extractF32, get, i32, load, loadF32, loadSplat, locals,
  moduleWithImportedMemory, set, store, storeF32, tee, voidType,
} from "./wasm-asm";
import type { WasmBackendLike } from "./wasm-kernels";
import { wasmFunction } from "./wasm-kernels";
import { relaxedSimdAvailable } from "./relaxed-simd";

/**
 * A general matrix product for the wasm backend, for the shapes of real layers (the MLP's
 * [256, 784]·[784, 256] and its weight gradient Xᵀ·dH): op(B) is packed into panels of 8 columns
 * (each panel k×8 floats, contiguous), and a register-blocked micro-kernel keeps an R×8 block of
 * C in 2R SIMD registers while it walks the inner dimension: per step two vectors of the panel,
 * and one element of each of op(A)'s R rows splatted (read in place: A's rows when A is plain,
 * A's columns when it is transposed, both at constant offsets). The module is generated for its
 * k, n, flags and epilogue (bias, relu), so every address in the inner loop is a pointer plus a
 * constant. With relaxed SIMD the multiply-add is `f32x4.relaxed_madd` (one FMA instruction on
 * x86-64 with FMA3), else `f32x4.mul` then `f32x4.add`.
 */

/** The product a module computes (its constants). */
export interface PackedShape {
  k: number;
  n: number;
  transposeA: boolean;
  transposeB: boolean;
  bias: boolean;
  relu: boolean;
  /** Use f32x4.relaxed_madd. */
  relaxed: boolean;
  /** Rows of the register block (1-6). */
  rows: number;
}

/** Columns of a panel: two SIMD vectors. */
const NR = 8;
/**
 * Rows of the register block: 4 rows × 2 vectors of accumulators, 2 panel vectors and a splat (11
 * of x86-64's 16 SIMD registers). Measured with scripts/bench-matmul.ts --rows 4,5,6: 5 and 6 rows
 * ran 15-45% slower (V8 spills registers), 4 rows 1.4x (mul+add) to 1.7x (relaxed) XNNPACK.
 */
export const DEFAULT_ROWS = 4;

/**
 * `f(a, b, bias, c, m, t)`: C = op(A)·op(B) (+ bias) (relu), C m×n, op(A) m×k, op(B) k×n, row-major
 * float32; t is scratch for the packed op(B) (⌈n/8⌉·8·k floats).
 */
export function packedMatMulWasm(shape: PackedShape): number[] {
  const { k, n, transposeA, transposeB, relaxed } = shape;
  const R = shape.rows;
  if (!(k >= 1 && n >= 1 && R >= 1 && R <= 6)) throw new Error(`packedMatMulWasm: bad shape ${JSON.stringify(shape)}`);
  const [A, B, BIAS, C, M, T] = [0, 1, 2, 3, 4, 5];
  const [I, PA0, PC0, PA, PB, PEND, PC, PANEL, SRC, DST, LEFT, STRIDE] = [6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17];
  const V = 18; // v128 locals: two panel vectors, a splat, then R × 2 accumulators
  const [B0, B1, SPLAT, ACC] = [V, V + 1, V + 2, V + 3];
  const acc = (r: number, v: number) => ACC + 2 * r + v;
  const fullPanels = Math.floor(n / NR);
  const tail = n % NR; // columns of the last, partial panel
  const panelBytes = 4 * NR * k;

  // Packing: T[p][kk][j] = op(B)[kk][8p + j].
  const pack: number[] = [];
  const kkLoop = (step: number[]) => [
    ...i32(k), ...set(LEFT), ...LOOP, ...step,
    ...get(LEFT), ...i32(1), SUB, ...tee(LEFT), ...i32(0), GT_S, ...BR_IF_0, END,
  ];
  /** One panel: SRC at op(B)[0][8p], DST at T[p]; `width` columns. */
  const packPanel = (width: number) => {
    if (!transposeB && width === NR) {
      return kkLoop([
        ...get(DST), ...get(SRC), ...load(0), ...store(0),
        ...get(DST), ...get(SRC), ...load(16), ...store(16),
        ...get(SRC), ...i32(4 * n), ADD, ...set(SRC), ...get(DST), ...i32(32), ADD, ...set(DST),
      ]);
    }
    // op(B)[kk][j] is B[kk][j] (stride 4n between kk) or B[j][kk] (stride 4 between kk, 4k between j)
    const colOffset = (j: number) => (transposeB ? 4 * k * j : 4 * j);
    return kkLoop([
      ...Array.from({ length: width }, (_, j) => [...get(DST), ...get(SRC), ...loadF32(colOffset(j)), ...storeF32(4 * j)]).flat(),
      ...get(SRC), ...i32(transposeB ? 4 : 4 * n), ADD, ...set(SRC), ...get(DST), ...i32(32), ADD, ...set(DST),
    ]);
  };
  pack.push(...get(B), ...set(SRC), ...get(T), ...set(DST));
  const nextPanelSource = transposeB ? 4 * k * NR : 4 * NR; // from op(B)[0][8p] to op(B)[0][8p + 8]
  if (fullPanels > 0) {
    pack.push(...i32(fullPanels), ...set(PANEL), ...LOOP);
    pack.push(...get(SRC), ...set(PA)); // PA: this panel's source start (reused as scratch)
    pack.push(...packPanel(NR));
    pack.push(...get(PA), ...i32(nextPanelSource), ADD, ...set(SRC));
    pack.push(...get(PANEL), ...i32(1), SUB, ...tee(PANEL), ...i32(0), GT_S, ...BR_IF_0, END);
  }
  if (tail > 0) pack.push(...packPanel(tail));

  const madd = (a: number, b: number, c: number) =>
    relaxed ? [...get(a), ...get(b), ...get(c), ...F32X4_RELAXED_MADD] : [...get(c), ...get(a), ...get(b), ...F32X4_MUL, ...F32X4_ADD];
  const aOffset = (r: number) => (transposeA ? 4 * r : 4 * k * r);

  /** The R×width block of C at PC from rows PA0 and the panel at PB; leaves PB at the next panel. */
  const microKernel = (rows: number, width: number) => {
    const vectors = width > 4 ? 2 : 1;
    const out: number[] = [];
    for (let r = 0; r < rows; r++) for (let v = 0; v < vectors; v++) out.push(...ZERO_F32X4, ...set(acc(r, v)));
    out.push(...get(PA0), ...set(PA), ...get(PB), ...i32(panelBytes), ADD, ...set(PEND));
    out.push(...LOOP);
    out.push(...get(PB), ...load(0), ...set(B0));
    if (vectors === 2) out.push(...get(PB), ...load(16), ...set(B1));
    for (let r = 0; r < rows; r++) {
      out.push(...get(PA), ...loadSplat(aOffset(r)), ...set(SPLAT));
      for (let v = 0; v < vectors; v++) out.push(...madd(SPLAT, v === 0 ? B0 : B1, acc(r, v)), ...set(acc(r, v)));
    }
    out.push(...get(PA), ...(transposeA ? get(STRIDE) : i32(4)), ADD, ...set(PA));
    out.push(...get(PB), ...i32(32), ADD, ...tee(PB), ...get(PEND), LT_U, ...BR_IF_0);
    out.push(END);
    // epilogue: + bias, relu, store
    for (let r = 0; r < rows; r++) {
      for (let v = 0; v < vectors; v++) {
        if (width === NR) {
          out.push(...get(PC), ...get(acc(r, v)));
          if (shape.bias) out.push(...get(BIAS), ...load(16 * v), ...F32X4_ADD);
          if (shape.relu) out.push(...ZERO_F32X4, ...F32X4_MAX);
          out.push(...store(4 * n * r + 16 * v));
          continue;
        }
        for (let lane = 0; lane < 4 && 4 * v + lane < width; lane++) {
          out.push(...get(PC), ...get(acc(r, v)), ...extractF32(lane));
          if (shape.bias) out.push(...get(BIAS), ...loadF32(4 * (4 * v + lane)), F32_ADD);
          if (shape.relu) out.push(0x43, 0, 0, 0, 0, F32_MAX);
          out.push(...storeF32(4 * n * r + 4 * (4 * v + lane)));
        }
      }
    }
    return out;
  };

  /** All panels for `rows` rows starting at PA0 / PC0 (BIAS walks along and is put back). */
  const rowBlock = (rows: number) => {
    const out: number[] = [...get(T), ...set(PB), ...get(PC0), ...set(PC)];
    if (fullPanels > 0) {
      out.push(...i32(fullPanels), ...set(PANEL), ...LOOP);
      out.push(...microKernel(rows, NR));
      out.push(...get(PC), ...i32(4 * NR), ADD, ...set(PC));
      if (shape.bias) out.push(...get(BIAS), ...i32(4 * NR), ADD, ...set(BIAS));
      out.push(...get(PANEL), ...i32(1), SUB, ...tee(PANEL), ...i32(0), GT_S, ...BR_IF_0, END);
    }
    if (tail > 0) out.push(...microKernel(rows, tail));
    if (shape.bias && fullPanels > 0) out.push(...get(BIAS), ...i32(4 * NR * fullPanels), SUB, ...set(BIAS));
    return out;
  };
  const advance = (rows: number) => [
    ...get(PA0), ...i32(transposeA ? 4 * rows : 4 * k * rows), ADD, ...set(PA0),
    ...get(PC0), ...i32(4 * n * rows), ADD, ...set(PC0),
    ...get(I), ...i32(rows), ADD, ...set(I),
  ];

  const body = [
    ...locals([12, I32], [3 + 2 * R, V128]),
    ...pack,
    ...get(M), ...i32(4), MUL, ...set(STRIDE),
    ...get(A), ...set(PA0), ...get(C), ...set(PC0), ...i32(0), ...set(I),
    // while (i + R <= m) a block of R rows
    ...BLOCK, ...LOOP,
    ...get(I), ...i32(R), ADD, ...get(M), GT_S, ...brIf(1),
    ...rowBlock(R), ...advance(R),
    ...br(0),
    END, END,
    // then the m mod R rows left, one block of their number
    ...Array.from({ length: R - 1 }, (_, j) => j + 1).flatMap((rows) => [
      ...BLOCK, ...get(M), ...get(I), SUB, ...i32(rows), NE, ...brIf(0), ...rowBlock(rows), END,
    ]),
    END,
  ];
  return moduleWithImportedMemory(voidType(6), "f", body);
}

/** Tuning of {@link packedMatMul}: which products take it, and how. */
export interface PackedOptions {
  /** Use f32x4.relaxed_madd where this Node compiles it (default true). */
  relaxed: boolean;
  /** Rows of the register block (default {@link DEFAULT_ROWS}). */
  rows: number;
}

type Packed = (a: number, b: number, bias: number, c: number, m: number, t: number) => void;

/** The batch dimensions of a product's operands, if they match (or one is a single matrix); else undefined. */
function batchOf(a: number[], b: number[]): { shape: number[]; a: number; b: number } | undefined {
  const ba = a.slice(0, -2);
  const bb = b.slice(0, -2);
  const na = tf.util.sizeFromShape(ba);
  const nb = tf.util.sizeFromShape(bb);
  if (na === 1) return { shape: bb, a: 1, b: nb };
  if (nb === 1) return { shape: ba, a: na, b: 1 };
  if (ba.length === bb.length && ba.every((d, i) => d === bb[i])) return { shape: ba, a: na, b: nb };
  return undefined;
}

/**
 * op(A)·op(B) (+ bias over the rows) (relu) with the packed kernel, in the wasm backend's memory:
 * float32 operands, batches that match or broadcast one matrix, a bias of n values. Otherwise (or
 * where the module cannot run) undefined, and the caller uses another kernel.
 */
export function packedMatMul(
  backend: WasmBackendLike, a: tf.TensorInfo, b: tf.TensorInfo, transposeA: boolean, transposeB: boolean,
  epilogue: { bias?: tf.TensorInfo; relu?: boolean }, options: PackedOptions,
): tf.TensorInfo | undefined {
  const { bias, relu = false } = epilogue;
  if (a.dtype !== "float32" || b.dtype !== "float32" || (bias !== undefined && bias.dtype !== "float32")) return undefined;
  if (a.shape.length < 2 || b.shape.length < 2) return undefined;
  const [ar, ac] = a.shape.slice(-2);
  const [br, bc] = b.shape.slice(-2);
  const [m, k] = transposeA ? [ac, ar] : [ar, ac];
  const [kb, n] = transposeB ? [bc, br] : [br, bc];
  if (k !== kb || m < 1 || k < 1 || n < 1) return undefined;
  if (bias !== undefined && (tf.util.sizeFromShape(bias.shape) !== n || bias.shape[bias.shape.length - 1] !== n)) return undefined;
  const batch = batchOf(a.shape, b.shape);
  if (batch === undefined) return undefined;
  const relaxed = options.relaxed && relaxedSimdAvailable();
  const shape: PackedShape = { k, n, transposeA, transposeB, bias: bias !== undefined, relu, relaxed, rows: options.rows };
  const key = `packed ${k} ${n} ${+transposeA}${+transposeB}${+shape.bias}${+relu}${+relaxed} ${options.rows}`;
  const f = wasmFunction<Packed>(backend, key, () => packedMatMulWasm(shape), "f");
  if (f === undefined) return undefined;
  const count = Math.max(batch.a, batch.b);
  const out = backend.makeOutput([...batch.shape, m, n], "float32");
  const scratch = backend.makeOutput([Math.ceil(n / NR) * NR * k], "float32");
  // offsets are read after every allocation: an allocation may grow (and move) the memory's buffer, not the offsets
  const offset = (x: tf.TensorInfo) => backend.getMemoryOffset(x.dataId);
  const [pa, pb, pc, pt] = [offset(a), offset(b), offset(out), offset(scratch)];
  const pbias = bias === undefined ? 0 : offset(bias);
  for (let i = 0; i < count; i++) {
    f(pa + (batch.a === 1 ? 0 : 4 * m * k * i), pb + (batch.b === 1 ? 0 : 4 * k * n * i), pbias, pc + 4 * m * n * i, m, pt);
  }
  backend.disposeData(scratch.dataId);
  return out;
}
