import * as os from "node:os";
import { Worker } from "node:worker_threads";
import { processState } from "./process-state";

/**
 * Worker threads that run d2l's wasm kernels on the wasm backend's shared memory
 * (shared-memory.ts), so a large product uses every core: `runSplit` cuts a kernel's output into
 * ranges [start, end) of an outer dimension (rows of a product), the calling thread computes the
 * first range and each worker one other, and it returns once all are done. Each output element is
 * computed by exactly one thread, by the same code and in the same order as on one thread, so the
 * floats do not depend on the thread count. Not in tfjs: its threaded build does not run in Node
 * (see README.md), and it would thread only XNNPACK, which d2l's kernels replace.
 *
 * Or `runChunks`: the threads claim chunks of the work from one shared counter until none is left,
 * so a worker that wakes late or shares its core does less instead of keeping the calling thread
 * waiting (the kernels of conv2d-simd.ts, the poolings, sigmoids, bias adds and products with a
 * small op(B) use it; products with a large one keep `runSplit`: each part packs op(B) once).
 *
 * Hand-off: one SharedArrayBuffer word per worker (idle → job → done), Atomics.wait / notify on
 * both sides, each side first watching the word a while if setSpin / D2L_SPIN_US say so (off by
 * default), since a thread asleep on a VM wakes 50-250 µs late; {@link wakeThreads} starts that
 * watch ahead of a training step. A worker receives the compiled
 * WebAssembly.Module of a kernel once, by message, and instantiates it on the shared memory. A kernel interrupt (tslab's breakOnSigint) can cut the
 * calling thread off while workers still compute: {@link settleThreads} (called by interrupt.ts
 * before it frees anything, and before every split) waits for them, so no worker writes into
 * memory after the repair frees it. Workers are unref'd: they never keep the process alive.
 */

/**
 * A gap between two looks at the control word longer than this (ms) means the watching thread was
 * taken off its core (other work wants the cores): it stops watching, and sleeps at once on its
 * next 32 waits, so a busy machine loses no CPU to watching.
 */
const PREEMPTED_MS = 0.05;

/**
 * What a worker runs (CommonJS: workers start with no execArgv, so no loader or input type of the
 * parent's applies): says it is alive, waits for a job, claims it, instantiates kernels it has not
 * seen, calls the kernel, reports.
 */
const WORKER_SOURCE = `
const { parentPort, workerData, receiveMessageOnPort } = require("node:worker_threads");
const { memory, control, claims } = workerData;
const ctl = new Int32Array(control);
const next = new Int32Array(claims);
const kernels = new Map();
let calm = 0;
Atomics.store(ctl, 4, 1);
for (;;) {
  let state = Atomics.load(ctl, 0);
  if (state !== ${1} && state !== ${3}) {
    // before sleeping, watch for the next job a while (next[1] microseconds; woken without a job, as
    // wakeThreads does, too): a sleeping worker's vCPU takes 50-250 µs to wake on a VM
    // (a watch the thread was taken off its core during says the cores are wanted elsewhere: it stops,
    // and the next 32 waits sleep at once)
    if (next[1] > 0 && calm-- <= 0) {
      let now = performance.now();
      const until = now + next[1] / 1000;
      for (let last = now; ; last = now) {
        state = Atomics.load(ctl, 0);
        if (state === ${1} || state === ${3}) break;
        now = performance.now();
        if (now - last > ${PREEMPTED_MS}) { calm = 32; break; }
        if (now > until) break;
      }
    }
    if (state !== ${1} && state !== ${3}) { Atomics.wait(ctl, 0, state); continue; }
  }
  if (state === ${3}) break;
  if (Atomics.compareExchange(ctl, 0, ${1}, ${4}) !== ${1}) continue;
  // the calls, one after another: [kernel id, argument count, arguments...] each; with chunks (ctl[1] > 0), each
  // chunk's calls after its word count, and chunks are claimed from the shared counter until none is left
  const words = ctl.slice(${5}, ${5} + ctl[2]);
  const chunks = ctl[1];
  const bounds = [];
  if (chunks === 0) bounds.push([0, words.length]);
  else for (let i = 0, c = 0; c < chunks; c++, i += 1 + words[i]) bounds.push([i + 1, i + 1 + words[i]]);
  for (const [b, e] of bounds) {
    for (let i = b; i < e; i += 2 + words[i + 1]) {
      while (!kernels.has(words[i])) {
        const received = receiveMessageOnPort(parentPort);
        if (received === undefined) { Atomics.wait(ctl, 0, state, 1); continue; }
        const { clear, id: newId, module, name } = received.message;
        if (clear) kernels.clear();
        else kernels.set(newId, new WebAssembly.Instance(module, { e: { m: memory } }).exports[name]);
      }
    }
  }
  const run = ([b, e]) => { for (let i = b; i < e; i += 2 + words[i + 1]) kernels.get(words[i])(...words.subarray(i + 2, i + 2 + words[i + 1])); };
  let failed = 0;
  try {
    if (chunks === 0) run(bounds[0]);
    else for (let c = Atomics.add(next, 0, 1); c < chunks; c = Atomics.add(next, 0, 1)) run(bounds[c]);
  } catch { failed = 1; }
  ctl[3] = failed;
  Atomics.store(ctl, 0, ${2});
  Atomics.notify(ctl, 0);
}
`;

