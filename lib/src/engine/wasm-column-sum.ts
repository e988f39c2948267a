import * as tf from "@tensorflow/tfjs";
import {
  ADD, BLOCK, BR_IF_0, END, F32X4_ADD, GT_S, I32, LOOP, MUL, SUB, V128, brIf, get, i32, leb, load, loadF32, locals,
  moduleWithImportedMemory, set, store, storeF32, tee, voidType, ZERO_F32X4,
} from "./wasm-asm";
import { type WasmBackendLike, findWasmReplacement, replaceWasmKernel, restoreWasmKernel, wasmFunction } from "./wasm-kernels";
import { parseAxisParam, sizeFromShape } from "./tf-direct";

/**
 * The wasm backend's Sum (4.x) reduces the innermost axes only; for others it first transposes
 * the input. A bias's gradient sums a [256, 256] batch over axis 0, and that transpose (a stride
 * of 256 floats, which thrashes the cache) makes it 0.15 ms where summing rows takes 0.05. This
 * module re-registers Sum: a float32 or int32 sum over the leading axes (axis 0 of a matrix, say)
 * adds the rows in order, four columns to a SIMD vector, so each column is summed in the same
 * order as the original's loop over its transposed copy: the same floats, bit for bit. Other
 * axes run the original kernel.
 */

const MARK = Symbol.for("d2l.useFastWasmColumnSum");

/**
 * `f(x, out, rows, cols)`: out[j] = x[0][j] + x[1][j] + ... (in that order) for the rows×cols
 * matrix at x, 16 columns a turn in 4 vectors, then the last `rest` = cols mod 16 columns (the
 * module is made for it) all in one walk down the rows, ⌈rest/4⌉ vectors of accumulators, the last
 * loaded without reading past its row's columns. Each column's additions are one chain in row
 * order either way. (The last columns were summed one at a time, a scalar chain of dependent adds
 * a column: LeNet's first bias gradient, 6 columns of 200,704 rows, took 0.8 ms a step; one walk
 * keeps the 6 chains in flight at once.)
 */
export function columnSumWasm(dtype: "float32" | "int32", rest = 0): number[] {
  const [X, OUT, ROWS, COLS, P, LEFT, J] = [0, 1, 2, 3, 4, 5, 6];
  const ACC = 7; // 4 v128 accumulators
  const STRIDE = 11;
  const vectorAdd = dtype === "float32" ? F32X4_ADD : [0xfd, 0xae, 0x01]; // i32x4.add
  /** Down the rows from column J's address: body per row, P walking by the row stride. */
  const downRows = (perRow: number[]) => [
    ...get(X), ...get(J), ...i32(4), MUL, ADD, ...set(P), ...get(ROWS), ...set(LEFT),
    ...LOOP, ...perRow,
    ...get(P), ...get(STRIDE), ADD, ...set(P),
    ...get(LEFT), ...i32(1), SUB, ...tee(LEFT), ...i32(0), GT_S, ...BR_IF_0, END,
  ];
  /** Vector v of a row's last `rest` columns at P: whole, or its first 1-3 lanes with zeros above. */
  const loadRest = (v: number) => {
    const left = rest - 4 * v;
    if (left >= 4) return [...get(P), ...load(16 * v)];
    if (left === 1) return [...get(P), 0xfd, 0x5c, 0x02, ...leb(16 * v)]; // v128.load32_zero
    if (left === 2) return [...get(P), 0xfd, 0x5d, 0x03, ...leb(16 * v)]; // v128.load64_zero
    return [...get(P), 0xfd, 0x5d, 0x03, ...leb(16 * v), ...get(P), ...loadF32(16 * v + 8), 0xfd, 0x20, 2]; // and f32x4.replace_lane 2
  };
  /** Accumulator v stored at out + 4·J: whole, or lane by lane. */
  const storeRest = (v: number) => {
    const left = rest - 4 * v;
    const at = [...get(OUT), ...get(J), ...i32(4), MUL, ADD];
    if (left >= 4) return [...at, ...get(ACC + v), ...store(16 * v)];
    return Array.from({ length: left }, (_, lane) => [...at, ...get(ACC + v), 0xfd, 0x1f, lane, ...storeF32(16 * v + 4 * lane)]).flat();
  };
  const restVectors = Math.ceil(rest / 4);
  const body = [
    ...locals([3, I32], [4, V128], [1, I32]),
    ...get(COLS), ...i32(4), MUL, ...set(STRIDE),
    ...i32(0), ...set(J),
    // 16 columns a turn while j + 16 <= cols
    ...BLOCK, ...LOOP,
    ...get(J), ...i32(16), ADD, ...get(COLS), GT_S, ...brIf(1),
    ...[0, 1, 2, 3].flatMap((v) => [...ZERO_F32X4, ...set(ACC + v)]),
    ...downRows([0, 1, 2, 3].flatMap((v) => [...get(ACC + v), ...get(P), ...load(16 * v), ...vectorAdd, ...set(ACC + v)])),
    ...[0, 1, 2, 3].flatMap((v) => [...get(OUT), ...get(J), ...i32(4), MUL, ADD, ...get(ACC + v), ...store(16 * v)]),
    ...get(J), ...i32(16), ADD, ...set(J),
    0x0c, 0x00, // br 0
    END, END,
    // then the last `rest` columns in one walk
    ...(restVectors === 0 ? [] : [
      ...Array.from({ length: restVectors }, (_, v) => [...ZERO_F32X4, ...set(ACC + v)]).flat(),
      ...downRows(Array.from({ length: restVectors }, (_, v) => [...get(ACC + v), ...loadRest(v), ...vectorAdd, ...set(ACC + v)]).flat()),
      ...Array.from({ length: restVectors }, (_, v) => storeRest(v)).flat(),
    ]),
    END,
  ];
  return moduleWithImportedMemory(voidType(4), "f", body);
}

