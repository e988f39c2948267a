import * as tf from "@tensorflow/tfjs";
import { type EmscriptenHeap, refreshViews, staleViews } from "./wasm-views";
import { settleThreads } from "./thread-pool";

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
 * `tf.tidy` calls, `startTape`, `track`, `runKernel`, `trackTensor`, `disposeTensor`, the backend's
 * `write`), so it covers a learner's plain `tf.*` cell as well as d2l's helpers, which also call
 * {@link recoverFromInterrupt} on entry.
 *
 * The repair, and why it is safe: it closes the dead scopes, tape and kernel calls (resets those
 * counters and stacks to their idle values, which they always hold between turns), and frees the
 * tensors the interrupted turn created and left alive, as `tf.tidy` would have had it finished:
 * we note every tensor created in the current turn (the disposed ones are dropped from the note
 * now and then, and skipped by the repair). Variables
 * are never freed (the user's parameters, a model's weights, an optimizer's state), and a variable
 * assigned a value made in the interrupted turn keeps it (tfjs counts references to the data).
 * Tensors made by earlier cells are untouched. On the wasm backend, the module's stack pointer is
 * put back where it stands between calls (a C++ kernel cut off mid-call never pops its frame), and
 * its views of memory are made anew if a grow was cut off (./wasm-views).
 *
 * The cut can also fall inside tfjs's own bookkeeping, between two of its statements: in
 * trackTensor (counted, not yet in its scope), disposeTensor (counted down, not yet marked
 * disposed: disposing it again would count it down twice), a backend's disposeData (its buffer
 * counted down, freed or not), `Variable.assign` (old value released, new one not yet taken), a
 * kernel's backend incRef (a Reshape's or shared Identity's output, an operand BatchMatMul reshapes)
 * before a tensor owns the reference or the kernel gives it back. Each of these calls is noted with the engine's counts before it and a `done` flag set in a `finally`
 * when it returns or throws (an interrupt runs none, and V8 delivers one only at a function's entry
 * or a loop's back edge, never between a return and its `finally`), and the repair finishes what the cut-off call left undone (finishAssign,
 * finishDisposal, finishRelease, finishTracking): tf.memory().numTensors ends exactly where it
 * would have been (test/unit/interrupt-stress.test.ts cuts loops of small ops at hundreds of
 * moments). What cannot be repaired: a cut inside the wasm module's `free` (the heap may be
 * corrupt) and a buffer the backend listed before any note of it; the message then says to
 * restart the kernel.
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
  numTensors: number;
  numBytes: number;
  registeredVariables: Record<string, tf.Variable>;
  tensorInfo: WeakMap<object, unknown>;
}

type Method = (this: EngineInternals, ...args: unknown[]) => unknown;
type BackendMethod = (this: Backend, ...args: unknown[]) => unknown;
/** The wasm module's `_free`; our wrapper holds the module's own under MARK. */
type FreeFunction = ((pointer: number) => void) & { [MARK]?: FreeFunction };
/** Variable.prototype.assign; our wrapper holds tfjs's own under MARK. */
type AssignMethod = ((this: tf.Variable, value: tf.Tensor) => void) & { [MARK]?: AssignMethod };

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

/** The Emscripten stack of tfjs's wasm module (its views: see ./wasm-views). */
interface WasmStack extends EmscriptenHeap {
  stackSave?: () => number;
  stackRestore?: (top: number) => void;
}

/**
 * A call of tfjs's engine under way: its tensor, the engine's counts when it began, and whether
 * tfjs's part has returned or thrown (set in a `finally`, which an interrupt never runs, and where none can fall).
 */
interface InFlight {
  tensor: tf.Tensor;
  numTensors: number;
  numBytes: number;
  done: boolean;
}

/** A backend's disposeData under way: its buffer, the buffer's reference count when it began, what it returned. */
interface Release {
  dataId: object;
  refCount: number;
  done: boolean;
  freed: boolean;
  /** The wasm module's `_free` it called, if it got that far. */
  free?: { pointer: number; done: boolean };
}

