import * as tf from "@tensorflow/tfjs";
import {
  ADD, ALL_ONES, BLOCK, BR_IF_0, ELSE, END, F32X4_ADD, F32X4_EQ, F32X4_MUL, F32X4_NE, F32X4_RELAXED_MADD,
  F32X4_SUB, F32_ADD, F32_NE, GE_U, GT_S, GT_U, I32, I32X4_ALL_TRUE, I32X4_BITMASK, IF, AND, SHR_U, LOAD_I32, LOOP, LT_U, MUL, NE, OR, SHL,
  SELECT, STORE_I32, SUB, UNREACHABLE, V128, V128_AND, V128_ANY_TRUE, XOR, ZERO_F32X4, RELU_F32, RELU_F32X4, br, brIf, extractF32, get, i32, load, loadF32, loadSplat,
  locals, moduleWithImportedMemory, set, store, storeF32, tee, voidType, V128_OR, loadI32, storeI32,
} from "./wasm-asm";
import type { WasmBackendLike } from "./wasm-kernels";
import { type WasmKernel, wasmKernel } from "./wasm-kernels";
import { SPLIT_PRODUCT_FROM, activeThreads, guidedRanges, runChunks, runSplit, settleThreads, splitRanges } from "./thread-pool";
import { relaxedSimdAvailable } from "./relaxed-simd";
import { processState } from "./process-state";

/**
 * A general matrix product for the wasm backend, for the shapes of real layers (the MLP's
 * [256, 784]·[784, 256] and its weight gradient Xᵀ·dH): op(B) is packed into panels of 8 columns
 * (each panel k×8 floats, contiguous), and a register-blocked micro-kernel keeps an R×8 block of
 * C in 2R SIMD registers while it walks the inner dimension: per step two vectors of the panel,
 * and one element of each of op(A)'s R rows splatted (read in place: A's rows when A is plain,
 * A's columns when it is transposed, both at constant offsets). The module is generated for its
 * k, n, flags and epilogue (bias, relu), so every address in the inner loop is a pointer plus a
 * constant. With relaxed SIMD the multiply-add is `f32x4.relaxed_madd` (one FMA instruction on
 * x86-64 with FMA3), else `f32x4.mul` then `f32x4.add`. R is 6 rows unless 4 run clearly faster on
 * the machine ({@link denseRows}: 6 rows give 12 independent chains of multiply-adds, which a core
 * issuing two 4-cycle FMAs a cycle needs); that runs at about 90% of the machine's peak for 128-bit
 * multiply-adds on one thread (AMD EPYC Zen 4: 58 GFLOP/s, Zen 5: 55-57; `scripts/bench-matmul.ts
 * --general` measures it; the kernel alone, called in a loop, 95-97%: the rest is tfjs's
 * bookkeeping and fresh operands), so the one way left to be faster is to do less: where op(A) has many zeros (a batch of images on a plain background, the MLP's
 * first layer), each row block first lists the steps of the inner dimension where its rows are
 * not all zero, and the micro-kernel walks that list: runs of steps when A is plain (pixels of two
 * images), single steps carrying a copy of their floats of A when A is transposed (2 pixels of one
 * image), with a wide block of 2 rows × 3 panels ({@link registerBlock}). The floats are the dense
 * kernel's, bit for bit, since the steps left out add exact zeros (when op(B) is finite, which the
 * module checks).
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
  /** Panels of the register block (1 or 2): R rows × 8W columns. */
  panels: number;
  /**
   * Skip the steps of the inner dimension where the block's rows of op(A) are all zero (when op(B)
   * is finite; else compute them all). Same floats: an exact zero times a finite number adds
   * nothing to a sum that cannot be -0.
   */
  skipZeros: boolean;
  /**
   * What a call does (default "all"): pack op(B) into t, then compute C; "pack": only pack op(B)
   * into t, with (skipZeros) the word after the packed panels saying whether op(B) is finite;
   * "compute": only compute C from a t that a "pack" call filled. A product split across threads
   * packs once, then each thread computes its rows from the one packed op(B) ({@link packedMatMul}).
   */
  stage?: "all" | "pack" | "compute";
}

/** Columns of a panel: two SIMD vectors. */
const NR = 8;
/**
 * Rows of the register block: 4 rows × 2 vectors of accumulators, 2 panel vectors and a splat (11
 * of x86-64's 16 SIMD registers). Measured with scripts/bench-matmul.ts --rows 3,4,5: 3 rows ran
 * 20% slower; 4 rows 1.4x (mul+add) to 1.7x (relaxed) XNNPACK. Unrolling the inner loop 2 or 4
 * times gained nothing (51.5 → 52.3 GFLOP/s), so it is not done. The dense product takes
 * {@link TALL_ROWS} instead unless this block is clearly faster on the machine ({@link denseRows}).
 */
export const DEFAULT_ROWS = 4;

/**
 * The taller register block: 6 rows × 2 vectors = 12 independent chains of multiply-adds, where
 * 4 rows give 8. A fused multiply-add takes about 4 cycles and x86-64 cores issue two a cycle, so
 * 8 chains leave the FMA units idle whenever a chain waits: on an AMD EPYC Zen 5, a wasm
 * microbenchmark of independent f32x4.relaxed_madd chains runs 8 chains at 83% of the rate of 12
 * (47.5 against 57 GFLOP/s), and the 4-row kernel at 46.
 */
export const TALL_ROWS = 6;

/**
 * The most panels of a one-row block: 1 row × 6 panels of 8 columns = 12 accumulators, the dense
 * 6×8 block's count of independent chains (skipping zeros it ran slower than 2 rows × 3 panels:
 * {@link registerBlock}).
 */
export const WIDE_PANELS = 6;

/** The most panels a block of `rows` rows takes: 12 accumulators at most, and 2 panels from 3 rows on. */
export function maxPanels(rows: number): number {
  return rows === 1 ? WIDE_PANELS : rows === 2 ? 3 : 2;
}