/** States of a worker's control word: a job is posted (JOB), claimed by the worker (RUNNING), then DONE. */
const IDLE = 0;
const JOB = 1;
const DONE = 2;
const EXIT = 3;
const RUNNING = 4;
/**
 * Control words: state, the job's chunk count (0: its calls run in order), the job's word count,
 * failed, alive (set once the worker runs), then the job: its kernel calls in order, each [kernel
 * id, argument count, arguments (i32)...], or its chunks, each [word count, calls...].
 */
const ARGS = 5;
const MAX_WORDS = 4091;
/**
 * How long a job may wait for a worker that has not started yet (a worker starts in tens of
 * milliseconds, seconds on a machine that is very busy); after it, the job is taken back and the
 * worker dropped, so a worker that cannot start never hangs the calling thread.
 */
const START_WAIT_MS = 20_000;
/** Kernel modules a worker keeps before it is told to drop them all (the wasm kernels' cache holds at most 256). */
const MAX_KERNELS = 512;

interface PoolWorker {
  worker: Worker;
  control: Int32Array;
  /** Set when the worker exited or failed to start: it takes no more jobs. */
  dead: boolean;
  /** Kernel ids this worker has been sent. */
  sent: Set<number>;
}

/** A kernel a split runs: its compiled module (sent to the workers), export name, and the calling thread's instance. */
export interface SplitKernel {
  module: WebAssembly.Module;
  name: string;
  call: (...args: number[]) => void;
}

/**
 * The pool's state, one per process under a `Symbol.for` key: tsx and tslab can load a lib module
 * twice (ESM and CommonJS), and the copy whose kernels are registered must see the thread count the
 * other copy's `setThreads` set, and use the same workers.
 */
interface PoolState {
  /** The thread count; read from D2L_THREADS on first use, so a bad value is an error there, not at import. */
  threads?: number;
  /** Off while the speed-ups are off. */
  enabled: boolean;
  /** The memory the workers compute on. */
  memory?: WebAssembly.Memory;
  workers: PoolWorker[];
  /** Ids of the kernel modules sent to workers. */
  kernelIds: WeakMap<WebAssembly.Module, number>;
  nextId: number;
  /** Kernel calls split so far. */
  splits: number;
  /** The next chunk to claim (runChunks), one counter every thread shares; [1]: how long a worker watches for a job before it sleeps (µs). */
  claims?: Int32Array;
  /** That watch in microseconds (D2L_SPIN_US, else DEFAULT_SPIN_US), read on first use. */
  spin?: number;
  /** The calling thread's waits left to sleep at once, after a watch of its was preempted. */
  calm?: number;
}

const state = processState<PoolState>("d2l.threadPool", () => ({
  enabled: true, workers: [], kernelIds: new WeakMap(), nextId: 0, splits: 0,
}));

/** `D2L_THREADS` if set (an integer ≥ 1, else an error naming it), else the cores Node reports. */
function defaultThreads(): number {
  const fromEnv = process.env.D2L_THREADS?.trim();
  if (fromEnv !== undefined && fromEnv !== "") {
    const n = Number(fromEnv);
    if (!Number.isInteger(n) || n < 1 || n > 256) throw new Error(`d2l: D2L_THREADS must be an integer from 1 to 256, got "${fromEnv}"`);
    return n;
  }
  return typeof os.availableParallelism === "function" ? os.availableParallelism() : os.cpus().length || 1;
}

