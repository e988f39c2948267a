import * as tf from "@tensorflow/tfjs";

/** Anything that holds tensors and can free them: a tensor, a variable, a layers model, an optimizer. */
export interface Disposable {
  dispose(): void;
}

/** What each key holds, and when it was registered (a running count). */
const owned = new Map<string, { things: Disposable[]; registration: number }>();
let registrations = 0;
/** How many tensors each call freed, by the registration it freed: what {@link LeakCheck} subtracts. */
const freedLog: { registration: number; tensors: number }[] = [];

/**
 * Registers what a notebook cell created under `key`, and frees what the previous run of
 * that cell registered. tfjs never garbage-collects tensors, and re-running a cell that
 * makes tensors would otherwise leave the old ones behind, unreachable:
 *
 * ```ts
 * const [features, labels] = d2l.syntheticData(trueW, 4.2, 1000);
 * d2l.disposeOnRerun("data", features, labels);
 * ```
 * Not in d2l: PyTorch frees tensors when nothing references them.
 */
export function disposeOnRerun(key: string, ...things: Disposable[]): void {
  const old = owned.get(key);
  if (old) {
    const before = tf.memory().numTensors;
    for (const thing of old.things) {
      if (things.includes(thing)) continue;
      try {
        thing.dispose();
      } catch {
        // Already disposed by hand (a layers model throws when disposed twice): it is gone either way.
      }
    }
    freedLog.push({ registration: old.registration, tensors: before - tf.memory().numTensors });
  }
  owned.set(key, { things, registration: registrations++ });
}

/**
 * A notebook's leak check that holds on any run, the first or a second Run All in the same
 * kernel: it counts the tensors allocated since it was made, plus those that
 * {@link disposeOnRerun} has since freed of objects registered before it (an earlier run's
 * parameters, still allocated when the count began). Make one in the first cell, and call
 * {@link LeakCheck.expect} in the last with what the notebook keeps on purpose:
 *
 * ```ts
 * const leakCheck = new d2l.LeakCheck();    // first cell
 * leakCheck.expect(2, "W and b");           // last cell: throws if any other tensor is left
 * ```
 * Not in d2l.
 */
export class LeakCheck {
  /** `tf.memory().numTensors` when the check began. */
  readonly atStart = tf.memory().numTensors;
  private readonly firstRegistration = registrations;
  private readonly firstFree = freedLog.length;

  /** The tensors this run has added: allocated now, less those at the start that an earlier run still held. */
  added(): number {
    const freedOfEarlierRuns = freedLog
      .slice(this.firstFree)
      .filter((f) => f.registration < this.firstRegistration)
      .reduce((sum, f) => sum + f.tensors, 0);
    return tf.memory().numTensors - this.atStart + freedOfEarlierRuns;
  }

  /**
   * Prints how many tensors this run added and throws unless it is exactly `kept` (what the
   * notebook keeps on purpose, named by `what`).
   */
  expect(kept: number, what = ""): void {
    const added = this.added();
    const expected = kept === 0 ? "none" : `${kept}${what ? `: ${what}` : ""}`;
    console.log(`tensors added by this run: ${added} (expected ${expected})`);
    if (added > kept) throw new Error(`this notebook leaked ${added - kept} tensor(s): ${added} added, ${kept} kept on purpose`);
    if (added < kept) throw new Error(`this notebook freed ${kept - added} tensor(s) it should keep: ${added} added, ${kept} expected`);
  }
}
