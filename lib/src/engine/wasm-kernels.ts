import * as tf from "@tensorflow/tfjs";
import { importingSharedMemory } from "./shared-memory";
import { getKernel, sizeFromShape } from "./tf-direct";

const BACKEND = "wasm";

/** What d2l's wasm kernels use of the wasm backend (structural, so lib needs no wasm type import). */
export interface WasmBackendLike {
  disposeData(dataId: tf.DataId, force?: boolean): boolean;
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  getMemoryOffset(dataId: tf.DataId): number;
  /** The Emscripten module; `asm.memory` is the WebAssembly memory that holds every tensor, HEAPU8 a view of it. */
  wasm?: { HEAPU8?: Uint8Array; asm?: { memory?: unknown } };
}

/** A float32 view of a tensor's buffer in the wasm memory (made after any allocation, which may grow it). */
export function heapF32(backend: WasmBackendLike, info: tf.TensorInfo, size = sizeFromShape(info.shape)): Float32Array {
  return new Float32Array(backend.wasm!.HEAPU8!.buffer, backend.getMemoryOffset(info.dataId), size);
}

/** An int32 view of a tensor's buffer in the wasm memory (made after any allocation, which may grow it). */
export function heapI32(backend: WasmBackendLike, info: tf.TensorInfo, size = sizeFromShape(info.shape)): Int32Array {
  return new Int32Array(backend.wasm!.HEAPU8!.buffer, backend.getMemoryOffset(info.dataId), size);
}

/** The wasm backend's own unary kernel `name` (Exp, Log) applied to a buffer, outside the engine: its output is the caller's to free. */
export function applyWasmUnary(name: string, x: tf.TensorInfo, backend: WasmBackendLike): tf.TensorInfo {
  const kernel = getKernel(name, BACKEND);
  if (kernel === undefined) throw new Error(`the wasm backend has no ${name} kernel`);
  return kernel.kernelFunc({ inputs: { x }, backend: backend as unknown as tf.KernelBackend, attrs: {} }) as tf.TensorInfo;
}

/**
 * Registers a fused operation once: its wasm kernel, the wasm kernel of its gradient, and the
 * gradient (`gradient`, for `kernelName`), which calls the latter. The registry is shared by every
 * copy of a module, so a second call does nothing.
 */
export function registerFusedKernels(
  kernelName: string, kernelFunc: tf.KernelFunc, gradKernelName: string, gradKernelFunc: tf.KernelFunc, gradient: Omit<tf.GradConfig, "kernelName">,
): void {
  if (tf.getKernel(kernelName, BACKEND) !== undefined) return;
  tf.registerKernel({ kernelName, backendName: BACKEND, kernelFunc });
  tf.registerKernel({ kernelName: gradKernelName, backendName: BACKEND, kernelFunc: gradKernelFunc });
  tf.registerGradient({ kernelName, ...gradient });
}

/** Whether a matrix product's operand of this shape is a single matrix (its batch dimensions, if any, are all 1). */
export function singleBatch(shape: number[]): boolean {
  return shape.length >= 2 && sizeFromShape(shape.slice(0, -2)) === 1;
}

/** Modules instantiated so far, by backend memory and key; null where they could not be (no SIMD). */
const instances = new WeakMap<WebAssembly.Memory, Map<string, WasmKernel | null>>();

/** A kernel's compiled module (for worker threads: thread-pool.ts), its export name, and its instance on the backend's memory. */
export interface WasmKernel {
  module: WebAssembly.Module;
  name: string;
  call: (...args: number[]) => void;
}
/**
 * A cap on the modules kept per memory: a program of many shapes recompiles instead of growing
 * without bound. An MLP's training step uses about 20 (products per shape, elementwise ops per
 * operand layout), a notebook a few times that.
 */
const MAX_INSTANCES = 256;

/**
 * The function `name` of the module `make()` builds, instantiated on the backend's memory
 * (imported as "e"."m") once per memory and `key`; undefined where the memory is not a
 * WebAssembly.Memory or the module cannot run (no WebAssembly SIMD).
 */
export function wasmFunction<F>(backend: WasmBackendLike, key: string, make: () => readonly number[], name: string): F | undefined {
  return wasmKernel(backend, key, make, name)?.call as F | undefined;
}

/**
 * As {@link wasmFunction}, with the compiled module beside the function. Where the backend's memory
 * is shared (shared-memory.ts), the module is made to import a shared memory.
 */
export function wasmKernel(backend: WasmBackendLike, key: string, make: () => readonly number[], name: string): WasmKernel | undefined {
  const memory = backend.wasm?.asm?.memory;
  if (!(memory instanceof WebAssembly.Memory)) return undefined;
  let cache = instances.get(memory);
  if (cache === undefined) instances.set(memory, (cache = new Map()));
  let kernel = cache.get(key);
  if (kernel === undefined) {
    try {
      const bytes = memory.buffer instanceof SharedArrayBuffer ? importingSharedMemory(make()) : make();
      const module = new WebAssembly.Module(new Uint8Array(bytes));
      const call = new WebAssembly.Instance(module, { e: { m: memory } }).exports[name] as WasmKernel["call"];
      kernel = { module, name, call };
    } catch {
      kernel = null;
    }
    if (cache.size >= MAX_INSTANCES) cache.clear();
    cache.set(key, kernel);
  }
  return kernel ?? undefined;
}

