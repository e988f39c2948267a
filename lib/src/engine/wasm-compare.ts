import * as tf from "@tensorflow/tfjs";
import {
  ADD, BLOCK, BR_IF_0, END, GT_S, I32, LOOP, LT_U, MUL, SUB, V128, brIf, get, i32, load, loadSplat, locals,
  moduleWithImportedMemory, set, store, storeF32, tee, voidType,
} from "./wasm-asm";
import { type WasmBackendLike, findWasmReplacement, replaceWasmKernel, restoreWasmKernel, wasmFunction } from "./wasm-kernels";

/**
 * The wasm backend (4.x) computes Maximum, Minimum and the six comparisons with a generic C++
 * loop that works out the broadcast index of every element: 0.45-0.6 ms for max(X, 0) on a
 * 256×256 matrix (7 ns an element) and 0.24 ms for X >= 0, where Add takes 13 µs. Chapter 4's
 * scratch MLP spends about 0.2 s an epoch there (its relu is `tf.maximum(X, 0)`, and the gradient
 * of maximum compares). This module re-registers those eight kernels: float32 or int32 operands
 * of the same shape, or one of them a single value, run a WebAssembly SIMD loop (16 elements a
 * turn); other shapes and dtypes run the original kernel. The results are the original's bit for
 * bit: maximum is `a < b ? b : a` and minimum `b < a ? b : a`, as its std::max and std::min
 * (WebAssembly's pmax and pmin, so NaN and -0 come out as before), comparisons are IEEE's, and a
 * comparison writes one byte per element, 0 or 1, as tfjs stores bool.
 */

/** The kernels replaced, with their SIMD opcode for float32 and for int32 operands, and whether they compare. */
const OPS = {
  [tf.Maximum]: { f32: 0xeb, i32: 0xb8, compare: false }, // f32x4.pmax, i32x4.max_s
  [tf.Minimum]: { f32: 0xea, i32: 0xb6, compare: false }, // f32x4.pmin, i32x4.min_s
  [tf.Equal]: { f32: 0x41, i32: 0x37, compare: true },
  [tf.NotEqual]: { f32: 0x42, i32: 0x38, compare: true },
  [tf.Less]: { f32: 0x43, i32: 0x39, compare: true },
  [tf.Greater]: { f32: 0x44, i32: 0x3b, compare: true },
  [tf.LessEqual]: { f32: 0x45, i32: 0x3d, compare: true },
  [tf.GreaterEqual]: { f32: 0x46, i32: 0x3f, compare: true },
} as const;

type OpName = keyof typeof OPS;
const KERNELS = Object.keys(OPS) as OpName[];
const MARK = Symbol.for("d2l.useFastWasmCompare");

/** Which operand, if any, is one value repeated. */
export type Operands = "same" | "scalar-a" | "scalar-b";

/** The SIMD instruction (its opcode after the 0xfd prefix, as LEB128). */
const simd = (opcode: number) => (opcode < 0x80 ? [0xfd, opcode] : [0xfd, opcode & 0x7f | 0x80, opcode >> 7]);

/**
 * `f(a, b, out, n)`: out[i] = op(a[i], b[i]) for i < n (a or b read as one value repeated, as
 * `operands` says); 4-byte elements in, 4-byte (max, min) or 1-byte 0/1 (comparisons) out.
 */
