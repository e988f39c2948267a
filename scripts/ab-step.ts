/**
 * A/B of one speed-up in a training step, in one process: trains one of the bench's models
 * (scripts/bench-models.ts) with trainEpochCh3, alternating blocks of --steps steps with the
 * speed-up off (A) and on (B), and prints the CPU time (process.cpuUsage) and wall time a step of
 * each, median and best over --rounds blocks. Alternating in one process keeps a busy machine's
 * swings out of the ratio; the figures are still preliminary there.
 *
 *   npx tsx scripts/ab-step.ts --model scratch --toggle softmax [--steps 100] [--rounds 15] [--threads N]
 *
 * Toggles: gradient (skinny-gradient.ts's Xᵀ·dY against the broadcast kernel), softmax
 * (fused-softmax.ts against the ops), exp (wasm-exp.ts against the backend's Exp), loops
 * (row-loops.ts against the fused kernels' JavaScript loops), dense (fused-matmul-grad.ts's
 * D2lDenseLinear against matMul then add), layers (sequential-call.ts's direct layer calls against
 * Layer.apply), interrupt (interrupt.ts's engine wrappers against none: their cost), relugrad
 * (wasm-relu-grad.ts), sgdsplit (sgd-step.ts's split, with --threads 2), claimrows
 * (packed-matmul.ts's claimed chunks of rows against halves, with --threads 2), mlpfuse (relugrad and dense),
 * all (the first five), none (A and B the same: the noise), spin (idle workers watching --spin µs
 * for the next job, against sleeping at once; with --threads 2), threads (--threads N threads against
 * one), scalars (lean-scalar-ops.ts), rowsimd (row-loops.ts's f32x4 passes against one float a step), sce (both),
 * gradients (lean-gradients.ts's Engine.gradients against tfjs's), endscope
 * (lean-end-scope.ts's Engine.endScope), engine (both). It also prints the calling thread's own CPU time a step (Linux's schedstat).
 */
import { parseArgs } from "node:util";
import { cpus } from "node:os";
import { readFileSync } from "node:fs";
import * as d2l from "../lib/src/index";
import { useFastWasmMatMul } from "../lib/src/engine/wasm-matmul";
import { useFusedSoftmax } from "../lib/src/engine/fused-softmax";
import { restoreWasmExp, useSimdWasmExp } from "../lib/src/engine/wasm-exp";
import { useVectorRowPasses, useWasmRowLoops } from "../lib/src/engine/row-loops";
import { useDenseKernel } from "../lib/src/engine/fused-matmul-grad";
import { useSplitSgdStep } from "../lib/src/engine/sgd-step";
import { useClaimedRows } from "../lib/src/engine/packed-matmul";
import { restoreReluGrad, useOneKernelReluGrad } from "../lib/src/engine/wasm-relu-grad";
import { useDirectLayerCalls } from "../lib/src/engine/sequential-call";
import { useInterruptRecovery } from "../lib/src/engine/interrupt";
import { setSpin } from "../lib/src/engine/thread-pool";
import { useLeanScalarOps } from "../lib/src/engine/lean-scalar-ops";
import { restoreGradients, useLeanGradients } from "../lib/src/engine/lean-gradients";
import { restoreEndScope, useLeanEndScope } from "../lib/src/engine/lean-end-scope";
import { DEFAULTS, MODELS, type Model, makeJob } from "./bench-models";

const TOGGLES: Record<string, (on: boolean) => void> = {
  gradient: (on) => void useFastWasmMatMul({ skinnyGradient: on }),
  softmax: (on) => useFusedSoftmax(on),
  exp: (on) => void (on ? useSimdWasmExp() : restoreWasmExp()),
  loops: (on) => useWasmRowLoops(on),
  dense: (on) => useDenseKernel(on),
  /** All five above (issue 23's softmax work of 6 December 2026). */
  all: (on) => ["gradient", "softmax", "exp", "loops", "dense"].forEach((name) => TOGGLES[name](on)),
  /** sequential-call.ts's direct layer calls against Layer.apply (concise and mlp). */
  layers: (on) => useDirectLayerCalls(on),
  /** interrupt.ts's wrappers of tfjs's engine (a fix, always on: this measures what it costs). */
  interrupt: (on) => useInterruptRecovery(on),
  none: () => {},
  /** sgd-step.ts's split of W1's step across threads (off by default; needs --threads 2). */
  sgdsplit: (on) => useSplitSgdStep(on),
  /** packed-matmul.ts's rows of a large product (op(B) packed once) as chunks the threads claim against halves (with --threads 2). */
  claimrows: (on) => useClaimedRows(on),
  /** packed-matmul.ts's waking the workers of a split product before it packs op(B), to watch --spin µs (with --threads 2). */
  /** wasm-relu-grad.ts's one-kernel ReLU gradient against tfjs's three ops. */
  relugrad: (on) => void (on ? useOneKernelReluGrad() : restoreReluGrad()),
  /** The MLP work of issues 23/26 (6 December 2026): relugrad and dense (4.3's relu layer on D2lDenseLinear). */
  mlpfuse: (on) => ["relugrad", "dense"].forEach((name) => TOGGLES[name](on)),
  /** thread-pool.ts's idle workers watching --spin µs for their next job against sleeping at once (run with --threads 2). */
  spin: (on) => setSpin(on ? spinMicros : 0),
  /** --threads threads (B) against one (A): the split's gain, both in one process. */
  threads: (on) => d2l.setThreads(on ? threadCount : 1),
  /** lean-scalar-ops.ts's sum of one value and same-dtype cast without a kernel (the Accumulator's, every step). */
  scalars: (on) => useLeanScalarOps(on),
  /** row-loops.ts's elementwise passes 4 floats a step against one (the fused softmax, cross-entropy and softmax-CE kernels). */
  rowsimd: (on) => useVectorRowPasses(on),
  /** The softmax-CE work of 6 December 2026 (evening): scalars and rowsimd. */
  sce: (on) => ["scalars", "rowsimd"].forEach((name) => TOGGLES[name](on)),
  /** lean-gradients.ts's port of Engine.gradients (Sets, no zeros for the fused kernels' unused outputs) against tfjs's. */
  gradients: (on) => void (on ? useLeanGradients() : restoreGradients()),
  /** lean-end-scope.ts's endScope for one tensor or none against tfjs's. */
  endscope: (on) => void (on ? useLeanEndScope() : restoreEndScope()),
  /** This session's engine work (issues 23/26): gradients and endscope. */
  engine: (on) => ["gradients", "endscope"].forEach((name) => TOGGLES[name](on)),
};

