import * as tf from "@tensorflow/tfjs";
import { arraysEqual, sizeFromShape, tfEngine } from "./tf-direct";
import { replaceEngineMethod, restoreEngineMethod } from "./engine-methods";

/**
 * Replaces tfjs-core's `Engine.gradients` (what `tf.grad`, `tf.variableGrads` and every optimizer's
 * `minimize` run once a training step) by a port of it, tfjs-core 4.22's engine.ts and tape.ts, that
 * does the same work with less bookkeeping:
 *
 * - The tape is filtered (`getFilteredNodesXToY`: the nodes on a path from the variables to the loss,
 *   each with its inputs pruned to those that come from a variable) with Sets of tensor and node ids
 *   instead of objects keyed by ids (numeric keys far apart: dictionary elements in V8), and the
 *   accumulated gradients are a Map instead of such an object. The same nodes in the same order, the
 *   same pruned inputs.
 * - The backward pass visits the nodes last to first and each input in the node's key order, runs
 *   each input's gradient in its own `tidy` and adds a gradient met twice with the Add kernel, old + new,
 *   as tfjs does: the same kernels in the same order, so the same floats bit for bit.
 * - One change of work: tfjs makes a tensor of zeros (a zero-filled JavaScript array written into the
 *   backend) for every output of a node that does not lead to the loss, before calling its gradient.
 *   d2l's fused loss and softmax kernels (fused-softmax-ce.ts, fused-cross-entropy.ts, fused-softmax.ts)
 *   output what their gradient saves beside the value (softmax(o), picked probabilities, e and Σe),
 *   which leads nowhere: a zeros tensor each step of 256×10 floats or more that their gradients never
 *   read (they read dys[0] alone). For those kernels, listed in {@link IGNORES_OTHER_DYS}, this passes
 *   the first output's dy in place of such zeros; any other kernel gets tfjs's zeros.
 *
 * Everything else is tfjs's: the forward function runs in `tidy('forward')` inside
 * `startTape`/`endTape`, the seed dy is a tensor of ones made from values (`ones` in tfjs's engine),
 * the same errors (no connection to x, a gradient of the wrong dtype or shape, a missing gradient
 * function), and with no tape left open (`gradientDepth` 0) every node's saved tensors are disposed and
 * the tape dropped. An interrupt (interrupt.ts) finds the engine in the states tfjs's own would leave.
 *
 * On every backend, from `useSpeedups(true)`; `useSpeedups(false)` (or {@link restoreGradients})
 * puts tfjs's own `Engine.gradients` back.
 */

/** d2l's multi-output kernels whose gradient function reads only the first output's dy. */
export const IGNORES_OTHER_DYS = new Set(["D2lSoftmaxCrossEntropy", "D2lCrossEntropy", "D2lSoftmax"]);

/** A node of tfjs-core's gradient tape (tape.ts's TapeNode). */
interface TapeNode {
  id: number;
  kernelName: string;
  inputs: Record<string, tf.Tensor>;
  outputs: tf.Tensor[];
  gradient?: (dys: (tf.Tensor | null)[]) => Record<string, () => tf.Tensor>;
  saved?: tf.Tensor[];
}

type Gradients = (
  this: EngineInternals,
  f: () => tf.Tensor,
  xs: tf.Tensor[],
  dy?: tf.Tensor,
  allowNoGradients?: boolean,
) => { value: tf.Tensor; grads: tf.Tensor[] };

/** tfjs-core's Engine, as far as this module uses it. */
interface EngineInternals {
  state: { activeTape: TapeNode[] | null; gradientDepth: number };
  scopedRun<T>(start: () => void, end: () => void, f: () => T): T;
  startTape(): void;
  endTape(): void;
  tidy<T>(nameOrFn: string | (() => T), fn?: () => T): T;
  makeTensor(values: Float32Array, shape: number[], dtype: "float32"): tf.Tensor;
  runKernel(kernelName: string, inputs: Record<string, tf.Tensor>): tf.Tensor;
  gradients: Gradients;
}

/**
 * The nodes of `tape` on a path from `xs` to `y`, in tape order, each a copy with its inputs pruned to
 * those that are a function of `xs` (tfjs-core's getFilteredNodesXToY, with Sets).
 */
