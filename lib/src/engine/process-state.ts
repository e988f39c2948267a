/**
 * One object per process under the global symbol `Symbol.for(key)`, made by `make` for the first
 * module copy that asks. tsx and tslab can load a lib module twice (ESM and CommonJS, lib/src and
 * lib/dist): a switch, a pool or a hook kept in a module variable would then exist twice, and the
 * copy that installed a kernel would not see what the other copy's switch says.
 */
export function processState<T extends object>(key: string, make: () => T): T {
  const global = globalThis as unknown as Record<symbol, T | undefined>;
  return (global[Symbol.for(key)] ??= make());
}
