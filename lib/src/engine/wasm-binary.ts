import * as tf from "@tensorflow/tfjs";
import {
  ADD, BLOCK, BR_IF_0, END, GT_S, I32, LOOP, LT_U, MUL, SUB, V128, brIf, get, i32, load, loadSplat, locals,
  moduleWithImportedMemory, set, store, storeF32, tee, voidType,
} from "./wasm-asm";
import { type WasmBackendLike, findWasmReplacement, replaceWasmKernel, restoreWasmKernel, wasmKernel } from "./wasm-kernels";
import { SPLIT_PASS_FROM, activeThreads, runGuided } from "./thread-pool";
import { arraysEqual, assertAndGetBroadcastShape, sizeFromShape } from "./tf-direct";

/**
 * The wasm backend (4.x) computes Maximum, Minimum and the six comparisons with a generic C++
 * loop that works out the broadcast index of every element: 0.45-0.6 ms for max(X, 0) on a
 * 256×256 matrix (7 ns an element) and 0.24 ms for X >= 0, where Add takes 13 µs. Chapter 4's
 * scratch MLP spends about 0.2 s an epoch there (its relu is `tf.maximum(X, 0)`, and the gradient
 * of maximum compares). Add, Sub, Multiply and RealDiv take a row broadcast (X + b, a bias) at 36 µs
 * on 256×256, a column broadcast ([256, 10] / [256, 1], softmax's division by its row sums) at
 * ~10 µs, and even operands of one shape at 4.3 µs for 256×10 (ours: 3.9, 2.2; kernel alone, CPU
 * time, Zen 5). This module re-registers those twelve kernels: float32 or int32 operands of the
 * same shape, one of them a single value, one of them a row repeated over the other's leading axes,
 * or one of them a column ([..., 1] against [..., n]) run a WebAssembly SIMD loop (16 elements a
 * turn); other shapes and dtypes (int32 RealDiv) run the original kernel. The results are the original's bit for bit: maximum is
 * `a < b ? b : a` and minimum `b < a ? b : a`, as its std::max and std::min (WebAssembly's pmax
 * and pmin, so NaN and -0 come out as before), arithmetic and comparisons are IEEE's, and a
 * comparison writes one byte per element, 0 or 1, as tfjs stores bool. A repeated row of fewer
 * than 16 values (a convolution's bias: LeNet's 6 channels) is first tiled to lcm(row, 16) values,
 * so the loop runs whole 16-element turns rather than one element a turn (LeNet's first bias add,
 * 1.2 M floats: 0.56 → 0.16-0.19 ms CPU, best of 40, Zen 5).
 */

/**
 * The kernels replaced: their SIMD opcode for float32 and for int32 operands (none: keep the
 * original), and whether they compare.
 */
const OPS: Record<string, { f32: number; i32?: number; compare: boolean }> = {
  [tf.Maximum]: { f32: 0xeb, i32: 0xb8, compare: false }, // f32x4.pmax, i32x4.max_s
  [tf.Minimum]: { f32: 0xea, i32: 0xb6, compare: false }, // f32x4.pmin, i32x4.min_s
  [tf.Equal]: { f32: 0x41, i32: 0x37, compare: true },
  [tf.NotEqual]: { f32: 0x42, i32: 0x38, compare: true },
  [tf.Less]: { f32: 0x43, i32: 0x39, compare: true },
  [tf.Greater]: { f32: 0x44, i32: 0x3b, compare: true },
  [tf.LessEqual]: { f32: 0x45, i32: 0x3d, compare: true },
  [tf.GreaterEqual]: { f32: 0x46, i32: 0x3f, compare: true },
  [tf.Add]: { f32: 0xe4, i32: 0xae, compare: false },
  [tf.Sub]: { f32: 0xe5, i32: 0xb1, compare: false },
  [tf.Multiply]: { f32: 0xe6, i32: 0xb5, compare: false },
  [tf.RealDiv]: { f32: 0xe7, compare: false },
};

const KERNELS = Object.keys(OPS);
const MARK = Symbol.for("d2l.useFastWasmBinary");

/**
 * Which operand, if any, is one value repeated, one row (of `row` values) repeated, or one column
 * (a value per row of `row` values: [m, 1] against [m, row], softmax's division by its row sums).
 */
