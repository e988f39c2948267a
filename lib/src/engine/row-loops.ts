import {
  ADD, BLOCK, BR_IF_0, END, F32, F32_ADD, F32_CONVERT_I32_S, F32_DIV, F32_GT, F32_MUL, F32_NEG, F32_REINTERPRET_I32, F32_SUB,
  F32X4_ADD, F32X4_DIV, F32X4_MUL, F32X4_SPLAT, F32X4_SUB, GE_U, GT_U, I32, I32_EQ, I32X4_ADD, I32X4_EQ, I32X4_SPLAT, LOOP, LT_U, SELECT, SHL, SUB, V128, V128_BITSELECT,
  br, brIf, get, i32, leb, load, loadF32, loadI32, moduleWithImportedMemory, set, store, storeF32, tee, v128I32, voidType,
} from "./wasm-asm";
import { type WasmBackendLike, wasmFunction } from "./wasm-kernels";
import { processState } from "./process-state";

/**
 * The row loops of the fused kernels (fused-softmax-ce.ts, fused-softmax.ts, fused-cross-entropy.ts,
 * fused-accuracy.ts) as small WebAssembly functions over the backend's memory, instead of JavaScript
 * loops over typed arrays (2.5 ns an element a pass in V8, ~24 µs of fused softmax-CE's forward on
 * 256×10; these run a pass in well under 1 ns an element). They replace nothing of tfjs: each is
 * the same float32 arithmetic, in the same order, as the JavaScript loop beside it in its caller
 * (`Math.fround` after each operation there, one f32 instruction here: both are IEEE float32
 * operations, so the same bits), and the callers' unit tests compare both with tfjs's ops.
 * The elementwise passes with one value a row (s = o − m, e / z, the gradients) take 4 floats a step
 * as f32x4 (each lane the same IEEE operation in the same order: the same bits, test/unit/row-loops.test.ts
 * on NaN and ±Infinity) and the row's last K mod 4 one at a time; the sums and maxima along a row stay
 * one float a step, in order. Softmax-CE on 256×10, kernel alone, CPU, best of 11 × 5000 calls, Zen 5
 * (loaded): forward 14.4 → 13.0 µs, gradient 3.65 → 2.0 µs (with `floatBits` no longer allocating).
 * A row is K contiguous floats, n rows (n, K ≥ 1). `useWasmRowLoops(false)` makes the callers
 * run their JavaScript loops again (for comparisons), `useVectorRowPasses(false)` these loops one float
 * a step throughout (scripts/ab-step.ts `--toggle rowsimd`); `useSpeedups(false)` turns the fused kernels off.
 */

/** On or off, shared by every copy of this module. */
const state = processState<{ enabled: boolean; vector?: boolean }>("d2l.useWasmRowLoops", () => ({ enabled: true, vector: true }));

/** Whether the fused kernels use these loops (default true). */
export function useWasmRowLoops(on: boolean): void {
  state.enabled = on;
}

/** Whether the elementwise passes take 4 floats a step (default true) or one (to measure what the vectors save). */
export function useVectorRowPasses(on: boolean): void {
  state.vector = on;
}

/** Whether the module being built gets the vector passes (set by makeRowLoops while it builds). */
let building = { vector: true };

const f32Const = (value: number) => [0x43, ...new Uint8Array(new Float32Array([value]).buffer)];

/** Locals: i32, then f32, then v128, after the parameters. */
const localsOf = (i32s: number, f32s: number, v128s = 0) =>
  v128s === 0 ? [0x02, ...leb(i32s), I32, ...leb(f32s), F32] : [0x03, ...leb(i32s), I32, ...leb(f32s), F32, ...leb(v128s), V128];

/**
 * Every row: `perRow` with E the byte offset of the row's first float (from 0, K floats a row) and
 * ROW4 = 4·i; loops `perElement` over the row with P its element's byte offset. n and K ≥ 1.
 */