/** A `Variable.assign` under way: the variable and its new value. */
interface Assignment {
  variable: tf.Variable;
  value: tf.Tensor;
  done: boolean;
}

/** A kernel's backend incRef under way: the buffer and its reference count before. */
interface Reference {
  dataId: object;
  refCount: number;
  done: boolean;
}

/** The last calls of the previous turn (one cut off in the middle has `done` false). */
interface CutCalls {
  tracking: InFlight | undefined;
  disposing: InFlight | undefined;
  releasing: Release | undefined;
  assigning: Assignment | undefined;
  referencing: Reference | undefined;
}

/** Engine methods at whose entry the check runs. */
const ENTRIES = ["startScope", "startTape", "track", "runKernel"] as const;
/** Backend methods wrapped (on the instance) to note buffers made, references taken and releases under way. */
const BACKEND_WRAPPED = ["write", "move", "disposeData", "incRef"] as const;
/** The shortest note of a turn's tensors that is cleared of disposed ones (see Recovery.created). */
const COMPACT_FROM = 1024;
/** Marks our wrappers; `Symbol.for` so that a second copy of this module (lib/src and lib/dist) sees them. */
const MARK = Symbol.for("d2l.interruptRecovery");

/** The bookkeeping, one per process, shared by every copy of this module. */
class Recovery {
  /** Incremented by a microtask after every turn with engine activity. */
  turn = 0;
  /** The turn of the last check. */
  checkedTurn = -1;
  /**
   * Tensors (not variables) created in the current turn, in order, disposed ones among them: an array
   * (a push a tensor) is cheaper than a Set (an add and a delete a tensor); {@link noteCreated}
   * drops the disposed ones whenever it has doubled, so a long loop in one turn keeps it short.
   */
  created: tf.Tensor[] = [];
  /** The length of {@link created} at which its disposed tensors are dropped next. */
  compactAt = COMPACT_FROM;
  /** Buffers the backend allocated in the current turn that no tensor owns yet (a kernel's output, mid-kernel). */
  written = new Set<object>();
  /**
   * The size of {@link written} at which the buffers the backend has freed since are dropped from it
   * (a kernel's temporaries, released without a tensor ever taking them: some 4 a softmax step).
   */
  writtenCompactAt = COMPACT_FROM;
  /**
   * References kernels took in the current turn on a buffer (a Reshape's or shared Identity's output,
   * a reshaped operand inside BatchMatMul), by buffer, until a tensor owns the output or the kernel
   * releases its operand: a cut in between leaves the buffer counted once too often, never freed.
   */
  kernelRefs = new Map<object, number>();
  /** The turn's last trackTensor, disposeTensor, backend disposeData, Variable.assign and kernel incRef (`done` once they return). */
  tracking: InFlight | undefined;
  disposing: InFlight | undefined;
  releasing: Release | undefined;
  assigning: Assignment | undefined;
  referencing: Reference | undefined;
  /** A pointer the wasm module's `_free` is to skip once (freed already by a release that was cut off). */
  skipFree: number | undefined;
  /** Set when a release was cut off inside the wasm module's `free`: the heap may be corrupt. */
  heapCut = false;
  /** Where the wasm stack pointer stands between calls, and how many backend buffers the engine does not know of. */
  stackTop: number | undefined;
  untrackedBuffers = 0;

  /** Runs the check if this is the first engine call of a turn; returns the number of tensors freed. */
  enter(engine: EngineInternals): number {
    if (this.checkedTurn === this.turn) return 0;
    queueMicrotask(() => this.turn++); // first: cut off before it, the check would never run again
    this.checkedTurn = this.turn;
    const previous = this.created;
    const written = this.written;
    const kernelRefs = this.kernelRefs;
    const cut: CutCalls = {
      tracking: this.tracking, disposing: this.disposing, releasing: this.releasing, assigning: this.assigning, referencing: this.referencing,
    };
    this.created = [];
    this.compactAt = COMPACT_FROM;
    this.written = new Set();
    this.writtenCompactAt = COMPACT_FROM;
    this.kernelRefs = new Map();
    this.tracking = this.disposing = this.releasing = this.assigning = this.referencing = undefined;
    return this.repair(engine, previous, written, kernelRefs, cut);
  }