/**
 * How long a worker that finished a job, or was woken by {@link wakeThreads}, watches its control
 * word for the next job before it sleeps, in microseconds (the calling thread likewise watches a
 * worker computing its last chunk). A LeNet step hands out ~20 jobs, half of them within 0.2 ms of
 * the last; a thread asleep by then wakes 50-250 µs late on a VM (its vCPU halted), time the other
 * works alone. Watching costs the thread's core that long. Off by default: on the loaded 2-vCPU
 * machine it was measured on, 200 µs gained nothing (README.md, *Issue 26, third pass*);
 * `D2L_SPIN_US=200` turns it on for a measurement at a quiet moment.
 */
export const DEFAULT_SPIN_US = 0;

function spinMicros(): number {
  if (state.spin === undefined) {
    const fromEnv = process.env.D2L_SPIN_US?.trim();
    const n = fromEnv === undefined || fromEnv === "" ? DEFAULT_SPIN_US : Number(fromEnv);
    if (!Number.isInteger(n) || n < 0 || n > 100_000) throw new Error(`d2l: D2L_SPIN_US must be an integer from 0 to 100000, got "${fromEnv}"`);
    state.spin = n;
  }
  return state.spin;
}

/**
 * Sets how long an idle worker watches for its next job before it sleeps (µs, 0: it sleeps at
 * once; by default D2L_SPIN_US or {@link DEFAULT_SPIN_US}). The floats do not depend on it.
 */
export function setSpin(micros: number): void {
  if (!Number.isInteger(micros) || micros < 0 || micros > 100_000) throw new Error(`setSpin: micros must be an integer from 0 to 100000, got ${micros}`);
  state.spin = micros;
  if (state.claims !== undefined) Atomics.store(state.claims, 1, micros);
}

/**
 * Wakes the sleeping workers so they watch for a job (see {@link setSpin}) from now: called a little
 * before a run of splits (a training step's forward), so a worker's wake-up overlaps the calling
 * thread's own work instead of the split's. Does nothing with no workers or no watch.
 */
export function wakeThreads(): void {
  if (!state.enabled || state.claims === undefined || Atomics.load(state.claims, 1) === 0) return;
  for (const w of state.workers) if (!w.dead && Atomics.load(w.control, 0) !== JOB) Atomics.notify(w.control, 0);
}

/** The threads d2l's large kernels use (1: the calling thread alone), as set by {@link setThreads}. */
export function getThreads(): number {
  return (state.threads ??= defaultThreads());
}

/** The threads a kernel splits across now: {@link getThreads}, or 1 while the speed-ups are off. */
export function activeThreads(): number {
  return state.enabled ? getThreads() : 1;
}

/** Lets kernels split across threads, or not (`useSpeedups(false)` turns threads off with the other speed-ups). */
export function useThreads(on: boolean, shared?: unknown): void {
  state.enabled = on;
  if (on && isShared(shared)) startThreads(shared);
}

/**
 * Starts the workers for the thread count on `shared` (the wasm backend's memory; a new memory
 * stops the old one's workers). Workers start here, from useSpeedups and setThreads, never inside
 * a kernel: an interrupt that cut Node's Worker constructor half-way left a MessagePort that later
 * crashed the process (TypeError in MessagePort.onclose), and a kernel is where a cut lands.
 */
export function startThreads(shared: WebAssembly.Memory): void {
  if (state.memory !== shared) {
    settleThreads();
    for (const w of state.workers) stop(w);
    state.workers = [];
    state.memory = shared;
  }
  state.workers = state.workers.filter((w) => !w.dead);
  while (state.workers.length < getThreads() - 1) state.workers.push(start(shared));
}

/**
 * Sets the threads d2l's large kernels (matrix products) use on the wasm backend: `n` ≥ 1, by
 * default `D2L_THREADS` or the cores Node reports (`os.availableParallelism()`). Results are the
 * same floats whatever `n`. Workers beyond a lowered count stay, idle (blocked, no CPU), for a
 * later raise: starting one takes tens of milliseconds.
 */
export function setThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1 || n > 256) throw new Error(`setThreads: n must be an integer from 1 to 256, got ${n}`);
  state.threads = n;
  if (state.memory !== undefined && state.enabled) startThreads(state.memory);
}

/** Whether `m` is a memory workers can share (the wasm backend's, made shared by shared-memory.ts). */
export function isShared(m: unknown): m is WebAssembly.Memory {
  return m instanceof WebAssembly.Memory && m.buffer instanceof SharedArrayBuffer;
}

function stop(w: PoolWorker): void {
  Atomics.store(w.control, 0, EXIT);
  Atomics.notify(w.control, 0);
  void w.worker.terminate();
}