const { values: v } = parseArgs({
  options: {
    model: { type: "string", default: "scratch" },
    toggle: { type: "string", default: "none" },
    steps: { type: "string", default: "100" },
    rounds: { type: "string", default: "15" },
    /** Threads both sides run on (the toggle `threads`: B's count, A runs one). */
    threads: { type: "string", default: "1" },
    /** The toggle `spin`: B's watch in µs (A's is 0). */
    spin: { type: "string", default: "200" },
  },
});
if (!(MODELS as readonly string[]).includes(v.model!)) throw new Error(`--model must be one of ${MODELS.join(", ")}; got "${v.model}"`);
const toggle = TOGGLES[v.toggle!];
if (toggle === undefined) throw new Error(`--toggle must be one of ${Object.keys(TOGGLES).join(", ")}; got "${v.toggle}"`);
const steps = Number(v.steps);
const rounds = Number(v.rounds);
if (!Number.isInteger(steps) || steps < 1) throw new Error(`--steps must be a positive integer; got "${v.steps}"`);
if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds must be a positive integer; got "${v.rounds}"`);
const model = v.model as Model;
const threadCount = Number(v.threads);
if (!Number.isInteger(threadCount) || threadCount < 1) throw new Error(`--threads must be a positive integer; got "${v.threads}"`);
const spinMicros = Number(v.spin);

await d2l.initBackend("wasm", { quiet: true });
d2l.setThreads(threadCount);
const [trainIter] = await d2l.loadDataFashionMnist(DEFAULTS[model].batchSize);
const job = makeJob(model, DEFAULTS[model].lr);
/** The next n batches, going round the epoch as often as needed. */
const batches = (n: number): Iterable<d2l.Batch> => ({
  *[Symbol.iterator]() {
    for (let i = 0; ;) {
      for (const batch of trainIter) {
        if (i++ >= n) return;
        yield batch;
      }
    }
  },
});
/** The calling thread's CPU milliseconds (Linux schedstat): the step's own, without V8's background compiler and GC threads. */
const mainMs = () => Number(readFileSync(`/proc/self/task/${process.pid}/schedstat`, "utf8").split(" ")[0]) / 1e6;
const time = (on: boolean) => {
  toggle(on);
  const c0 = process.cpuUsage();
  const m0 = mainMs();
  const t0 = performance.now();
  d2l.trainEpochCh3(job.net, batches(steps), job.loss, job.updater);
  const wall = (performance.now() - t0) / steps;
  const main = (mainMs() - m0) / steps;
  const c = process.cpuUsage(c0);
  return { cpu: (c.user + c.system) / 1000 / steps, wall, main };
};
for (let i = 0; i < 3; i++) [false, true].forEach(time); // warm up both
type Run = { cpu: number; wall: number; main: number };
const runs = { A: [] as Run[], B: [] as Run[] };
for (let r = 0; r < rounds; r++) {
  const order = r % 2 === 0 ? [false, true] : [true, false];
  for (const on of order) runs[on ? "B" : "A"].push(time(on));
}
toggle(true);
job.dispose();
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
console.log(`${model}, toggle ${v.toggle}, ${v.threads} thread(s): ms a step, median (best) of ${rounds} blocks of ${steps} steps, ${cpus()[0]?.model}`);
for (const key of ["A", "B"] as const) {
  const cpu = runs[key].map((x) => x.cpu);
  const wall = runs[key].map((x) => x.wall);
  const main = runs[key].map((x) => x.main);
  console.log(`${key} (${key === "A" ? "off" : "on"}): CPU ${median(cpu).toFixed(3)} (${Math.min(...cpu).toFixed(3)})  calling thread ${median(main).toFixed(3)} (${Math.min(...main).toFixed(3)})  wall ${median(wall).toFixed(3)} (${Math.min(...wall).toFixed(3)})`);
}
// each round's B against its own A (run next to it): the median of these ratios shrugs off the swings of a busy machine
const paired = runs.B.map((b, r) => b.cpu / runs.A[r].cpu);
const pairedMain = runs.B.map((b, r) => b.main / runs.A[r].main);
const pairedWall = runs.B.map((b, r) => b.wall / runs.A[r].wall);
console.log(`B/A paired medians: calling thread ${median(pairedMain).toFixed(3)}, wall ${median(pairedWall).toFixed(3)}`);
console.log(`B/A CPU: ratio of medians ${(median(runs.B.map((x) => x.cpu)) / median(runs.A.map((x) => x.cpu))).toFixed(3)}, median of paired ratios ${median(paired).toFixed(3)}`);