  /** Notes a buffer the backend is about to allocate (see {@link written}). */
  noteWritten(dataId: object, backend: Backend): void {
    const written = this.written;
    if (written.size >= this.writtenCompactAt) {
      // a buffer still allocated has a count of 1 or more; deleting while iterating is allowed
      for (const d of written) if ((backend.refCount?.(d) ?? 1) === 0) written.delete(d);
      this.writtenCompactAt = Math.max(COMPACT_FROM, 2 * written.size);
    }
    written.add(dataId);
  }

  /** Notes a tensor made in this turn (see {@link created}). */
  noteCreated(t: tf.Tensor): void {
    const created = this.created;
    created.push(t);
    if (created.length < this.compactAt) return;
    // assigned once filtered: an interrupt inside the filter leaves the whole note in place
    this.created = created.filter((x) => !x.isDisposed);
    this.compactAt = Math.max(COMPACT_FROM, 2 * this.created.length);
  }

  /** Counts (`by` 1) or uncounts (-1) a kernel's reference to a buffer; see {@link kernelRefs}. */
  countKernelRef(dataId: object, by: 1 | -1, refs = this.kernelRefs): void {
    const count = (refs.get(dataId) ?? 0) + by;
    if (count > 0) refs.set(dataId, count);
    else refs.delete(dataId);
  }

  /** Closes what an interrupted turn left open and frees what it made; returns the number of tensors freed. */
  repair(engine: EngineInternals, previous: tf.Tensor[], written: Set<object>, kernelRefs: Map<object, number>, cut: CutCalls): number {
    // a product split across threads and cut off on this thread: its workers finish before any buffer is freed
    settleThreads();
    const state = engine.state;
    const backend = engine.backendInstance ?? undefined;
    const wasm = backend?.wasm;
    const viewsCut = staleViews(wasm);
    const callCut = [cut.tracking, cut.disposing, cut.releasing, cut.assigning, cut.referencing].some((call) => call?.done === false);
    const interrupted = viewsCut || callCut || state.scopeStack.length > 0 || state.gradientDepth > 0 || state.kernelDepth > 0;
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
    const viewsLost = viewsCut && !refreshViews(wasm!);
    this.finishAssign(engine, cut);
    this.finishDisposal(engine, cut);
    // an incRef cut off counts if it raised the count (read before any release below lowers it)
    const ref = cut.referencing;
    if (ref !== undefined && !ref.done && (backend?.refCount?.(ref.dataId) ?? 0) > ref.refCount) this.countKernelRef(ref.dataId, 1, kernelRefs);
    this.finishTracking(engine, cut, doomed, kernelRefs);
    const lostVariables = Object.values(state.registeredVariables)
      .filter((v) => !v.isDisposed && !state.tensorInfo.has(v.dataId))
      .map((v) => v.name);
    const freed = freeAll(doomed);
    this.dropKernelRefs(engine, kernelRefs, cut);
    // A kernel cut off after allocating its output: no tensor was made of that buffer, so nothing else can hold it.
    // (Unless its release was cut off with the count at 0: it may be freed already, and freeing twice corrupts the heap.)
    for (const dataId of written) if (!state.tensorInfo.has(dataId)) this.release(engine, dataId, cut.releasing, true);
    const lost = untracked() - this.untrackedBuffers;
    const heapCut = this.heapCut;
    this.heapCut = false;
    const problems = [
      ...(lostVariables.length ? [`variable(s) ${lostVariables.join(", ")} lost their values`] : []),
      ...(lost > 0 ? [`${lost} buffer(s) of the backend could not be freed`] : []),
      ...(viewsLost ? ["the wasm memory was cut off while growing"] : []),
      ...(heapCut ? ["the wasm memory was cut off while freeing a buffer"] : []),
    ];
    console.log(
      `d2l: the previous run was interrupted; freed ${freed} tensor${freed === 1 ? "" : "s"} it left behind` +
        (problems.length ? `; ${problems.join(" and ")}: restart the kernel (Kernel > Restart) to be safe` : ""),
    );
    return freed;
  }

