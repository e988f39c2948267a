import * as tf from "@tensorflow/tfjs";
import {
  ADD, AND, BLOCK, END, F32X4_ADD, F32X4_NE, GE_U, I32, IF, LOOP, LT_U, SHL, V128, ZERO_F32X4, brIf, get, i32, leb,
  load, loadF32, locals, moduleWithImportedMemory, set, shuffle32, store, storeF32, tee, voidType, F32X4_GT,
  F32X4_LT, V128_BITSELECT, V128_ANDNOT,
} from "./wasm-asm";
import {
  type WasmBackendLike, findWasmReplacement, replaceWasmKernel, restoreWasmKernel, wasmFunction,
} from "./wasm-kernels";
import { keepBackendBuffer } from "./interrupt";
import { sizeFromShape } from "./tf-direct";

/**
 * The wasm backend's `Exp` (@tensorflow/tfjs-backend-wasm 4.x) calls the C library's `expf` once an
 * element through a function pointer: 8.6 ns an element (22 µs for softmax's 256×10, every step of
 * chapters 3-6 through fused-softmax-ce.ts and fused-softmax.ts). This kernel computes the same
 * function, two elements a SIMD vector of doubles: the backend is built by Emscripten, whose C
 * library is musl, whose `expf` is ARM's optimized-routines algorithm (exp2f_data.c): in double
 * precision, z = x·32/ln 2, k = z rounded to an integer (by adding and subtracting 1.5·2⁵²),
 * r = z − k, 2^(k/32) from a 32-entry table plus k's high bits in the exponent, a degree-3
 * polynomial in r, then rounded to float; |x| > 88.72 overflows to +Infinity, x < −103.97 underflows
 * to +0, NaN stays NaN. Every operation is the same IEEE double operation in the same order
 * (WebAssembly has no fused multiply-add, so the C code rounds each product as we do), so the
 * results are the same floats bit for bit: test/unit/wasm-exp.test.ts compares the two kernels on
 * every 4096th float of [−104, 89] (by bit pattern: 540 000 values) and the special values, and 42
 * million random values in [−104, 89] agreed when it was written. 2560 values (softmax's 256×10):
 * 18.5 → 4.6 µs; 2¹⁸: 6.5 → 1.5 ns a value (CPU time, best of 15, AMD EPYC Zen 5).
 * The table (2^(i/32) as doubles, correctly rounded) is computed here with integers.
 *
 * Used for float32 inputs; other dtypes keep the original. `useSpeedups(false)` restores it.
 */

const MARK = Symbol.for("d2l.useSimdWasmExp");

/** 2^(i/32) rounded to the nearest double, for i = 0..31, as the bits musl's table holds: minus i << 47. */
export function exp2Table(): bigint[] {
  const table: bigint[] = [];
  for (let i = 0n; i < 32n; i++) {
    // M = round(2^(52 + i/32)): the largest M with M^32 <= 2^(1664 + i), then up if (M + 1/2)^32 < 2^(1664 + i)
    const target = 1n << (1664n + i);
    let lo = 1n << 52n;
    let hi = 1n << 53n;
    while (hi - lo > 1n) {
      const mid = (lo + hi) >> 1n;
      if (mid ** 32n <= target) lo = mid;
      else hi = mid;
    }
    const m = (2n * lo + 1n) ** 32n <= target << 32n ? lo + 1n : lo;
    const bits = (1023n << 52n) + (m - (1n << 52n));
    table.push(bits - (i << 47n));
  }
  return table;
}

/** Signed LEB128 of a 64-bit integer. */
function sleb64(value: bigint): number[] {
  const out: number[] = [];
  let n = BigInt.asIntN(64, value);
  for (;;) {
    const byte = Number(n & 127n);
    n >>= 7n;
    if ((n === 0n && !(byte & 64)) || (n === -1n && byte & 64)) return [...out, byte];
    out.push(byte | 128);
  }
}

/** v128.const of two doubles. */
const f64x2 = (value: number) => {
  const bytes = new Uint8Array(new Float64Array([value, value]).buffer);
  return [0xfd, 0x0c, ...bytes];
};
/** v128.const of four floats. */
const f32x4 = (value: number) => {
  const bytes = new Uint8Array(new Float32Array([value, value, value, value]).buffer);
  return [0xfd, 0x0c, ...bytes];
};
const F64X2_ADD = [0xfd, 0xf0, 0x01];
const F64X2_SUB = [0xfd, 0xf1, 0x01];
const F64X2_MUL = [0xfd, 0xf2, 0x01];
const F64X2_PROMOTE_LOW = [0xfd, 0x5f];
const F32X4_DEMOTE_ZERO = [0xfd, 0x5e];
const I64X2_SHL = [0xfd, 0xcb, 0x01];
const I64X2_ADD = [0xfd, 0xce, 0x01];
const i64x2Extract = (lane: number) => [0xfd, 0x1d, lane];
const i64x2Replace = (lane: number) => [0xfd, 0x1e, lane];
const I32_WRAP_I64 = 0xa7;
const i64Load = (offset = 0) => [0x29, 0x03, ...leb(offset)];
const i64Store = (offset = 0) => [0x37, 0x03, ...leb(offset)];
const i64Const = (value: bigint) => [0x42, ...sleb64(value)];