function start(shared: WebAssembly.Memory): PoolWorker {
  const control = new SharedArrayBuffer(4 * (ARGS + MAX_WORDS));
  state.claims ??= new Int32Array(new SharedArrayBuffer(8));
  Atomics.store(state.claims, 1, spinMicros());
  const worker = new Worker(WORKER_SOURCE, { eval: true, execArgv: [], workerData: { memory: shared, control, claims: state.claims.buffer } });
  worker.unref();
  const w: PoolWorker = { worker, control: new Int32Array(control), dead: false, sent: new Set() };
  const drop = (why: string) => {
    if (!w.dead) console.warn(`d2l: a worker thread ${why}; its share runs on the calling thread`);
    w.dead = true;
  };
  worker.on("error", (error) => drop(`failed: ${error instanceof Error ? error.message : String(error)}`));
  worker.on("exit", () => {
    if (Atomics.load(w.control, 0) !== EXIT) drop("exited");
  });
  return w;
}

/**
 * Waits until no worker is computing (each has finished the job it was given), then marks them
 * idle. A job cut off on the calling thread by an interrupt leaves workers running: they finish
 * their range (a product takes milliseconds), and only then may its buffers be freed.
 */
export function settleThreads(): void {
  for (const w of state.workers) settle(w);
}

/**
 * Waits until `w` is not computing and marks it idle; returns false when its job was taken back
 * unstarted (the worker never started: it is marked dead).
 */
function settle(w: PoolWorker): boolean {
  const since = Date.now();
  // a worker computing its last chunk is watched a while first (the spin): this thread, once asleep, wakes late too
  const spin = state.claims === undefined ? 0 : Atomics.load(state.claims, 1);
  if (spin > 0 && Atomics.load(w.control, 0) === RUNNING && (state.calm = (state.calm ?? 0) - 1) < 0) {
    let now = performance.now();
    const until = now + spin / 1000;
    for (let last = now; Atomics.load(w.control, 0) === RUNNING && now < until; last = now) {
      now = performance.now();
      if (now - last > PREEMPTED_MS) {
        state.calm = 32;
        break;
      }
    }
  }
  for (;;) {
    const state = Atomics.load(w.control, 0);
    if (state === DONE) {
      Atomics.store(w.control, 0, IDLE);
      return true;
    }
    if (state !== JOB && state !== RUNNING) return true;
    const waited = Date.now() - since;
    if (state === JOB && Atomics.load(w.control, 4) === 0 && (w.dead || waited > START_WAIT_MS)) {
      if (Atomics.compareExchange(w.control, 0, JOB, IDLE) === JOB) {
        if (!w.dead) console.warn("d2l: a worker thread did not start; its share runs on the calling thread");
        w.dead = true;
        return false;
      }
      continue;
    }
    Atomics.wait(w.control, 0, state, 100);
  }
}

/** How many workers are computing now (for tests: none once {@link settleThreads} returns). */
export function busyThreads(): number {
  return state.workers.filter((w) => [JOB, RUNNING].includes(Atomics.load(w.control, 0))).length;
}

function idOf(module: WebAssembly.Module): number {
  let id = state.kernelIds.get(module);
  if (id === undefined) state.kernelIds.set(module, (id = state.nextId++));
  return id;
}

function send(w: PoolWorker, kernel: SplitKernel, id: number): void {
  if (w.sent.has(id)) return;
  if (w.sent.size >= MAX_KERNELS) {
    w.worker.postMessage({ clear: true });
    w.sent.clear();
  }
  w.worker.postMessage({ id, module: kernel.module, name: kernel.name });
  w.sent.add(id);
}

/**
 * The ranges [start, end) that cut [0, total) into at most `parts` pieces of whole multiples of
 * `grain` (the last piece takes the remainder), as even as that allows; fewer when there is not
 * enough work for each piece to have `minimum` units.
 */
export function splitRanges(total: number, parts: number, grain = 1, minimum = grain): Array<[number, number]> {
  const grains = Math.floor(total / grain);
  const count = Math.max(1, Math.min(parts, grains, Math.floor(total / Math.max(minimum, 1))));
  const ranges: Array<[number, number]> = [];
  for (let p = 0; p < count; p++) {
    const start = Math.floor((grains * p) / count) * grain;
    const end = p === count - 1 ? total : Math.floor((grains * (p + 1)) / count) * grain;
    ranges.push([start, end]);
  }
  return ranges;
}