  /**
   * `Variable.assign` disposes the old value (counts the variable down, releases the old buffer),
   * takes the new value's buffer, then counts the variable again and references that buffer. When
   * it was cut off, the steps it did not take are taken here, so the variable holds the new value.
   */
  private finishAssign(engine: EngineInternals, cut: CutCalls): void {
    const assignment = cut.assigning;
    if (assignment === undefined || assignment.done) return;
    const { variable: v, value } = assignment;
    const state = engine.state;
    const track = cut.tracking?.tensor === v ? cut.tracking : undefined;
    if (track !== undefined) {
      // In the count-up (tfjs's incRef: trackTensor, then the backend's incRef).
      const counted = track.done || state.numTensors === track.numTensors + 1;
      if (counted) finishBytes(state, track, 1);
      if (counted) engine.backendInstance?.incRef?.(v.dataId);
      else engine.incRef(v, null);
      return;
    }
    const disposal = cut.disposing?.tensor === v ? cut.disposing : undefined;
    if (disposal === undefined || (!disposal.done && state.numTensors === disposal.numTensors)) {
      v.assign(value); // nothing changed yet
      return;
    }
    finishBytes(state, disposal, -1);
    if (!disposal.done) this.finishRelease(engine, v.dataId, cut.releasing);
    (v as { dataId: object }).dataId = value.dataId;
    engine.incRef(v, null);
  }

  /**
   * A disposeTensor cut off after tfjs counted the tensor down (`numTensors`) but before it was
   * marked disposed: disposing it again would count it down twice. The disposal is finished instead
   * (a variable's too, when `dispose` was cut off, and not `assign`: see {@link finishAssign}).
   */
  private finishDisposal(engine: EngineInternals, cut: CutCalls): void {
    const state = engine.state;
    const call = cut.disposing;
    if (call === undefined || cut.assigning?.variable === call.tensor) return; // an assignment's: finishAssign's
    const t = call.tensor;
    if (!call.done && state.numTensors === call.numTensors) return; // not begun: disposed with the rest, if it is the turn's
    finishBytes(state, call, -1);
    if (!call.done) this.finishRelease(engine, t.dataId, cut.releasing);
    if (t instanceof tf.Variable && state.registeredVariables[t.name] === t) delete state.registeredVariables[t.name];
    (t as unknown as { isDisposedInternal: boolean }).isDisposedInternal = true;
  }

  /**
   * The rest of tfjs's disposeTensor once it counted a tensor down: the backend's release of the
   * buffer, then tfjs's record of it, unless the backend keeps it for other tensors.
   */
  private finishRelease(engine: EngineInternals, dataId: object, releasing: Release | undefined): void {
    if (!engine.state.tensorInfo.has(dataId)) return; // tfjs got as far as forgetting the buffer: done
    if (this.release(engine, dataId, releasing, false)) (engine.removeDataId as Method).call(engine, dataId, engine.backendInstance);
  }