export function compareWasm(opcode: number, compare: boolean, operands: Operands): number[] {
  const [A, B, OUT, N, END_OUT] = [0, 1, 2, 3, 4];
  const [SA, SB] = [5, 6]; // the scalar operand, splatted
  const outBytes = compare ? 1 : 4;
  /** op(a, b) of the 4 elements at A + offset, B + offset. */
  const vector = (offset: number) => [
    ...(operands === "scalar-a" ? get(SA) : [...get(A), ...load(offset)]),
    ...(operands === "scalar-b" ? get(SB) : [...get(B), ...load(offset)]),
    ...simd(opcode),
  ];
  /** A, B (unless scalar) and OUT forward by `elements`. */
  const advance = (elements: number) => [
    ...(operands === "scalar-a" ? [] : [...get(A), ...i32(4 * elements), ADD, ...set(A)]),
    ...(operands === "scalar-b" ? [] : [...get(B), ...i32(4 * elements), ADD, ...set(B)]),
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
    ...(operands === "scalar-a" ? get(SA) : [...get(A), ...loadSplat(0)]),
    ...(operands === "scalar-b" ? get(SB) : [...get(B), ...loadSplat(0)]),
    ...simd(opcode),
    ...(compare ? [...simd(0x1b), 0, ...i32(1), 0x71, 0x3a, 0x00, 0x00] : [...simd(0x1f), 0, ...storeF32(0)]), // lane & 1 → i32.store8; f32 lane → f32.store
  ];
  const body = [
    ...locals([1, I32], [2, V128]),
    ...(operands === "scalar-a" ? [...get(A), ...loadSplat(0), ...set(SA)] : []),
    ...(operands === "scalar-b" ? [...get(B), ...loadSplat(0), ...set(SB)] : []),
    ...get(OUT), ...get(N), ...i32(outBytes), MUL, ADD, ...set(END_OUT),
    // while (n >= 16)
    ...BLOCK, ...get(N), ...i32(16), 0x48, ...brIf(0), // i32.lt_s
    ...LOOP, ...turn, ...advance(16),
    ...get(N), ...i32(16), SUB, ...tee(N), ...i32(15), GT_S, ...BR_IF_0,
    END, END,
    // while (out < end)
    ...BLOCK, ...get(OUT), ...get(END_OUT), 0x4f, ...brIf(0), // i32.ge_u
    ...LOOP, ...one, ...advance(1),
    ...get(OUT), ...get(END_OUT), LT_U, ...BR_IF_0,
    END, END,
    END,
  ];
  return moduleWithImportedMemory(voidType(4), "f", body);
}

type Compare = (a: number, b: number, out: number, n: number) => void;

/** The fast loop's answer for op(a, b), or undefined where it does not apply (the caller runs the original). */
function fastCompare(name: OpName, backend: WasmBackendLike, a: tf.TensorInfo, b: tf.TensorInfo): tf.TensorInfo | undefined {
  const dtype = a.dtype;
  if (dtype !== b.dtype || (dtype !== "float32" && dtype !== "int32")) return undefined;
  const sizeA = tf.util.sizeFromShape(a.shape);
  const sizeB = tf.util.sizeFromShape(b.shape);
  let operands: Operands;
  if (tf.util.arraysEqual(a.shape, b.shape)) operands = "same";
  else if (sizeB === 1) operands = "scalar-b";
  else if (sizeA === 1) operands = "scalar-a";
  else return undefined;
  const n = Math.max(sizeA, sizeB);
  if (n === 0) return undefined;
  const { f32, i32: int, compare } = OPS[name];
  const opcode = dtype === "float32" ? f32 : int;
  const f = wasmFunction<Compare>(backend, `compare ${opcode} ${+compare} ${operands}`, () => compareWasm(opcode, compare, operands), "f");
  if (f === undefined) return undefined;
  const shape = tf.backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
  const out = backend.makeOutput(shape, compare ? "bool" : dtype);
  // offsets after the allocation, which may move the memory's buffer (not the offsets)
  f(backend.getMemoryOffset(a.dataId), backend.getMemoryOffset(b.dataId), backend.getMemoryOffset(out.dataId), n);
  return out;
}

function wrap(name: OpName): (original: tf.KernelFunc) => tf.KernelFunc {
  return (original) => (args) => {
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    return fastCompare(name, args.backend as unknown as WasmBackendLike, a, b) ?? original(args);
  };
}

/**
 * Makes the wasm backend's Maximum, Minimum, Equal, NotEqual, Less, Greater, LessEqual and
 * GreaterEqual kernels run a SIMD loop when both operands have the same shape or one is a single
 * value (float32 or int32); same results. Idempotent; false when the wasm kernels are not registered.
 * Not in d2l: it works around @tensorflow/tfjs-backend-wasm 4.x, see lib/src/engine/wasm-compare.ts.
 */
export function useFastWasmCompare(): boolean {
  for (const name of KERNELS) {
    if (findWasmReplacement(name, MARK) !== undefined) continue;
    if (!replaceWasmKernel(name, MARK, undefined, wrap(name))) return false;
  }
  return true;
}

/** Puts the original eight kernels back (for tests and benchmarks); returns whether anything changed. */
export function restoreWasmCompare(): boolean {
  return KERNELS.map((name) => restoreWasmKernel(name, MARK)).some(Boolean);
}