export type Operands = "same" | "scalar-a" | "scalar-b" | "row-a" | "row-b" | "col-a" | "col-b";

/** The SIMD instruction (its opcode after the 0xfd prefix, as LEB128). */
const simd = (opcode: number) => (opcode < 0x80 ? [0xfd, opcode] : [0xfd, opcode & 0x7f | 0x80, opcode >> 7]);

/**
 * `f(a, b, out, n, row)`: out[i] = op(a[i], b[i]) for i < n, a or b read as one value repeated
 * or as a row of `row` values repeated, as `operands` says; 4-byte elements in, 4-byte
 * (arithmetic, max, min) or 1-byte 0/1 (comparisons) out.
 */
export function binaryWasm(opcode: number, compare: boolean, operands: Operands): number[] {
  const [A, B, OUT, N, ROW] = [0, 1, 2, 3, 4];
  const [END_OUT, LEFT, START] = [5, 6, 7];
  const [SA, SB] = [8, 9]; // the scalar operand, splatted
  const outBytes = compare ? 1 : 4;
  const repeated = operands === "row-a" ? A : operands === "row-b" ? B : undefined;
  const column = operands === "col-a" ? A : operands === "col-b" ? B : undefined;
  // within a row, a column's value is a scalar: splatted into SA or SB at the row's start
  const inner: Operands = operands === "col-a" ? "scalar-a" : operands === "col-b" ? "scalar-b" : operands;
  /** op(a, b) of the 4 elements at A + offset, B + offset. */
  const vector = (offset: number) => [
    ...(inner === "scalar-a" ? get(SA) : [...get(A), ...load(offset)]),
    ...(inner === "scalar-b" ? get(SB) : [...get(B), ...load(offset)]),
    ...simd(opcode),
  ];
  /** A, B (unless scalar) and OUT forward by `elements`. */
  const advance = (elements: number) => [
    ...(inner === "scalar-a" ? [] : [...get(A), ...i32(4 * elements), ADD, ...set(A)]),
    ...(inner === "scalar-b" ? [] : [...get(B), ...i32(4 * elements), ADD, ...set(B)]),
    ...get(OUT), ...i32(outBytes * elements), ADD, ...set(OUT),
  ];
  // 16 elements a turn: 4 vectors stored as they are, or their masks narrowed to 16 bytes of 0/1
  const turn = compare
    ? [
        ...get(OUT),
        ...vector(0), ...vector(16), ...simd(0x85), // i16x8.narrow_i32x4_s: -1 stays -1
        ...vector(32), ...vector(48), ...simd(0x85),
        ...simd(0x65), ...simd(0x60), // i8x16.narrow_i16x8_s, i8x16.abs: -1 → 1
        ...store(0),
      ]
    : [0, 16, 32, 48].flatMap((offset) => [...get(OUT), ...vector(offset), ...store(offset)]);
  // then one element a turn, through lane 0 of the same vector operation (so the same results)
  const one = [
    ...get(OUT),
    ...(inner === "scalar-a" ? get(SA) : [...get(A), ...loadSplat(0)]),
    ...(inner === "scalar-b" ? get(SB) : [...get(B), ...loadSplat(0)]),
    ...simd(opcode),
    ...(compare ? [...simd(0x1b), 0, ...i32(1), 0x71, 0x3a, 0x00, 0x00] : [...simd(0x1f), 0, ...storeF32(0)]), // lane & 1 → i32.store8; f32 lane → f32.store
  ];
  /** LEFT elements from A, B to OUT: 16 a turn, then one at a time. */
  const run = [
    ...BLOCK, ...get(LEFT), ...i32(16), 0x48, ...brIf(0), // i32.lt_s
    ...LOOP, ...turn, ...advance(16),
    ...get(LEFT), ...i32(16), SUB, ...tee(LEFT), ...i32(15), GT_S, ...BR_IF_0,
    END, END,
    ...BLOCK, ...get(LEFT), 0x45, ...brIf(0), // i32.eqz
    ...LOOP, ...one, ...advance(1),
    ...get(LEFT), ...i32(1), SUB, ...tee(LEFT), ...BR_IF_0,
    END, END,
  ];
  const body = [
    ...locals([3, I32], [2, V128]),
    ...(operands === "scalar-a" ? [...get(A), ...loadSplat(0), ...set(SA)] : []),
    ...(operands === "scalar-b" ? [...get(B), ...loadSplat(0), ...set(SB)] : []),
    ...(column !== undefined
      ? [
          // a row at a time, the column's value for the row splatted, then the column forward by one value
          ...get(OUT), ...get(N), ...i32(outBytes), MUL, ADD, ...set(END_OUT),
          ...LOOP, ...get(column), ...loadSplat(0), ...set(column === A ? SA : SB),
          ...get(ROW), ...set(LEFT), ...run,
          ...get(column), ...i32(4), ADD, ...set(column),
          ...get(OUT), ...get(END_OUT), LT_U, ...BR_IF_0, END,
        ]
      : repeated === undefined
      ? [...get(N), ...set(LEFT), ...run]
      : [
          // a row at a time, the repeated operand back at its start after each
          ...get(OUT), ...get(N), ...i32(outBytes), MUL, ADD, ...set(END_OUT), ...get(repeated), ...set(START),
          ...LOOP, ...get(ROW), ...set(LEFT), ...run, ...get(START), ...set(repeated),
          ...get(OUT), ...get(END_OUT), LT_U, ...BR_IF_0, END,
        ]),
    END,
  ];
  return moduleWithImportedMemory(voidType(5), "f", body);
}


