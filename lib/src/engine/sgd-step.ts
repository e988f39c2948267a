import * as tf from "@tensorflow/tfjs";
import { ADD, BLOCK, BR_IF_0, END, F32X4_ADD, F32X4_MUL, F32_REINTERPRET_I32, I32, LOOP, SHL, V128, brIf, get, i32, load, locals, moduleWithImportedMemory, set, store, tee, voidType } from "./wasm-asm";
import { activeThreads, runSplit, splitRanges } from "./thread-pool";
import { type WasmBackendLike, wasmKernel } from "./wasm-kernels";
import { arraysEqual, getBackend, getKernel, sizeFromShape, tfEngine, tidy } from "./tf-direct";
import { processState } from "./process-state";

/**
 * Replaces `tf.train.sgd`'s step (tfjs-core's `SGDOptimizer.applyGradients`): for each variable, in a
 * `tf.tidy`, `add(mul(c, gradient), value)` with c = −lr, then `value.assign`: two kernels and two
 * passes over the parameter (the MLP's W1 is 784×256), each through tfjs's engine. On wasm, for
 * float32 variables, one kernel of our own ({@link sgdStepWasm}) computes the same
 * value + (c · gradient), rounded to float32 after the product and after the sum as tfjs's two ops
 * round (same bits), in one pass. Elsewhere, and for any other dtype, tfjs's own step runs.
 * It can split the pass across the thread pool (`useSplitSgdStep(true)`, off by default): from
 * {@link SPLIT_FROM} floats (the MLP's W1) with 2 or more threads, in parts of whole rows, the rows
 * packed-matmul.ts's split gave each thread of the weight gradient Xᵀ·dH, each float by one thread
 * (the same bits on any thread count). Measured (AMD EPYC Zen 5, 2 vCPUs, load 7, wall time of W1's
 * step right after a split Xᵀ·dH, 500 alternated steps): split p10 89-126 µs, median 126-214, against
 * 53-76 and 73-117 on the calling thread alone, which took the same after a product on one thread
 * (53 / 72): the step does not slow down after a split product here, and waking a worker costs more
 * than half of a 55 µs pass saves.
 * `useSpeedups(false)` restores tfjs's method.
 */

const KERNEL = "D2lSgdStep";
const MARK = Symbol.for("d2l.useOneKernelSgd");

const splitState = processState("d2l.splitSgdStep", () => ({ enabled: false }));

/** Whether large variables' steps split across threads (default false, see above; the floats are the same either way). */
export function useSplitSgdStep(on: boolean): void {
  splitState.enabled = on;
}

/** Variables from this many floats split their step across threads (the MLP's W1, 200,704; nothing of LeNet's). */
export const SPLIT_FROM = 1 << 17;

/**
 * `s(g, v, out, c, v0, v1)`: out = v + (c · g) on the vectors [v0, v1) of 4 floats (f32x4 mul, then
 * add: each rounded); c is passed as its float32 bits (an i32, as the thread pool passes arguments).
 */
export function sgdStepWasm(): number[] {
  const [G, V, OUT, C, V0, V1] = [0, 1, 2, 3, 4, 5];
  const [P, E, CV] = [6, 7, 8];
  const body = [
    ...locals([2, I32], [1, V128]),
    ...get(C), F32_REINTERPRET_I32, 0xfd, 0x13, ...set(CV), // f32x4.splat(c)
    ...BLOCK, ...get(V0), ...get(V1), 0x4e, ...brIf(0), // if (v0 >= v1) return
    ...get(V0), ...i32(4), SHL, ...set(P), ...get(V1), ...i32(4), SHL, ...set(E), // bytes
    ...LOOP,
    ...get(OUT), ...get(P), ADD,
    ...get(CV), ...get(G), ...get(P), ADD, ...load(0), ...F32X4_MUL, // c · g
    ...get(V), ...get(P), ADD, ...load(0), ...F32X4_ADD, // + v
    ...store(0),
    ...get(P), ...i32(16), ADD, ...tee(P), ...get(E), 0x48, ...BR_IF_0, END, // while (p < e)
    END,
    END,
  ];
  return moduleWithImportedMemory(voidType(6), "s", body);
}

