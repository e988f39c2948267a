import * as tf from "@tensorflow/tfjs";

/**
 * Argument checks run at the door of each d2l helper, so a bad input fails with a message
 * that names the function, the argument and what it got, not deep inside tfjs.
 */

/** The error thrown for a bad argument: `fn: name must be ...; got ...`. */
export class ArgumentError extends Error {
  constructor(fn: string, name: string, expected: string, got: unknown) {
    super(`${fn}: ${name} must be ${expected}; got ${describe(got)}`);
    this.name = "ArgumentError";
  }
}

/** A short description of a value for error messages: its shape for tensors, its value otherwise. */
export function describe(value: unknown): string {
  if (value instanceof tf.Tensor) return `a ${value.dtype} tensor of shape [${value.shape.join(", ")}]`;
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  if (typeof value === "string") return JSON.stringify(value);
  return String(value);
}

/** Checks that `value` is an integer >= 1. */
export function checkPositiveInt(fn: string, name: string, value: unknown): asserts value is number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
    throw new ArgumentError(fn, name, "a positive integer", value);
  }
}

/** Checks that `value` is a finite number. */
export function checkFinite(fn: string, name: string, value: unknown): asserts value is number {
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new ArgumentError(fn, name, "a finite number", value);
  }
}

/** Checks that `value` is a number from `lo` to `hi`, both included. */
export function checkInRange(fn: string, name: string, value: unknown, lo: number, hi: number): asserts value is number {
  if (typeof value !== "number" || !(value >= lo && value <= hi)) {
    throw new ArgumentError(fn, name, `a number in [${lo}, ${hi}]`, value);
  }
}

/** Checks that `value` is a finite number >= 0. */
export function checkNonNegative(fn: string, name: string, value: unknown): asserts value is number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
    throw new ArgumentError(fn, name, "a finite number >= 0", value);
  }
}

/** Checks that `value` is a tensor of the given rank. */
export function checkTensor(fn: string, name: string, value: unknown, rank?: number): asserts value is tf.Tensor {
  if (!(value instanceof tf.Tensor) || (rank !== undefined && value.rank !== rank)) {
    throw new ArgumentError(fn, name, rank === undefined ? "a tensor" : `a ${rank}-D tensor`, value);
  }
}

/**
 * Checks that `a` and `b` are tensors of at least one dimension with the same number of rows
 * (examples along axis 0), as features and their labels must be.
 */
export function checkSameLength(fn: string, aName: string, a: unknown, bName: string, b: unknown): void {
  for (const [name, t] of [[aName, a], [bName, b]] as const) {
    checkTensor(fn, name, t);
    if (t.rank < 1) throw new ArgumentError(fn, name, "a tensor with one row per example (rank >= 1)", t);
  }
  const rows = (a as tf.Tensor).shape[0];
  if ((b as tf.Tensor).shape[0] !== rows) {
    throw new ArgumentError(fn, bName, `a tensor with ${rows} rows, as many as ${aName}`, b);
  }
}