function overRows(n: number, k: number, locals: { E: number; ROW4: number; END_: number }, perRow: number[]): number[] {
  const { E, ROW4, END_ } = locals;
  return [
    ...i32(0), ...set(E), ...i32(0), ...set(ROW4),
    ...LOOP,
    ...get(E), ...get(k), ...i32(2), SHL, ADD, ...set(END_),
    ...perRow,
    ...get(E), ...get(k), ...i32(2), SHL, ADD, ...set(E),
    ...get(ROW4), ...i32(4), ADD, ...tee(ROW4), ...get(n), ...i32(2), SHL, LT_U, ...BR_IF_0,
    END,
  ];
}
/** P from `from` up to END_ in steps of 4 (at least once unless from ≥ END_). */
const overRow = (P: number, from: number[], END_: number, body: number[]) => [
  ...from, ...set(P),
  ...BLOCK, ...get(P), ...get(END_), GE_U, ...brIf(0), ...LOOP,
  ...body,
  ...get(P), ...i32(4), ADD, ...tee(P), ...get(END_), LT_U, ...BR_IF_0,
  END, END,
];
/**
 * P from `from` up to END_: 4 floats a step with `vector` while 4 are left, then one a step with
 * `scalar` (P the byte offset of the first float either takes). For elementwise passes: each lane
 * does the scalar body's IEEE float32 operations in its order, so the same bits (rows are K floats,
 * not 4-aligned: the loads and stores are unaligned).
 */
const overRowBy4 = (P: number, from: number[], END_: number, vector: number[], scalar: number[]) => !building.vector ? overRow(P, from, END_, scalar) : [
  ...from, ...set(P),
  ...BLOCK, ...LOOP,
  ...get(P), ...i32(16), ADD, ...get(END_), GT_U, ...brIf(1),
  ...vector,
  ...get(P), ...i32(16), ADD, ...set(P), ...br(0),
  END, END,
  ...overRow(P, get(P), END_, scalar),
];
/** f32 at base + offset (both locals). */
const at = (base: number, offset: number) => [...get(base), ...get(offset), ADD, ...loadF32()];
/** The 4 floats at base + offset (both locals). */
const at4 = (base: number, offset: number) => [...get(base), ...get(offset), ADD, ...load()];

/** `shift(o, s, n, k)`: per row m = the first value not exceeded (`>` from j = 0: NaN at 0 stays), s = o − m. */
function shiftWasm(): number[] {
  const [O, S, N, K] = [0, 1, 2, 3];
  const [E, ROW4, END_, P, M, V, MV] = [4, 5, 6, 7, 8, 9, 10];
  return moduleWithImportedMemory(voidType(4), "f", [
    ...localsOf(4, 2, 1),
    ...overRows(N, K, { E, ROW4, END_ }, [
      ...at(O, E), ...set(M),
      ...overRow(P, [...get(E), ...i32(4), ADD], END_, [
        ...at(O, P), ...tee(V), ...get(M), ...get(V), ...get(M), F32_GT, SELECT, ...set(M),
      ]),
      ...get(M), ...F32X4_SPLAT, ...set(MV),
      ...overRowBy4(P, get(E), END_,
        [...get(S), ...get(P), ADD, ...at4(O, P), ...get(MV), ...F32X4_SUB, ...store()],
        [...get(S), ...get(P), ADD, ...at(O, P), ...get(M), F32_SUB, ...storeF32()]),
    ]),
    END,
  ]);
}

/** `sum(e, z, n, k)`: z_i = Σ_j e_ij from +0 in order (the wasm Sum's order). */
function rowSumWasm(): number[] {
  const [EV, Z, N, K] = [0, 1, 2, 3];
  const [E, ROW4, END_, P, ACC] = [4, 5, 6, 7, 8];
  return moduleWithImportedMemory(voidType(4), "f", [
    ...localsOf(4, 1),
    ...overRows(N, K, { E, ROW4, END_ }, [
      ...f32Const(0), ...set(ACC),
      ...overRow(P, get(E), END_, [...get(ACC), ...at(EV, P), F32_ADD, ...set(ACC)]),
      ...get(Z), ...get(ROW4), ADD, ...get(ACC), ...storeF32(),
    ]),
    END,
  ]);
}

