import * as os from "node:os";
import { Worker } from "node:worker_threads";

/**
 * Worker threads that run d2l's wasm kernels on the wasm backend's shared memory
 * (shared-memory.ts), so a large product uses every core: `runSplit` cuts a kernel's output into
 * ranges [start, end) of an outer dimension (rows of a product), the calling thread computes the
 * first range and each worker one other, and it returns once all are done. Each output element is
 * computed by exactly one thread, by the same code and in the same order as on one thread, so the
 * floats do not depend on the thread count. Not in tfjs: its threaded build does not run in Node
 * (see README.md), and it would thread only XNNPACK, which d2l's kernels replace.
 *
 * Hand-off: one SharedArrayBuffer word per worker (idle → job → done), Atomics.wait / notify on
 * both sides; a worker receives the compiled WebAssembly.Module of a kernel once, by message, and
 * instantiates it on the shared memory. A kernel interrupt (tslab's breakOnSigint) can cut the
 * calling thread off while workers still compute: {@link settleThreads} (called by interrupt.ts
 * before it frees anything, and before every split) waits for them, so no worker writes into
 * memory after the repair frees it. Workers are unref'd: they never keep the process alive.
 */

/**
 * What a worker runs (CommonJS: workers start with no execArgv, so no loader or input type of the
 * parent's applies): says it is alive, waits for a job, claims it, instantiates kernels it has not
 * seen, calls the kernel, reports.
 */
const WORKER_SOURCE = `
const { parentPort, workerData, receiveMessageOnPort } = require("node:worker_threads");
const { memory, control } = workerData;
const ctl = new Int32Array(control);
const kernels = new Map();
Atomics.store(ctl, 4, 1);
for (;;) {
  let state = Atomics.load(ctl, 0);
  while (state !== ${1} && state !== ${3}) { Atomics.wait(ctl, 0, state); state = Atomics.load(ctl, 0); }
  if (state === ${3}) break;
  if (Atomics.compareExchange(ctl, 0, ${1}, ${4}) !== ${1}) continue;
  // the calls, one after another: [kernel id, argument count, arguments...] each
  const words = ctl.slice(${5}, ${5} + ctl[2]);
  for (let i = 0; i < words.length; i += 2 + words[i + 1]) {
    while (!kernels.has(words[i])) {
      const received = receiveMessageOnPort(parentPort);
      if (received === undefined) { Atomics.wait(ctl, 0, state, 1); continue; }
      const { clear, id: newId, module, name } = received.message;
      if (clear) kernels.clear();
      else kernels.set(newId, new WebAssembly.Instance(module, { e: { m: memory } }).exports[name]);
    }
  }
  let failed = 0;
  try {
    for (let i = 0; i < words.length; i += 2 + words[i + 1]) kernels.get(words[i])(...words.subarray(i + 2, i + 2 + words[i + 1]));
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
 * Control words: state, (unused), the job's word count, failed, alive (set once the worker runs),
 * then the job: its kernel calls in order, each [kernel id, argument count, arguments (i32)...].
 */
const ARGS = 5;
const MAX_WORDS = 1019;
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
}

const STATE_KEY = Symbol.for("d2l.threadPool");
const state: PoolState = ((globalThis as unknown as Record<symbol, PoolState | undefined>)[STATE_KEY] ??= {
  enabled: true, workers: [], kernelIds: new WeakMap(), nextId: 0, splits: 0,
});

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
  const worker = new Worker(WORKER_SOURCE, { eval: true, execArgv: [], workerData: { memory: shared, control } });
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
 * Work a split must have to gain, on the 2-vCPU AMD EPYC Zen 5 measured (issue 26): a hand-off cost
 * LeNet's step 0.05-0.25 ms each (waking a worker, whose vCPU may be idle, and waiting for the
 * last part), so kernels of 0.15-0.3 ms ran slower split (its second pooling, the dense layers'
 * 2.6 M multiply-add products, the second sigmoid's gradient) and those from about 0.4 ms gained.
 * Memory-bound passes (poolings, elementwise gradients, copies) split from this many floats
 * written (about 0.4 ms)...
 */
export const SPLIT_PASS_FROM = 1 << 20;
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
