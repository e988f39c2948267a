import * as tf from "@tensorflow/tfjs";
import { afterAll, describe, expect, it } from "vitest";
import { initBackend } from "../../lib/src/backend";
import { dataIter, loadArray, syntheticData } from "../../lib/src/data";
import { ImageDataset } from "../../lib/src/image-data";
import { getSeed, seedFromEnv, setSeed } from "../../lib/src/seed";
import { backward, sgd } from "../../lib/src/optim";
import { squaredLoss } from "../../lib/src/losses";
import { linreg } from "../../lib/src/models";

/** Everything random the chapters draw, as plain numbers: tfjs ops, a layer's weights, dropout, shuffles. */
function draws(): Record<string, number[]> {
  return tf.tidy(() => {
    const layer = tf.layers.dense({ units: 3, inputShape: [4] });
    const model = tf.sequential({ layers: [layer] });
    const X = tf.tensor2d(Array.from({ length: 20 }, (_, i) => i), [10, 2]);
    const y = tf.range(0, 10);
    const images = new ImageDataset(new Uint8Array(10 * 4), Uint8Array.from({ length: 10 }, (_, i) => i), 2, 2);
    const result = {
      randomNormal: Array.from(tf.randomNormal([5]).dataSync()),
      randomUniform: Array.from(tf.randomUniform([5]).dataSync()),
      truncatedNormal: Array.from(tf.truncatedNormal([5]).dataSync()),
      denseKernel: Array.from(model.getWeights()[0].dataSync()),
      dropout: Array.from(tf.dropout(tf.ones([8]), 0.5).dataSync()),
      dataIter: firstLabels(dataIter(10, X, y)),
      loadArray: firstLabels(loadArray([X, y], 10)),
      images: firstLabels(images.batches(10, { shuffle: true })),
      shuffle: (() => {
        const a = [0, 1, 2, 3, 4, 5, 6, 7];
        tf.util.shuffle(a);
        return a;
      })(),
    };
    model.dispose();
    return Object.fromEntries(Object.entries(result).map(([k, v]) => [k, Array.from(v)]));
  });
}

/** The labels of a batch source's first batch. */
function firstLabels(source: Iterable<tf.Tensor[]>): number[] {
  for (const [, y] of source) return Array.from(y.dataSync());
  throw new Error("no batch");
}

/** Ten steps of 3.2's linear regression from scratch; the loss after each. */
function shortTraining(): number[] {
  const [features, labels] = syntheticData(tf.tensor1d([2, -3.4]), 4.2, 200);
  const w = tf.variable(tf.randomNormal([2, 1], 0, 0.01));
  const b = tf.variable(tf.zeros([1]));
  const losses: number[] = [];
  for (const [X, y] of dataIter(20, features, labels)) {
    backward(() => squaredLoss(linreg(X, w, b), y).sum() as tf.Scalar);
    sgd([w, b], 0.03, 20);
    losses.push(tf.tidy(() => squaredLoss(linreg(features, w, b), labels).mean().dataSync()[0]));
  }
  tf.dispose([features, labels, w, b]);
  return losses;
}

describe("setSeed", () => {
  afterAll(() => setSeed(0)); // what test/setup.ts gives every test

  it("makes randomNormal, randomUniform, truncatedNormal, a layer's initial weights, dropout and every shuffle repeat exactly", () => {
    setSeed(7);
    const a = draws();
    setSeed(7);
    const b = draws();
    expect(b).toEqual(a);
    expect(getSeed()).toBe(7);
    // The shuffles really shuffle: a seeded order is not the input order.
    expect(a.dataIter).not.toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it("two different seeds give different numbers everywhere", () => {
    setSeed(1);
    const a = draws();
    setSeed(2);
    const b = draws();
    for (const key of Object.keys(a)) expect(b[key], key).not.toEqual(a[key]);
  });

  it("without a seed two calls differ, and Math.random is the process's own again", () => {
    const original = (() => {
      setSeed(undefined);
      return Math.random;
    })();
    setSeed(3);
    expect(Math.random).not.toBe(original);
    setSeed(undefined);
    expect(Math.random).toBe(original);
    expect(getSeed()).toBeUndefined();
    const a = draws();
    const b = draws();
    for (const key of ["randomNormal", "denseKernel", "dataIter", "loadArray", "images"]) expect(b[key], key).not.toEqual(a[key]);
  });

  it("repeats a short training run bit for bit, and another seed gives other losses", () => {
    setSeed(42);
    const first = shortTraining();
    setSeed(42);
    const second = shortTraining();
    setSeed(43);
    const other = shortTraining();
    expect(second).toEqual(first);
    expect(other).not.toEqual(first);
    expect(first[first.length - 1]).toBeLessThan(first[0]);
  });

  it("refuses a seed that is not an integer in 0..2^53-1, naming the argument", () => {
    for (const bad of [1.5, -1, NaN, Infinity, 2 ** 53, "3" as unknown as number]) {
      expect(() => setSeed(bad), String(bad)).toThrow(/^setSeed: seed must be an integer in 0\.\.9007199254740991; got /);
    }
    setSeed(0);
    setSeed(Number.MAX_SAFE_INTEGER);
  });
});

describe("D2L_SEED", () => {
  const saved = process.env.D2L_SEED;
  afterAll(async () => {
    if (saved === undefined) delete process.env.D2L_SEED;
    else process.env.D2L_SEED = saved;
    setSeed(0);
  });

  it("reads a non-negative integer; unset or empty is no seed; anything else is an error naming D2L_SEED", () => {
    expect(seedFromEnv({ D2L_SEED: "0" })).toBe(0);
    expect(seedFromEnv({ D2L_SEED: " 12 " })).toBe(12);
    expect(seedFromEnv({})).toBeUndefined();
    expect(seedFromEnv({ D2L_SEED: "" })).toBeUndefined();
    for (const bad of ["abc", "-1", "1.5", "1e3", "0x10", "99999999999999999999"]) {
      expect(() => seedFromEnv({ D2L_SEED: bad }), bad).toThrow(`d2l: D2L_SEED must be an integer in 0..9007199254740991; got "${bad}"`);
    }
  });

  it("is applied by every initBackend call, which says so in its one line", async () => {
    process.env.D2L_SEED = "5";
    const lines: string[] = [];
    const log = console.log;
    console.log = (...args: unknown[]) => lines.push(args.join(" "));
    let choice;
    try {
      // A backend other than the cached one, so that this call chooses (and prints) anew.
      choice = await initBackend("cpu");
    } finally {
      console.log = log;
    }
    expect(lines).toEqual(["d2l: backend cpu (requested), seed 5"]);
    expect(choice).toEqual({ name: "cpu", reason: "requested", seed: 5 });
    const a = draws();
    // A second call (a second Run All in the same kernel) seeds again: the same numbers.
    expect((await initBackend("cpu", { quiet: true })).seed).toBe(5);
    expect(draws()).toEqual(a);
    await initBackend(undefined, { quiet: true });
  });

  it("a bad D2L_SEED stops initBackend with an error naming it", async () => {
    process.env.D2L_SEED = "abc";
    await expect(initBackend(undefined, { quiet: true })).rejects.toThrow('d2l: D2L_SEED must be an integer in 0..9007199254740991; got "abc"');
  });

  it("without D2L_SEED initBackend leaves the random numbers as they are", async () => {
    delete process.env.D2L_SEED;
    setSeed(9);
    const expected = draws();
    setSeed(9);
    const choice = await initBackend(undefined, { quiet: true });
    expect(choice.seed).toBeUndefined();
    expect(getSeed()).toBe(9);
    expect(draws()).toEqual(expected);
  });
});