/** Whether `row`'s shape, without leading 1s, is the trailing part of `full`'s (so row repeats over full's leading axes). */
function isTrailingRow(full: number[], row: number[]): boolean {
  const dims = row.slice(row.findIndex((d) => d !== 1));
  return dims.length <= full.length && dims.every((d, i) => d === full[full.length - dims.length + i]) && row.length <= full.length;
}

/** Whether `col` is [..., 1] against `full`'s [..., n] (n > 1), the same in every other axis: one value per row of full. */
function isColumn(full: number[], col: number[]): boolean {
  const last = full.length - 1;
  return last >= 1 && col.length === full.length && col[last] === 1 && full[last] > 1 && col.every((d, i) => i === last || d === full[i]);
}

/** How the fast loop reads op(a, b), or undefined where it does not apply. */
function operandsOf(a: number[], b: number[]): Operands | undefined {
  const sizeA = sizeFromShape(a);
  const sizeB = sizeFromShape(b);
  if (sizeA === 0 || sizeB === 0) return undefined;
  if (arraysEqual(a, b)) return "same";
  if (sizeB === 1) return "scalar-b";
  if (sizeA === 1) return "scalar-a";
  if (sizeB > 1 && sizeB < sizeA && isTrailingRow(a, b)) return "row-b";
  if (sizeA > 1 && sizeA < sizeB && isTrailingRow(b, a)) return "row-a";
  if (isColumn(a, b)) return "col-b";
  if (isColumn(b, a)) return "col-a";
  return undefined;
}

