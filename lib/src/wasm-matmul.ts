import * as tf from "@tensorflow/tfjs";

/**
 * The wasm backend (@tensorflow/tfjs-backend-wasm 4.x) multiplies with XNNPACK only when neither
 * operand is transposed and both have a single batch; any transpose flag falls to a scalar loop
 * with strided reads, 7 to 16 times slower on the shapes of chapter 3 (its _FusedMatMul slow path
 * also broadcasts the bias wrongly past the first row). Every matMul gradient passes a transpose
 * flag. This module re-registers the two wasm kernels so that a transposed single-batch product
 * transposes into a temporary tensor and runs the original, untransposed (XNNPACK) kernel.
 */

/** How a transposed product is rewritten. */
export type MatMulRewrite =
  /** Choose the cheaper of "operands" and "output" by the number of elements moved. */
  | "auto"
  /** op(A)·op(B): transpose each flagged operand, then multiply. */
  | "operands"
  /** (op(B)ᵀ·op(A)ᵀ)ᵀ: transpose each unflagged operand, multiply, transpose the result. */
  | "output";

/** How a temporary transposed copy is made. */
export type Transposer =
  /** A JavaScript loop writing the wasm heap in order (measured about 2x the wasm kernel here). */
  | "js"
  /** The wasm backend's own Transpose kernel. */
  | "wasm";

/** Tuning knobs of {@link useFastWasmMatMul}; the defaults are the measured best. */
export interface FastMatMulOptions {
  rewrite?: MatMulRewrite;
  transposer?: Transposer;
}

/** What the wrappers use of the wasm backend (structural, so lib needs no wasm type import). */
interface WasmBackendLike {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
  disposeData(dataId: tf.DataId, force?: boolean): boolean;
}

interface KernelArgs {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}

type Kernel = (args: KernelArgs) => tf.TensorInfo | tf.TensorInfo[];

const BACKEND = "wasm";
const KERNELS = [tf.BatchMatMul, tf._FusedMatMul] as const;
const settings: Required<FastMatMulOptions> = { rewrite: "auto", transposer: "js" };
const originals = new Map<string, tf.KernelConfig>();
const wrappers = new WeakSet<tf.KernelFunc>();

/**
 * XNNPACK packs the right operand (its weights) with a strided gather: per element about
 * twice the cost of our in-order JavaScript transpose, so "auto" counts it double.
 */
const PACK_COST = 2;

function size(shape: number[]): number {
  return shape.reduce((n, d) => n * d, 1);
}

function singleBatch(shape: number[]): boolean {
  return shape.length >= 2 && size(shape.slice(0, -2)) === 1;
}

/** A copy of `x` (float32, rank >= 2) with its last two axes swapped, owned by the caller. */
function transposeLast2(x: tf.TensorInfo, backend: WasmBackendLike): tf.TensorInfo {
  const rank = x.shape.length;
  const rows = x.shape[rank - 2];
  const cols = x.shape[rank - 1];
  const outShape = [...x.shape.slice(0, -2), cols, rows];
  if (settings.transposer === "wasm") {
    const perm = [...Array(rank - 2).keys(), rank - 1, rank - 2];
    const transpose = tf.getKernel(tf.Transpose, BACKEND)!.kernelFunc;
    return transpose({ inputs: { x }, backend: backend as never, attrs: { perm } }) as tf.TensorInfo;
  }
  const out = backend.makeOutput(outShape, "float32");
  // Views are taken after the allocation: a growing wasm heap detaches older views.
  const src = backend.typedArrayFromHeap(x);
  const dst = backend.typedArrayFromHeap(out);
  const matrix = rows * cols;
  for (let base = 0; base < src.length; base += matrix) {
    // Writing in order and reading with a stride measured 2x faster than the other way round.
    for (let j = 0, o = base; j < cols; j++) {
      for (let i = 0, s = base + j; i < rows; i++, s += cols, o++) {
        dst[o] = src[s];
      }
    }
  }
  return out;
}

/** Which rewrite moves fewer elements for op(A)·op(B) (A, B single-batch). */
function chooseRewrite(a: number[], b: number[], transposeA: boolean, transposeB: boolean): MatMulRewrite {
  if (settings.rewrite !== "auto") {
    return settings.rewrite;
  }
  const sizeA = size(a);
  const sizeB = size(b);
  const rows = transposeA ? a[a.length - 1] : a[a.length - 2];
  const cols = transposeB ? b[b.length - 2] : b[b.length - 1];
  // "operands" transposes the flagged ones and XNNPACK packs op(B);
  // "output" transposes the unflagged ones and the result, and XNNPACK packs op(A)ᵀ.
  const operands = (transposeA ? sizeA : 0) + (transposeB ? sizeB : 0) + PACK_COST * sizeB;
  const output = (transposeA ? 0 : sizeA) + (transposeB ? 0 : sizeB) + rows * cols + PACK_COST * sizeA;
  return operands <= output ? "operands" : "output";
}