/** value, gradient (same shape, float32) and attrs.c to value + c · gradient. */
function sgdStepKernel(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: unknown }): tf.TensorInfo {
  const { value, gradient } = args.inputs as { value: tf.TensorInfo; gradient: tf.TensorInfo };
  const c = Math.fround((args.attrs as { c: number }).c);
  const backend = args.backend as WasmBackendLike;
  const size = sizeFromShape(value.shape);
  const out = backend.makeOutput(value.shape, "float32");
  const [pg, pv, po] = [backend.getMemoryOffset(gradient.dataId), backend.getMemoryOffset(value.dataId), backend.getMemoryOffset(out.dataId)];
  const simd = wasmKernel(backend, "sgd-step", sgdStepWasm, "s");
  const vectors = simd === undefined ? 0 : Math.floor(size / 4);
  if (simd !== undefined) {
    const cBits = new Int32Array(Float32Array.of(c).buffer)[0];
    const threads = splitState.enabled && size >= SPLIT_FROM ? activeThreads() : 1;
    // whole rows where a row is whole vectors (the product's split is by rows)
    const columns = value.shape[value.shape.length - 1] ?? 1;
    const grain = columns % 4 === 0 && value.shape.length > 1 ? columns / 4 : 1;
    if (threads <= 1) simd.call(pg, pv, po, cBits, 0, vectors);
    else runSplit(backend.wasm?.asm?.memory as WebAssembly.Memory, simd, splitRanges(vectors, threads, grain), (v0, v1) => [pg, pv, po, cBits, v0, v1]);
  }
  const heap = backend.wasm!.HEAPU8!.buffer; // views after the allocation, which may have grown the memory
  const g = new Float32Array(heap, pg, size);
  const v = new Float32Array(heap, pv, size);
  const o = new Float32Array(heap, po, size);
  for (let i = 4 * vectors; i < size; i++) o[i] = Math.fround(c * g[i]) + v[i];
  return out;
}

interface SgdInternals {
  c: tf.Scalar;
  applyGradients(variableGradients: tf.NamedTensorMap | { name: string; tensor: tf.Tensor }[]): void;
  incrementIterations(): void;
}
type Apply = SgdInternals["applyGradients"] & { [MARK]?: SgdInternals["applyGradients"] };

/** Makes tf.train.sgd's step one wasm kernel a variable (see above). Idempotent. */
export function useOneKernelSgd(): void {
  if (getKernel(KERNEL, "wasm") === undefined && tf.findBackend("wasm") !== null) {
    tf.registerKernel({ kernelName: KERNEL, backendName: "wasm", kernelFunc: sgdStepKernel as unknown as tf.KernelFunc });
  }
  const proto = tf.SGDOptimizer.prototype as unknown as SgdInternals;
  if ((proto.applyGradients as Apply)[MARK]) return;
  const own = proto.applyGradients;
  const apply: Apply = function (this: SgdInternals, variableGradients) {
    if (getBackend() !== "wasm" || getKernel(KERNEL, "wasm") === undefined || this.c.dtype !== "float32") {
      return own.call(this, variableGradients);
    }
    const c = this.c.dataSync()[0]; // −lr as tfjs holds it (float32); a read of wasm memory, no wait
    const named = Array.isArray(variableGradients) ? variableGradients : Object.keys(variableGradients).map((name) => ({ name, tensor: variableGradients[name] }));
    const variables = tfEngine().registeredVariables;
    for (const { name, tensor: gradient } of named) {
      if (gradient == null) continue;
      const value = variables[name];
      tidy(() => {
        const ours = value.dtype === "float32" && gradient.dtype === "float32" && arraysEqual(value.shape, gradient.shape);
        const newValue = ours
          ? (tfEngine().runKernel(KERNEL, { value, gradient }, { c } as unknown as tf.NamedAttrMap) as tf.Tensor)
          : tf.add(tf.mul(this.c, gradient), value);
        value.assign(newValue);
      });
    }
    this.incrementIterations();
  };
  apply[MARK] = own;
  proto.applyGradients = apply;
}

/** Puts tfjs's own SGD step back; returns whether it was replaced. */
export function restoreSgd(): boolean {
  const proto = tf.SGDOptimizer.prototype as unknown as SgdInternals;
  const own = (proto.applyGradients as Apply)[MARK];
  if (own === undefined) return false;
  proto.applyGradients = own;
  return true;
}