  /**
   * Releases a buffer in the backend (`force`: whatever its count), taking up where a release that
   * was cut off stopped: not begun, counted down and kept, counted down to 0 and not yet freed,
   * freed and not yet forgotten (the backend forgets it without freeing it twice, which would
   * corrupt the heap), or cut off inside the wasm module's `free` (left, and reported: the heap may
   * be corrupt). Returns whether the backend no longer holds it.
   */
  private release(engine: EngineInternals, dataId: object, releasing: Release | undefined, force: boolean): boolean {
    const backend = engine.backendInstance;
    const call = releasing?.dataId === dataId ? releasing : undefined;
    const refCount = backend?.refCount?.(dataId) ?? 0;
    if (call === undefined || (!call.done && refCount === call.refCount)) return backend?.disposeData?.(dataId, force) ?? true;
    if (call.done) return call.freed;
    if (refCount > 0 && !force) return false;
    if (call.free === undefined) return backend?.disposeData?.(dataId, true) ?? true;
    if (!call.free.done) {
      this.heapCut = true;
      return true;
    }
    this.skipFree = call.free.pointer;
    try {
      return backend?.disposeData?.(dataId, true) ?? true;
    } finally {
      this.skipFree = undefined;
    }
  }

  /**
   * Drops the references kernels of the interrupted turn took and nothing owns: a forwarded output
   * (Reshape, a shared Identity or Cast) cut off before tfjs counted its tensor, or an operand a
   * kernel reshaped and was cut off before releasing (an incRef cut off itself was counted by the
   * repair if it got as far as raising the count). A buffer whose last reference this drops is freed
   * and forgotten.
   */
  private dropKernelRefs(engine: EngineInternals, kernelRefs: Map<object, number>, cut: CutCalls): void {
    const backend = engine.backendInstance;
    // a release cut off is taken up once, by the first release of its buffer (one that returned was counted)
    let releasing = cut.releasing?.done === false ? cut.releasing : undefined;
    for (const [dataId, count] of kernelRefs) {
      for (let i = 0; i < count; i++) {
        const call = releasing?.dataId === dataId ? releasing : undefined;
        if (call !== undefined) releasing = undefined;
        if (this.release(engine, dataId, call, false) && engine.state.tensorInfo.has(dataId)) {
          (engine.removeDataId as Method).call(engine, dataId, backend);
        }
      }
    }
  }

  /**
   * A trackTensor cut off after tfjs counted the tensor but before its scope or this module's note
   * took it: it is freed with the rest, or, if tfjs had not yet recorded its buffer (so that dispose
   * would not count it down), uncounted. A variable's is finished by {@link finishAssign}, or, cut
   * off while `tf.variable` made it (so it never reached the user), disposed. A counted tensor owns
   * the reference its kernel took (see {@link dropKernelRefs}); an uncounted one leaves it to be dropped.
   */
  private finishTracking(engine: EngineInternals, cut: CutCalls, doomed: Set<tf.Tensor>, kernelRefs: Map<object, number>): void {
    const state = engine.state;
    const call = cut.tracking;
    if (call === undefined || (cut.assigning?.done === false && cut.assigning.variable === call.tensor)) return;
    const t = call.tensor;
    const counted = call.done || state.numTensors === call.numTensors + 1;
    if (counted) finishBytes(state, call, 1); // before the tensor is disposed below, which counts its bytes down
    if (counted && !call.done && !(t instanceof tf.Variable)) this.countKernelRef(t.dataId, -1, kernelRefs);
    if (t instanceof tf.Variable) {
      if (call.done) return; // a variable made earlier in the turn (a cut after its count, before its reference, is not told apart: it stays)
      if (counted) {
        engine.backendInstance?.incRef?.(t.dataId);
        t.dispose();
      } else if (state.registeredVariables[t.name] === t) {
        delete state.registeredVariables[t.name];
      }
    } else if (counted && state.tensorInfo.has(t.dataId)) {
      doomed.add(t);
    } else if (counted && !call.done) {
      // Cut off before tfjs recorded its buffer. (Once the call returned, a missing record means it was disposed since.)
      state.numTensors = call.numTensors;
      state.numBytes = call.numBytes;
    }
  }
}

/**
 * tfjs counts a tensor up or down (`numTensors`) and then its bytes (`numBytes`), with a call in
 * between (`bytesPerElement`), where an interrupt can fall: a call cut off there changed the one and
 * not the other. Its bytes are counted here (`sign` 1 for trackTensor, -1 for disposeTensor), once:
 * not if the call returned, or if `numBytes` moved since the call began.
 */
