import * as tf from "@tensorflow/tfjs";
import { TRANSPOSE_WASM } from "./simd-kernels";
import { packedMatMul } from "./packed-matmul";
import { SKINNY_MAX_COLUMNS, skinnyMatMul } from "./skinny-matmul";
import {
  type WasmBackendLike, findWasmReplacement, replaceWasmKernel, restoreWasmKernel, singleBatch, wasmFunction,
} from "./wasm-kernels";
import { getKernel, sizeFromShape } from "./tf-direct";

/**
 * The wasm backend (@tensorflow/tfjs-backend-wasm 4.x) multiplies with XNNPACK only when neither
 * operand is transposed and both have a single batch; any transpose flag falls to a scalar loop
 * with strided reads, 7 to 16 times slower on the shapes of chapter 3 (its _FusedMatMul slow path
 * also broadcasts the bias wrongly past the first row). Every matMul gradient passes a transpose
 * flag. This module re-registers the two wasm kernels: a product with at most 16 output columns
 * (softmax regression's X·W and Xᵀ·dY) runs our own SIMD kernels (skinny-matmul.ts, 1.6 to 1.8
 * times XNNPACK's speed there); a float32 product with more columns (the MLP's) runs the packed
 * kernel of packed-matmul.ts (1.4 to 1.7 times XNNPACK's speed, transposes and batches included);
 * any other transposed single-batch product transposes into a temporary tensor and runs the
 * original, untransposed (XNNPACK) kernel.
 */

/** How a transposed product is rewritten. */
export type MatMulRewrite =
  /** Choose the cheaper of "operands" and "output" by the number of elements moved. */
  | "auto"
  /** op(A)·op(B): transpose each flagged operand, then multiply. */
  | "operands"
  /** (op(B)ᵀ·op(A)ᵀ)ᵀ: transpose each unflagged operand, multiply, transpose the result. */
  | "output";

/**
 * Which loop of the wasm Transpose kernel makes a temporary transposed copy of an m×n matrix.
 * Its 2-D loop reads in order and writes with stride m; its 3-D loop writes in order and reads
 * with stride n. A stride that is a multiple of 64 floats (the batch size 256) thrashes the
 * cache: m×n = 256×784 takes 3.2 ns an element in 2-D and 0.7 in 3-D, 784×256 the reverse.
 * Our own SIMD kernel ({@link TRANSPOSE_WASM}, 4×4 blocks) takes 0.2 to 0.3 ns an element when
 * m and n are multiples of 4.
 */
export type Transposer =
  /** "simd" when m and n are multiples of 4; else "write-order" when m < n (the matrix is wide), "read-order" otherwise. */
  | "auto"
  /** The SIMD kernel, run on the backend's own memory (falls back to "auto" where it cannot run). */
  | "simd"
  /** The kernel's 2-D loop (perm [1, 0]). */
  | "read-order"
  /** The kernel's 3-D loop, on the matrix viewed as [f, m/f, n] (or [m, f, n/f]) for a factor f. */
  | "write-order";

/** Tuning knobs of {@link useFastWasmMatMul}; the defaults are the measured best. */
export interface FastMatMulOptions {
  rewrite?: MatMulRewrite;
  transposer?: Transposer;
  /** Whether products with few output columns use the kernels of skinny-matmul.ts (default true). */
  skinny?: boolean;
  /**
   * Whether those products run skinny-matmul.ts's broadcast kernel (default true: 1.8x the row-dot and
   * column-axpy kernels for softmax's products; the packed kernel's floats, with relaxed SIMD as `relaxed` says);
   * false: the row-dot and column-axpy kernels (chapter 3's floats before December 2026).
   */
  broadcast?: boolean;
  /**
   * Whether, with `broadcast`, the weight gradients Aᵀ·B of at most 16 columns run skinny-gradient.ts's kernel
   * (default true: 4 rows of C a vector, exactly n columns; the broadcast kernel's floats).
   */
  skinnyGradient?: boolean;
  /** Whether the products {@link usePacked} picks run the packed kernel of packed-matmul.ts (default true). */
  packed?: boolean;
  /** Whether the packed kernel uses relaxed SIMD's fused multiply-add where Node has it (default true). */
  relaxed?: boolean;
  /** Whether the packed kernel skips op(A)'s zeros: "auto" (default) where A is a quarter zeros or more, or always, or never. */
  skipZeros?: boolean | "auto";
}

interface KernelArgs {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}

type Kernel = (args: KernelArgs) => tf.TensorInfo | tf.TensorInfo[];

type Settings = Required<FastMatMulOptions>;

/** Marks the installed wrappers, whose state is their (re-tunable) settings. */
const MARK = Symbol.for("d2l.useFastWasmMatMul");