/** `divide(e, z, y, n, k)`: y_ij = e_ij / z_i. */
function rowDivideWasm(): number[] {
  const [EV, Z, Y, N, K] = [0, 1, 2, 3, 4];
  const [E, ROW4, END_, P, ZI, ZV] = [5, 6, 7, 8, 9, 10];
  return moduleWithImportedMemory(voidType(5), "f", [
    ...localsOf(4, 1, 1),
    ...overRows(N, K, { E, ROW4, END_ }, [
      ...at(Z, ROW4), ...tee(ZI), ...F32X4_SPLAT, ...set(ZV),
      ...overRowBy4(P, get(E), END_,
        [...get(Y), ...get(P), ADD, ...at4(EV, P), ...get(ZV), ...F32X4_DIV, ...store()],
        [...get(Y), ...get(P), ADD, ...at(EV, P), ...get(ZI), F32_DIV, ...storeF32()]),
    ]),
    END,
  ]);
}

/** LABEL4 = 4·label of the row (labels at LABELS, int32), or −1 where the label is not in [0, K) (no column matches it). */
const labelOffset = (LABELS: number, ROW4: number, K: number, LABEL4: number) => [
  ...get(LABELS), ...get(ROW4), ADD, ...loadI32(), ...tee(LABEL4), ...i32(2), SHL, ...i32(-1), ...get(LABEL4), ...get(K), LT_U, SELECT, ...set(LABEL4),
];

/** The target t_ij on the stack: on where j is the row's label (P − E = 4·label), else off. */
const target = (P: number, E: number, LABEL4: number, ON: number, OFF: number) => [
  ...get(ON), ...get(OFF), ...get(P), ...get(E), SUB, ...get(LABEL4), I32_EQ, SELECT,
];
/** The targets of the 4 columns from P as an f32x4 (LABELV: 4·label in every lane; LANES: 0, 4, 8, 12; ONV, OFFV: on and off in every lane). */
const targets4 = (P: number, E: number, LABELV: number, LANES: number, ONV: number, OFFV: number) => [
  ...get(ONV), ...get(OFFV), ...get(P), ...get(E), SUB, ...I32X4_SPLAT, ...get(LANES), ...I32X4_ADD, ...get(LABELV), ...I32X4_EQ, ...V128_BITSELECT,
];

/**
 * `finish(s, e, z, logZ, labels, loss, n, k, on, off)` (on and off as float bits): softmax-CE's last pass,
 * loss_i = logZ_i − Σ_j s_ij·t_ij (from +0, in order), then s_ij = e_ij / z_i (the probabilities, over s).
 */
function crossEntropyFinishWasm(): number[] {
  const [S, EV, Z, LOGZ, LABELS, LOSS, N, K, ONB, OFFB] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  const [E, ROW4, END_, P, LABEL4, ACC, ZI, ON, OFF, ZV] = [10, 11, 12, 13, 14, 15, 16, 17, 18, 19];
  return moduleWithImportedMemory(voidType(10), "f", [
    ...localsOf(5, 4, 1),
    ...get(ONB), F32_REINTERPRET_I32, ...set(ON), ...get(OFFB), F32_REINTERPRET_I32, ...set(OFF),
    ...overRows(N, K, { E, ROW4, END_ }, [
      ...labelOffset(LABELS, ROW4, K, LABEL4),
      ...f32Const(0), ...set(ACC),
      ...overRow(P, get(E), END_, [...get(ACC), ...at(S, P), ...target(P, E, LABEL4, ON, OFF), F32_MUL, F32_ADD, ...set(ACC)]),
      ...get(LOSS), ...get(ROW4), ADD, ...at(LOGZ, ROW4), ...get(ACC), F32_SUB, ...storeF32(),
      ...at(Z, ROW4), ...tee(ZI), ...F32X4_SPLAT, ...set(ZV),
      ...overRowBy4(P, get(E), END_,
        [...get(S), ...get(P), ADD, ...at4(EV, P), ...get(ZV), ...F32X4_DIV, ...store()],
        [...get(S), ...get(P), ADD, ...at(EV, P), ...get(ZI), F32_DIV, ...storeF32()]),
    ]),
    END,
  ]);
}

