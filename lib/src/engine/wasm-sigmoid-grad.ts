import * as tf from "@tensorflow/tfjs";
import {
  ADD, BLOCK, BR_IF_0, END, F32X4_MUL, F32X4_SUB, I32, LOOP, SHL, V128, brIf, get, i32, load, locals,
  moduleWithImportedMemory, set, store, tee, voidType, splatF32,
} from "./wasm-asm";
import { SPLIT_PASS_FROM, activeThreads, runGuided } from "./thread-pool";
import { type WasmBackendLike, type GradientMap, replaceGradient, restoreGradient, wasmKernel } from "./wasm-kernels";

/**
 * tfjs-core 4.x's gradient of Sigmoid is `dy * (y * (1 - y))` as three ops (Sub, Mul, Mul): on
 * LeNet's first layer (256×28×28×6, 1.2M floats) three passes over 4.8 MB, two temporaries, three
 * kernels on the calling thread (about 1.9 ms CPU a step on one thread). On wasm, for float32
 * tensors of at least 2¹⁶ elements, the gradient registered here computes it as one kernel of our
 * own ({@link sigmoidGradWasm}), in tfjs's order with a float32 rounding after each operation, so
 * the same bits as tfjs's three ops; split by element ranges across the thread pool from 2¹⁸
 * (each element by one thread: the bits do not depend on the thread count). Elsewhere (other
 * backends, small tensors, higher-order gradients, whose tape needs differentiable ops) it calls
 * tfjs's own gradient. `useSpeedups(false)` puts tfjs's gradient back.
 */

/** The wasm kernel the gradient runs: inputs dy and y (same shape, float32), output dy·(y·(1 − y)). */
const KERNEL = "D2lSigmoidGrad";
const MARK = Symbol.for("d2l.useFastWasmSigmoidGrad");
/**
 * Tensors from this many elements run our kernel; from SPLIT_FROM they are split across threads
 * (thread-pool.ts's runChunks: both of LeNet's layers, 1.2 and 0.4 M).
 */
export const OURS_FROM = 1 << 16;
const SPLIT_FROM = SPLIT_PASS_FROM;

/** `g(dy, y, dx, v0, v1)`: dx = dy · (y · (1 − y)) for the vectors [v0, v1) (4 floats each), rounded to float32 after each operation. */
export function sigmoidGradWasm(): number[] {
  const [DY, Y, DX, V0, V1] = [0, 1, 2, 3, 4];
  const [P, E] = [5, 6];
  const [ONE, YV] = [7, 8];
  const body = [
    ...locals([2, I32], [2, V128]),
    ...splatF32(1), ...set(ONE),
    ...BLOCK, ...get(V0), ...get(V1), 0x4e, ...brIf(0), // if (v0 >= v1) return
    ...get(V0), ...i32(4), SHL, ...set(P), ...get(V1), ...i32(4), SHL, ...set(E), // bytes
    ...LOOP,
    ...get(DX), ...get(P), ADD,
    ...get(DY), ...get(P), ADD, ...load(0),
    ...get(Y), ...get(P), ADD, ...load(0), ...tee(YV),
    ...get(ONE), ...get(YV), ...F32X4_SUB, // 1 − y
    ...F32X4_MUL, // y · (1 − y)
    ...F32X4_MUL, // dy · (y · (1 − y))
    ...store(0),
    ...get(P), ...i32(16), ADD, ...tee(P), ...get(E), 0x48, ...BR_IF_0, END, // while (p < e)
    END,
    END,
  ];
  return moduleWithImportedMemory(voidType(5), "g", body);
}

/** The same on floats [start, end) in JavaScript (float64 operations, each rounded to float32: the same bits). */
export function sigmoidGrad(dy: Float32Array, y: Float32Array, dx: Float32Array, start: number, end: number): void {
  for (let i = start; i < end; i++) dx[i] = Math.fround(dy[i] * Math.fround(y[i] * Math.fround(1 - y[i])));
}

function sigmoidGradKernel(args: { inputs: tf.NamedTensorInfoMap; backend: unknown }): tf.TensorInfo {
  const { dy, y } = args.inputs as { dy: tf.TensorInfo; y: tf.TensorInfo };
  const backend = args.backend as WasmBackendLike;
  const size = tf.util.sizeFromShape(y.shape);
  const out = backend.makeOutput(y.shape, "float32");
  const [pdy, py, pdx] = [backend.getMemoryOffset(dy.dataId), backend.getMemoryOffset(y.dataId), backend.getMemoryOffset(out.dataId)];
  const vectors = Math.floor(size / 4);
  const simd = wasmKernel(backend, "sigmoid-grad", sigmoidGradWasm, "g");
  if (simd !== undefined) {
    const threads = size >= SPLIT_FROM ? activeThreads() : 1;
    runGuided(backend.wasm?.asm?.memory as WebAssembly.Memory, simd, vectors, threads, (start, end) => [pdy, py, pdx, start, end]);
  }
  // views after the allocation, which may have grown (replaced) the memory's buffer
  const heap = backend.wasm!.HEAPU8!.buffer;
  const view = (p: number) => new Float32Array(heap, p, size);
  sigmoidGrad(view(pdy), view(py), view(pdx), simd === undefined ? 0 : 4 * vectors, size);
  return out;
}

/** The gradient by our kernel, or undefined where tfjs's applies (another backend, a higher order, small or other tensors). */
function oneKernelGradient(dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]): GradientMap | undefined {
  const [y] = saved;
  const g = dy as tf.Tensor;
  const ours =
    tf.getBackend() === "wasm" && tf.engine().state.gradientDepth === 0 && y.size >= OURS_FROM && y.dtype === "float32" &&
    g.dtype === "float32" && tf.util.arraysEqual(g.shape, y.shape) && tf.getKernel(KERNEL, "wasm") !== undefined;
  return ours ? { x: () => tf.engine().runKernel(KERNEL, { dy: g, y }) as tf.Tensor } : undefined;
}

/**
 * Makes the gradient of Sigmoid one wasm kernel for large float32 tensors on the wasm backend
 * (registering the kernel, and the gradient for every backend: it calls tfjs's own elsewhere).
 * Idempotent; false where tfjs has no Sigmoid gradient.
 * Not in d2l: it works around tfjs-core 4.x, see lib/src/engine/wasm-sigmoid-grad.ts.
 */
export function useFastWasmSigmoidGrad(): boolean {
  if (tf.getKernel(KERNEL, "wasm") === undefined) {
    tf.registerKernel({ kernelName: KERNEL, backendName: "wasm", kernelFunc: sigmoidGradKernel as unknown as tf.KernelFunc });
  }
  return replaceGradient(tf.Sigmoid, MARK, oneKernelGradient);
}

/** Puts tfjs's own Sigmoid gradient back; returns whether it was replaced. */
export function restoreWasmSigmoidGrad(): boolean {
  return restoreGradient(tf.Sigmoid, MARK);
}