/** musl's constants (exp2f_data.c), scaled for a 32-entry table: 32/ln 2, 1.5·2⁵², and the polynomial's. */
const N = 32;
const INV_LN2_N = 0x171547652b82fe / 2 ** 52 * N; // 0x1.71547652b82fep+0 · 32
const SHIFT = 0x18000000000000 / 2 ** 52 * 2 ** 52; // 0x1.8p+52
const C0 = 0x1c6af84b912394 / 2 ** 52 / 2 ** 5 / N / N / N; // 0x1.c6af84b912394p-5 / N³
const C1 = 0x1ebfce50fac4f3 / 2 ** 52 / 2 ** 3 / N / N; // 0x1.ebfce50fac4f3p-3 / N²
const C2 = 0x162e42ff0c52d6 / 2 ** 52 / 2 / N; // 0x1.62e42ff0c52d6p-1 / N
/** Above this x, expf overflows to +Infinity (0x1.62e42ep6f); below the next, it underflows to +0 (−0x1.9fe368p6f). */
const OVERFLOW = 0x162e42e / 2 ** 24 * 2 ** 6;
const UNDERFLOW = -0x19fe368 / 2 ** 24 * 2 ** 6;

/**
 * `f(x, out, n, scratch)`: out[i] = expf(x[i]) for i < n, float32; scratch holds 272 bytes (the
 * table, written at each call, and a vector for the last n mod 4 values).
 */
export function expWasm(): number[] {
  const [X, OUT, NUM, TAB] = [0, 1, 2, 3];
  const [P, Q, END_, LANE] = [4, 5, 6, 7];
  const V = 8; // v128 locals
  const [XV, H, Z, KD, R, S, Y, F0] = [V, V + 1, V + 2, V + 3, V + 4, V + 5, V + 6, V + 7];
  const TAIL = 256; // the tail vector's offset in scratch

  const writeTable = exp2Table().flatMap((bits, i) => [...get(TAB), ...i64Const(bits), ...i64Store(8 * i)]);
  /** The table entry for k = KD's lane `lane` (its low 5 bits), replacing that lane of the vector on the stack. */
  const gather = (lane: number) => [
    ...get(TAB), ...get(KD), ...i64x2Extract(lane), I32_WRAP_I64, ...i32(31), AND, ...i32(3), SHL, ADD, ...i64Load(), ...i64x2Replace(lane),
  ];
  /** expf of the two doubles in H, as two floats in lanes 0 and 1 of the vector left on the stack (2 and 3 zero). */
  const half = [
    ...get(H), ...f64x2(INV_LN2_N), ...F64X2_MUL, ...set(Z), // z = InvLn2N · x
    ...get(Z), ...f64x2(SHIFT), ...F64X2_ADD, ...set(KD), // kd = z + shift; its bits are ki
    ...get(KD), ...gather(0), ...gather(1), // T[ki % N]
    ...get(KD), ...i32(47), ...I64X2_SHL, ...I64X2_ADD, ...set(S), // + (ki << 47): s = 2^(k/N)
    ...get(Z), ...get(KD), ...f64x2(SHIFT), ...F64X2_SUB, ...F64X2_SUB, ...set(R), // r = z − (kd − shift)
    ...f64x2(C0), ...get(R), ...F64X2_MUL, ...f64x2(C1), ...F64X2_ADD, // C0·r + C1
    ...get(R), ...get(R), ...F64X2_MUL, ...F64X2_MUL, // · r²
    ...f64x2(C2), ...get(R), ...F64X2_MUL, ...f64x2(1), ...F64X2_ADD, // C2·r + 1
    ...F64X2_ADD, ...get(S), ...F64X2_MUL, // (…) · s
    ...F32X4_DEMOTE_ZERO,
  ];
  /** expf of the 4 floats in XV, left on the stack. */
  const vector = [
    ...get(XV), ...F64X2_PROMOTE_LOW, ...set(H), ...half, ...set(F0),
    ...get(XV), ...get(XV), ...shuffle32([2, 3, 2, 3]), ...F64X2_PROMOTE_LOW, ...set(H), ...half, ...set(Y),
    ...get(F0), ...get(Y), ...shuffle32([0, 1, 4, 5]), ...set(Y),
    // x > 88.72…: +Infinity; x < −103.97… (−Infinity too): +0; NaN: x + x
    ...f32x4(Infinity), ...get(Y), ...get(XV), ...f32x4(OVERFLOW), ...F32X4_GT, ...V128_BITSELECT,
    ...get(XV), ...f32x4(UNDERFLOW), ...F32X4_LT, ...V128_ANDNOT, ...set(Y),
    ...get(XV), ...get(XV), ...F32X4_ADD, ...get(Y), ...get(XV), ...get(XV), ...F32X4_NE, ...V128_BITSELECT,
  ];
  const body = [
    ...locals([4, I32], [8, V128]),
    ...writeTable,
    ...get(X), ...set(P), ...get(OUT), ...set(Q),
    ...get(X), ...get(NUM), ...i32(-4), AND, ...i32(2), SHL, ADD, ...set(END_),
    // whole vectors
    ...BLOCK, ...get(P), ...get(END_), GE_U, ...brIf(0), ...LOOP,
    ...get(P), ...load(0), ...set(XV),
    ...get(Q), ...vector, ...store(0),
    ...get(Q), ...i32(16), ADD, ...set(Q),
    ...get(P), ...i32(16), ADD, ...tee(P), ...get(END_), LT_U, ...brIf(0),
    END, END,
    // the last n mod 4 values, through a zero-padded vector in scratch
    ...get(NUM), ...i32(3), AND, ...IF,
    ...get(TAB), ...ZERO_F32X4, ...store(TAIL),
    ...i32(0), ...set(LANE), ...LOOP,
    ...get(TAB), ...get(LANE), ...i32(2), SHL, ADD, ...get(P), ...get(LANE), ...i32(2), SHL, ADD, ...loadF32(), ...storeF32(TAIL),
    ...get(LANE), ...i32(1), ADD, ...tee(LANE), ...get(NUM), ...i32(3), AND, LT_U, ...brIf(0),
    END,
    ...get(TAB), ...load(TAIL), ...set(XV),
    ...get(TAB), ...vector, ...store(TAIL),
    ...i32(0), ...set(LANE), ...LOOP,
    ...get(Q), ...get(LANE), ...i32(2), SHL, ADD, ...get(TAB), ...get(LANE), ...i32(2), SHL, ADD, ...loadF32(TAIL), ...storeF32(),
    ...get(LANE), ...i32(1), ADD, ...tee(LANE), ...get(NUM), ...i32(3), AND, LT_U, ...brIf(0),
    END,
    END,
    END,
  ];
  return moduleWithImportedMemory(voidType(4), "f", body);
}