/** One call of a kernel: the kernel and its i32 arguments (pointers into the shared memory, sizes). */
export type KernelCall = [SplitKernel, number[]];

/**
 * Runs `kernel` on the ranges of `ranges` (from {@link splitRanges}), each called with
 * `argsFor(start, end, part)` (i32 arguments: pointers into the shared memory, sizes; each part
 * its own scratch): part 0 on the calling thread, the others on the workers started for `shared`
 * (startThreads), all at once. See {@link runSplitCalls}.
 */
export function runSplit(
  shared: WebAssembly.Memory, kernel: SplitKernel, ranges: Array<[number, number]>, argsFor: (start: number, end: number, part: number) => number[],
): void {
  runSplitCalls(shared, ranges.length, (part) => [[kernel, argsFor(ranges[part][0], ranges[part][1], part)]]);
}

/**
 * Runs `parts` jobs, job p being the kernel calls `callsFor(p)` made in order (a thread's whole
 * share of an operation, so it needs one hand-off: a product and the scatter of its rows, several
 * chunks of a sum): part 0 on the calling thread, the others on the workers started for `shared`
 * (startThreads), all at once; parts beyond the workers, or all of them where `shared` has none,
 * run on the calling thread. Returns when every part is done. A worker's trap is rethrown here,
 * after every part has finished.
 */
export function runSplitCalls(shared: WebAssembly.Memory, parts: number, callsFor: (part: number) => KernelCall[]): void {
  settleThreads();
  const runHere = (calls: KernelCall[]) => calls.forEach(([kernel, args]) => kernel.call(...args));
  // the workers started for this memory (startThreads); parts beyond them run here, after part 0
  const pool = state.memory === shared ? state.workers.filter((w) => !w.dead).slice(0, parts - 1) : [];
  if (pool.length === 0) {
    for (let part = 0; part < parts; part++) runHere(callsFor(part));
    return;
  }
  state.splits++;
  const jobs = pool.map((w, i) => {
    const calls = callsFor(i + 1);
    const words: number[] = [];
    for (const [kernel, args] of calls) {
      const id = idOf(kernel.module);
      send(w, kernel, id);
      words.push(id, args.length, ...args);
    }
    if (words.length > MAX_WORDS) throw new Error(`runSplit: a job of at most ${MAX_WORDS} words, got ${words.length}`);
    return { calls, words };
  });
  pool.forEach((w, i) => {
    w.control[1] = 0;
    w.control[2] = jobs[i].words.length;
    w.control.set(jobs[i].words, ARGS);
    Atomics.store(w.control, 0, JOB);
    Atomics.notify(w.control, 0);
  });
  let error: unknown;
  try {
    runHere(callsFor(0));
    for (let part = pool.length + 1; part < parts; part++) runHere(callsFor(part));
  } catch (e) {
    error = e;
  }
  // a worker that never started: its job is run here (with its own arguments: its scratch)
  const taken = pool.map((w) => settle(w));
  settleThreads();
  if (error !== undefined) throw error;
  taken.forEach((ok, i) => ok || runHere(jobs[i].calls));
  const failed = pool.filter((w, i) => taken[i] && w.control[3] !== 0).length;
  if (failed > 0) throw new Error(`runSplit: the kernel trapped on ${failed} worker thread(s)`);
}

/**
 * Runs `chunks` pieces of work, chunk c being the kernel calls `callsFor(c, slot)` made in order,
 * on up to `threads` threads: the calling thread and the workers started for `shared` each claim
 * the next chunk not yet claimed until none is left, so a worker that starts late, or shares its
 * core, does fewer chunks instead of keeping the calling thread waiting (it waits only for chunks a
 * worker is computing; a worker that has not begun when the chunks run out is taken back). `slot`
 * says which thread runs the calls (0 the calling thread, below min(threads, chunks)): a thread's
 * scratch. Each chunk is run whole by one thread, so which thread runs it does not change a float.
 * A worker's trap is rethrown here, after every chunk has finished.
 */