/** `grad(dy, p, labels, dx, n, k, on, off)`: softmax-CE's gradient, dx_ij = dy_i · (p_ij − t_ij). */
function crossEntropyGradWasm(): number[] {
  const [DY, PR, LABELS, DX, N, K, ONB, OFFB] = [0, 1, 2, 3, 4, 5, 6, 7];
  const [E, ROW4, END_, P, LABEL4, DI, ON, OFF, DV, ONV, OFFV, LABELV, LANES] = [8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20];
  return moduleWithImportedMemory(voidType(8), "f", [
    ...localsOf(5, 3, 5),
    ...get(ONB), F32_REINTERPRET_I32, ...tee(ON), ...F32X4_SPLAT, ...set(ONV),
    ...get(OFFB), F32_REINTERPRET_I32, ...tee(OFF), ...F32X4_SPLAT, ...set(OFFV),
    ...v128I32([0, 4, 8, 12]), ...set(LANES),
    ...overRows(N, K, { E, ROW4, END_ }, [
      ...labelOffset(LABELS, ROW4, K, LABEL4),
      ...get(LABEL4), ...I32X4_SPLAT, ...set(LABELV),
      ...at(DY, ROW4), ...tee(DI), ...F32X4_SPLAT, ...set(DV),
      ...overRowBy4(P, get(E), END_,
        [...get(DX), ...get(P), ADD, ...get(DV), ...at4(PR, P), ...targets4(P, E, LABELV, LANES, ONV, OFFV), ...F32X4_SUB, ...F32X4_MUL, ...store()],
        [...get(DX), ...get(P), ADD, ...get(DI), ...at(PR, P), ...target(P, E, LABEL4, ON, OFF), F32_SUB, F32_MUL, ...storeF32()]),
    ]),
    END,
  ]);
}

/** `grad(dy, e, s, dx, n, k)`: the book's softmax's gradient (fused-softmax.ts): dx = ((dy / s) + dS)·e, dS = −(Σ dy·e) / s². */
function softmaxGradWasm(): number[] {
  const [DY, EV, S, DX, N, K] = [0, 1, 2, 3, 4, 5];
  const [E, ROW4, END_, P, ACC, SI, DS, SV, DSV] = [6, 7, 8, 9, 10, 11, 12, 13, 14];
  return moduleWithImportedMemory(voidType(6), "f", [
    ...localsOf(4, 3, 2),
    ...overRows(N, K, { E, ROW4, END_ }, [
      ...at(S, ROW4), ...tee(SI), ...F32X4_SPLAT, ...set(SV),
      ...f32Const(0), ...set(ACC),
      ...overRow(P, get(E), END_, [...get(ACC), ...at(DY, P), ...at(EV, P), F32_MUL, F32_ADD, ...set(ACC)]),
      ...get(ACC), ...get(SI), ...get(SI), F32_MUL, F32_DIV, F32_NEG, ...tee(DS), ...F32X4_SPLAT, ...set(DSV),
      ...overRowBy4(P, get(E), END_,
        [...get(DX), ...get(P), ADD, ...at4(DY, P), ...get(SV), ...F32X4_DIV, ...get(DSV), ...F32X4_ADD, ...at4(EV, P), ...F32X4_MUL, ...store()],
        [...get(DX), ...get(P), ADD, ...at(DY, P), ...get(SI), F32_DIV, ...get(DS), F32_ADD, ...at(EV, P), F32_MUL, ...storeF32()]),
    ]),
    END,
  ]);
}

