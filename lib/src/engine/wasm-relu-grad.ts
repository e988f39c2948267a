import * as tf from "@tensorflow/tfjs";
import {
  ADD, BLOCK, BR_IF_0, END, F32X4_MUL, F32X4_NE, I32, LOOP, SHL, SUB, V128, V128_AND, ZERO_F32X4, brIf, extractF32,
  get, i32, load, loadSplat, locals, moduleWithImportedMemory, set, store, storeF32, voidType, F32X4_GT, F32X4_GE,
  V128_BITSELECT, splatF32,
} from "./wasm-asm";
import { SPLIT_PASS_FROM, activeThreads, runGuided } from "./thread-pool";
import { type GradientMap, type WasmBackendLike, replaceGradient, restoreGradient, wasmKernel } from "./wasm-kernels";

/**
 * tfjs-core 4.x's gradients of a ReLU are three ops each, three passes over the layer's activations
 * and two temporaries on the calling thread: `Relu` (4.3's `dense({ activation: "relu" })`) as
 * `dy * cast(step(x))` (Step, Cast, Multiply), and 4.2's `tf.maximum(X, 0)` as
 * `dy * cast(greaterEqual(a, b))` (GreaterEqual, Cast from bool, Multiply). On wasm, for float32
 * tensors (and, for Maximum, b a single value), the gradients registered here compute each as one
 * kernel of our own ({@link reluGradWasm}): the 0/1 factor made in registers and multiplied by the same
 * f32x4.mul the Multiply kernel (wasm-binary.ts) runs, dy first, so the same bits, NaNs included: Step
 * passes a NaN x through (its payload and sign: then dy · x), Step of −0 is 0, and greaterEqual is
 * false where either side is NaN (dy · 0). From 2¹⁸ elements the pass is split by element ranges
 * across the thread pool (each element by one thread). Elsewhere (other backends, other dtypes,
 * higher-order gradients, whose tape needs differentiable ops) tfjs's own gradient runs.
 * `useSpeedups(false)` puts tfjs's gradients back.
 */

const KERNEL = "D2lReluGrad";
const MARK = Symbol.for("d2l.useOneKernelReluGrad");
const SPLIT_FROM = SPLIT_PASS_FROM;

/** Which factor multiplies dy: tfjs's step(x) (Relu), or x ≥ b for one value b (Maximum's gradient of a). */
export type ReluGradMode = "step" | "ge";

/**
 * `g(dy, x, b, out, e0, e1)`: out = dy · factor(x) for the elements [e0, e1): 16 at a time (4 vectors), then
 * one at a time through lane 0 of the same vector operations. The factor: "step", 1 where x > 0, x where x is
 * NaN, else 0; "ge", 1 where x ≥ b (b: one float, at the address b), else 0.
 */
export function reluGradWasm(mode: ReluGradMode): number[] {
  const [DY, X, B, OUT, E0, E1] = [0, 1, 2, 3, 4, 5];
  const [END_OUT, ONE, BV, XV] = [6, 7, 8, 9];
  const factor = mode === "step"
    ? [
        ...get(XV), // where x is NaN: x
        ...get(XV), ...ZERO_F32X4, ...F32X4_GT, ...get(ONE), ...V128_AND, // else x > 0 ? 1 : 0
        ...get(XV), ...get(XV), ...F32X4_NE, // x is NaN
        ...V128_BITSELECT,
      ]
    : [...get(XV), ...get(BV), ...F32X4_GE, ...get(ONE), ...V128_AND]; // x >= b ? 1 : 0
  /** Stores dy · factor(x) at OUT + offset, dy and x loaded by `loadAt` (offset in its memarg); dy first, as Multiply's a. */
  const product = (loadAt: number[], storeAt: number[]) => [
    ...get(OUT),
    ...get(DY), ...loadAt,
    ...get(X), ...loadAt, ...set(XV),
    ...factor,
    ...F32X4_MUL,
    ...storeAt,
  ];
  const advance = (bytes: number) => [DY, X, OUT].flatMap((p) => [...get(p), ...i32(bytes), ADD, ...set(p)]);
  const body = [
    ...locals([1, I32], [3, V128]),
    ...splatF32(1), ...set(ONE),
    ...(mode === "ge" ? [...get(B), ...loadSplat(0), ...set(BV)] : []),
    // the three pointers at element e0; END_OUT at e1
    ...[DY, X, OUT].flatMap((p) => [...get(p), ...get(E0), ...i32(2), SHL, ADD, ...set(p)]),
    ...get(OUT), ...get(E1), ...get(E0), SUB, ...i32(2), SHL, ADD, ...set(END_OUT),
    // 16 at a time (4 vectors) while 16 are left
    ...BLOCK, ...get(END_OUT), ...get(OUT), SUB, ...i32(64), 0x48, ...brIf(0), // if (end - out < 64) skip (i32.lt_s)
    ...LOOP,
    ...[0, 16, 32, 48].flatMap((offset) => product(load(offset), store(offset))),
    ...advance(64),
    ...get(END_OUT), ...get(OUT), SUB, ...i32(64), 0x4e, ...BR_IF_0, // while (end - out >= 64) (i32.ge_s)
    END, END,
    // then one at a time, through lane 0 of the same vector operations
    ...BLOCK, ...get(OUT), ...get(END_OUT), 0x4e, ...brIf(0), // if (out >= end) skip (i32.ge_s)
    ...LOOP,
    ...product(loadSplat(0), [...extractF32(0), ...storeF32(0)]),
    ...advance(4),
    ...get(OUT), ...get(END_OUT), 0x48, ...BR_IF_0, // while (out < end)
    END, END,
    END,
  ];
  return moduleWithImportedMemory(voidType(6), "g", body);
}

