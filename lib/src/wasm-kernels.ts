import * as tf from "@tensorflow/tfjs";

const BACKEND = "wasm";

/**
 * What a replaced kernel carries: the original config and the replacement's own state. It is
 * found through the kernel registry, under a `Symbol.for` key, because tsx and tslab can load
 * a lib module twice (ESM and CommonJS) and each copy must recognise the other's replacement.
 */
export interface Replacement<S> {
  original: tf.KernelConfig;
  state: S;
}

type MarkedKernelFunc<S> = tf.KernelFunc & { [mark: symbol]: Replacement<S> | undefined };

/** The replacement installed under `mark` for the wasm kernel `name`, or undefined. */
export function findWasmReplacement<S>(name: string, mark: symbol): Replacement<S> | undefined {
  return (tf.getKernel(name, BACKEND)?.kernelFunc as MarkedKernelFunc<S> | undefined)?.[mark];
}

/**
 * Replaces the wasm backend's kernel `name` with `wrap(original)`, keeping the original's
 * setupFunc and disposeFunc (its wasm bindings stay initialised). Returns false when the wasm
 * backend has no such kernel registered.
 */
export function replaceWasmKernel<S>(name: string, mark: symbol, state: S, wrap: (original: tf.KernelFunc) => tf.KernelFunc): boolean {
  const config = tf.getKernel(name, BACKEND);
  if (config === undefined) return false;
  const kernelFunc = wrap(config.kernelFunc) as MarkedKernelFunc<S>;
  kernelFunc[mark] = { original: config, state };
  tf.unregisterKernel(name, BACKEND);
  tf.registerKernel({ ...config, kernelFunc });
  return true;
}

/** Puts back the original of the kernel replaced under `mark`; returns whether there was one. */
export function restoreWasmKernel(name: string, mark: symbol): boolean {
  const replacement = findWasmReplacement(name, mark);
  if (replacement === undefined) return false;
  tf.unregisterKernel(name, BACKEND);
  tf.registerKernel(replacement.original);
  return true;
}