function disposeAll(backend: WasmBackendLike, infos: tf.TensorInfo[]): void {
  for (const info of infos) {
    backend.disposeData(info.dataId);
  }
}

function isFastCase(a: tf.TensorInfo, b: tf.TensorInfo, transposeA: boolean, transposeB: boolean): boolean {
  if (!transposeA && !transposeB) return false;
  if (a.dtype !== "float32" || b.dtype !== "float32") return false;
  // Several batches take the scalar loop with or without flags; leave them (and their errors) as they are.
  if (!singleBatch(a.shape) || !singleBatch(b.shape)) return false;
  const innerA = transposeA ? a.shape[a.shape.length - 2] : a.shape[a.shape.length - 1];
  const innerB = transposeB ? b.shape[b.shape.length - 1] : b.shape[b.shape.length - 2];
  return innerA === innerB;
}

function fastBatchMatMul(original: Kernel): Kernel {
  return (args) => {
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    const { transposeA, transposeB } = args.attrs as unknown as tf.BatchMatMulAttrs;
    if (!isFastCase(a, b, transposeA, transposeB)) {
      return original(args);
    }
    const backend = args.backend as WasmBackendLike;
    const attrs = { ...args.attrs, transposeA: false, transposeB: false };
    const temps: tf.TensorInfo[] = [];
    const temp = (x: tf.TensorInfo) => {
      const t = transposeLast2(x, backend);
      temps.push(t);
      return t;
    };
    try {
      if (chooseRewrite(a.shape, b.shape, transposeA, transposeB) === "operands") {
        const inputs = { a: transposeA ? temp(a) : a, b: transposeB ? temp(b) : b };
        return original({ inputs, backend: args.backend, attrs });
      }
      const inputs = { a: transposeB ? b : temp(b), b: transposeA ? a : temp(a) };
      const product = original({ inputs, backend: args.backend, attrs }) as tf.TensorInfo;
      temps.push(product);
      return transposeLast2(product, backend);
    } finally {
      disposeAll(backend, temps);
    }
  };
}

function fastFusedMatMul(original: Kernel): Kernel {
  return (args) => {
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    const { transposeA, transposeB } = args.attrs as unknown as tf.BatchMatMulAttrs;
    if (!isFastCase(a, b, transposeA, transposeB)) {
      return original(args);
    }
    // Bias and activation apply to the product's axes, so only "operands" keeps them right.
    const backend = args.backend as WasmBackendLike;
    const temps: tf.TensorInfo[] = [];
    try {
      const inputs = { ...args.inputs };
      if (transposeA) temps.push((inputs.a = transposeLast2(a, backend)));
      if (transposeB) temps.push((inputs.b = transposeLast2(b, backend)));
      return original({ inputs, backend: args.backend, attrs: { ...args.attrs, transposeA: false, transposeB: false } });
    } finally {
      disposeAll(backend, temps);
    }
  };
}

const WRAP: Record<(typeof KERNELS)[number], (original: Kernel) => Kernel> = {
  [tf.BatchMatMul]: fastBatchMatMul,
  [tf._FusedMatMul]: fastFusedMatMul,
};

/**
 * Makes the wasm backend's transposed matrix products (every matMul gradient) take its fast
 * XNNPACK path: a product with a transpose flag is computed on an explicitly transposed copy.
 * Results equal the original kernels' within float rounding. Idempotent; `options` only retune
 * (for benchmarks). Returns false when the wasm backend's kernels are not registered.
 * Not in d2l: it works around @tensorflow/tfjs-backend-wasm 4.x, see lib/src/wasm-matmul.ts.
 */
export function useFastWasmMatMul(options: FastMatMulOptions = {}): boolean {
  Object.assign(settings, options);
  for (const name of KERNELS) {
    const config = tf.getKernel(name, BACKEND);
    if (config === undefined) {
      return false;
    }
    if (wrappers.has(config.kernelFunc)) {
      continue;
    }
    const kernelFunc = WRAP[name](config.kernelFunc as unknown as Kernel) as unknown as tf.KernelFunc;
    wrappers.add(kernelFunc);
    originals.set(name, config);
    tf.unregisterKernel(name, BACKEND);
    // The same setupFunc/disposeFunc: the original kernel's wasm bindings stay initialised.
    tf.registerKernel({ ...config, kernelFunc });
  }
  return true;
}

/**
 * Puts the original wasm matMul kernels back (undoes {@link useFastWasmMatMul}); for tests and
 * benchmarks that compare the two. Returns whether anything was restored.
 */
export function restoreWasmMatMul(): boolean {
  let restored = false;
  for (const name of KERNELS) {
    const original = originals.get(name);
    const config = tf.getKernel(name, BACKEND);
    if (original !== undefined && config !== undefined && wrappers.has(config.kernelFunc)) {
      tf.unregisterKernel(name, BACKEND);
      tf.registerKernel(original);
      restored = true;
    }
  }
  return restored;
}
