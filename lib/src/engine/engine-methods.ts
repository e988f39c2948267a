import { tfEngine } from "./tf-direct";

/**
 * How lean-clone.ts, lean-end-scope.ts and lean-gradients.ts replace a method of tfjs-core's Engine:
 * ours goes on the engine instance, marked, and tfjs's own stays on the prototype, so taking ours
 * out is deleting the instance's property. The mark is a `Symbol.for` key: tsx and tslab can load a
 * lib module twice, and each copy must recognise the other's replacement.
 */

type Method = (...args: never[]) => unknown;
type Methods = Record<string, (Method & { [mark: symbol]: boolean | undefined }) | undefined>;

/** Puts `make(tfjs's own method)` on the engine as `name`, unless the replacement marked `mark` is there already. */
export function replaceEngineMethod<F extends Method>(name: string, mark: symbol, make: (own: F) => F): void {
  const engine = tfEngine() as unknown as Methods;
  if (engine[name]?.[mark]) return;
  const own = (Object.getPrototypeOf(engine) as Record<string, F>)[name];
  const ours = make(own) as unknown as NonNullable<Methods[string]>;
  ours[mark] = true;
  engine[name] = ours;
}

/** Takes out the replacement marked `mark` of the engine's `name` (tfjs's own applies again); returns whether it was there. */
export function restoreEngineMethod(name: string, mark: symbol): boolean {
  const engine = tfEngine() as unknown as Methods;
  if (!engine[name]?.[mark]) return false;
  delete engine[name];
  return true;
}
