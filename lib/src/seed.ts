import seedrandom from "seedrandom";
import { ArgumentError } from "./validate";

/**
 * Seeding, the counterpart of `torch.manual_seed`.
 *
 * Every random number that the chapters' code draws without an explicit seed comes, in the end,
 * from `Math.random`:
 * - tfjs-core's random ops (`tf.randomNormal`, `randomUniform`, `truncatedNormal`, `randomGamma`,
 *   `randomStandardNormal`, `randomUniformInt`, `multinomial`, and through them `tf.dropout`)
 *   build a seedrandom `alea` generator seeded with `Math.random()` when no seed is given
 *   (tfjs-core/src/ops/rand_util.ts: `const seedValue = seed ? seed : Math.random()`);
 * - the layers' initializers (`tf.initializers.*`, the default `glorotUniform` of a dense layer)
 *   and dropout layers call those ops with their `seed` argument, undefined unless set;
 * - `tf.util.shuffle`, `tf.util.createShuffledIndices` (d2l's `dataIter` and `loadArray`) and
 *   `model.fit`'s shuffle call `Math.random` directly;
 * - d2l's own image shuffles (`ImageDataset.batches`, hence `loadDataFashionMnist`'s training
 *   order) call `Math.random` too.
 * tfjs has no global seed of its own, so this module covers all of them in one place: while a
 * seed is set, `Math.random` is replaced by seedrandom's `alea` generator (the one tfjs itself
 * uses) started from that seed, so the whole sequence of draws follows from the seed. This
 * changes `Math.random` for everything else in the process too (it becomes a repeatable
 * sequence); `setSeed(undefined)` puts the original `Math.random` back, and without a seed
 * nothing is replaced at all.
 */

/** The process's own `Math.random`, restored by `setSeed(undefined)`. */
const unseededRandom = Math.random;

let currentSeed: number | undefined;

/** The largest seed accepted: any integer a JavaScript number holds exactly. */
const MAX_SEED = Number.MAX_SAFE_INTEGER;

/**
 * Makes every random number that tfjs and d2l draw without an explicit seed follow from `seed`
 * (tfjs's random ops, the layers' initial weights, dropout, `dataIter`, `loadArray` and
 * Fashion-MNIST's training order): the same seed on the same backend gives the same losses and
 * accuracies, bit for bit. Calling it again restarts the sequence. `setSeed(undefined)` goes back
 * to fresh random numbers on every run. `D2L_SEED=n` in the environment does the same through
 * {@link initBackend}.
 * @param seed an integer in 0..2^53-1, or undefined for no seed
 * @see torch.manual_seed, PyTorch's equivalent
 */
export function setSeed(seed: number | undefined): void {
  if (seed === undefined) {
    Math.random = unseededRandom;
    currentSeed = undefined;
    return;
  }
  checkSeed("setSeed", "seed", seed);
  Math.random = seedrandom.alea(`d2l-seed:${seed}`);
  currentSeed = seed;
}

/** The seed last given to {@link setSeed} (or by `D2L_SEED`), or undefined when none is set. */
export function getSeed(): number | undefined {
  return currentSeed;
}

/**
 * The seed named by the environment variable `D2L_SEED`: undefined when it is unset or empty, an
 * error naming D2L_SEED when it is not an integer in 0..2^53-1.
 */
export function seedFromEnv(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const text = env.D2L_SEED?.trim();
  if (!text) return undefined;
  const seed = /^\d+$/.test(text) ? Number(text) : NaN;
  checkSeed("d2l", "D2L_SEED", seed, text);
  return seed;
}

function checkSeed(fn: string, name: string, seed: unknown, shown: unknown = seed): asserts seed is number {
  if (typeof seed !== "number" || !Number.isInteger(seed) || seed < 0 || seed > MAX_SEED) {
    throw new ArgumentError(fn, name, `an integer in 0..${MAX_SEED}`, shown);
  }
}
