import * as tf from "@tensorflow/tfjs";

/**
 * Replaces `tf.Sequential`'s `call` for plain stacks of layers. tfjs hands a Sequential's input to
 * the graph executor of the functional model inside it (a FeedDict, a cached topological order, maps
 * of tensors by id), some 20-50 µs a call here: more than section 4.10's linear model costs to compute,
 * on each of its 9,500 training steps. For a stack of the layers listed below, which neither make nor
 * use masks, that executor computes exactly layer_n(...layer_1(x)); this applies the layers in turn
 * instead, with the same `training` flag, so the ops, the values and the gradients are the same.
 * Any other Sequential (another kind of layer, several inputs, a mask) takes tfjs's own path.
 * On every backend; `useSpeedups(false)` restores tfjs's `call`.
 */

/** Layers whose `call` depends on nothing but its input and the `training` flag. */
const PLAIN_LAYERS = new Set(["Dense", "Dropout", "Flatten", "Activation", "ReLU", "LeakyReLU", "ELU", "Softmax", "Reshape"]);

type Call = (this: tf.Sequential, inputs: tf.Tensor | tf.Tensor[], kwargs: Record<string, unknown>) => tf.Tensor | tf.Tensor[];
interface SequentialInternals {
  call: Call;
  model?: unknown;
  build(): void;
}

let original: Call | undefined;

/** Applies a plain Sequential's layers one after another (see above). Idempotent. */
export function useDirectSequential(): void {
  if (original) return;
  const proto = tf.Sequential.prototype as unknown as SequentialInternals;
  const own = proto.call;
  original = own;
  proto.call = function (this: tf.Sequential, inputs, kwargs) {
    const input = Array.isArray(inputs) ? (inputs.length === 1 ? inputs[0] : undefined) : inputs;
    if (input === undefined || kwargs?.mask != null || !this.layers.every((l) => PLAIN_LAYERS.has(l.getClassName()))) {
      return own.call(this, inputs, kwargs);
    }
    const self = this as unknown as SequentialInternals;
    if (self.model == null) self.build();
    // in a tidy, as tfjs's executor frees the intermediate outputs: applied outside one, a model
    // leaves only its output (under a gradient tape the engine keeps what the backward pass needs)
    return tf.tidy(() => this.layers.reduce((x, layer) => layer.apply(x, kwargs) as tf.Tensor, input));
  };
}

/** Puts tfjs's own `Sequential.call` back. */
export function restoreSequentialCall(): void {
  if (!original) return;
  (tf.Sequential.prototype as unknown as SequentialInternals).call = original;
  original = undefined;
}