type ColumnSum = (x: number, out: number, rows: number, cols: number) => void;

/** The sum of x over `axes` when they are its leading axes (a column sum); else undefined. */
function fastSum(backend: WasmBackendLike, x: tf.TensorInfo, axis: number | number[], keepDims: boolean): tf.TensorInfo | undefined {
  if (x.dtype !== "float32" && x.dtype !== "int32") return undefined;
  // in the order given: the original sums over its transposed copy in that order ([1, 0] is not [0, 1])
  const axes = parseAxisParam(axis, x.shape);
  const leading = axes.length > 0 && axes.length < x.shape.length && axes.every((a, i) => a === i);
  if (!leading) return undefined;
  const rows = sizeFromShape(x.shape.slice(0, axes.length));
  const cols = sizeFromShape(x.shape.slice(axes.length));
  if (rows === 0 || cols === 0) return undefined;
  const dtype = x.dtype;
  const f = wasmFunction<ColumnSum>(backend, `column sum ${dtype} ${cols % 16}`, () => columnSumWasm(dtype, cols % 16), "f");
  if (f === undefined) return undefined;
  const rest = x.shape.slice(axes.length);
  const out = backend.makeOutput(keepDims ? [...axes.map(() => 1), ...rest] : rest, dtype);
  f(backend.getMemoryOffset(x.dataId), backend.getMemoryOffset(out.dataId), rows, cols);
  return out;
}

function wrap(original: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const { axis, keepDims } = args.attrs as unknown as tf.SumAttrs;
    return fastSum(args.backend as unknown as WasmBackendLike, args.inputs.x as tf.TensorInfo, axis, keepDims) ?? original(args);
  };
}

/**
 * Makes the wasm backend's Sum over leading axes (a bias's gradient: axis 0 of a batch) add rows
 * in place instead of transposing first; same results. Idempotent; false without the wasm kernels.
 * Not in d2l: it works around @tensorflow/tfjs-backend-wasm 4.x, see lib/src/engine/wasm-column-sum.ts.
 */
export function useFastWasmColumnSum(): boolean {
  if (findWasmReplacement(tf.Sum, MARK) !== undefined) return true;
  return replaceWasmKernel(tf.Sum, MARK, undefined, wrap);
}

/** Puts the original Sum kernel back (for tests and benchmarks); returns whether it was replaced. */
export function restoreWasmColumnSum(): boolean {
  return restoreWasmKernel(tf.Sum, MARK);
}