export function filterTape(tape: TapeNode[], xs: tf.Tensor[], y: tf.Tensor): TapeNode[] {
  // Forward: the tensors and nodes that are a function of some x.
  const tensorsFromX = new Set<number>();
  const nodesFromX = new Set<number>();
  for (const x of xs) tensorsFromX.add(x.id);
  for (const node of tape) {
    const inputs = node.inputs;
    for (const inputName in inputs) {
      if (tensorsFromX.has(inputs[inputName].id)) {
        for (const output of node.outputs) tensorsFromX.add(output.id);
        nodesFromX.add(node.id);
        break;
      }
    }
  }
  // Backward: the tensors and nodes that lead to y.
  const tensorsLeadToY = new Set<number>([y.id]);
  const nodesToY = new Set<number>();
  for (let i = tape.length - 1; i >= 0; i--) {
    const node = tape[i];
    const outputs = node.outputs;
    for (let j = 0; j < outputs.length; j++) {
      if (tensorsLeadToY.has(outputs[j].id)) {
        for (const inputName in node.inputs) {
          tensorsLeadToY.add(node.inputs[inputName].id);
          nodesToY.add(node.id);
        }
        break;
      }
    }
  }
  const filtered: TapeNode[] = [];
  for (const node of tape) {
    if (!nodesFromX.has(node.id) || !nodesToY.has(node.id)) continue;
    const pruned: Record<string, tf.Tensor> = {};
    for (const inputName in node.inputs) {
      const input = node.inputs[inputName];
      if (tensorsFromX.has(input.id)) pruned[inputName] = input;
    }
    filtered.push({ ...node, inputs: pruned, outputs: node.outputs });
  }
  return filtered;
}

/**
 * Walks the filtered tape last to first, accumulating each tensor's gradient in `accumulated` by
 * tensor id (tfjs-core's backpropagateGradients; see the file's header for the one change).
 */
function backpropagate(engine: EngineInternals, accumulated: Map<number, tf.Tensor>, tape: TapeNode[]): void {
  for (let i = tape.length - 1; i >= 0; i--) {
    const node = tape[i];
    const dys: (tf.Tensor | null)[] = node.outputs.map((o) => accumulated.get(o.id) ?? null);
    if (node.gradient == null) {
      throw new Error(`Cannot compute gradient: gradient function not found for ${node.kernelName}.`);
    }
    if (dys.length > 1 && dys[0] !== null && IGNORES_OTHER_DYS.has(node.kernelName)) {
      for (let j = 1; j < dys.length; j++) if (dys[j] === null) dys[j] = dys[0]; // never read (see above)
    }
    const inputGradients = node.gradient(dys);
    for (const inputName in node.inputs) {
      if (!(inputName in inputGradients)) {
        throw new Error(`Cannot backprop through input ${inputName}. Available gradients found: ${Object.keys(inputGradients)}.`);
      }
      const dx = engine.tidy(() => inputGradients[inputName]());
      if (dx.dtype !== "float32") {
        throw new Error(
          `Error in gradient for op ${node.kernelName}. The gradient of input ${inputName} must have 'float32' dtype, but has '${dx.dtype}'`,
        );
      }
      const x = node.inputs[inputName];
      if (!arraysEqual(dx.shape, x.shape)) {
        throw new Error(
          `Error in gradient for op ${node.kernelName}. The gradient of input '${inputName}' has shape '${dx.shape}', which does not match the shape of the input '${x.shape}'`,
        );
      }
      const current = accumulated.get(x.id);
      if (current == null) {
        accumulated.set(x.id, dx);
      } else {
        accumulated.set(x.id, engine.runKernel("Add", { a: current, b: dx }));
        current.dispose();
      }
    }
  }
}

/** The replacement of Engine.gradients (see above). */
const leanGradients: Gradients = function (this: EngineInternals, f, xs, dy, allowNoGradients = false) {
  tf.util.assert(xs.length > 0, () => "gradients() received an empty list of xs.");
  if (dy != null && dy.dtype !== "float32") throw new Error(`dy must have 'float32' dtype, but has '${dy.dtype}'`);
  const y = this.scopedRun(
    () => this.startTape(),
    () => this.endTape(),
    () => this.tidy("forward", f),
  );
  tf.util.assert(y instanceof tf.Tensor, () => "The result y returned by f() must be a tensor.");
  const filteredTape = filterTape(this.state.activeTape!, xs, y);
  if (!allowNoGradients && filteredTape.length === 0 && xs.length > 0) {
    throw new Error(
      "Cannot compute gradient of y=f(x) with respect to x. Make sure that the f you passed encloses all operations that lead from x to y.",
    );
  }
  return this.tidy("backward", () => {
    const accumulated = new Map<number, tf.Tensor>();
    accumulated.set(y.id, dy ?? this.makeTensor(new Float32Array(sizeFromShape(y.shape)).fill(1), y.shape, "float32"));
    backpropagate(this, accumulated, filteredTape);
    const grads = xs.map((x) => accumulated.get(x.id)!);
    if (this.state.gradientDepth === 0) {
      // Not a higher-order gradient: the tape's saved tensors go with it.
      for (const node of this.state.activeTape!) for (const tensor of node.saved ?? []) tensor.dispose();
      this.state.activeTape = null;
    }
    return { value: y, grads };
  });
};

const MARK = Symbol.for("d2l.useLeanGradients");

/** Makes the engine compute gradients with the port above. Idempotent. */
export function useLeanGradients(): void {
  const engine = tfEngine() as unknown as EngineInternals;
  replaceEngineMethod<Gradients>("gradients", MARK, () => (...args: Parameters<Gradients>) => leanGradients.apply(engine, args));
}

/** Puts tfjs's own Engine.gradients back; returns whether anything changed. */
export function restoreGradients(): boolean {
  return restoreEngineMethod("gradients", MARK);
}
