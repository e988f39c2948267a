import * as tf from "@tensorflow/tfjs";
import {
  ADD, BLOCK, END, F32X4_ADD, F32X4_DIV, F32X4_MUL, F32X4_SUB, I32, LOOP, SHL, V128, br, brIf, get, i32, load,
  locals, moduleWithImportedMemory, set, store, tee, voidType, F32X4_GT, V128_ANDNOT, V128_BITSELECT,
} from "./wasm-asm";
import { SPLIT_PASS_FROM, activeThreads, runGuided } from "./thread-pool";
import { type WasmBackendLike, findWasmReplacement, replaceWasmKernel, restoreWasmKernel, wasmKernel } from "./wasm-kernels";

/**
 * The wasm backend's `Sigmoid` is XNNPACK's (its wasm SIMD kernel, "rr2_p5_div"), which runs on the
 * calling thread only: a worker cannot call into the backend's module. LeNet's first sigmoid
 * (256×28×28×6, 1.2 M floats) is the largest kernel of its step left unsplit. This file computes
 * the same function with the same float32 operations in the same order (so the same bits as
 * XNNPACK's, checked value by value by the unit test), as a SIMD kernel of our own that the thread
 * pool splits by element ranges: for float32 tensors of at least SPLIT_FROM floats while more
 * than one thread is active; otherwise (and for the last 1-3 floats) the original kernel or its
 * scalar copy here. `useSpeedups(false)` puts XNNPACK's kernel back for every size.
 *
 * XNNPACK's algorithm: with z = |x|, e^(-z) = 2^n · e^t where n = round(-z·log2(e)) (a "magic bias"
 * addition, whose low bits then give 2^n as s by a shift) and t = z + n·ln2 (ln2 in two parts);
 * e^t - 1 ≈ t·p(t), p of degree 4, so e = s + (t·s)·p; f = e / (e + 1) is the sigmoid of -z, 0
 * where z is past the denormal cutoff; the sigmoid of x is f for negative x, 1 - f otherwise.
 */

const MARK = Symbol.for("d2l.useSplitWasmSigmoid");
/**
 * Sigmoids of at least this many floats split (SPLIT_PASS_FROM; a sigmoid costs about three memory
 * passes, a division an element): LeNet's second, 0.4 M floats, 0.45 ms a step. Smaller ones keep
 * XNNPACK's kernel.
 */
const SPLIT_FROM = SPLIT_PASS_FROM;

/** float32 constants of XNNPACK's kernel, by their hexadecimal significand (24 bits) and exponent. */
const hexFloat = (significand: number, exponent: number) => Math.fround((significand / 2 ** 24) * 2 ** exponent);
const MAGIC_BIAS = hexFloat(0x18000fe, 23); // 0x1.8000FEp23
const MINUS_LOG2E = hexFloat(-0x1715476, 0); // -0x1.715476p+0
const LN2_HI = hexFloat(0x162e400, -1); // 0x1.62E400p-1
const LN2_LO = hexFloat(0x17f7d1c, -20); // 0x1.7F7D1Cp-20
const C5 = hexFloat(-0x10f9f9c, -7);
const C4 = hexFloat(0x1573a1a, -5);
const C3 = hexFloat(-0x1555a80, -3);
const C2 = hexFloat(0x1fffdc6, -2);
const C1 = hexFloat(-0x1fffff6, -1);
const DENORM_CUTOFF = hexFloat(0x15d589e, 6); // 0x1.5D589Ep+6

const F32X4_ABS = [0xfd, 0xe0, 0x01];
const I32X4_SHL = [0xfd, 0xab, 0x01];
const I32X4_SHR_S = [0xfd, 0xac, 0x01];
/** v128.const of four equal floats. */
const splatConst = (v: number) => [0xfd, 0x0c, ...[0, 1, 2, 3].flatMap(() => Array.from(new Uint8Array(new Float32Array([v]).buffer)))];

