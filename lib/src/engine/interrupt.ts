import * as tf from "@tensorflow/tfjs";

/**
 * Repairs tfjs's engine after a kernel interrupt (Jupyter's Stop button).
 *
 * tslab runs a cell with Node's `vm` option `breakOnSigint`: an interrupt terminates the script
 * on the spot, without running `catch` or `finally` blocks. Every `tf.tidy`, op, kernel and
 * gradient that was running is cut off in the middle, and tfjs-core's engine keeps their state
 * (engine.ts): the open scopes on `state.scopeStack` and `state.activeScope` (every later tensor
 * is tracked into the dead scope), `state.gradientDepth` above 0 (the tape is never reset, so it
 * grows and keeps its saved tensors), `state.kernelDepth` above 0 (the tape is off for good: every
 * later gradient fails with "Cannot find a connection between any variable and the result of
 * the loss function"), `state.activeTape` with the tensors it saved, `state.numDataMovesStack`,
 * and the tensors the cut-off code made, which nothing frees any more.
 *
 * How an interrupt is told apart from a running computation: scopes, tapes and kernel calls are
 * synchronous, so none can legitimately stay open once the JavaScript stack has emptied. We count
 * "turns" (a microtask queued at the first engine call of a turn runs only when the stack is
 * empty, and survives a terminated script), and check the engine at the first call of every turn:
 * anything still open then was left by a script that never finished. That check sits at the entry
 * of the engine methods every computation goes through (`startScope`, which every op and
 * `tf.tidy` calls, `startTape`, `track`, `runKernel`), so it covers a learner's plain `tf.*` cell
 * as well as d2l's helpers, which also call {@link recoverFromInterrupt} on entry.
 *
 * The repair, and why it is safe: it closes the dead scopes, tape and kernel calls (resets those
 * counters and stacks to their idle values, which they always hold between turns), and frees the
 * tensors the interrupted turn created and left alive, as `tf.tidy` would have had it finished:
 * we note every tensor created in the current turn (dropped from the note when disposed). Variables
 * are never freed (the user's parameters, a model's weights, an optimizer's state), and a variable
 * assigned a value made in the interrupted turn keeps it (tfjs counts references to the data).
 * Tensors made by earlier cells are untouched. On the wasm backend, the module's stack pointer is
 * put back where it stands between calls (a C++ kernel cut off mid-call never pops its frame).
 * What cannot be repaired: data a backend allocated for a kernel whose output tensor was never
 * made; the message then says to restart the kernel to reclaim that memory.
 *
 * Not in d2l: PyTorch's autograd needs no repair after a KeyboardInterrupt. Switch it off with
 * {@link useInterruptRecovery}(false).
 */

interface Scope {
  track: tf.Tensor[];
}

interface TapeNode {
  saved?: tf.Tensor[];
}

/** The parts of tfjs-core's EngineState this module reads and resets. */
interface EngineState {
  scopeStack: Scope[];
  activeScope: Scope | null;
  gradientDepth: number;
  kernelDepth: number;
  activeTape: TapeNode[] | null;
  numDataMovesStack: number[];
  numDataBuffers: number;
  registeredVariables: Record<string, tf.Variable>;
  tensorInfo: WeakMap<object, unknown>;
}

type Method = (this: EngineInternals, ...args: unknown[]) => unknown;

/** tfjs-core's Engine, as far as this module uses it. */
interface EngineInternals {
  state: EngineState;
  backendInstance?: Backend | null;
  incRef(t: tf.Tensor, backend: null): void;
  [method: string]: unknown;
}

/** The parts of a tfjs backend this module uses. */
interface Backend {
  numDataIds?: () => number;
  refCount?: (dataId: object) => number;
  disposeData?: (dataId: object, force?: boolean) => boolean;
  incRef?: (dataId: object) => void;
  wasm?: WasmStack;
  [method: string]: unknown;
}

/** The Emscripten stack of tfjs's wasm module. */
interface WasmStack {
  stackSave?: () => number;
  stackRestore?: (top: number) => void;
}

/** Engine methods at whose entry the check runs. */
const ENTRIES = ["startScope", "startTape", "track", "runKernel"] as const;
/** Marks our wrappers; `Symbol.for` so that a second copy of this module (lib/src and lib/dist) sees them. */
const MARK = Symbol.for("d2l.interruptRecovery");