/** `picked(x, labels, out, n, k)`: 3.6's crossEntropy, out_i = Σ_j x_ij·t_ij from +0 in order, t one-hot (1 and 0). */
function pickedWasm(): number[] {
  const [X, LABELS, OUT, N, K] = [0, 1, 2, 3, 4];
  const [E, ROW4, END_, P, LABEL4, ACC, ON, OFF] = [5, 6, 7, 8, 9, 10, 11, 12];
  return moduleWithImportedMemory(voidType(5), "f", [
    ...localsOf(5, 3),
    ...f32Const(1), ...set(ON), ...f32Const(0), ...set(OFF),
    ...overRows(N, K, { E, ROW4, END_ }, [
      ...labelOffset(LABELS, ROW4, K, LABEL4),
      ...f32Const(0), ...set(ACC),
      ...overRow(P, get(E), END_, [...get(ACC), ...at(X, P), ...target(P, E, LABEL4, ON, OFF), F32_MUL, F32_ADD, ...set(ACC)]),
      ...get(OUT), ...get(ROW4), ADD, ...get(ACC), ...storeF32(),
    ]),
    END,
  ]);
}

/** `grad(dy, picked, labels, dx, n, k)`: 3.6's crossEntropy's gradient, dx_ij = ((−dy_i) / picked_i)·t_ij. */
function pickedGradWasm(): number[] {
  const [DY, PK, LABELS, DX, N, K] = [0, 1, 2, 3, 4, 5];
  const [E, ROW4, END_, P, LABEL4, Q, ON, OFF, QV, ONV, OFFV, LABELV, LANES] = [6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18];
  return moduleWithImportedMemory(voidType(6), "f", [
    ...localsOf(5, 3, 5),
    ...f32Const(1), ...tee(ON), ...F32X4_SPLAT, ...set(ONV), ...f32Const(0), ...tee(OFF), ...F32X4_SPLAT, ...set(OFFV),
    ...v128I32([0, 4, 8, 12]), ...set(LANES),
    ...overRows(N, K, { E, ROW4, END_ }, [
      ...labelOffset(LABELS, ROW4, K, LABEL4),
      ...get(LABEL4), ...I32X4_SPLAT, ...set(LABELV),
      ...at(DY, ROW4), F32_NEG, ...at(PK, ROW4), F32_DIV, ...tee(Q), ...F32X4_SPLAT, ...set(QV),
      ...overRowBy4(P, get(E), END_,
        [...get(DX), ...get(P), ADD, ...get(QV), ...targets4(P, E, LABELV, LANES, ONV, OFFV), ...F32X4_MUL, ...store()],
        [...get(DX), ...get(P), ADD, ...get(Q), ...target(P, E, LABEL4, ON, OFF), F32_MUL, ...storeF32()]),
    ]),
    END,
  ]);
}

/**
 * `count(x, labels, out, n, k)`: out (one float) = the number of rows whose first largest value (`>`
 * from j = 0, as the wasm ArgMax: a NaN is never picked, a row starting with NaN picks 0) is at the
 * label (fused-accuracy.ts).
 */