const BACKEND = "wasm";
const KERNELS = [tf.BatchMatMul, tf._FusedMatMul] as const;
const DEFAULTS: Settings = { rewrite: "auto", transposer: "auto", skinny: true, broadcast: true, skinnyGradient: true, packed: true, relaxed: true, skipZeros: "auto" };

/**
 * XNNPACK packs the right operand (its weights) with a strided gather: per element about
 * three times the cost of a transpose in the better loop order, so "auto" counts it so.
 */
const PACK_COST = 3;

function smallestFactor(n: number): number | undefined {
  for (let f = 2; f * f <= n; f++) {
    if (n % f === 0) return f;
  }
  return undefined;
}

type SimdTranspose = (src: number, dst: number, m: number, n: number) => void;

/** The SIMD transpose working on the backend's memory, or undefined where it cannot run (then the Transpose kernel does the work). */
function simdTranspose(backend: WasmBackendLike): SimdTranspose | undefined {
  return wasmFunction<SimdTranspose>(backend, "transpose", () => TRANSPOSE_WASM, "t");
}

/** A copy of the single-batch `x` with its last two axes swapped, owned by the caller. */
function transposeLast2(x: tf.TensorInfo, backend: WasmBackendLike, settings: Settings): tf.TensorInfo {
  const [m, n] = x.shape.slice(-2);
  const outShape = [...x.shape.slice(0, -2), n, m];
  const simd = (settings.transposer === "auto" || settings.transposer === "simd") && m % 4 === 0 && n % 4 === 0;
  const t = simd ? simdTranspose(backend) : undefined;
  if (t !== undefined) {
    const out = backend.makeOutput(outShape, x.dtype); // may grow the memory; offsets stay valid
    t(backend.getMemoryOffset(x.dataId), backend.getMemoryOffset(out.dataId), m, n);
    return out;
  }
  const transpose = getKernel(tf.Transpose, BACKEND)!.kernelFunc;
  const run = (shape: number[], perm: number[]) => {
    const out = transpose({ inputs: { x: { ...x, shape } }, backend: backend as never, attrs: { perm } }) as tf.TensorInfo;
    out.shape = outShape;
    return out;
  };
  const writeOrder = settings.transposer === "write-order" || (settings.transposer !== "read-order" && m < n);
  // The kernel drops axes of size 1, so a 3-D view needs a factor f > 1 of m or n.
  const fm = smallestFactor(m);
  const fn = smallestFactor(n);
  if (writeOrder && fm !== undefined) return run([fm, m / fm, n], [2, 0, 1]);
  if (writeOrder && fn !== undefined) return run([m, fn, n / fn], [1, 2, 0]);
  return run([m, n], [1, 0]);
}