/** The bookkeeping, one per process, shared by every copy of this module. */
class Recovery {
  /** Incremented by a microtask after every turn with engine activity. */
  turn = 0;
  /** The turn of the last check. */
  checkedTurn = -1;
  /** Tensors (not variables) created in the current turn and not yet disposed. */
  created = new Set<tf.Tensor>();
  /** The tensor tfjs's trackTensor counted last (to tell how far a cut-off `Variable.assign` got). */
  lastTracked: tf.Tensor | undefined;
  /** Buffers the backend allocated in the current turn that no tensor owns yet (a kernel's output, mid-kernel). */
  written = new Set<object>();
  /** Where the wasm stack pointer stands between calls, and how many backend buffers the engine does not know of. */
  stackTop: number | undefined;
  untrackedBuffers = 0;

  /** Runs the check if this is the first engine call of a turn; returns the number of tensors freed. */
  enter(engine: EngineInternals): number {
    if (this.checkedTurn === this.turn) return 0;
    this.checkedTurn = this.turn;
    queueMicrotask(() => this.turn++);
    const previous = this.created;
    const written = this.written;
    this.created = new Set();
    this.written = new Set();
    return this.repair(engine, previous, written);
  }

  /** Closes what an interrupted turn left open and frees what it made; returns the number of tensors freed. */
  repair(engine: EngineInternals, previous: Set<tf.Tensor>, written: Set<object>): number {
    const state = engine.state;
    const interrupted = state.scopeStack.length > 0 || state.gradientDepth > 0 || state.kernelDepth > 0;
    const backend = engine.backendInstance ?? undefined;
    const wasm = backend?.wasm;
    const untracked = () => (backend?.numDataIds ? backend.numDataIds() - state.numDataBuffers : 0);
    if (!interrupted) {
      // A gradient that threw leaves its tape behind (tfjs drops it at the next gradient, leaking what it saved).
      if (state.activeTape) freeAll(tapeTensors(state.activeTape));
      state.activeTape = null;
      this.stackTop = wasm?.stackSave?.();
      this.untrackedBuffers = untracked();
      return 0;
    }
    const doomed = new Set(previous);
    for (const scope of state.scopeStack) for (const t of scope.track) if (!t.kept) doomed.add(t);
    for (const t of tapeTensors(state.activeTape ?? [])) doomed.add(t);
    state.scopeStack = [];
    state.activeScope = null;
    state.gradientDepth = 0;
    state.kernelDepth = 0;
    state.activeTape = null;
    state.numDataMovesStack = [];
    if (this.stackTop !== undefined && wasm?.stackSave && wasm.stackRestore && wasm.stackSave() !== this.stackTop) {
      wasm.stackRestore(this.stackTop);
    }
    const lostVariables = this.finishAssignments(engine, doomed);
    const freed = freeAll(doomed);
    // A kernel cut off after allocating its output: no tensor was made of that buffer, so nothing else can hold it.
    for (const dataId of written) if (!state.tensorInfo.has(dataId)) backend?.disposeData?.(dataId, true);
    const lost = untracked() - this.untrackedBuffers;
    const problems = [
      ...(lostVariables.length ? [`variable(s) ${lostVariables.join(", ")} lost their values`] : []),
      ...(lost > 0 ? [`${lost} buffer(s) of the backend could not be freed`] : []),
    ];
    console.log(
      `d2l: the previous run was interrupted; freed ${freed} tensor${freed === 1 ? "" : "s"} it left behind` +
        (problems.length ? `; ${problems.join(" and ")}: restart the kernel (Kernel > Restart) to be safe` : ""),
    );
    return freed;
  }

  /**
   * `Variable.assign` releases the old value, then takes the new value's data, then counts it
   * (engine) and references it (backend): an interrupt after the second step leaves the variable on
   * data that only the interrupted turn's tensors hold, so freeing them would free the variable's
   * value. Such an assignment is completed here (whichever of the last two steps is missing). A variable whose data is already gone
   * (cut off between the first two) cannot be repaired: its name is returned.
   */
  private finishAssignments(engine: EngineInternals, doomed: Set<tf.Tensor>): string[] {
    const state = engine.state;
    const refCount = engine.backendInstance?.refCount?.bind(engine.backendInstance);
    const holders = new Map<object, number>();
    for (const t of doomed) if (!t.isDisposed) holders.set(t.dataId, (holders.get(t.dataId) ?? 0) + 1);
    const lost: string[] = [];
    for (const v of Object.values(state.registeredVariables)) {
      if (v.isDisposed) continue;
      if (!state.tensorInfo.has(v.dataId)) {
        lost.push(v.name);
        continue;
      }
      const doomedHolders = holders.get(v.dataId);
      if (doomedHolders === undefined || !refCount || refCount(v.dataId) > doomedHolders) continue;
      // Cut off inside its incRef: counted already (the last tensor tracked), not yet referenced in the backend.
      if (this.lastTracked === v) engine.backendInstance?.incRef?.(v.dataId);
      else engine.incRef(v, null);
    }
    return lost;
  }
}