/** The fast loop's answer for op(a, b), or undefined where it does not apply (the caller runs the original). */
function fastBinary(name: string, backend: WasmBackendLike, a: tf.TensorInfo, b: tf.TensorInfo): tf.TensorInfo | undefined {
  const dtype = a.dtype;
  if (dtype !== b.dtype || (dtype !== "float32" && dtype !== "int32")) return undefined;
  const { f32, i32: int, compare } = OPS[name];
  const opcode = dtype === "float32" ? f32 : int;
  if (opcode === undefined) return undefined;
  const operands = operandsOf(a.shape, b.shape);
  if (operands === undefined) return undefined;
  const kernel = wasmKernel(backend, `binary ${opcode} ${+compare} ${operands}`, () => binaryWasm(opcode, compare, operands), "f");
  if (kernel === undefined) return undefined;
  const shape = assertAndGetBroadcastShape(a.shape, b.shape);
  const row = operands === "row-a" ? sizeFromShape(a.shape)
    : operands === "col-a" || operands === "col-b" ? shape[shape.length - 1]
    : sizeFromShape(b.shape);
  const n = sizeFromShape(shape);
  const out = backend.makeOutput(shape, compare ? "bool" : dtype);
  const repeated = operands === "row-a" ? a : operands === "row-b" ? b : undefined;
  // a short repeated row (a convolution's bias, 6 values) tiled to lcm(row, 16) values, so the loop runs its
  // 16-element turns instead of one element a turn (LeNet's first bias add, 1.2 M floats: 0.6 ms a step)
  const tile = repeated !== undefined && row < 16 ? lcm(row, 16) : row;
  const whole = tile === row ? 0 : Math.floor(n / tile) * tile;
  const tiled = whole > 0 ? backend.makeOutput([tile], dtype) : undefined;
  const outBytes = compare ? 1 : 4;
  // offsets after the allocations, which may move the memory's buffer (not the offsets)
  const [pa, pb, pout] = [a, b, out].map((t) => backend.getMemoryOffset(t.dataId));
  if (tiled !== undefined) {
    const heap = backend.wasm!.HEAPU8!.buffer;
    const src = new Uint32Array(heap, backend.getMemoryOffset(repeated!.dataId), row);
    const dst = new Uint32Array(heap, backend.getMemoryOffset(tiled.dataId), tile);
    for (let i = 0; i < tile; i++) dst[i] = src[i % row];
    // whole tiles, split across threads from SPLIT_PASS_FROM elements (LeNet's bias adds, 1.2 M and 0.4 M floats: each
    // element computed alone, so the same bits); a chunk of tiles starts at the tile's first value
    const pt = backend.getMemoryOffset(tiled.dataId);
    const threads = n >= SPLIT_PASS_FROM ? activeThreads() : 1;
    runGuided(backend.wasm?.asm?.memory as WebAssembly.Memory, kernel, whole / tile, threads, (start, end) => {
      const [at, count] = [start * tile, (end - start) * tile];
      return repeated === a ? [pt, pb + 4 * at, pout + outBytes * at, count, tile] : [pa + 4 * at, pt, pout + outBytes * at, count, tile];
    });
    backend.disposeData(tiled.dataId);
  }
  if (whole < n) {
    // the rest (all of it, where no tile is used): whole rows, from the start of the repeated operand
    const skip = whole; // elements done, a multiple of the row
    const [qa, qb] = repeated === a ? [pa, pb + 4 * skip] : repeated === b ? [pa + 4 * skip, pb] : [pa, pb];
    if (skip === 0 && n >= SPLIT_PASS_FROM && (repeated !== undefined || operands === "same")) {
      // split across threads by whole rows (or 16-element runs of operands of one shape): each element alone, the same bits
      const unit = repeated !== undefined ? row : 16;
      const units = Math.floor(n / unit);
      runGuided(backend.wasm?.asm?.memory as WebAssembly.Memory, kernel, units, activeThreads(), (start, end) => {
        const [at, count] = [start * unit, end === units ? n - start * unit : (end - start) * unit];
        return [repeated === a ? qa : qa + 4 * at, repeated === b ? qb : qb + 4 * at, pout + outBytes * at, count, row];
      });
    } else {
      kernel.call(qa, qb, pout + outBytes * skip, n - skip, row);
    }
  }
  return out;
}

function lcm(x: number, y: number): number {
  const gcd = (p: number, q: number): number => (q === 0 ? p : gcd(q, p % q));
  return (x / gcd(x, y)) * y;
}

function wrap(name: string): (original: tf.KernelFunc) => tf.KernelFunc {
  return (original) => (args) => {
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    return fastBinary(name, args.backend as unknown as WasmBackendLike, a, b) ?? original(args);
  };
}

/**
 * Makes the wasm backend's Maximum, Minimum, Equal, NotEqual, Less, Greater, LessEqual and
 * GreaterEqual kernels run a SIMD loop when both operands have the same shape or one is a single
 * value, and those and Add, Sub, Multiply and RealDiv when one is a row repeated over the other
 * (float32 or int32); same results. Idempotent; false when the wasm kernels are not registered.
 * Not in d2l: it works around @tensorflow/tfjs-backend-wasm 4.x, see lib/src/engine/wasm-binary.ts.
 */
export function useFastWasmBinary(): boolean {
  for (const name of KERNELS) {
    if (findWasmReplacement(name, MARK) !== undefined) continue;
    if (!replaceWasmKernel(name, MARK, undefined, wrap(name))) return false;
  }
  return true;
}

/** Puts the original twelve kernels back (for tests and benchmarks); returns whether anything changed. */
export function restoreWasmBinary(): boolean {
  return KERNELS.map((name) => restoreWasmKernel(name, MARK)).some(Boolean);
}
