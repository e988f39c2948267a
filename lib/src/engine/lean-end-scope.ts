import * as tf from "@tensorflow/tfjs";
import { replaceEngineMethod, restoreEngineMethod } from "./engine-methods";

/**
 * Replaces tfjs-core's `Engine.endScope` when a scope returns one tensor or nothing: the end of every
 * op (tfjs's `op()` wrapper opens and closes a scope around each one) and of most `tf.tidy` calls.
 * tfjs collects the result's tensors with `getTensorsInContainer` (a list, a Set of visited values, a
 * walk of the container) and puts their ids in a second Set before freeing the scope's other tensors;
 * for one tensor that is the same as comparing ids. This does the same steps in tfjs 4.22's order
 * (dispose each tensor the scope tracked that is not kept and is not the result, pop the scope, make
 * the enclosing one active, track the result there if the closing scope made it and it is not kept):
 * the same tensors freed, kept and tracked. Any other result (an array, an object of tensors) takes
 * tfjs's own method. Per op ~0.2 µs (3-7% of a small op's CPU time: `tf.add` on 256×10, ~3.5 µs).
 *
 * On every backend, from `useSpeedups(true)`; `useSpeedups(false)` (or {@link restoreEndScope}) puts
 * tfjs's own method back.
 */

interface Scope {
  id: number;
  track: tf.Tensor[];
}

/** A tensor's fields tfjs's engine reads here. */
type Tracked = tf.Tensor & { kept?: boolean; scopeId?: number };

/** tfjs-core's Engine, as far as this module uses it. */
interface EngineInternals {
  state: { activeScope: Scope | null; scopeStack: Scope[] };
  endScope(result?: unknown): void;
  track(t: tf.Tensor): tf.Tensor;
}

const MARK = Symbol.for("d2l.useLeanEndScope");

/** Makes the engine close scopes that return one tensor or nothing the short way (see above). Idempotent. */
export function useLeanEndScope(): void {
  const Tensor = tf.Tensor; // read once: through a module namespace each use is a getter call
  replaceEngineMethod<EngineInternals["endScope"]>("endScope", MARK, (own) => function (this: EngineInternals, result?: unknown): void {
    if (result != null && !(result instanceof Tensor)) return own.call(this, result);
    const t = result as Tracked | null | undefined;
    const state = this.state;
    const track = state.activeScope!.track; // tfjs throws the same TypeError with no scope open
    for (let i = 0; i < track.length; i++) {
      const tensor = track[i] as Tracked;
      if (!tensor.kept && (t == null || tensor.id !== t.id)) tensor.dispose();
    }
    const oldScope = state.scopeStack.pop()!;
    const stack = state.scopeStack;
    state.activeScope = stack.length === 0 ? null : stack[stack.length - 1];
    if (t != null && !t.kept && t.scopeId === oldScope.id) this.track(t);
  });
}

/** Puts tfjs's own endScope back; returns whether anything changed. */
export function restoreEndScope(): boolean {
  return restoreEngineMethod("endScope", MARK);
}