function tapeTensors(tape: TapeNode[]): tf.Tensor[] {
  return tape.flatMap((node) => node.saved ?? []);
}

/** Disposes the tensors that are not variables and not yet disposed; returns how many. */
function freeAll(tensors: Iterable<tf.Tensor>): number {
  let n = 0;
  for (const t of tensors) {
    if (t.isDisposed || t instanceof tf.Variable) continue;
    t.dispose();
    n++;
  }
  return n;
}

const globals = globalThis as { [MARK]?: Recovery };
const recovery = (globals[MARK] ??= new Recovery());

function internals(): EngineInternals {
  return tf.engine() as unknown as EngineInternals;
}

/** The prototype's method (tfjs's own), whether or not an instance wrapper shadows it. */
function original(engine: EngineInternals, name: string): Method {
  return Object.getPrototypeOf(engine)[name] as Method;
}

/**
 * Installs the check at the entry of tfjs's engine (`true`, as {@link initBackend} leaves it) or
 * removes it (`false`), restoring tfjs's own methods.
 */
export function useInterruptRecovery(enabled: boolean): void {
  const engine = internals();
  const names = [...ENTRIES, "trackTensor", "disposeTensor"];
  if (!enabled) {
    for (const name of names) if ((engine[name] as { [MARK]?: boolean } | undefined)?.[MARK]) delete engine[name];
    if ((engine.backendInstance?.write as { [MARK]?: boolean } | undefined)?.[MARK]) delete engine.backendInstance!.write;
    return;
  }
  if ((engine.startScope as { [MARK]?: boolean })[MARK]) return;
  const wrap = (name: string, body: (own: Method) => Method) => {
    const wrapper = body(original(engine, name)) as Method & { [MARK]?: boolean };
    wrapper[MARK] = true;
    engine[name] = wrapper;
  };
  for (const name of ENTRIES) {
    wrap(name, (own) =>
      function (this: EngineInternals, ...args: unknown[]) {
        recovery.enter(this);
        return own.apply(this, args);
      },
    );
  }
  // Not checked here: in the middle of makeTensor, the backend already holds the new buffer. `track`, which
  // trackTensor calls for every tensor but a variable, runs the check once the bookkeeping is done.
  wrap("trackTensor", (own) =>
    function (this: EngineInternals, ...args: unknown[]) {
      const result = own.apply(this, args);
      const t = args[0];
      recovery.lastTracked = t as tf.Tensor;
      if (t instanceof tf.Tensor) {
        recovery.written.delete(t.dataId);
        if (!(t instanceof tf.Variable)) recovery.created.add(t);
      }
      return result;
    },
  );
  // Forgotten only once disposed: an interrupt at the entry of tfjs's disposeTensor leaves it to the repair.
  wrap("disposeTensor", (own) =>
    function (this: EngineInternals, ...args: unknown[]) {
      const result = own.apply(this, args);
      recovery.created.delete(args[0] as tf.Tensor);
      return result;
    },
  );
  const backend = engine.backendInstance;
  if (backend && typeof backend.write === "function" && !(backend.write as { [MARK]?: boolean })[MARK]) {
    const write = backend.write as (...args: unknown[]) => object;
    const wrapper = function (this: Backend, ...args: unknown[]) {
      const dataId = write.apply(this, args);
      recovery.written.add(dataId);
      return dataId;
    } as ((...args: unknown[]) => object) & { [MARK]?: boolean };
    wrapper[MARK] = true;
    backend.write = wrapper;
  }
  // Whatever this turn did before the check was installed is not known to be the user's or not: start clean.
  recovery.checkedTurn = recovery.turn;
  queueMicrotask(() => recovery.turn++);
}

/**
 * Marks a buffer the backend allocated for `dataId` as held by a cache of d2l's, not by a tensor:
 * the repair after an interrupt would otherwise free it as a kernel output no tensor received.
 */
export function keepBackendBuffer(dataId: object): void {
  recovery.written.delete(dataId);
}

/**
 * Repairs tfjs's engine if the previous cell was interrupted (see above) and says so in one line;
 * returns the number of tensors freed (0 when nothing was interrupted, or with
 * {@link useInterruptRecovery} off). d2l's helpers call it on entry; tfjs's engine calls it too.
 * Not in d2l.
 */
export function recoverFromInterrupt(): number {
  const engine = internals();
  // Without the engine's hooks, turns are not counted and a check could land inside a running tf.tidy.
  if (!(engine.startScope as { [MARK]?: boolean })[MARK]) return 0;
  return recovery.enter(engine);
}