/** Which rewrite moves fewer elements for op(A)·op(B) (A, B single-batch). */
function chooseRewrite(
  settings: Settings, a: number[], b: number[], transposeA: boolean, transposeB: boolean,
): MatMulRewrite {
  if (settings.rewrite !== "auto") {
    return settings.rewrite;
  }
  const sizeA = sizeFromShape(a);
  const sizeB = sizeFromShape(b);
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

/**
 * Whether op(A)·op(B) (m×k times k×n) runs the packed kernel: products with more than 16 columns
 * (fewer take skinny-matmul.ts). Measured with scripts/bench-matmul.ts (CPU time, interleaved) on
 * every shape of the MLP's step and on [512, 512]², it beats the backend's XNNPACK product, by
 * 1.4-1.5x with mul+add and 1.6-1.7x with relaxed SIMD on the large ones, and by 4-7x on dY·W2ᵀ
 * (k = 10), where the backend first copies the transposed operand.
 */
export function usePacked(m: number, k: number, n: number): boolean {
  return n > SKINNY_MAX_COLUMNS && m >= 1 && k >= 1;
}

/** The packed kernel's product, when settings and shape choose it; else undefined. */
function tryPacked(
  backend: WasmBackendLike, settings: Settings, a: tf.TensorInfo, b: tf.TensorInfo, transposeA: boolean, transposeB: boolean,
  epilogue: { bias?: tf.TensorInfo; relu?: boolean } = {},
): tf.TensorInfo | undefined {
  if (!settings.packed || a.shape.length < 2 || b.shape.length < 2) return undefined;
  const m = a.shape[a.shape.length - (transposeA ? 1 : 2)];
  const k = a.shape[a.shape.length - (transposeA ? 2 : 1)];
  const n = b.shape[b.shape.length - (transposeB ? 2 : 1)];
  if (!usePacked(m, k, n)) return undefined;
  return packedMatMul(backend, a, b, transposeA, transposeB, epilogue, { relaxed: settings.relaxed, skipZeros: settings.skipZeros });
}

function fastBatchMatMul(original: Kernel, settings: Settings): Kernel {
  return (args) => {
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    const { transposeA, transposeB } = args.attrs as unknown as tf.BatchMatMulAttrs;
    const backend = args.backend as WasmBackendLike;
    const skinny = settings.skinny ? skinnyMatMul(backend, a, b, transposeA, transposeB, undefined, settings) : undefined;
    if (skinny !== undefined) return skinny;
    const packed = tryPacked(backend, settings, a, b, transposeA, transposeB);
    if (packed !== undefined) return packed;
    if (!isFastCase(a, b, transposeA, transposeB)) {
      return original(args);
    }
    const attrs = { ...args.attrs, transposeA: false, transposeB: false };
    const temps: tf.TensorInfo[] = [];
    const temp = (x: tf.TensorInfo) => {
      const t = transposeLast2(x, backend, settings);
      temps.push(t);
      return t;
    };
    try {
      if (chooseRewrite(settings, a.shape, b.shape, transposeA, transposeB) === "operands") {
        const inputs = { a: transposeA ? temp(a) : a, b: transposeB ? temp(b) : b };
        return original({ inputs, backend: args.backend, attrs });
      }
      const inputs = { a: transposeB ? b : temp(b), b: transposeA ? a : temp(a) };
      const product = original({ inputs, backend: args.backend, attrs }) as tf.TensorInfo;
      temps.push(product);
      return transposeLast2(product, backend, settings);
    } finally {
      disposeAll(backend, temps);
    }
  };
}

function fastFusedMatMul(original: Kernel, settings: Settings): Kernel {
  return (args) => {
    const { a, b, bias, preluActivationWeights } = args.inputs as Record<string, tf.TensorInfo | undefined> & { a: tf.TensorInfo; b: tf.TensorInfo };
    const { transposeA, transposeB, activation } = args.attrs as unknown as tf._FusedMatMulAttrs;
    const backend = args.backend as WasmBackendLike;
    if (settings.skinny && activation === "linear" && preluActivationWeights == null) {
      const skinny = skinnyMatMul(backend, a, b, transposeA, transposeB, bias ?? undefined, settings);
      if (skinny !== undefined) return skinny;
    }
    if ((activation === "linear" || activation === "relu") && preluActivationWeights == null) {
      const packed = tryPacked(backend, settings, a, b, transposeA, transposeB, { bias: bias ?? undefined, relu: activation === "relu" });
      if (packed !== undefined) return packed;
    }
    if (!isFastCase(a, b, transposeA, transposeB)) {
      return original(args);
    }
    // Bias and activation apply to the product's axes, so only "operands" keeps them right.
    const temps: tf.TensorInfo[] = [];
    try {
      const inputs = { ...args.inputs };
      if (transposeA) temps.push((inputs.a = transposeLast2(a, backend, settings)));
      if (transposeB) temps.push((inputs.b = transposeLast2(b, backend, settings)));
      return original({ inputs, backend: args.backend, attrs: { ...args.attrs, transposeA: false, transposeB: false } });
    } finally {
      disposeAll(backend, temps);
    }
  };
}

const WRAP: Record<(typeof KERNELS)[number], (original: Kernel, settings: Settings) => Kernel> = {
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
  const given = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
  for (const name of KERNELS) {
    const installed = findWasmReplacement<Settings>(name, MARK);
    if (installed !== undefined) {
      Object.assign(installed.state, given);
      continue;
    }
    const settings: Settings = { ...DEFAULTS, ...given };
    const wrap = (original: tf.KernelFunc) => WRAP[name](original as unknown as Kernel, settings) as unknown as tf.KernelFunc;
    if (!replaceWasmKernel(name, MARK, settings, wrap)) return false;
  }
  return true;
}

/**
 * The packed kernel's settings as installed by {@link useFastWasmMatMul} (relaxed SIMD, zero
 * skipping), for kernels that call it themselves (conv2d-simd.ts's input gradient), so their
 * products are the registered BatchMatMul's, float for float; undefined where the packed kernel is
 * not installed or is off.
 */
export function installedPackedOptions(): { relaxed: boolean; skipZeros: boolean | "auto" } | undefined {
  const installed = findWasmReplacement<Settings>(tf.BatchMatMul, MARK);
  if (installed === undefined || !installed.state.packed) return undefined;
  return { relaxed: installed.state.relaxed, skipZeros: installed.state.skipZeros };
}

/**
 * Puts the original wasm matMul kernels back (undoes {@link useFastWasmMatMul}); for tests and
 * benchmarks that compare the two. Returns whether anything was restored.
 */
export function restoreWasmMatMul(): boolean {
  return KERNELS.map((name) => restoreWasmKernel(name, MARK)).some(Boolean);
}
