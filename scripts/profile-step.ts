/**
 * Where a training step goes: trains one of the bench's models (scripts/bench-models.ts) for a few
 * batches with trainEpochCh3, timing every kernel the backend runs, and prints a table of kernels
 * (by name and input shapes: calls a step, milliseconds a step) and what is left for tfjs's engine,
 * the tape, the optimizer and d2l's own JavaScript (the step's time minus its kernels').
 *
 *   npx tsx scripts/profile-step.ts --model lenet [--steps 20] [--warmup 3] [--threads N] [--backend wasm] [--cpu | --main]
 *
 * Kernels are timed in wall-clock time (performance.now around each kernel function; a kernel split
 * across threads counts its wall time), so run it on a quiet machine; the step's CPU time (all
 * threads, process.cpuUsage) is printed beside its wall time. Timing adds ~1 µs a kernel. `--cpu` times
 * the kernels in CPU time instead (process.cpuUsage: every thread's), which a busy machine distorts less.
 * `--cpu-prof FILE` writes a V8 CPU profile of the calling thread over the timed steps (kernel timing
 * off: `--steps` adds no wrapper time to it).
 */
import * as tf from "@tensorflow/tfjs";
import { parseArgs } from "node:util";
import { cpus } from "node:os";
import { readFileSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import * as d2l from "../lib/src/index";
import { DEFAULTS, MODELS, type Model, makeJob } from "./bench-models";

const { values: v } = parseArgs({
  options: {
    model: { type: "string", default: "lenet" },
    steps: { type: "string", default: "20" },
    warmup: { type: "string", default: "3" },
    threads: { type: "string" },
    backend: { type: "string", default: "wasm" },
    /** Time each kernel in CPU time of the whole process (all threads) instead of wall time: for a busy machine. */
    cpu: { type: "boolean", default: false },
    /**
     * Time each kernel, and the step, in the calling thread's own CPU time (Linux's
     * /proc/self/task/<pid>/schedstat): what a split leaves on it, whether or not the workers find
     * a free core (a busy machine barely changes it; the wait for a worker is not counted).
     */
    main: { type: "boolean", default: false },
    /** Write a V8 CPU profile of the calling thread over the timed steps to this file (.cpuprofile, for Chrome's DevTools). */
    "cpu-prof": { type: "string" },
  },
});
if (v.cpu && v.main) throw new Error("--cpu and --main are exclusive");
if (!(MODELS as readonly string[]).includes(v.model!)) {
  throw new Error(`--model must be one of ${MODELS.join(", ")}; got "${v.model}"`);
}
const model = v.model as Model;
const BACKENDS = ["wasm", "cpu", "tensorflow"] as const;
if (!(BACKENDS as readonly string[]).includes(v.backend!)) {
  throw new Error(`--backend must be one of ${BACKENDS.join(", ")}; got "${v.backend}"`);
}
const backendChoice = v.backend as (typeof BACKENDS)[number];
const steps = Number(v.steps);
const warmup = Number(v.warmup);
if (!Number.isInteger(steps) || steps < 1) throw new Error(`--steps must be a positive integer; got "${v.steps}"`);
if (!Number.isInteger(warmup) || warmup < 0) throw new Error(`--warmup must be an integer >= 0; got "${v.warmup}"`);

interface KernelTally {
  calls: number;
  ms: number;
}
const tallies = new Map<string, KernelTally>();
/** Milliseconds: wall-clock, or with --cpu the process's CPU time (every thread's; on a busy machine the truer figure). */
const schedstat = `/proc/self/task/${process.pid}/schedstat`;
const threadCpuUsage = (process as { threadCpuUsage?: () => NodeJS.CpuUsage }).threadCpuUsage;
/**
 * The calling thread's CPU milliseconds so far: Node ≥ 23.9's process.threadCpuUsage, else Linux's
 * schedstat. Both are brought up to date only at the scheduler's ticks and when the thread sleeps or is
 * preempted (threadCpuUsage is getrusage(RUSAGE_THREAD): over 2,000 spins of 100 µs, 94% read 0 and
 * the rest ~3.75 ms, mean 105 µs; Node 24, this Linux): good for a step, a sample for one kernel, and
 * biased towards kernels that sleep (a split product waiting for a worker is charged the thread's
 * time since the last tick). process.cpuUsage (`--cpu`, every thread's) is exact.
 */
const mainThreadMs = threadCpuUsage
  ? () => {
      const { user, system } = threadCpuUsage.call(process);
      return (user + system) / 1000;
    }
  : () => Number(readFileSync(schedstat, "utf8").split(" ")[0]) / 1e6;
const clock = v.cpu
  ? () => {
      const { user, system } = process.cpuUsage();
      return (user + system) / 1000;
    }
  : v.main
    ? mainThreadMs
    : () => performance.now();
let timing = false;

/** Wraps every kernel registered for `backend` in place (the registry hands out the same config object). */
function timeKernels(backend: string): void {
  for (const config of tf.getKernelsForBackend(backend)) {
    const registered = tf.getKernel(config.kernelName, backend)!;
    const inner = registered.kernelFunc;
    registered.kernelFunc = (args) => {
      if (!timing) return inner(args);
      const t0 = clock();
      const out = inner(args);
      const ms = clock() - t0;
      const shapes = Object.values(args.inputs)
        .map((t) => (t === undefined ? "-" : `[${(t as tf.TensorInfo).shape.join(",")}]`))
        .join(" ");
      const key = `${config.kernelName} ${shapes}`;
      const tally = tallies.get(key) ?? { calls: 0, ms: 0 };
      tally.calls += 1;
      tally.ms += ms;
      tallies.set(key, tally);
      return out;
    };
    // d2l's replacements mark their kernel function (wasm-kernels.ts) and read the mark back: keep it
    Object.assign(registered.kernelFunc, inner);
  }
}

async function main(): Promise<void> {
  const { name: backend } = await d2l.initBackend(backendChoice, { quiet: true });
  if (v.threads !== undefined) d2l.setThreads(Number(v.threads));
  const { lr, batchSize } = DEFAULTS[model];
  const [trainIter] = await d2l.loadDataFashionMnist(batchSize);
  const job = makeJob(model, lr);
  const firstBatches = (n: number): Iterable<d2l.Batch> => ({
    *[Symbol.iterator]() {
      // round the epoch as often as needed (a profile wants more steps than an epoch has)
      for (let i = 0; ; ) {
        for (const batch of trainIter) {
          if (i++ >= n) return;
          yield batch;
        }
      }
    },
  });
  if (v["cpu-prof"] === undefined) timeKernels(backend); // a profile shows the kernels without the wrapper
  d2l.trainEpochCh3(job.net, firstBatches(warmup), job.loss, job.updater);
  timing = v["cpu-prof"] === undefined;
  const session = v["cpu-prof"] === undefined ? undefined : new Session();
  if (session !== undefined) {
    session.connect();
    await session.post("Profiler.enable");
    await session.post("Profiler.setSamplingInterval", { interval: 100 });
    await session.post("Profiler.start");
  }
  const cpu0 = process.cpuUsage();
  const main0 = v.main ? mainThreadMs() : 0;
  const t0 = performance.now();
  d2l.trainEpochCh3(job.net, firstBatches(steps), job.loss, job.updater);
  const wall = (performance.now() - t0) / steps;
  const cpuUsed = process.cpuUsage(cpu0);
  const cpu = (cpuUsed.user + cpuUsed.system) / 1000 / steps;
  const main = v.main ? (mainThreadMs() - main0) / steps : 0;
  if (session !== undefined) {
    const { profile } = await session.post("Profiler.stop");
    writeFileSync(v["cpu-prof"]!, JSON.stringify(profile));
    session.disconnect();
  }
  timing = false;
  job.dispose();

  const rows = [...tallies.entries()].sort((a, b) => b[1].ms - a[1].ms);
  const kernelMs = rows.reduce((sum, [, t]) => sum + t.ms, 0) / steps;
  const calls = rows.reduce((sum, [, t]) => sum + t.calls, 0) / steps;
  console.log(`${model} on ${backend}, batch ${batchSize}, ${d2l.getThreads()} thread(s), ${cpus()[0]?.model ?? "unknown CPU"}`);
  const step = v.cpu ? cpu : v.main ? main : wall;
  console.log(`a step: ${wall.toFixed(2)} ms wall, ${cpu.toFixed(2)} ms CPU${v.main ? `, ${main.toFixed(2)} ms on the calling thread` : ""}; ` +
    `kernels ${kernelMs.toFixed(2)} ms ${v.cpu ? "CPU" : v.main ? "calling thread" : "wall"} in ${calls} calls; ` +
    `the rest (engine, tape, optimizer, d2l) ${(step - kernelMs).toFixed(2)} ms`);
  console.log("ms/step  calls/step  kernel and input shapes");
  for (const [key, t] of rows) {
    console.log(`${(t.ms / steps).toFixed(3).padStart(7)}  ${(t.calls / steps).toFixed(1).padStart(10)}  ${key}`);
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
