import * as tf from "@tensorflow/tfjs";
import { ADD, BLOCK, BR_IF_0, END, F32, F32X4_ADD, F32X4_MUL, I32, LOOP, SHL, V128, brIf, get, i32, leb, load, locals, moduleWithImportedMemory, set, store, tee } from "./wasm-asm";
import { type WasmBackendLike, wasmFunction } from "./wasm-kernels";

/**
 * Replaces `tf.train.sgd`'s step (tfjs-core's `SGDOptimizer.applyGradients`): for each variable, in a
 * `tf.tidy`, `add(mul(c, gradient), value)` with c = −lr, then `value.assign`: two kernels and two
 * passes over the parameter (the MLP's W1 is 784×256), each through tfjs's engine. On wasm, for
 * float32 variables, one kernel of our own ({@link sgdStepWasm}) computes the same
 * value + (c · gradient), rounded to float32 after the product and after the sum as tfjs's two ops
 * round (same bits), in one pass. Elsewhere, and for any other dtype, tfjs's own step runs.
 * `useSpeedups(false)` restores tfjs's method.
 */

const KERNEL = "D2lSgdStep";
const MARK = Symbol.for("d2l.useOneKernelSgd");

/** `s(g, v, out, c, vectors)`: out = v + (c · g) on `vectors` vectors of 4 floats (f32x4 mul, then add: each rounded). */
export function sgdStepWasm(): number[] {
  const [G, V, OUT, C, N] = [0, 1, 2, 3, 4];
  const [P, E, CV] = [5, 6, 7];
  const type = [0x60, ...leb(5), I32, I32, I32, F32, I32, 0x00];
  const body = [
    ...locals([2, I32], [1, V128]),
    ...get(C), 0xfd, 0x13, ...set(CV), // f32x4.splat(c)
    ...BLOCK, ...get(N), 0x45, ...brIf(0), // if (n == 0) return
    ...i32(0), ...set(P), ...get(N), ...i32(4), SHL, ...set(E), // bytes
    ...LOOP,
    ...get(OUT), ...get(P), ADD,
    ...get(CV), ...get(G), ...get(P), ADD, ...load(0), ...F32X4_MUL, // c · g
    ...get(V), ...get(P), ADD, ...load(0), ...F32X4_ADD, // + v
    ...store(0),
    ...get(P), ...i32(16), ADD, ...tee(P), ...get(E), 0x48, ...BR_IF_0, END, // while (p < e)
    END,
    END,
  ];
  return moduleWithImportedMemory(type, "s", body);
}

type Step = (g: number, v: number, out: number, c: number, vectors: number) => void;

/** value, gradient (same shape, float32) and attrs.c to value + c · gradient. */
function sgdStepKernel(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: unknown }): tf.TensorInfo {
  const { value, gradient } = args.inputs as { value: tf.TensorInfo; gradient: tf.TensorInfo };
  const c = Math.fround((args.attrs as { c: number }).c);
  const backend = args.backend as WasmBackendLike;
  const size = tf.util.sizeFromShape(value.shape);
  const out = backend.makeOutput(value.shape, "float32");
  const [pg, pv, po] = [backend.getMemoryOffset(gradient.dataId), backend.getMemoryOffset(value.dataId), backend.getMemoryOffset(out.dataId)];
  const simd = wasmFunction<Step>(backend, "sgd-step", sgdStepWasm, "s");
  const vectors = simd === undefined ? 0 : Math.floor(size / 4);
  if (simd !== undefined) simd(pg, pv, po, c, vectors);
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
  if (tf.getKernel(KERNEL, "wasm") === undefined && tf.findBackend("wasm") !== null) {
    tf.registerKernel({ kernelName: KERNEL, backendName: "wasm", kernelFunc: sgdStepKernel as unknown as tf.KernelFunc });
  }
  const proto = tf.SGDOptimizer.prototype as unknown as SgdInternals;
  if ((proto.applyGradients as Apply)[MARK]) return;
  const own = proto.applyGradients;
  const apply: Apply = function (this: SgdInternals, variableGradients) {
    if (tf.getBackend() !== "wasm" || tf.getKernel(KERNEL, "wasm") === undefined || this.c.dtype !== "float32") {
      return own.call(this, variableGradients);
    }
    const c = this.c.dataSync()[0]; // −lr as tfjs holds it (float32); a read of wasm memory, no wait
    const named = Array.isArray(variableGradients) ? variableGradients : Object.keys(variableGradients).map((name) => ({ name, tensor: variableGradients[name] }));
    const variables = tf.engine().registeredVariables;
    for (const { name, tensor: gradient } of named) {
      if (gradient == null) continue;
      const value = variables[name];
      tf.tidy(() => {
        const ours = value.dtype === "float32" && gradient.dtype === "float32" && tf.util.arraysEqual(value.shape, gradient.shape);
        const newValue = ours
          ? (tf.engine().runKernel(KERNEL, { value, gradient }, { c } as unknown as tf.NamedAttrMap) as tf.Tensor)
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