export function runChunks(shared: WebAssembly.Memory, chunks: number, threads: number, callsFor: (chunk: number, slot: number) => KernelCall[]): void {
  settleThreads();
  const runHere = (calls: KernelCall[]) => calls.forEach(([kernel, args]) => kernel.call(...args));
  const pool = state.memory === shared && state.claims !== undefined ? state.workers.filter((w) => !w.dead).slice(0, Math.min(threads, chunks) - 1) : [];
  if (pool.length === 0) {
    for (let c = 0; c < chunks; c++) runHere(callsFor(c, 0));
    return;
  }
  state.splits++;
  const claims = state.claims!;
  const jobs = pool.map((w, i) => {
    const words: number[] = [];
    for (let c = 0; c < chunks; c++) {
      const at = words.push(0);
      for (const [kernel, args] of callsFor(c, i + 1)) {
        const id = idOf(kernel.module);
        send(w, kernel, id);
        words.push(id, args.length, ...args);
      }
      words[at - 1] = words.length - at;
    }
    if (words.length > MAX_WORDS) throw new Error(`runChunks: a job of at most ${MAX_WORDS} words, got ${words.length}`);
    return words;
  });
  Atomics.store(claims, 0, 0);
  pool.forEach((w, i) => {
    w.control[1] = chunks;
    w.control[2] = jobs[i].length;
    w.control.set(jobs[i], ARGS);
    Atomics.store(w.control, 0, JOB);
    Atomics.notify(w.control, 0);
  });
  let error: unknown;
  try {
    for (let c = Atomics.add(claims, 0, 1); c < chunks; c = Atomics.add(claims, 0, 1)) runHere(callsFor(c, 0));
  } catch (e) {
    error = e;
  }
  // every chunk is claimed (or the calling thread failed): a worker that has not begun its job never will
  const began = pool.map((w) => Atomics.compareExchange(w.control, 0, JOB, IDLE) !== JOB);
  settleThreads();
  if (error !== undefined) throw error;
  const failed = pool.filter((w, i) => began[i] && w.control[3] !== 0).length;
  if (failed > 0) throw new Error(`runChunks: the kernel trapped on ${failed} worker thread(s)`);
}

/**
 * Ranges [start, end) of [0, total) in whole multiples of `grain`, for {@link runChunks} on `threads`
 * threads: each a 1/(2·threads) share of what is left (guided scheduling: large chunks first, few
 * claims; small ones last, so the threads finish close together), none below `minimum` units (the
 * last takes the remainder); one range for one thread.
 */
export function guidedRanges(total: number, threads: number, grain = 1, minimum = grain): Array<[number, number]> {
  if (threads <= 1) return [[0, total]];
  const ranges: Array<[number, number]> = [];
  const least = Math.max(grain, Math.ceil(minimum / grain) * grain);
  for (let start = 0; start < total;) {
    const share = Math.max(least, Math.ceil((total - start) / (2 * threads) / grain) * grain);
    const end = total - (start + share) < least ? total : start + share;
    ranges.push([start, end]);
    start = end;
  }
  return ranges;
}

/**
 * Runs `kernel` on [0, total) (images, vectors) on up to `threads` threads by {@link runChunks}: guided
 * chunks of whole `grain`s, at least 1/64 of the total each, called with `argsFor(start, end)`.
 */
export function runGuided(
  shared: WebAssembly.Memory, kernel: SplitKernel, total: number, threads: number, argsFor: (start: number, end: number) => number[], grain = 1,
): void {
  const ranges = guidedRanges(total, threads, grain, Math.ceil(total / 64));
  runChunks(shared, ranges.length, threads, (c) => [[kernel, argsFor(ranges[c][0], ranges[c][1])]]);
}

/**
 * Work a split must have to gain, on the 2-vCPU AMD EPYC Zen 5 measured (issue 26): split in halves
 * (runSplit), a hand-off cost LeNet's step 0.05-0.25 ms each (waking a worker, whose vCPU may be
 * idle, and waiting for the last part), so kernels of 0.15-0.3 ms ran slower split (its second
 * pooling, the dense layers' 2.6 M multiply-add products, the second sigmoid's gradient). Memory-bound
 * passes (poolings, elementwise ops and gradients, copies) run as claimed chunks (runChunks), where
 * the calling thread never waits for a worker to wake, and split from this many floats (about 0.1 ms)...
 */
export const SPLIT_PASS_FROM = 1 << 18;
/** ...and products and convolutions from this many multiply-adds (about 0.35 ms at 24 G/s). */
export const SPLIT_PRODUCT_FROM = 1 << 23;

/** Stops every worker (they are unref'd, so this is only needed to free their memory early); useSpeedups(true) or setThreads starts them again. */
export function stopThreads(): void {
  settleThreads();
  for (const w of state.workers) stop(w);
  state.workers = [];
  state.memory = undefined;
}

/** How many kernel calls were split across threads so far (for tests and benchmarks). */
export function splitCount(): number {
  return state.splits;
}