/**
 * `s(x, y, v0, v1)`: y = sigmoid(x) for the vectors [v0, v1) (4 floats each), XNNPACK's operations
 * in its order; `unroll` vectors a turn, each step done for all of them before the next (as
 * XNNPACK's 16-float kernel does: one vector a turn ran 26% slower than XNNPACK, a chain of
 * dependent operations with a division in it), then one vector a turn.
 */
export function sigmoidWasm(unroll = 4): number[] {
  const [X, Y, V0, V1] = [0, 1, 2, 3];
  const [P, E] = [4, 5];
  // v128 locals of vector g: x, z, n, s, t, p, e
  const L = (g: number) => { const b = 6 + 7 * g; return { XV: b, Z: b + 1, N: b + 2, S: b + 3, T: b + 4, PV: b + 5, EV: b + 6 }; };
  const c = splatConst;
  /** The steps for `count` vectors at P, P + 16, ...: each step for every vector before the next step. */
  const turn = (count: number) => {
    const all = (f: (l: ReturnType<typeof L>, g: number) => number[]) => Array.from({ length: count }, (_, g) => f(L(g), g)).flat();
    return [
      ...all((l, g) => [...get(X), ...get(P), ADD, ...load(16 * g), ...tee(l.XV), ...F32X4_ABS, ...set(l.Z)]), // z = |x|
      ...all((l) => [...c(MAGIC_BIAS), ...get(l.Z), ...c(MINUS_LOG2E), ...F32X4_MUL, ...F32X4_ADD, ...set(l.N)]), // n = magic + z·(-log2 e)
      ...all((l) => [...get(l.N), ...i32(23), ...I32X4_SHL, ...set(l.S)]), // s = 2^n
      ...all((l) => [...get(l.N), ...c(MAGIC_BIAS), ...F32X4_SUB, ...set(l.N)]), // n -= magic
      ...all((l) => [...get(l.Z), ...get(l.N), ...c(LN2_HI), ...F32X4_MUL, ...F32X4_ADD, ...set(l.T)]), // t = z + n·ln2_hi
      ...all((l) => [...get(l.T), ...get(l.N), ...c(LN2_LO), ...F32X4_MUL, ...F32X4_ADD, ...set(l.T)]), // t += n·ln2_lo
      ...all((l) => [...c(C4), ...get(l.T), ...c(C5), ...F32X4_MUL, ...F32X4_ADD, ...set(l.PV)]), // p = c4 + t·c5
      ...all((l) => [...c(C3), ...get(l.T), ...get(l.PV), ...F32X4_MUL, ...F32X4_ADD, ...set(l.PV)]), // p = c3 + t·p
      ...all((l) => [...c(C2), ...get(l.T), ...get(l.PV), ...F32X4_MUL, ...F32X4_ADD, ...set(l.PV)]), // p = c2 + t·p
      ...all((l) => [...c(C1), ...get(l.T), ...get(l.PV), ...F32X4_MUL, ...F32X4_ADD, ...set(l.PV)]), // p = c1 + t·p
      ...all((l) => [...get(l.T), ...get(l.S), ...F32X4_MUL, ...set(l.T)]), // t = t·s
      ...all((l) => [...get(l.S), ...get(l.T), ...get(l.PV), ...F32X4_MUL, ...F32X4_ADD, ...set(l.EV)]), // e = s + t·p
      ...all((l) => [...get(l.EV), ...get(l.EV), ...c(1), ...F32X4_ADD, ...F32X4_DIV, ...set(l.PV)]), // f = e / (e + 1)
      ...all((l) => [...get(l.PV), ...get(l.Z), ...c(DENORM_CUTOFF), ...F32X4_GT, ...V128_ANDNOT, ...set(l.PV)]), // f = 0 where z > cutoff
      ...all((l, g) => [
        ...get(Y), ...get(P), ADD, // the store's address
        ...get(l.PV), ...c(1), ...get(l.PV), ...F32X4_SUB, // f, 1 - f
        ...get(l.XV), ...i32(31), ...I32X4_SHR_S, ...V128_BITSELECT, // x < 0 ? f : 1 - f
        ...store(16 * g),
      ]),
    ];
  };
  const body = [
    ...locals([2, I32], [7 * unroll, V128]),
    ...get(V0), ...i32(4), SHL, ...set(P), ...get(V1), ...i32(4), SHL, ...set(E), // bytes
    // `unroll` vectors a turn while p + 16·unroll <= e
    ...BLOCK, ...LOOP,
    ...get(P), ...i32(16 * unroll), ADD, ...get(E), 0x4b, ...brIf(1), // i32.gt_u
    ...turn(unroll),
    ...get(P), ...i32(16 * unroll), ADD, ...set(P), ...br(0), END, END,
    // then one vector a turn while p < e
    ...BLOCK, ...LOOP,
    ...get(P), ...get(E), 0x4f, ...brIf(1), // i32.ge_u
    ...turn(1),
    ...get(P), ...i32(16), ADD, ...set(P), ...br(0), END, END,
    END,
  ];
  return moduleWithImportedMemory(voidType(4), "s", body);
}

