import * as tf from "@tensorflow/tfjs";
import { replaceEngineMethod, restoreEngineMethod } from "./engine-methods";

/**
 * Replaces tfjs-core's `Engine.clone`, which the engine calls for every tensor an op saves for its
 * gradient (`saveTensorsForBackwardMode`, and `tf.customGrad`'s `save`): 7-15 times a training step of
 * softmax regression or the MLP. tfjs runs the Identity kernel through `runKernel` (the registry
 * lookup, a scope, a kernel-depth bracket, the tensor's tracking) and then records a tape node for the
 * clone, so the clone could be differentiated; wasm-share.ts already makes that kernel share the
 * buffer rather than copy it. On the wasm backend with one gradient tape open, this makes the same
 * tensor (the input's buffer with one more reference, tracked as a new tensor in the active scope)
 * without the kernel call or the tape node: ~3 µs an op saved each.
 *
 * Why the tape node is not needed there: a saved tensor is only read by its op's gradient function,
 * and with one tape open (gradientDepth 1) the backward pass runs after the tape has ended
 * (`Engine.gradients` computes it outside `startTape`/`endTape`), so nothing records or
 * differentiates through it; `getFilteredNodesXToY` drops such a node anyway (its output leads
 * nowhere). Nested tapes (a gradient of a gradient) keep tfjs's own clone, whose tape node the outer
 * gradient needs. Values and gradients are unchanged (the same buffer either way).
 *
 * Interrupt safety (interrupt.ts): the reference and the tracking are taken inside a kernel-depth
 * bracket, as the Identity kernel takes them inside `runKernel`, so a cut between the two is
 * repaired the same way (the backend's incRef wrapper counts the kernel's reference, trackTensor
 * hands it to the tensor).
 *
 * On wasm, from `useSpeedups(true)`; `useSpeedups(false)` restores tfjs's clone.
 */

interface EngineInternals {
  backendName: string | null;
  backendInstance?: { incRef?(dataId: tf.DataId): void };
  state: { gradientDepth: number; kernelDepth: number };
  clone(x: tf.Tensor): tf.Tensor;
  makeTensorFromTensorInfo(info: tf.TensorInfo, backend?: unknown): tf.Tensor;
  [name: string]: unknown;
}

const MARK = Symbol.for("d2l.useLeanClone");

/** Makes the engine's clone of saved tensors skip the Identity kernel and its tape node (see above). Idempotent. */
export function useLeanClone(): void {
  replaceEngineMethod<EngineInternals["clone"]>("clone", MARK, (own) => function (this: EngineInternals, x: tf.Tensor): tf.Tensor {
    const backend = this.backendInstance;
    if (this.state.gradientDepth !== 1 || this.backendName !== "wasm" || x.dtype === "string" || backend?.incRef === undefined) {
      return own.call(this, x);
    }
    const state = this.state;
    state.kernelDepth++;
    try {
      backend.incRef(x.dataId);
      return this.makeTensorFromTensorInfo({ dataId: x.dataId, shape: x.shape, dtype: x.dtype }, backend);
    } finally {
      state.kernelDepth--;
    }
  });
}

/** Puts tfjs's own clone back; returns whether anything changed. */
export function restoreLeanClone(): boolean {
  return restoreEngineMethod("clone", MARK);
}
