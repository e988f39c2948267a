import * as tf from "@tensorflow/tfjs";
import { processState } from "./process-state";

/**
 * Replaces `tf.Sequential`'s `call` for plain stacks of layers. tfjs hands a Sequential's input to
 * the graph executor of the functional model inside it (a FeedDict, a cached topological order, maps
 * of tensors by id), some 20-50 µs a call here: more than section 4.10's linear model costs to compute,
 * on each of its 9,500 training steps. For a stack of the layers listed below, which neither make nor
 * use masks, that executor computes exactly layer_n(...layer_1(x)); this applies the layers in turn
 * instead, with the same `training` flag, so the ops, the values and the gradients are the same.
 * Any other Sequential (another kind of layer, several inputs, a mask) takes tfjs's own path.
 * Each built layer is applied as `Layer.apply` does for a tensor (the same checks, `call`, mask
 * metadata, a copy of an output that is its input) without apply's generic part (its name scope,
 * symbolic-input checks, iterator loops): ~8% of a concise softmax step's JavaScript went there.
 * On every backend; `useSpeedups(false)` restores tfjs's `call`; {@link useDirectLayerCalls}(false)
 * keeps the direct stack but calls `Layer.apply` for each layer.
 */

/** Layers whose `call` depends on nothing but its input and the `training` flag. */
const PLAIN_LAYERS = new Set(["Dense", "Dropout", "Flatten", "Activation", "ReLU", "LeakyReLU", "ELU", "Softmax", "Reshape"]);

/** The parts of a tfjs Layer that `Layer.apply` uses on a tensor. */
interface LayerInternals {
  built: boolean;
  supportsMasking: boolean;
  activityRegularizer?: unknown;
  assertNotDisposed(): void;
  assertInputCompatibility(inputs: tf.Tensor): void;
  call(inputs: tf.Tensor, kwargs: Record<string, unknown>): tf.Tensor | tf.Tensor[];
  setMaskMetadata(inputs: tf.Tensor, outputs: tf.Tensor | tf.Tensor[]): void;
}

/**
 * `layer.apply(x, kwargs)` for a tensor x, as tfjs-layers 4.22's `Layer.apply` runs it once the
 * layer is built (an unbuilt layer, or one with an activity regularizer, goes through `apply`).
 */
function applyLayer(layer: tf.layers.Layer, x: tf.Tensor, kwargs: Record<string, unknown>): tf.Tensor {
  const l = layer as unknown as LayerInternals;
  if (!layerCalls.direct || !l.built || l.activityRegularizer != null) return layer.apply(x, kwargs) as tf.Tensor;
  l.assertNotDisposed();
  l.assertInputCompatibility(x);
  const output = l.call(x, kwargs) as tf.Tensor;
  if (l.supportsMasking) l.setMaskMetadata(x, output);
  return output === x ? x.clone() : output; // apply copies an output that is its input
}

/** The switch, shared by every copy of this module (the installed `call` is marked, below, for the same reason). */
const layerCalls = processState("d2l.directLayerCalls", () => ({ direct: true }));

/** Applies each layer of a plain stack without `Layer.apply`'s generic part (`true`, the default) or through it (`false`). */
export function useDirectLayerCalls(enabled: boolean): void {
  layerCalls.direct = enabled;
}

type Call = (this: tf.Sequential, inputs: tf.Tensor | tf.Tensor[], kwargs: Record<string, unknown>) => tf.Tensor | tf.Tensor[];
interface SequentialInternals {
  call: Call;
  model?: unknown;
  build(): void;
}

/** Marks our `call`, holding tfjs's own. */
const MARK = Symbol.for("d2l.directSequential");
type MarkedCall = Call & { [MARK]?: Call };

/** Applies a plain Sequential's layers one after another (see above). Idempotent, from either copy of this module. */
export function useDirectSequential(): void {
  const proto = tf.Sequential.prototype as unknown as SequentialInternals;
  if ((proto.call as MarkedCall)[MARK]) return;
  const own = proto.call;
  const direct: MarkedCall = function (this: tf.Sequential, inputs, kwargs) {
    const input = Array.isArray(inputs) ? (inputs.length === 1 ? inputs[0] : undefined) : inputs;
    if (input === undefined || kwargs?.mask != null || !this.layers.every((l) => PLAIN_LAYERS.has(l.getClassName()))) {
      return own.call(this, inputs, kwargs);
    }
    const self = this as unknown as SequentialInternals;
    if (self.model == null) self.build();
    // in a tidy, as tfjs's executor frees the intermediate outputs: applied outside one, a model
    // leaves only its output (under a gradient tape the engine keeps what the backward pass needs)
    return tf.tidy(() => this.layers.reduce((x, layer) => applyLayer(layer, x, kwargs ?? {}), input));
  };
  direct[MARK] = own;
  proto.call = direct;
}

/** Puts tfjs's own `Sequential.call` back. */
export function restoreSequentialCall(): void {
  const proto = tf.Sequential.prototype as unknown as SequentialInternals;
  const own = (proto.call as MarkedCall)[MARK];
  if (own) proto.call = own;
}
