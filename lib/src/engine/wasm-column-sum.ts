import * as tf from "@tensorflow/tfjs";
import {
  ADD, BLOCK, BR_IF_0, END, F32X4_ADD, F32_ADD, GT_S, I32, LOOP, LT_U, MUL, SUB, V128, brIf, get, i32, load, loadF32, locals,
  moduleWithImportedMemory, set, store, storeF32, tee, voidType, ZERO_F32X4,
} from "./wasm-asm";
import { type WasmBackendLike, findWasmReplacement, replaceWasmKernel, restoreWasmKernel, wasmFunction } from "./wasm-kernels";

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
 * matrix at x, 16 columns a turn in 4 vectors, then one column at a time.
 */
export function columnSumWasm(dtype: "float32" | "int32"): number[] {
  const [X, OUT, ROWS, COLS, P, LEFT, J] = [0, 1, 2, 3, 4, 5, 6];
  const ACC = 7; // 4 v128 accumulators, then one scalar
  const STRIDE = 12;
  const vectorAdd = dtype === "float32" ? F32X4_ADD : [0xfd, 0xae, 0x01]; // i32x4.add
  const scalarAdd = dtype === "float32" ? [F32_ADD] : [ADD];
  const scalarLoad = dtype === "float32" ? loadF32(0) : [0x28, 0x02, 0x00];
  const scalarStore = dtype === "float32" ? storeF32(0) : [0x36, 0x02, 0x00];
  const zeroScalar = dtype === "float32" ? [0x43, 0, 0, 0, 0] : i32(0);
  /** Down the rows from column J's address: body per row, P walking by the row stride. */
  const downRows = (perRow: number[]) => [
    ...get(X), ...get(J), ...i32(4), MUL, ADD, ...set(P), ...get(ROWS), ...set(LEFT),
    ...LOOP, ...perRow,
    ...get(P), ...get(STRIDE), ADD, ...set(P),
    ...get(LEFT), ...i32(1), SUB, ...tee(LEFT), ...i32(0), GT_S, ...BR_IF_0, END,
  ];
  const body = [
    ...locals([3, I32], [4, V128], [1, dtype === "float32" ? 0x7d : I32], [1, I32]),
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
    // then one column a turn
    ...BLOCK, ...get(J), ...get(COLS), 0x4e, ...brIf(0), // i32.ge_s
    ...LOOP,
    ...zeroScalar, ...set(ACC + 4),
    ...downRows([...get(ACC + 4), ...get(P), ...scalarLoad, ...scalarAdd, ...set(ACC + 4)]),
    ...get(OUT), ...get(J), ...i32(4), MUL, ADD, ...get(ACC + 4), ...scalarStore,
    ...get(J), ...i32(1), ADD, ...tee(J), ...get(COLS), LT_U, ...BR_IF_0,
    END, END,
    END,
  ];
  return moduleWithImportedMemory(voidType(4), "f", body);
}

type ColumnSum = (x: number, out: number, rows: number, cols: number) => void;

/** The sum of x over `axes` when they are its leading axes (a column sum); else undefined. */
function fastSum(backend: WasmBackendLike, x: tf.TensorInfo, axis: number | number[], keepDims: boolean): tf.TensorInfo | undefined {
  if (x.dtype !== "float32" && x.dtype !== "int32") return undefined;
  // in the order given: the original sums over its transposed copy in that order ([1, 0] is not [0, 1])
  const axes = tf.util.parseAxisParam(axis, x.shape);
  const leading = axes.length > 0 && axes.length < x.shape.length && axes.every((a, i) => a === i);
  if (!leading) return undefined;
  const rows = tf.util.sizeFromShape(x.shape.slice(0, axes.length));
  const cols = tf.util.sizeFromShape(x.shape.slice(axes.length));
  if (rows === 0 || cols === 0) return undefined;
  const dtype = x.dtype;
  const f = wasmFunction<ColumnSum>(backend, `column sum ${dtype}`, () => columnSumWasm(dtype), "f");
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
