/** Anything that holds tensors and can free them: a tensor, a variable, a layers model, an optimizer. */
export interface Disposable {
  dispose(): void;
}

const owned = new Map<string, Disposable[]>();

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
  for (const old of owned.get(key) ?? []) {
    if (things.includes(old)) continue;
    try {
      old.dispose();
    } catch {
      // Already disposed by hand (a layers model throws when disposed twice): it is gone either way.
    }
  }
  owned.set(key, things);
}