/**
 * What a replaced kernel carries: the original config and the replacement's own state. It is
 * found through the kernel registry, under a `Symbol.for` key, because tsx and tslab can load
 * a lib module twice (ESM and CommonJS) and each copy must recognise the other's replacement.
 */
export interface Replacement<S> {
  original: tf.KernelConfig;
  state: S;
}

/**
 * One replacement wrapped around a kernel: its mark, what it wrapped, and how to wrap again.
 * Replacements stack (a fix of wrong results around a speed-up of the same kernel, say: both wrap
 * Sum), so each layer is found wherever it is in the stack, and taking one out wraps the layers
 * that were around it again around what it had wrapped.
 */
interface Layer extends Replacement<unknown> {
  mark: symbol;
  wrap: (original: tf.KernelFunc) => tf.KernelFunc;
}

const LAYER = Symbol.for("d2l.wasmKernelLayer");
type LayeredKernelFunc = tf.KernelFunc & { [LAYER]?: Layer };

/** The replacements stacked on a kernel's config, outermost first. */
function layersOf(config: tf.KernelConfig | undefined): Layer[] {
  const layers: Layer[] = [];
  for (let layer = (config?.kernelFunc as LayeredKernelFunc | undefined)?.[LAYER]; layer !== undefined; ) {
    layers.push(layer);
    layer = (layer.original.kernelFunc as LayeredKernelFunc)[LAYER];
  }
  return layers;
}

/** `inner` wrapped by one replacement: the same setupFunc and disposeFunc, the wrapped kernelFunc. */
function wrapConfig(inner: tf.KernelConfig, mark: symbol, state: unknown, wrap: Layer["wrap"]): tf.KernelConfig {
  const kernelFunc = wrap(inner.kernelFunc) as LayeredKernelFunc;
  kernelFunc[LAYER] = { mark, original: inner, state, wrap };
  return { ...inner, kernelFunc };
}

/** The replacement installed under `mark` for the wasm kernel `name` (at any depth of the stack), or undefined. */
export function findWasmReplacement<S>(name: string, mark: symbol): Replacement<S> | undefined {
  return layersOf(tf.getKernel(name, BACKEND)).find((layer) => layer.mark === mark) as Replacement<S> | undefined;
}

/**
 * Replaces the wasm backend's kernel `name` with `wrap(original)`, keeping the original's
 * setupFunc and disposeFunc (its wasm bindings stay initialised). Returns false when the wasm
 * backend has no such kernel registered.
 */
export function replaceWasmKernel<S>(name: string, mark: symbol, state: S, wrap: (original: tf.KernelFunc) => tf.KernelFunc): boolean {
  const config = tf.getKernel(name, BACKEND);
  if (config === undefined) return false;
  tf.unregisterKernel(name, BACKEND);
  tf.registerKernel(wrapConfig(config, mark, state, wrap));
  return true;
}

/**
 * Takes out the replacement installed under `mark`, keeping the ones stacked around it (wrapped
 * again around what it had wrapped); returns whether there was one.
 */
export function restoreWasmKernel(name: string, mark: symbol): boolean {
  const layers = layersOf(tf.getKernel(name, BACKEND));
  const at = layers.findIndex((layer) => layer.mark === mark);
  if (at < 0) return false;
  let config = layers[at].original;
  for (let outer = at - 1; outer >= 0; outer--) config = wrapConfig(config, layers[outer].mark, layers[outer].state, layers[outer].wrap);
  tf.unregisterKernel(name, BACKEND);
  tf.registerKernel(config);
  return true;
}

type MarkedGradFunc = tf.GradFunc & { [mark: symbol]: tf.GradConfig | undefined };
/** What a gradient function returns: a function computing each input's gradient, by input name. */
export type GradientMap = ReturnType<tf.GradFunc>;

/**
 * Replaces the gradient registered for `kernelName` (for every backend) with one that returns
 * `ours(dy, saved, attrs)` where that is defined and tfjs's own gradient elsewhere, keeping tfjs's
 * under `mark` for {@link restoreGradient}. Idempotent; false where tfjs has no such gradient.
 */
export function replaceGradient(
  kernelName: string, mark: symbol, ours: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: tf.NamedAttrMap) => GradientMap | undefined,
): boolean {
  const original = tf.getGradient(kernelName);
  if (original === undefined) return false;
  if ((original.gradFunc as MarkedGradFunc)[mark] !== undefined) return true;
  const gradFunc = ((dy, saved, attrs) => ours(dy, saved, attrs) ?? original.gradFunc(dy, saved, attrs)) as MarkedGradFunc;
  gradFunc[mark] = original;
  tf.registerGradient({ ...original, gradFunc });
  return true;
}

/** Puts back tfjs's gradient of `kernelName` replaced under `mark`; returns whether it was replaced. */
export function restoreGradient(kernelName: string, mark: symbol): boolean {
  const original = (tf.getGradient(kernelName)?.gradFunc as MarkedGradFunc | undefined)?.[mark];
  if (original === undefined) return false;
  tf.registerGradient(original);
  return true;
}