function finishBytes(state: EngineState, call: InFlight, sign: 1 | -1): void {
  const t = call.tensor;
  if (call.done || t.dtype === "complex64" || t.dtype === "string") return;
  if (state.numTensors !== call.numTensors + sign || state.numBytes !== call.numBytes) return;
  state.numBytes = call.numBytes + sign * t.size * tf.util.bytesPerElement(t.dtype);
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
    const assign = tf.Variable.prototype.assign as AssignMethod;
    if (assign[MARK]) tf.Variable.prototype.assign = assign[MARK];
    const wasm = engine.backendInstance?.wasm;
    const free = wasm?._free as FreeFunction | undefined;
    if (wasm && free?.[MARK]) wasm._free = free[MARK];
    for (const name of BACKEND_WRAPPED) {
      if ((engine.backendInstance?.[name] as { [MARK]?: boolean } | undefined)?.[MARK]) delete engine.backendInstance![name];
    }
    return;
  }
  if ((engine.startScope as { [MARK]?: boolean })[MARK]) return;
  const wrap = (name: string, body: (own: Method) => Method) => {
    const wrapper = body(original(engine, name)) as Method & { [MARK]?: boolean };
    wrapper[MARK] = true;
    engine[name] = wrapper;
  };
  // The wrappers pass fixed arguments (tfjs's methods take at most three here) and set `done` in their own
  // `finally`: no rest array, `apply` or closure per call, which cost ~2 µs an op (12% of a softmax epoch).
  // tf.Variable read once: through a compiled module's namespace it is a getter call on every use.
  const Variable = tf.Variable;
  for (const name of ENTRIES) {
    wrap(name, (own) =>
      function (this: EngineInternals, a?: unknown, b?: unknown, c?: unknown) {
        recovery.enter(this);
        return own.call(this, a, b, c);
      },
    );
  }
  // How far a cut-off trackTensor or disposeTensor got is read from the engine's counts (finishTracking,
  // finishDisposal); both check at entry too, which a tensor made of values reaches after the backend's write.
  wrap("trackTensor", (own) =>
    function (this: EngineInternals, tensor: unknown, backend?: unknown) {
      recovery.enter(this);
      const t = tensor as tf.Tensor;
      // Known before the call: after it, nothing may call a function (tf.Variable's instanceof does), where an interrupt could fall.
      const isVariable = t instanceof Variable;
      const call = { tensor: t, numTensors: this.state.numTensors, numBytes: this.state.numBytes, done: false };
      recovery.tracking = call;
      let result: unknown;
      try {
        result = own.call(this, tensor, backend);
        // the tensor now owns its kernel's reference, if any (most kernels take none: skip the lookup)
        if (!isVariable && recovery.kernelRefs.size !== 0) recovery.countKernelRef(t.dataId, -1);
      } finally {
        call.done = true;
      }
      recovery.written.delete(t.dataId);
      if (!isVariable) recovery.noteCreated(t);
      return result;
    },
  );
  // Forgotten only once disposed: an interrupt at the entry of tfjs's disposeTensor leaves it to the repair.
  wrap("disposeTensor", (own) =>
    function (this: EngineInternals, tensor: unknown) {
      recovery.enter(this);
      const t = tensor as tf.Tensor;
      if (t.isDisposed) return undefined; // freed just now by the repair (a tensor the interrupted cell made)
      const isVariable = t instanceof Variable; // before the call, as in trackTensor
      const call = { tensor: t, numTensors: this.state.numTensors, numBytes: this.state.numBytes, done: false };
      recovery.disposing = call;
      recovery.releasing = undefined;
      let result: unknown;
      try {
        result = own.call(this, t);
      } finally {
        call.done = true;
      }
      // What Tensor.dispose does once this returns, done here so that no interrupt falls in between (a tensor
      // whose buffer others share is still listed by tfjs, and disposing it again would count it down twice).
      if (!isVariable) (t as unknown as { isDisposedInternal: boolean }).isDisposedInternal = true;
      return result;
    },
  );
  const backend = engine.backendInstance;
  const wrapBackend = (name: string, body: (own: BackendMethod) => BackendMethod) => {
    if (!backend || typeof backend[name] !== "function" || (backend[name] as { [MARK]?: boolean })[MARK]) return;
    const wrapper = body(backend[name] as BackendMethod) as BackendMethod & { [MARK]?: boolean };
    wrapper[MARK] = true;
    backend[name] = wrapper;
  };
  // Checked at its entry too: a tensor made from values (`tf.tensor`) reaches the backend before any engine entry above.
  wrapBackend("write", (own) =>
    function (this: Backend, values?: unknown, shape?: unknown, dtype?: unknown) {
      recovery.enter(engine);
      return own.call(this, values, shape, dtype);
    },
  );
  // Noted before the backend allocates (write calls move with the new dataId): a cut inside leaves nothing unnoted.
  wrapBackend("move", (own) =>
    function (this: Backend, dataId: unknown, values?: unknown, shape?: unknown, dtype?: unknown, refCount?: unknown) {
      recovery.noteWritten(dataId as object, this);
      return own.call(this, dataId, values, shape, dtype, refCount);
    },
  );
  wrapBackend("disposeData", (own) =>
    function (this: Backend, id: unknown, force?: unknown) {
      const dataId = id as object;
      // inside a kernel, the release of a reference the kernel took (an operand it reshaped)
      const kernelRef = engine.state.kernelDepth > 0 && recovery.kernelRefs.has(dataId);
      const release: Release = { dataId, refCount: this.refCount?.(dataId) ?? 0, done: false, freed: false };
      recovery.releasing = release;
      let result: unknown;
      try {
        result = own.call(this, dataId, force);
        if (kernelRef) recovery.countKernelRef(dataId, -1);
      } finally {
        release.done = true;
      }
      release.freed = result === true;
      return result;
    },
  );
  // Only a kernel's (a forwarded output, a reshaped operand): tfjs's own incRef, a variable's, is finished by finishAssign and finishTracking.
  wrapBackend("incRef", (own) =>
    function (this: Backend, id: unknown) {
      const dataId = id as object;
      if (engine.state.kernelDepth === 0) return own.call(this, dataId);
      const call: Reference = { dataId, refCount: this.refCount?.(dataId) ?? 0, done: false };
      recovery.referencing = call;
      try {
        const result = own.call(this, dataId);
        recovery.countKernelRef(dataId, 1);
        return result;
      } finally {
        call.done = true;
      }
    },
  );
  const wasm = backend?.wasm;
  // The module's own free (Emscripten's `_free` is a stub that replaces itself with it on its first call).
  const free = ((wasm?._free as FreeFunction | undefined)?.[MARK] ? undefined : (wasm?.asm as { free?: FreeFunction } | undefined)?.free);
  if (wasm && free) {
    const wrapper: FreeFunction = (pointer: number) => {
      if (pointer === recovery.skipFree) return;
      const call = { pointer, done: false };
      const release = recovery.releasing;
      if (release && !release.done) release.free = call; // the free of a disposeData under way
      try {
        free(pointer);
      } finally {
        call.done = true;
      }
    };
    wrapper[MARK] = free;
    wasm._free = wrapper;
  }
  const assign = tf.Variable.prototype.assign as AssignMethod;
  if (!assign[MARK]) {
    const wrapper: AssignMethod = function (this: tf.Variable, value: tf.Tensor) {
      recovery.enter(engine);
      const call: Assignment = { variable: this, value, done: false };
      recovery.assigning = call;
      recovery.tracking = recovery.disposing = undefined; // what finishAssign finds of them is this assignment's
      try {
        assign.call(this, value);
      } finally {
        call.done = true;
      }
    };
    wrapper[MARK] = assign;
    tf.Variable.prototype.assign = wrapper;
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