/**
 * Blocks of more rows than this fence each row's multiply-adds in an `if` whose condition is always
 * true (a predicted branch). Without it V8's scheduler puts all loads of a step first (they are
 * ordered effects; the multiply-adds are pure and sink to their use), so 6 splats, 2 panel vectors
 * and 12 accumulators need 20 registers of x86-64's 15 that V8 allocates: accumulators were
 * spilled and 5 or 6 rows ran at 25-35 GFLOP/s. In the fence a row's splat is used before the next
 * is loaded: 12 + 2 + 1 registers, no spill, 51-52 GFLOP/s on Zen 5 (4 rows: 46). The condition
 * of fence j is `pb > j` (pb, the panel pointer, is at least t, and the module traps where t < 64):
 * it changes every step, so V8 neither hoists it nor learns it from the fence before, and each
 * fence is one compare-and-branch. The fences tested `m` before; V8 knew m ≠ 0 after the first and
 * compiled each later one as a test of a constant it kept in a register, with a taken jump around
 * it: about 45 instructions a step of 12 multiply-adds where there are now about 35. In one
 * process, interleaved (AMD EPYC Zen 5, CPU time, medians), the MLP's dense products at 6 rows ran
 * 1-3% faster, the zero-skipping 2×24 block (fenced a panel vector) 6-9% on X·W1 and 2-3% on Xᵀ·dH;
 * where the host slowed the 6-row kernel (see {@link denseRows}) the timing's product ran in 60-68
 * µs against 72-80 (4 rows: 52-58).
 */
const FENCE_FROM = DEFAULT_ROWS;

/**
 * `f(a, b, bias, c, m, t, list, lda)`: C = op(A)·op(B) (+ bias) (relu), C m×n, op(A) m×k, op(B) k×n,
 * row-major float32; t is scratch for the packed op(B) (⌈n/8⌉·8·k floats), list for 5k i32s (skipZeros);
 * lda is A's row length in floats when A is transposed (its m, or more when these m rows are a
 * range of a larger product's: thread-pool.ts splits products so).
 */