type Exp = (x: number, out: number, n: number, scratch: number) => void;

/** The kernel's scratch (272 bytes) in each backend's memory: allocated once and kept (no allocation and free an Exp). */
const scratches = new WeakMap<object, tf.TensorInfo>();

function scratchOf(backend: WasmBackendLike): tf.TensorInfo {
  let scratch = scratches.get(backend);
  if (scratch === undefined) {
    scratch = backend.makeOutput([68], "float32");
    keepBackendBuffer(scratch.dataId); // not a tensor's: the repair after an interrupt must not free it
    scratches.set(backend, scratch);
  }
  return scratch;
}

/** expf of a float32 tensor with {@link expWasm}, in the wasm backend's memory; undefined where it cannot run. */
export function simdExp(backend: WasmBackendLike, x: tf.TensorInfo): tf.TensorInfo | undefined {
  if (x.dtype !== "float32") return undefined;
  const f = wasmFunction<Exp>(backend, "exp", expWasm, "f");
  if (f === undefined) return undefined;
  const scratch = scratchOf(backend);
  const out = backend.makeOutput(x.shape, "float32");
  const n = sizeFromShape(x.shape);
  if (n === 0) return out;
  // offsets are read after every allocation: an allocation may grow (and move) the memory's buffer, not the offsets
  f(backend.getMemoryOffset(x.dataId), backend.getMemoryOffset(out.dataId), n, backend.getMemoryOffset(scratch.dataId));
  return out;
}

function simdExpKernel(original: tf.KernelFunc): tf.KernelFunc {
  return (args) => simdExp(args.backend as unknown as WasmBackendLike, args.inputs.x as tf.TensorInfo) ?? original(args);
}

/** Makes the wasm backend's Exp run {@link expWasm} for float32 inputs (the same floats). Idempotent; false where wasm's Exp is not registered. */
export function useSimdWasmExp(): boolean {
  if (findWasmReplacement(tf.Exp, MARK) !== undefined) return true;
  return replaceWasmKernel(tf.Exp, MARK, undefined, simdExpKernel);
}

/** Puts the backend's own Exp back; returns whether it was replaced. */
export function restoreWasmExp(): boolean {
  return restoreWasmKernel(tf.Exp, MARK);
}