function correctCountWasm(): number[] {
  const [X, LABELS, OUT, N, K] = [0, 1, 2, 3, 4];
  const [E, ROW4, END_, P, BEST, COUNT, GT, LABEL4, M, V] = [5, 6, 7, 8, 9, 10, 11, 12, 13, 14];
  return moduleWithImportedMemory(voidType(5), "f", [
    ...localsOf(8, 2),
    ...i32(0), ...set(COUNT),
    ...overRows(N, K, { E, ROW4, END_ }, [
      ...at(X, E), ...set(M), ...get(E), ...set(BEST),
      ...overRow(P, [...get(E), ...i32(4), ADD], END_, [
        // if (x_j > m) { m = x_j; best = j }
        ...at(X, P), ...tee(V), ...get(M), F32_GT, ...set(GT),
        ...get(V), ...get(M), ...get(GT), SELECT, ...set(M),
        ...get(P), ...get(BEST), ...get(GT), SELECT, ...set(BEST),
      ]),
      ...labelOffset(LABELS, ROW4, K, LABEL4),
      ...get(COUNT), ...get(BEST), ...get(E), SUB, ...get(LABEL4), I32_EQ, ADD, ...set(COUNT),
    ]),
    ...get(OUT), ...get(COUNT), F32_CONVERT_I32_S, ...storeF32(),
    END,
  ]);
}

type Call = (...args: number[]) => void;

/** The loop functions, by name, instantiated on the backend's memory; undefined where they cannot run or are switched off. */
export function rowLoops(backend: WasmBackendLike): RowLoops | undefined {
  if (!state.enabled) return undefined;
  const memory = backend.wasm?.asm?.memory;
  if (typeof memory !== "object" || memory === null) return undefined;
  const vector = state.vector !== false;
  const cache = vector ? made : madeScalar;
  let loops = cache.get(memory);
  if (loops === undefined) cache.set(memory, (loops = makeRowLoops(backend, vector) ?? null));
  return loops ?? undefined;
}

/** The loops made for each backend memory (null where they cannot run), so a kernel call looks up one map; with and without vector passes. */
const made = new WeakMap<object, RowLoops | null>();
const madeScalar = new WeakMap<object, RowLoops | null>();

function makeRowLoops(backend: WasmBackendLike, vector: boolean): RowLoops | undefined {
  const make = (name: string, build: () => number[]) =>
    wasmFunction<Call>(backend, `row-loops ${name}${vector ? "" : " scalar"}`, () => {
      building = { vector };
      try {
        return build();
      } finally {
        building = { vector: true };
      }
    }, "f");
  const loops = {
    shift: make("shift", shiftWasm),
    sum: make("sum", rowSumWasm),
    divide: make("divide", rowDivideWasm),
    crossEntropyFinish: make("ce-finish", crossEntropyFinishWasm),
    crossEntropyGrad: make("ce-grad", crossEntropyGradWasm),
    softmaxGrad: make("softmax-grad", softmaxGradWasm),
    picked: make("picked", pickedWasm),
    pickedGrad: make("picked-grad", pickedGradWasm),
    correctCount: make("correct-count", correctCountWasm),
  };
  return Object.values(loops).every((f) => f !== undefined) ? (loops as RowLoops) : undefined;
}

/** The functions {@link rowLoops} gives (byte offsets in the backend's memory, then sizes; on/off as float bits). */
export interface RowLoops {
  shift: (o: number, s: number, n: number, k: number) => void;
  sum: (e: number, z: number, n: number, k: number) => void;
  divide: (e: number, z: number, y: number, n: number, k: number) => void;
  crossEntropyFinish: (s: number, e: number, z: number, logZ: number, labels: number, loss: number, n: number, k: number, on: number, off: number) => void;
  crossEntropyGrad: (dy: number, probs: number, labels: number, dx: number, n: number, k: number, on: number, off: number) => void;
  softmaxGrad: (dy: number, e: number, s: number, dx: number, n: number, k: number) => void;
  picked: (x: number, labels: number, out: number, n: number, k: number) => void;
  pickedGrad: (dy: number, picked: number, labels: number, dx: number, n: number, k: number) => void;
  correctCount: (x: number, labels: number, out: number, n: number, k: number) => void;
}

const bitsScratch = new Float32Array(1);
const bitsView = new Int32Array(bitsScratch.buffer);
/** A float's bits as an int32 (to pass a float through an i32 parameter). */
export function floatBits(x: number): number {
  bitsScratch[0] = x;
  return bitsView[0];
}