function reluGradKernel(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: unknown }): tf.TensorInfo {
  const { dy, x, b } = args.inputs as { dy: tf.TensorInfo; x: tf.TensorInfo; b?: tf.TensorInfo };
  const mode = (args.attrs as { mode: ReluGradMode }).mode;
  const backend = args.backend as WasmBackendLike;
  const size = tf.util.sizeFromShape(x.shape);
  const simd = wasmKernel(backend, `relu-grad ${mode}`, () => reluGradWasm(mode), "g");
  if (simd === undefined) throw new Error(`${KERNEL}: this Node has no WebAssembly SIMD`);
  const out = backend.makeOutput(x.shape, "float32");
  const [pdy, px, pb, pout] = [dy, x, b, out].map((t) => (t === undefined ? 0 : backend.getMemoryOffset(t.dataId)));
  const threads = size >= SPLIT_FROM ? activeThreads() : 1;
  if (threads <= 1) simd.call(pdy, px, pb, pout, 0, size);
  else runGuided(backend.wasm?.asm?.memory as WebAssembly.Memory, simd, size, threads, (e0, e1) => [pdy, px, pb, pout, e0, e1], 4);
  return out;
}

/** Whether our kernel computes this gradient: wasm, a first-order gradient, float32 dy and x of one shape. */
function applies(dy: tf.Tensor, x: tf.Tensor): boolean {
  return tf.getBackend() === "wasm" && tf.engine().state.gradientDepth === 0 && tf.getKernel(KERNEL, "wasm") !== undefined &&
    x.dtype === "float32" && dy.dtype === "float32" && tf.util.arraysEqual(dy.shape, x.shape);
}

/** Relu's gradient by our kernel, or undefined where tfjs's applies. */
function reluGradient(dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]): GradientMap | undefined {
  const [x] = saved;
  const g = dy as tf.Tensor;
  if (!applies(g, x)) return undefined;
  return { x: () => tf.engine().runKernel(KERNEL, { dy: g, x }, { mode: "step" } as unknown as tf.NamedAttrMap) as tf.Tensor };
}

/** Maximum's gradient by our kernel where b is one float32 value (4.2's relu, max(X, 0)), or undefined where tfjs's applies. */
function maximumGradient(dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]): GradientMap | undefined {
  const [a, b] = saved;
  const g = dy as tf.Tensor;
  if (!applies(g, a) || b.size !== 1 || b.dtype !== "float32") return undefined;
  return {
    a: () => tf.engine().runKernel(KERNEL, { dy: g, x: a, b }, { mode: "ge" } as unknown as tf.NamedAttrMap) as tf.Tensor,
    // tfjs's own (b is a constant in 4.2, so backpropagation never asks for it)
    b: () => tf.mul(g, tf.cast(tf.less(a, b), "float32")),
  };
}

/**
 * Makes the gradients of Relu, and of Maximum against one value, one wasm kernel on the wasm backend
 * (registering the kernel, and the gradients for every backend: they call tfjs's own elsewhere).
 * Idempotent; false where tfjs has no such gradient.
 * Not in d2l: it works around tfjs-core 4.x, see lib/src/engine/wasm-relu-grad.ts.
 */
export function useOneKernelReluGrad(): boolean {
  if (tf.getKernel(KERNEL, "wasm") === undefined && tf.findBackend("wasm") !== null) {
    tf.registerKernel({ kernelName: KERNEL, backendName: "wasm", kernelFunc: reluGradKernel as unknown as tf.KernelFunc });
  }
  return replaceGradient(tf.Relu, MARK, reluGradient) && replaceGradient(tf.Maximum, MARK, maximumGradient);
}

/** Puts tfjs's own Relu and Maximum gradients back; returns whether they were replaced. */
export function restoreReluGrad(): boolean {
  return [restoreGradient(tf.Relu, MARK), restoreGradient(tf.Maximum, MARK)].some(Boolean);
}