/** The same on floats [start, end) in JavaScript (each operation rounded to float32: the same bits). */
export function sigmoidScalar(x: Float32Array, y: Float32Array, start: number, end: number): void {
  const f = Math.fround;
  const bits = new DataView(new ArrayBuffer(4));
  for (let i = start; i < end; i++) {
    const z = Math.abs(x[i]);
    let n = f(MAGIC_BIAS + f(z * MINUS_LOG2E));
    bits.setFloat32(0, n);
    bits.setInt32(0, bits.getInt32(0) << 23);
    const s = bits.getFloat32(0);
    n = f(n - MAGIC_BIAS);
    let t = f(z + f(n * LN2_HI));
    t = f(t + f(n * LN2_LO));
    let p = f(C4 + f(t * C5));
    p = f(C3 + f(t * p));
    p = f(C2 + f(t * p));
    p = f(C1 + f(t * p));
    t = f(t * s);
    const e = f(s + f(t * p));
    const r = z > DENORM_CUTOFF ? 0 : f(e / f(e + 1));
    // x's sign bit (as XNNPACK's shift): f for negative x, -0 and NaNs with the bit set, else 1 - f
    bits.setFloat32(0, x[i]);
    y[i] = bits.getInt32(0) < 0 ? r : f(1 - r);
  }
}

function splitSigmoid(original: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    const backend = args.backend as unknown as WasmBackendLike;
    const size = tf.util.sizeFromShape(x.shape);
    if (x.dtype !== "float32" || size < SPLIT_FROM || activeThreads() < 2) return original(args);
    const simd = wasmKernel(backend, "sigmoid", sigmoidWasm, "s");
    if (simd === undefined) return original(args);
    const out = backend.makeOutput(x.shape, "float32");
    const [px, py] = [backend.getMemoryOffset(x.dataId), backend.getMemoryOffset(out.dataId)];
    const vectors = Math.floor(size / 4);
    runGuided(backend.wasm?.asm?.memory as WebAssembly.Memory, simd, vectors, activeThreads(), (start, end) => [px, py, start, end]);
    // views after the allocation, which may have grown (replaced) the memory's buffer
    const heap = backend.wasm!.HEAPU8!.buffer;
    sigmoidScalar(new Float32Array(heap, px, size), new Float32Array(heap, py, size), 4 * vectors, size);
    return out;
  };
}

/**
 * Makes the wasm backend's Sigmoid split large float32 tensors across threads, with XNNPACK's
 * floats (see above). Idempotent; false where the wasm backend has no Sigmoid.
 * Not in d2l: it works around @tensorflow/tfjs-backend-wasm 4.x, see lib/src/engine/wasm-sigmoid.ts.
 */
export function useSplitWasmSigmoid(): boolean {
  if (findWasmReplacement(tf.Sigmoid, MARK) !== undefined) return true;
  return replaceWasmKernel(tf.Sigmoid, MARK, {}, splitSigmoid);
}

/** Puts XNNPACK's Sigmoid back for every size; returns whether it was replaced. */
export function restoreSplitWasmSigmoid(): boolean {
  return restoreWasmKernel(tf.Sigmoid, MARK);
}