export function packedMatMulWasm(shape: PackedShape): number[] {
  const { k, n, transposeA, transposeB, relaxed } = shape;
  const R = shape.rows;
  if (!(k >= 1 && n >= 1 && R >= 1 && R <= 6 && shape.panels >= 1 && shape.panels <= maxPanels(R))) {
    throw new Error(`packedMatMulWasm: bad shape ${JSON.stringify(shape)}`);
  }
  const [A, B, BIAS, C, M, T, LIST, LDA] = [0, 1, 2, 3, 4, 5, 6, 7];
  const [I, PA0, PC0, PA, PB, PEND, PC, PANEL, SRC, DST, LEFT, STRIDE, SPARSE, PL, PLEND, KK, PREV, RUN_END] =
    [8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25];
  const W = shape.panels;
  /**
   * A wide block, 1 row against up to 6 panels or 2 rows against up to 3 (12 accumulators): a
   * step splats the rows' values, then each panel vector, fenced in an `if (m)`, is loaded and
   * multiplied into each row's accumulator, so 2RW accumulators, R splats and one panel vector
   * live at once (at most 15 registers).
   */
  const wide = R === 1 || W > 2;
  const fenced = R > FENCE_FROM || wide;
  const V = 26; // v128 locals: a splat, two for the finiteness scan, 2W panel vectors, then R × 2W accumulators
  const [SPLAT, FIN, TMP, BV] = [V, V + 1, V + 2, V + 3];
  const ACC = BV + 2 * W;
  const bv = (w: number, v: number) => BV + 2 * w + v;
  const acc = (r: number, w: number, v: number) => ACC + 2 * (W * r + w) + v;
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
  /** FIN &= (v - v == v - v) lane by lane: all ones where v is finite. */
  const finite = (v: number[]) => [...v, ...get(TMP), ...F32X4_SUB, ...tee(TMP), ...get(TMP), ...F32X4_EQ, ...get(FIN), ...V128_AND, ...set(FIN)];
  /** Where B is packed whole panels, row by row, the finiteness scan of skipZeros rides along (B is read once). */
  const scanWhilePacking = shape.skipZeros && !transposeB && tail === 0;
  pack.push(...get(B), ...set(SRC), ...get(T), ...set(DST));
  const nextPanelSource = transposeB ? 4 * k * NR : 4 * NR; // from op(B)[0][8p] to op(B)[0][8p + 8]
  if (fullPanels > 0 && !transposeB) {
    // row by row of B, each row's 8-column pieces to their panels: B is read in order, each cache line
    // once (panel by panel, a line was read for half of it, and again for the next panel: 80 µs for 784×256)
    pack.push(...i32(k), ...set(LEFT), ...LOOP);
    pack.push(...i32(fullPanels), ...set(PANEL), ...LOOP);
    for (const offset of [0, 16]) {
      pack.push(...get(DST), ...get(SRC), ...load(offset), ...(scanWhilePacking ? [...tee(TMP), ...store(offset), ...finite(get(TMP))] : store(offset)));
    }
    pack.push(...get(SRC), ...i32(4 * NR), ADD, ...set(SRC), ...get(DST), ...i32(panelBytes), ADD, ...set(DST));
    pack.push(...get(PANEL), ...i32(1), SUB, ...tee(PANEL), ...i32(0), GT_S, ...BR_IF_0, END);
    pack.push(...get(SRC), ...i32(4 * n - 4 * NR * fullPanels), ADD, ...set(SRC));
    pack.push(...get(DST), ...i32(32 - panelBytes * fullPanels), ADD, ...set(DST));
    pack.push(...get(LEFT), ...i32(1), SUB, ...tee(LEFT), ...i32(0), GT_S, ...BR_IF_0, END);
    pack.push(...get(B), ...i32(4 * NR * fullPanels), ADD, ...set(SRC), ...get(T), ...i32(panelBytes * fullPanels), ADD, ...set(DST));
  } else if (fullPanels > 0) {
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

  /**
   * With A plain, a block's rows are images and the steps pixels, whose zeros come in long runs
   * (the background): the list holds runs [start, end) of steps, walked as the dense loop walks.
   * With A transposed, the steps are images, in no order: the list holds single steps.
   */
  const runs = !transposeA;
  /**
   * With A transposed, a block of 1, 2 or 4 rows reads as many neighbouring floats of A per step,
   * one row of A (a stride of 4m bytes) apart: the list copies them into its entries, [panel
   * offset, the floats], so the micro-kernel reads one entry after another (3 rows: single steps).
   */
  const copiesA = (rows: number) => transposeA && (rows <= 2 || rows === 4);
  /** Bytes of a list entry that copies op(A)'s values: a panel offset and `rows` floats. */
  const entryBytes = (rows: number) => 4 + 4 * rows;
  /** Vectors of a panel `width` columns wide. */
  const vectorsOf = (width: number) => (width > 4 ? 2 : 1);
  /** The `if` opening fence j: pb > j, always true ({@link FENCE_FROM}). */
  const fence = (j: number) => [...get(PB), ...i32(j), GT_U, ...IF];
  /** One step of the inner dimension: the panels' rows at PB (panel w at PB + w·panelBytes) times op(A)'s `rows` values at PA. */
  const step = (rows: number, widths: number[]) => {
    const out: number[] = [];
    if (wide) {
      // the rows' values in BV.., each panel vector in SPLAT
      for (let r = 0; r < rows; r++) out.push(...get(PA), ...loadSplat(aOffset(r)), ...set(BV + r));
      widths.forEach((width, w) => {
        for (let v = 0; v < vectorsOf(width); v++) {
          out.push(...fence(2 * w + v), ...get(PB), ...load(w * panelBytes + 16 * v), ...set(SPLAT));
          for (let r = 0; r < rows; r++) out.push(...madd(BV + r, SPLAT, acc(r, w, v)), ...set(acc(r, w, v)));
          out.push(END);
        }
      });
      return out;
    }
    widths.forEach((width, w) => {
      for (let v = 0; v < vectorsOf(width); v++) out.push(...get(PB), ...load(w * panelBytes + 16 * v), ...set(bv(w, v)));
    });
    for (let r = 0; r < rows; r++) {
      if (fenced) out.push(...fence(r));
      out.push(...get(PA), ...loadSplat(aOffset(r)), ...set(SPLAT));
      widths.forEach((width, w) => {
        for (let v = 0; v < vectorsOf(width); v++) out.push(...madd(SPLAT, bv(w, v), acc(r, w, v)), ...set(acc(r, w, v)));
      });
      if (fenced) out.push(END);
    }
    return out;
  };
  /**
   * The block of C at PC, `rows` rows × the panels of `widths` columns, from rows PA0 and the
   * panels from PB on; leaves PB at the panel after them. `listed`: only the steps in the list
   * at LIST..PLEND (see {@link listSteps}).
   */
  const microKernel = (rows: number, widths: number[], listed = false) => {
    const out: number[] = [];
    for (let r = 0; r < rows; r++) {
      widths.forEach((width, w) => {
        for (let v = 0; v < vectorsOf(width); v++) out.push(...ZERO_F32X4, ...set(acc(r, w, v)));
      });
    }
    /** The list's entries (`bytes` each) from PL, `perEntry` for each, PEND holding the first panel's base; PB after the panels. */
    const overList = (bytes: number, perEntry: number[]) => [
      ...get(PB), ...set(PEND), ...get(LIST), ...set(PL),
      ...BLOCK, ...get(PL), ...get(PLEND), GE_U, ...brIf(0), ...LOOP,
      ...perEntry,
      ...get(PL), ...i32(bytes), ADD, ...tee(PL), ...get(PLEND), LT_U, ...BR_IF_0,
      END, END,
      ...get(PEND), ...i32(panelBytes * widths.length), ADD, ...set(PB),
    ];
    if (listed && runs) {
      // each run [start, end): PA and PB at its start, then every step up to its end as the dense loop does
      out.push(...overList(8, [
        ...get(PL), ...LOAD_I32, ...tee(KK), ...i32(2), SHL, ...get(PA0), ADD, ...set(PA),
        ...get(KK), ...i32(5), SHL, ...get(PEND), ADD, ...set(PB),
        ...get(PL), 0x28, 0x02, 0x04, ...i32(5), SHL, ...get(PEND), ADD, ...set(RUN_END), // i32.load offset 4
        ...LOOP, ...step(rows, widths),
        ...get(PA), ...i32(4), ADD, ...set(PA),
        ...get(PB), ...i32(32), ADD, ...tee(PB), ...get(RUN_END), LT_U, ...BR_IF_0, END,
      ]));
    } else if (listed && copiesA(rows)) {
      // each entry: PB at the panel's base + its offset, op(A)'s values right after it
      out.push(...overList(entryBytes(rows), [
        ...get(PL), ...LOAD_I32, ...get(PEND), ADD, ...set(PB), ...get(PL), ...i32(4), ADD, ...set(PA),
        ...step(rows, widths),
      ]));
    } else if (listed) {
      // A transposed, fewer than 4 rows: PB and PA at step kk, the panel's base + 32·kk and op(A)'s rows + kk·(A's row stride)
      out.push(...overList(4, [
        ...get(PL), ...LOAD_I32, ...tee(KK), ...i32(5), SHL, ...get(PEND), ADD, ...set(PB),
        ...get(KK), ...get(STRIDE), MUL, ...get(PA0), ADD, ...set(PA),
        ...step(rows, widths),
      ]));
    } else {
      out.push(...get(PA0), ...set(PA), ...get(PB), ...i32(panelBytes), ADD, ...set(PEND));
      out.push(...LOOP);
      out.push(...step(rows, widths));
      out.push(...get(PA), ...(transposeA ? get(STRIDE) : i32(4)), ADD, ...set(PA));
      out.push(...get(PB), ...i32(32), ADD, ...tee(PB), ...get(PEND), LT_U, ...BR_IF_0);
      out.push(END);
      if (widths.length > 1) out.push(...get(PB), ...i32(panelBytes * (widths.length - 1)), ADD, ...set(PB));
    }
    // epilogue: + bias, relu, store
    for (let r = 0; r < rows; r++) {
      widths.forEach((width, w) => {
        for (let v = 0; v < vectorsOf(width); v++) {
          const column = NR * w + 4 * v;
          if (width === NR) {
            out.push(...get(PC), ...get(acc(r, w, v)));
            if (shape.bias) out.push(...get(BIAS), ...load(4 * column), ...F32X4_ADD);
            if (shape.relu) out.push(...RELU_F32X4);
            out.push(...store(4 * n * r + 4 * column));
            continue;
          }
          for (let lane = 0; lane < 4 && 4 * v + lane < width; lane++) {
            out.push(...get(PC), ...get(acc(r, w, v)), ...extractF32(lane));
            if (shape.bias) out.push(...get(BIAS), ...loadF32(4 * (column + lane)), F32_ADD);
            if (shape.relu) out.push(...RELU_F32);
            out.push(...storeF32(4 * n * r + 4 * (column + lane)));
          }
        }
      });
    }
    return out;
  };

  /**
   * The list (from LIST, ending at PLEND) of the steps kk where op(A)'s `rows` rows at PA0 are not
   * all zero (NaN and infinities count as nonzero, -0 as zero), in the form the micro-kernel walks:
   * runs [start, end) of steps with A plain; with A transposed, entries [32·kk, op(A)'s 4 values at
   * kk] for 4 rows, else single steps kk. Every entry is written, and the end moves past it only
   * where it is kept.
   */
  const listSteps = (rows: number) => {
    if (copiesA(rows) && rows <= 2) {
      // entries [32·kk, op(A)[0..rows-1][kk]], written for every kk, kept where a value is nonzero
      // the values' bits are copied as integers; a value is nonzero where a bit besides the sign's is set
      const bits = [LEFT, RUN_END];
      const out = [...get(LIST), ...set(PLEND), ...get(PA0), ...set(PA), ...i32(0), ...set(KK), ...LOOP];
      for (let r = 0; r < rows; r++) out.push(...get(PLEND), ...get(PA), ...loadI32(4 * r), ...tee(bits[r]), ...storeI32(4 + 4 * r));
      out.push(...get(PLEND), ...get(KK), ...i32(5), SHL, ...STORE_I32);
      out.push(...i32(entryBytes(rows)), ...i32(0));
      for (let r = 0; r < rows; r++) out.push(...get(bits[r]), ...(r > 0 ? [OR] : []));
      out.push(...i32(1), SHL, SELECT, ...get(PLEND), ADD, ...set(PLEND));
      out.push(...get(PA), ...get(STRIDE), ADD, ...set(PA));
      out.push(...get(KK), ...i32(1), ADD, ...tee(KK), ...i32(k), LT_U, ...BR_IF_0, END);
      return out;
    }
    if (copiesA(rows)) {
      // entries [32·kk, op(A)[0..3][kk]], written for every kk, kept where one of the 4 is nonzero
      return [
        ...get(LIST), ...set(PLEND), ...get(PA0), ...set(PA), ...i32(0), ...set(KK),
        ...LOOP,
        ...get(PLEND), ...get(PA), ...load(0), ...tee(TMP), ...store(4),
        ...get(PLEND), ...get(KK), ...i32(5), SHL, ...STORE_I32,
        ...i32(ENTRY_BYTES), ...i32(0), ...get(TMP), ...ZERO_F32X4, ...F32X4_NE, ...V128_ANY_TRUE, SELECT, ...get(PLEND), ADD, ...set(PLEND),
        ...get(PA), ...get(STRIDE), ADD, ...set(PA),
        ...get(KK), ...i32(1), ADD, ...tee(KK), ...i32(k), LT_U, ...BR_IF_0, END,
      ];
    }
    const out: number[] = [...get(LIST), ...set(PLEND), ...get(PA0), ...set(PA), ...i32(0), ...set(KK), ...i32(0), ...set(PREV)];
    const quads = runs ? Math.floor(k / 4) : 0;
    if (quads > 0) {
      // 4 steps at a time: t has a bit for each of the 4 where the flag changes (a run starts or ends)
      out.push(...LOOP);
      for (let r = 0; r < rows; r++) out.push(...get(PA), ...load(aOffset(r)), ...ZERO_F32X4, ...F32X4_NE, ...(r > 0 ? V128_OR : []));
      out.push(...I32X4_BITMASK, ...tee(RUN_END));
      out.push(...get(RUN_END), ...i32(1), SHL, ...get(PREV), OR, XOR, ...i32(15), AND, ...set(LEFT));
      out.push(...get(RUN_END), ...i32(3), SHR_U, ...set(PREV));
      out.push(...get(LEFT), ...IF);
      for (let b = 0; b < 4; b++) {
        out.push(...get(PLEND), ...get(KK), ...(b > 0 ? [...i32(b), ADD] : []), ...STORE_I32);
        out.push(...get(LEFT), ...(b > 0 ? [...i32(b), SHR_U] : []), ...i32(1), AND, ...i32(2), SHL, ...get(PLEND), ADD, ...set(PLEND));
      }
      out.push(END);
      out.push(...get(PA), ...i32(16), ADD, ...set(PA));
      out.push(...get(KK), ...i32(4), ADD, ...tee(KK), ...i32(4 * quads), LT_U, ...BR_IF_0, END);
      if (k % 4 === 0) {
        // a run still open ends at k
        out.push(...get(PLEND), ...i32(k), ...STORE_I32, ...get(PREV), ...i32(2), SHL, ...get(PLEND), ADD, ...set(PLEND));
        return out;
      }
    }
    out.push(...LOOP, ...get(PLEND), ...get(KK), ...STORE_I32);
    for (let r = 0; r < rows; r++) {
      out.push(...get(PA), ...loadF32(aOffset(r)), 0x43, 0, 0, 0, 0, F32_NE);
      if (r > 0) out.push(OR);
    }
    if (runs) {
      // a run's bounds: kk is kept where the flag changes (a run starts or ends)
      out.push(...tee(LEFT), ...get(PREV), XOR, ...i32(2), SHL, ...get(PLEND), ADD, ...set(PLEND), ...get(LEFT), ...set(PREV));
    } else {
      out.push(...i32(2), SHL, ...get(PLEND), ADD, ...set(PLEND));
    }
    out.push(...get(PA), ...(transposeA ? get(STRIDE) : i32(4)), ADD, ...set(PA));
    out.push(...get(KK), ...i32(1), ADD, ...tee(KK), ...i32(k), LT_U, ...BR_IF_0, END);
    // a run still open ends at k
    if (runs) out.push(...get(PLEND), ...i32(k), ...STORE_I32, ...get(PREV), ...i32(2), SHL, ...get(PLEND), ADD, ...set(PLEND));
    return out;
  };

  /**
   * All panels of `listed` (or dense) micro-kernels for `rows` rows from PB = T, PC = PC0, W full
   * panels at a time, then the full panels left, then the partial one (BIAS walks along and is put back).
   */
  const panels = (rows: number, listed: boolean) => {
    const out: number[] = [...get(T), ...set(PB), ...get(PC0), ...set(PC)];
    const nextColumns = (count: number) => [
      ...get(PC), ...i32(4 * NR * count), ADD, ...set(PC),
      ...(shape.bias ? [...get(BIAS), ...i32(4 * NR * count), ADD, ...set(BIAS)] : []),
    ];
    if (wide) {
      // the ⌈n/8⌉ panels (the last maybe partial) in groups as even as W allows: 32 panels as 6, 6, 5, 5, 5, 5
      const all = Math.ceil(n / NR);
      const groups = Math.ceil(all / W);
      const sizes = Array.from({ length: groups }, (_, g) => Math.floor(all / groups) + (g < all % groups ? 1 : 0));
      const last = sizes.pop()!;
      for (let g = 0; g < sizes.length;) {
        let same = 1;
        while (g + same < sizes.length && sizes[g + same] === sizes[g]) same++;
        out.push(...i32(same), ...set(PANEL), ...LOOP);
        out.push(...microKernel(rows, Array<number>(sizes[g]).fill(NR), listed), ...nextColumns(sizes[g]));
        out.push(...get(PANEL), ...i32(1), SUB, ...tee(PANEL), ...i32(0), GT_S, ...BR_IF_0, END);
        g += same;
      }
      out.push(...microKernel(rows, [...Array<number>(last - 1).fill(NR), tail > 0 ? tail : NR], listed));
      const before = all - last;
      if (shape.bias && before > 0) out.push(...get(BIAS), ...i32(4 * NR * before), SUB, ...set(BIAS));
      return out;
    }
    const groups = Math.floor(fullPanels / W);
    if (groups > 0) {
      out.push(...i32(groups), ...set(PANEL), ...LOOP);
      out.push(...microKernel(rows, Array<number>(W).fill(NR), listed), ...nextColumns(W));
      out.push(...get(PANEL), ...i32(1), SUB, ...tee(PANEL), ...i32(0), GT_S, ...BR_IF_0, END);
    }
    for (let p = 0; p < fullPanels % W; p++) out.push(...microKernel(rows, [NR], listed), ...nextColumns(1));
    if (tail > 0) out.push(...microKernel(rows, [tail], listed));
    if (shape.bias && fullPanels > 0) out.push(...get(BIAS), ...i32(4 * NR * fullPanels), SUB, ...set(BIAS));
    return out;
  };
  /** `rows` rows starting at PA0 / PC0: with skipZeros, their list of steps and the listed kernels when SPARSE. */
  const rowBlock = (rows: number) => {
    if (!shape.skipZeros) return panels(rows, false);
    return [...get(SPARSE), ...IF, ...listSteps(rows), ...panels(rows, true), ELSE, ...panels(rows, false), END];
  };
  /** SPARSE = whether every value of op(B) is finite (x - x == x - x), scanning B as k·n floats. */
  const scanFinite = () => {
    const whole = k * n - ((k * n) % 4);
    const test = (value: number[]) => [...value, ...tee(TMP), ...get(TMP), ...F32X4_SUB, ...tee(TMP), ...get(TMP), ...F32X4_EQ, ...get(FIN), ...V128_AND, ...set(FIN)];
    const out: number[] = [...ALL_ONES, ...set(FIN), ...get(B), ...set(SRC)];
    if (whole > 0) {
      out.push(...get(B), ...i32(4 * whole), ADD, ...set(DST));
      out.push(...LOOP, ...test([...get(SRC), ...load(0)]), ...get(SRC), ...i32(16), ADD, ...tee(SRC), ...get(DST), LT_U, ...BR_IF_0, END);
    }
    for (let j = 0; j < (k * n) % 4; j++) out.push(...test([...get(SRC), ...loadSplat(4 * j)]));
    out.push(...get(FIN), ...I32X4_ALL_TRUE, ...set(SPARSE));
    return out;
  };
  const advance = (rows: number) => [
    ...get(PA0), ...i32(transposeA ? 4 * rows : 4 * k * rows), ADD, ...set(PA0),
    ...get(PC0), ...i32(4 * n * rows), ADD, ...set(PC0),
    ...get(I), ...i32(rows), ADD, ...set(I),
  ];

  const stage = shape.stage ?? "all";
  /** Bytes of the packed op(B) in t; a "pack" call writes SPARSE in the word after them for the "compute" calls. */
  const packedBytes = panelBytes * Math.ceil(n / NR);
  const packing = [
    ...(shape.skipZeros && !scanWhilePacking ? scanFinite() : []),
    ...(scanWhilePacking ? [...ALL_ONES, ...set(FIN)] : []),
    ...pack,
    ...(scanWhilePacking ? [...get(FIN), ...I32X4_ALL_TRUE, ...set(SPARSE)] : []),
  ];
  // t ≥ 64: the fences' conditions (pb > j, pb ≥ t) hold; a scratch pointer is never that low
  const guard = [...get(T), ...i32(64), LT_U, ...IF, UNREACHABLE, END];
  if (stage === "pack") {
    const flag = shape.skipZeros ? [...get(T), ...get(SPARSE), ...storeI32(packedBytes)] : [];
    return moduleWithImportedMemory(voidType(8), "f", [...locals([18, I32], [3 + 2 * W + 2 * R * W, V128]), ...guard, ...packing, ...flag, END]);
  }
  const body = [
    ...locals([18, I32], [3 + 2 * W + 2 * R * W, V128]),
    ...guard,
    ...(stage === "all" ? packing : shape.skipZeros ? [...get(T), ...loadI32(packedBytes), ...set(SPARSE)] : []),
    ...get(LDA), ...i32(4), MUL, ...set(STRIDE),
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
  return moduleWithImportedMemory(voidType(8), "f", body);
}

/** Tuning of {@link packedMatMul}: which products take it, and how. */
export interface PackedOptions {
  /** Use f32x4.relaxed_madd where this Node compiles it (default true). */
  relaxed: boolean;
  /** Rows of the register block (default: {@link registerBlock}'s). */
  rows?: number;
  /** Panels of 8 columns in the register block (default: {@link registerBlock}'s). */
  panels?: number;
  /**
   * Skip op(A)'s zeros (see {@link PackedShape.skipZeros}): "auto" (the default) where a sample of
   * A is at least {@link SKIP_ZEROS_FROM} zeros, such as a batch of images with a plain background.
   */
  skipZeros?: boolean | "auto";
}

/**
 * The register block, rows × panels of 8 columns: in general {@link denseRows}' rows × 1 panel;
 * 2 rows × 3 panels (12 accumulators, as many chains as the dense 6×8 block) where zeros are
 * skipped, because a step is skipped only where all the block's rows of A are zero, and that is
 * more often so for fewer rows (Fashion-MNIST batches, A plain, rows images: 33% of the steps for
 * 2 images, 21% for 4, 16% for 6; A transposed, rows neighbouring pixels: 45% for 2, 38% for 4).
 * One row against 6 panels skips 50% but reads 12 panel vectors a step: it ran slower (the panels
 * come from L2). Without relaxed SIMD a multiply-add needs a register for the product, and 2×3
 * spills (X·W1 3.3-3.4 ms against 2.1 for 4×8): there it is 4 rows × 1 panel. Measured with
 * scripts/bench-skip-zeros.ts (--mul-add).
 */
export function registerBlock(transposeA: boolean, skipZeros: boolean, relaxed = true): { rows: number; panels: number } {
  if (skipZeros) return relaxed ? { rows: 2, panels: 3 } : { rows: DEFAULT_ROWS, panels: 1 };
  return { rows: denseRows(relaxed), panels: 1 };
}

/** {@link denseRows}' choice, by whether relaxed SIMD is used. */
const chosenRows = new Map<boolean, number>();

/**
 * How much slower (in the median of paired rounds) the tall block may time and still be kept. The
 * tall block is the default: 12 chains of multiply-adds cover the 8 (4-cycle latency × 2 a cycle)
 * that AMD Zen 4/5 and Intel's Golden Cove cores need to keep both FMA units busy, where 4 rows give
 * exactly 8 and stall whenever a load is late. The short block is taken only where the timing shows
 * the tall one clearly slower: a difference of 2% is within what one quiet timing of 50 µs calls
 * varies here, and at 2% the choice costs little either way. Before, the short block was the
 * default unless the tall one won by 3% in the best of 9 rounds: under load (three jobs on two
 * vCPUs, AMD EPYC Zen 5) that picked 4 rows in some processes, 10-12% slower on the MLP's products.
 */
export const TALL_MARGIN = 0.02;

/**
 * The rows of the dense kernel's register block on this machine: {@link TALL_ROWS} unless
 * {@link DEFAULT_ROWS} computes a 48×384·384×64 product clearly faster ({@link pickRows}), timed
 * once per process at first use (30-110 ms on the loaded AMD EPYC Zen 5, at most ~300: each module
 * is run until V8's optimising compiler has replaced its baseline code, then both are timed in 21
 * interleaved rounds of 3 calls). The floats are the same either way: each element of C is one
 * chain of multiply-adds over k in order, whatever the block. `D2L_PACKED_ROWS=4` (or 6) skips
 * the timing.
 *
 * What the timing sees can be a passing state of the host: on the shared 2-vCPU AMD EPYC Zen 5, for
 * minutes at a time one vCPU ran the 6-row kernel 1.7x slower (71 against 42 µs a call; the MLP's
 * products at 56-59% of the peak) and the 4-row one 5-10% slower, while a loop of 12 independent
 * FMA chains ran at full rate there. The 6-row step was about 45 instructions for 12 multiply-adds
 * (now about 35: {@link FENCE_FROM}), the 4-row one about 18 for 8, so a front end shared with
 * another thread of the host (SMT) would hurt the 6-row kernel most. A process that times its
 * blocks in that state keeps 4 rows (about 1 in 14 processes here, with the old fences).
 */
export function denseRows(relaxed: boolean): number {
  const fixed = Number(process.env.D2L_PACKED_ROWS);
  if (fixed === DEFAULT_ROWS || fixed === TALL_ROWS) return fixed;
  let rows = chosenRows.get(relaxed);
  if (rows === undefined) {
    rows = pickRows(timeBlockRounds(relaxed, [DEFAULT_ROWS, TALL_ROWS]));
    chosenRows.set(relaxed, rows);
  }
  return rows;
}

/**
 * The block to use from rounds of [short, tall] timings (ms; a round times both back to back):
 * {@link TALL_ROWS} unless the median over rounds of tall / short exceeds 1 + {@link TALL_MARGIN}.
 * A ratio per round pairs timings taken a few hundred microseconds apart, so a burst of another
 * process's work slows both sides of the rounds it hits and leaves the median ratio where it was;
 * a tall block that failed to compile (Infinity) gives the short one.
 */
export function pickRows(rounds: number[][]): number {
  const ratios = rounds.map(([short, tall]) => tall / short).filter((r) => !Number.isNaN(r));
  if (ratios.length === 0) return DEFAULT_ROWS;
  return median(ratios) <= 1 + TALL_MARGIN ? TALL_ROWS : DEFAULT_ROWS;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** The median over {@link timeBlockRounds}' rounds of each block's time (ms). */
export function timeBlocks(relaxed: boolean, blocks: number[]): number[] {
  const rounds = timeBlockRounds(relaxed, blocks);
  return blocks.map((_, i) => median(rounds.map((round) => round[i])));
}

/**
 * Timings (ms) of the dense kernel with each of `blocks` rows on a 48×384·384×64 product, on a
 * memory of its own: `rounds` rounds, each timing every block in turn over 3 calls (about 0.15 ms);
 * Infinity for a block that does not compile.
 */
export function timeBlockRounds(relaxed: boolean, blocks: number[], rounds = 21): number[][] {
  const [m, k, n] = [48, 384, 64];
  const memory = new WebAssembly.Memory({ initial: 8 });
  const floats = new Float32Array(memory.buffer);
  const [a, b, c, t] = [0, 4 * m * k, 4 * (m * k + k * n), 4 * (m * k + k * n + m * n)];
  for (let i = 0; i < t / 4; i++) floats[i] = ((i * 7919) % 1000) / 1000 - 0.5;
  const runs = blocks.map((rows) => {
    const shape: PackedShape = { k, n, transposeA: false, transposeB: false, bias: false, relu: false, relaxed, rows, panels: 1, skipZeros: false };
    try {
      const f = new WebAssembly.Instance(new WebAssembly.Module(new Uint8Array(packedMatMulWasm(shape))), { e: { m: memory } }).exports.f as (a: number, b: number, bias: number, c: number, m: number, t: number, list: number, lda: number) => void;
      return () => f(a, b, 0, c, m, t, 0, m);
    } catch {
      return undefined;
    }
  });
  const time = (run: () => void, calls = 1) => {
    const start = performance.now();
    for (let i = 0; i < calls; i++) run();
    return (performance.now() - start) / calls;
  };
  // Warm up: V8 runs a new module's baseline (Liftoff) code, 3-3.5x slower here (150 against 43 µs
  // a call for 6 rows), until it has run enough to be compiled again by the optimising compiler in
  // a background thread; the optimised code replaces it at a later call. Some processes get the
  // optimised code from the second call on, others run baseline code for 10 calls or more. So a
  // block is called until 5 calls in a row take under 0.6x the median of calls 2-6 (it was baseline
  // code and is replaced), or, past 25 ms, until 10 calls in a row are within 1.3x the fastest so
  // far (it was optimised code from the start), for at most 150 ms. The warm-up this replaces
  // stopped when a call beat 0.6x the first one, which the first call's compilation made true of
  // baseline code: under load (AMD EPYC Zen 5, three jobs on two vCPUs) the tall block was timed in
  // its baseline code in some processes (its rounds 3.5x the short one's), and 4 rows were chosen.
  for (const run of runs) {
    if (run === undefined) continue;
    const start = performance.now();
    time(run);
    const early = median(Array.from({ length: 5 }, () => time(run)));
    let [fast, steady, best] = [0, 0, Infinity];
    for (let now = performance.now(); fast < 5 && !(now - start > 25 && steady >= 10) && now - start < 150; now = performance.now()) {
      const ms = time(run);
      best = Math.min(best, ms);
      fast = ms < 0.6 * early ? fast + 1 : 0;
      steady = ms <= 1.3 * best ? steady + 1 : 0;
    }
  }
  return Array.from({ length: rounds }, () => runs.map((run) => (run === undefined ? Infinity : time(run, 3))));
}

/** The share of zeros in a sample of A from which "auto" skips them: below, the list costs more than it saves. */
export const SKIP_ZEROS_FROM = 0.25;
/** How many of A's values "auto" looks at. */
const SAMPLE = 256;

/** The share of zeros among {@link SAMPLE} values spread evenly over the `size` floats at `offset`. */
function zeroShare(backend: WasmBackendLike, offset: number, size: number): number {
  const heap = backend.wasm?.HEAPU8;
  // no view, or a detached one, or (shared memory) one from before a grow: compute every step
  if (heap === undefined || heap.buffer.byteLength < offset + 4 * size) return 0;
  const values = new Float32Array(heap.buffer, offset, size);
  const count = Math.min(SAMPLE, size);
  let zeros = 0;
  for (let j = 0; j < count; j++) if (values[Math.floor((j * size) / count)] === 0) zeros++;
  return zeros / count;
}

/** The largest list entry (a panel offset and 4 floats of A), in bytes. */
const ENTRY_BYTES = 20;

/**
 * Products of at least this many multiply-adds (m·k·n) are split across threads (thread-pool.ts's
 * SPLIT_PRODUCT_FROM: the MLP's X·W1 and Xᵀ·dH, LeNet's 12 M products, not its 2.6 M ones, which
 * ran slower split: 0.16 → 0.42 and 0.18 → 0.26 ms a step).
 */
export const SPLIT_FROM = SPLIT_PRODUCT_FROM;

/** The ranges of op(A)'s m rows computed by one thread each: multiples of the register block's rows, so each block is as on one thread. */
export function rowRanges(m: number, k: number, n: number, rows: number, threads = activeThreads()): Array<[number, number]> {
  if (threads <= 1 || m * k * n < SPLIT_FROM) return [[0, m]];
  return splitRanges(m, threads, rows, 4 * rows);
}

const claimState = processState("d2l.packedClaimedRows", () => ({ enabled: true }));

/**
 * Whether a product split with op(B) packed once runs its rows as chunks the threads claim
 * (default true: a worker that wakes late computes fewer rows instead of keeping the calling thread
 * waiting; the MLP's 2-thread step 3% less wall time, engine README *Issue 26, fourth pass*) rather
 * than in halves (false); the floats are the same either way.
 */
export function useClaimedRows(on: boolean): void {
  claimState.enabled = on;
}

/** Whether {@link useClaimedRows} is on. */
export function claimedRows(): boolean {
  return claimState.enabled;
}

/** The fewest rows of a claimed chunk (rounded up to the register block's rows). */
export const CLAIM_ROWS = 16;

/**
 * Products whose op(B) is under this many floats (packed again by every chunk: LeNet's dense
 * layers, 400×120 and less; not the MLP's W1, 784×256) run as chunks of rows the threads claim...
 */
const CHUNK_B_FLOATS = 1 << 16;
/** ...from this many multiply-adds (LeNet's 2.6 M products, which lost time split in halves)... */
export const CHUNK_FROM = 1 << 21;
/** ...in chunks of at least this many rows (a packing of op(B) for each). */
const CHUNK_ROWS = 64;

/**
 * The chunks of op(A)'s m rows the threads claim (multiples of the register block's rows), or
 * undefined where the product is split in halves ({@link rowRanges}) or not at all.
 */
export function rowChunks(m: number, k: number, n: number, rows: number, threads = activeThreads()): Array<[number, number]> | undefined {
  if (threads <= 1 || k * n >= CHUNK_B_FLOATS || m * k * n < CHUNK_FROM || m < 2 * CHUNK_ROWS) return undefined;
  return guidedRanges(m, threads, rows, CHUNK_ROWS);
}

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

/** The packed kernel for one product's shape, and the scratch each call of it needs. */
export interface PackedPlan {
  kernel: WasmKernel;
  /** Rows of its register block (a thread's range of rows starts at a multiple of it). */
  rows: number;
  /** Floats of scratch a call packs op(B) into. */
  scratchFloats: number;
  /** i32 words of the list of steps a call makes (skipZeros; else 0). */
  listWords: number;
}

/**
 * The packed kernel for op(A)·op(B) with op(A) m×k and op(B) k×n (its module generated on first
 * use), as {@link packedMatMul} runs it; callers that schedule its calls themselves (the input
 * gradient of conv2d-simd.ts, a product and a scatter on each thread's images) call it as
 * `kernel.call(a, b, bias, c, m, scratch, list, lda)` (see {@link packedMatMulWasm}). Undefined
 * where the module cannot run.
 */
export function packedPlan(
  backend: WasmBackendLike, product: { k: number; n: number; transposeA: boolean; transposeB: boolean; bias: boolean; relu: boolean },
  options: PackedOptions & { skipZeros: boolean; stage?: PackedShape["stage"] },
): PackedPlan | undefined {
  const { k, n, transposeA, transposeB, relu } = product;
  const relaxed = options.relaxed && relaxedSimdAvailable();
  const skipZeros = options.skipZeros;
  const stage = options.stage ?? "all";
  const shape: PackedShape = { k, n, transposeA, transposeB, bias: product.bias, relu, relaxed, ...registerBlock(transposeA, skipZeros, relaxed), skipZeros, stage };
  // rows without panels: that many rows × 1 panel (the zero-skipping default, 3 panels, is no block for 3 rows or more)
  if (options.rows !== undefined) [shape.rows, shape.panels] = [options.rows, options.panels ?? 1];
  else if (options.panels !== undefined) shape.panels = options.panels;
  const key = `packed ${k} ${n} ${+transposeA}${+transposeB}${+shape.bias}${+relu}${+relaxed}${+skipZeros} ${shape.rows}x${shape.panels} ${stage}`;
  const kernel = wasmKernel(backend, key, () => packedMatMulWasm(shape), "f");
  if (kernel === undefined) return undefined;
  return { kernel, rows: shape.rows, scratchFloats: Math.ceil(n / NR) * NR * k, listWords: skipZeros ? (ENTRY_BYTES / 4) * k : 0 };
}

/** Whether A (`size` floats at `offset`) is zeros enough for the packed kernel to skip them ("auto"). */
export function skipsZeros(backend: WasmBackendLike, offset: number, size: number): boolean {
  return zeroShare(backend, offset, size) >= SKIP_ZEROS_FROM;
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
  const skip = options.skipZeros ?? "auto";
  const skipZeros = skip === "auto" ? skipsZeros(backend, backend.getMemoryOffset(a.dataId), m * k) : skip;
  const product = () => ({ k, n, transposeA, transposeB, bias: bias !== undefined, relu });
  const plan = packedPlan(backend, product(), { ...options, skipZeros });
  if (plan === undefined) return undefined;
  const { kernel, scratchFloats, listWords } = plan;
  const count = Math.max(batch.a, batch.b);
  // A large op(B): packed once, here, then the threads claim chunks of the rows (useClaimedRows; or
  // take halves) and compute them from it. Each
  // thread packing its own copy (as before) cost a second pass over op(B) (1-2.5% of one of the MLP's
  // products) and, on the worker, reading op(B) from the other core's cache and writing 0.8 MB: in one
  // process, interleaved, fresh operands each call (as training has), the MLP's three products on 2
  // threads took 3-8% less CPU time and no more wall time (AMD EPYC Zen 5, shared). Where op(B) is small
  // enough to pack again for each chunk, chunks of rows the threads claim (thread-pool.ts's runChunks),
  // each packing op(B) into its thread's own scratch and listing its own steps.
  const chunks = rowChunks(m, k, n, plan.rows);
  const ranges = chunks ?? rowRanges(m, k, n, plan.rows);
  const stages = chunks === undefined && ranges.length > 1
    ? [packedPlan(backend, product(), { ...options, skipZeros, stage: "pack" }), packedPlan(backend, product(), { ...options, skipZeros, stage: "compute" })]
    : [];
  const staged = stages.length === 2 && stages.every((s) => s !== undefined);
  // the rows as chunks the threads claim: each packing op(B) itself (small op(B)), or from the one packed here
  const claimed = chunks ?? (staged && claimState.enabled ? guidedRanges(m, activeThreads(), plan.rows, CLAIM_ROWS) : undefined);
  const slots = claimed === undefined ? ranges.length : Math.min(activeThreads(), claimed.length);
  const compute = staged ? stages[1]!.kernel : kernel;
  const out = backend.makeOutput([...batch.shape, m, n], "float32");
  // staged: one packed op(B) and the word after it (whether op(B) is finite); else one per slot
  const scratch = backend.makeOutput([staged ? scratchFloats + 1 : slots * scratchFloats], "float32");
  const list = listWords > 0 ? backend.makeOutput([slots * listWords], "int32") : undefined;
  // offsets are read after every allocation: an allocation may grow (and move) the memory's buffer, not the offsets
  const offset = (x: tf.TensorInfo) => backend.getMemoryOffset(x.dataId);
  const [pa, pb, pc, pt] = [offset(a), offset(b), offset(out), offset(scratch)];
  const pbias = bias === undefined ? 0 : offset(bias);
  const plist = list === undefined ? 0 : offset(list);
  const memory = backend.wasm?.asm?.memory as WebAssembly.Memory;
  for (let i = 0; i < count; i++) {
    const ai = pa + (batch.a === 1 ? 0 : 4 * m * k * i);
    const bi = pb + (batch.b === 1 ? 0 : 4 * k * n * i);
    const ci = pc + 4 * m * n * i;
    const argsFor = (start: number, end: number, slot: number) => [
      ai + 4 * start * (transposeA ? 1 : k), bi, pbias, ci + 4 * n * start, end - start,
      staged ? pt : pt + 4 * scratchFloats * slot, plist + 4 * listWords * slot, m,
    ];
    if (staged) {
      // no worker may still be reading the packed op(B) of an earlier product cut off by an interrupt
      settleThreads();
      stages[0]!.kernel.call(ai, bi, pbias, ci, 0, pt, plist, m);
    }
    if (claimed !== undefined) runChunks(memory, claimed.length, slots, (c, slot) => [[compute, argsFor(claimed[c][0], claimed[c][1], slot)]]);
    else runSplit(memory, compute, ranges, argsFor);
  }
  backend.disposeData(scratch.dataId);
  if (list !== undefined) backend.disposeData(list.dataId);
  return out;
}
