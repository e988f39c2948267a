/**
 * Micro-benchmark of the wasm matMul fix (lib/src/wasm-matmul.ts) and of a softmax-regression
 * training step (batch 256, W [784, 10]) on wasm before/after and on the cpu backend.
 *
 *   npx tsx scripts/bench-matmul.ts [--part kernels|step|ops|profile|all] [--reps N] [--steps N] [--rounds N]
 *
 * Every number is a median, and the variants being compared run interleaved in the same
 * process, so the ratios hold even when the machine is busy (absolute times are noisy).
 */
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/src/backend";
import { crossEntropy, softmaxCrossEntropy } from "../lib/src/losses";
import { Accumulator, accuracy } from "../lib/src/metrics";
import { softmax } from "../lib/src/models";
import { backward, sgd } from "../lib/src/optim";
import { restoreWasmMatMul, useFastWasmMatMul, type FastMatMulOptions } from "../lib/src/wasm-matmul";

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const PART = arg("part", "all");
const REPS = Number(arg("reps", "200"));
const STEPS = Number(arg("steps", "40"));
const ROUNDS = Number(arg("rounds", "9"));
const BATCH = 256;
const STEPS_PER_EPOCH = Math.ceil(60000 / BATCH);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function fmt(ms: number): string {
  return ms < 10 ? ms.toFixed(3) : ms.toFixed(1);
}

function table(header: string[], rows: (string | number)[][]): void {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, j) => Math.max(...cells.map((r) => r[j].length)));
  for (const [i, r] of cells.entries()) {
    console.log(r.map((c, j) => (j === 0 ? c.padEnd(widths[j]) : c.padStart(widths[j]))).join("  "));
    if (i === 0) console.log(widths.map((w) => "-".repeat(w)).join("  "));
  }
}

/** Seeded uniform values in [lo, hi). */
function uniform(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = lo + ((hi - lo) * s) / 2 ** 32;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Part 1: the matMul kernels, original vs fast, on the chapter's shapes.

type Variant = { name: string; install: () => void };

const VARIANTS: Variant[] = [
  { name: "original", install: () => restoreWasmMatMul() },
  { name: "fast", install: () => useFastWasmMatMul({ rewrite: "auto", transposer: "auto" }) },
  ...(
    [
      ["operands", "read-order"],
      ["operands", "write-order"],
      ["output", "read-order"],
      ["output", "write-order"],
    ] as const
  ).map(([rewrite, transposer]): Variant => {
    const options: FastMatMulOptions = { rewrite, transposer };
    return { name: `${rewrite}/${transposer}`, install: () => useFastWasmMatMul(options) };
  }),
];

interface MatMulCase {
  name: string;
  a: number[];
  b: number[];
  tA: boolean;
  tB: boolean;
}

const CASES: MatMulCase[] = [
  { name: "X·W            256x784·784x10", a: [256, 784], b: [784, 10], tA: false, tB: false },
  { name: "transposeA     (784x256)ᵀ·784x10", a: [784, 256], b: [784, 10], tA: true, tB: false },
  { name: "transposeB     256x784·(10x784)ᵀ", a: [256, 784], b: [10, 784], tA: false, tB: true },
  { name: "both           (784x256)ᵀ·(10x784)ᵀ", a: [784, 256], b: [10, 784], tA: true, tB: true },
  { name: "grad dW=Xᵀ·dY  (256x784)ᵀ·256x10", a: [256, 784], b: [256, 10], tA: true, tB: false },
  { name: "grad dX=dY·Wᵀ  256x10·(784x10)ᵀ", a: [256, 10], b: [784, 10], tA: false, tB: true },
];

function benchKernels(): void {
  console.log(`\n## matMul kernels on wasm: median ms of ${REPS} interleaved repetitions, fresh operands each time\n`);
  const times = CASES.map(() => VARIANTS.map(() => [] as number[]));
  const operands = CASES.map((c, i) => [
    tf.tensor(uniform(c.a[0] * c.a[1], 2 * i + 1), c.a),
    tf.tensor(uniform(c.b[0] * c.b[1], 2 * i + 2), c.b),
  ]);
  for (let rep = 0; rep < REPS + 10; rep++) {
    for (const [ci, c] of CASES.entries()) {
      for (const [vi, v] of VARIANTS.entries()) {
        v.install();
        // Fresh tensors, as in training (a new batch, new weights, a new dy every step):
        // XNNPACK caches its packed right operand per tensor id.
        const [a, b] = operands[ci].map((t) => t.clone());
        const start = performance.now();
        const out = tf.matMul(a, b, c.tA, c.tB);
        const ms = performance.now() - start;
        tf.dispose([a, b, out]);
        if (rep >= 10) times[ci][vi].push(ms);
      }
    }
  }
  tf.dispose(operands.flat());
  useFastWasmMatMul({ rewrite: "auto", transposer: "auto" });
  const med = times.map((row) => row.map(median));
  table(
    ["case", ...VARIANTS.map((v) => v.name), "original/fast"],
    CASES.map((c, ci) => [c.name, ...med[ci].map(fmt), `${(med[ci][0] / med[ci][1]).toFixed(1)}x`]),
  );
}

// ---------------------------------------------------------------------------------------------
// Part 2: one training step of softmax regression, as the library's trainEpochCh3 runs it,
// and variants of it that show where the time goes.

interface StepSetup {
  /** Runs one step on the batch; keeps only parameters and metrics. */
  step: (X: tf.Tensor, y: tf.Tensor) => void;
  dispose: () => void;
}

/** How the step keeps score: as trainEpochCh3 (Accumulator + accuracy), leaner, or not at all. */
type Metrics = "lib" | "lean" | "none";

/**
 * The metrics of one step. "lib": trainEpochCh3's Accumulator.add(lSum, accuracy(yHat, y), n)
 * (about ten small ops). "lean": the step's loss sum and equal(argMax(yHat), y).sum() kept in an
 * array, to be summed once per epoch (three ops).
 */
function keepScore(metrics: Metrics, metric: Accumulator, kept: tf.Tensor[], l: tf.Tensor, yHat: tf.Tensor, y: tf.Tensor): void {
  if (metrics === "lib") {
    const lSum = tf.keep(l.sum());
    kept.push(lSum);
    metric.add(lSum, accuracy(yHat, y), y.shape[0]);
  } else if (metrics === "lean") {
    kept.push(tf.keep(l.sum()), tf.keep(tf.equal(tf.argMax(yHat, 1), y).sum()));
  }
}

/** The scratch model of section 3.6: softmax(XW + b), crossEntropy, d2l's sgd on the summed loss. */
function scratchStep(metrics: Metrics, grads = true): StepSetup {
  const W = tf.variable(tf.randomNormal([784, 10], 0, 0.01), true, "bench_W");
  const b = tf.variable(tf.zeros([10]), true, "bench_b");
  const metric = new Accumulator(3);
  const kept: tf.Tensor[] = [];
  const objective = (X: tf.Tensor, y: tf.Tensor) => {
    const yHat = softmax(tf.matMul(X.reshape([-1, 784]), W).add(b));
    const l = crossEntropy(yHat, y);
    keepScore(metrics, metric, kept, l, yHat, y);
    return l.sum() as tf.Scalar;
  };
  return {
    step: (X, y) =>
      tf.tidy(() => {
        if (!grads) {
          objective(X, y);
          return;
        }
        backward(() => objective(X, y), [W, b]);
        sgd([W, b], 0.1, X.shape[0]);
      }),
    dispose: () => {
      metric.reset();
      tf.dispose([W, b, ...kept]);
    },
  };
}

/**
 * Softmax cross-entropy on logits with the textbook gradient softmax(o) - onehot(y): the same
 * values as the lib's softmaxCrossEntropy, a handful of backward ops instead of logSumExp's
 * (whose max gradient uses a broadcasting Equal that the wasm backend runs in ~0.2 ms).
 */
function softmaxCrossEntropyCustomGrad(logits: tf.Tensor, y: tf.Tensor): tf.Tensor {
  const f = (o: tf.Tensor, save: tf.GradSaveFunc) => {
    // Tensors made here and used by gradFunc must be saved: the forward pass's others are freed.
    const oneHot = tf.oneHot(y, o.shape[1] as number);
    const logProbs = o.sub(tf.logSumExp(o, 1, true));
    save([logProbs, oneHot]);
    return {
      value: logProbs.mul(oneHot).sum(1).neg(),
      gradFunc: (dy: tf.Tensor, [lp, oh]: tf.Tensor[]) => dy.expandDims(1).mul(lp.exp().sub(oh)),
    };
  };
  return tf.customGrad(f as unknown as Parameters<typeof tf.customGrad>[0])(logits);
}

type ConciseLoss = "lib" | "tf.losses" | "customGrad";

/** The concise model of section 3.7: a Dense layer, softmaxCrossEntropy on logits, tf.train.sgd. */
function conciseStep(metrics: Metrics, loss: ConciseLoss = "lib"): StepSetup {
  const model = tf.sequential({ layers: [tf.layers.dense({ units: 10, inputShape: [784] })] });
  const optimizer = tf.train.sgd(0.1);
  const metric = new Accumulator(3);
  const kept: tf.Tensor[] = [];
  const lossFn = (yHat: tf.Tensor, y: tf.Tensor) =>
    loss === "lib"
      ? softmaxCrossEntropy(yHat, y)
      : loss === "customGrad"
        ? softmaxCrossEntropyCustomGrad(yHat, y)
        : tf.losses.softmaxCrossEntropy(tf.oneHot(y, 10), yHat, undefined, undefined, tf.Reduction.NONE);
  return {
    step: (X, y) =>
      tf.tidy(() => {
        optimizer.minimize(() => {
          const yHat = model.apply(X) as tf.Tensor;
          const l = lossFn(yHat, y);
          keepScore(metrics, metric, kept, l, yHat, y);
          return l.mean() as tf.Scalar;
        });
      }),
    dispose: () => {
      metric.reset();
      optimizer.dispose();
      model.dispose();
      tf.dispose(kept);
    },
  };
}

/**
 * A prototype, not in lib: the wasm Identity kernel copies the buffer, and the engine clones
 * (Identity) every tensor a recorded op saves for backprop, X [256, 784] included. The cpu
 * backend's Identity shares the buffer (refcount) instead; this does the same on wasm.
 */
const identity = { original: undefined as tf.KernelConfig | undefined };
function aliasWasmIdentity(on: boolean): void {
  identity.original ??= tf.getKernel(tf.Identity, "wasm");
  const original = identity.original!;
  const alias: tf.KernelFunc = ({ inputs, backend }) => {
    const x = inputs.x as tf.TensorInfo;
    if (x.dtype === "string") return original.kernelFunc({ inputs, backend });
    (backend as unknown as { incRef(id: tf.DataId): void }).incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  };
  tf.unregisterKernel(tf.Identity, "wasm");
  tf.registerKernel({ ...original, kernelFunc: on ? alias : original.kernelFunc });
}

interface StepConfig {
  name: string;
  backend: "wasm" | "cpu";
  /** wasm only: the fast matMul kernels (default) or the original ones. */
  fast?: boolean;
  /** wasm only: the Identity-aliasing prototype. */
  alias?: boolean;
  make: () => StepSetup;
}

const STEP_CONFIGS: StepConfig[] = [
  { name: "wasm original  scratch", backend: "wasm", fast: false, make: () => scratchStep("lib") },
  { name: "wasm fast      scratch", backend: "wasm", make: () => scratchStep("lib") },
  { name: "wasm fast      scratch, lean metrics", backend: "wasm", make: () => scratchStep("lean") },
  { name: "wasm fast      scratch, no metrics", backend: "wasm", make: () => scratchStep("none") },
  { name: "wasm fast      scratch, forward only", backend: "wasm", make: () => scratchStep("none", false) },
  { name: "wasm fast      scratch, aliasing Identity", backend: "wasm", alias: true, make: () => scratchStep("lib") },
  { name: "wasm fast      scratch, lean + aliasing", backend: "wasm", alias: true, make: () => scratchStep("lean") },
  { name: "wasm original  concise", backend: "wasm", fast: false, make: () => conciseStep("lib") },
  { name: "wasm fast      concise", backend: "wasm", make: () => conciseStep("lib") },
  { name: "wasm fast      concise, no metrics", backend: "wasm", make: () => conciseStep("none") },
  { name: "wasm fast      concise, tf.losses.softmaxCrossEntropy", backend: "wasm", make: () => conciseStep("lib", "tf.losses") },
  { name: "wasm fast      concise, customGrad loss", backend: "wasm", make: () => conciseStep("lib", "customGrad") },
  { name: "wasm fast      concise, aliasing Identity", backend: "wasm", alias: true, make: () => conciseStep("lib") },
  {
    name: "wasm fast      concise, customGrad + lean + aliasing",
    backend: "wasm",
    alias: true,
    make: () => conciseStep("lean", "customGrad"),
  },
  { name: "cpu            scratch", backend: "cpu", make: () => scratchStep("lib") },
  { name: "cpu            concise", backend: "cpu", make: () => conciseStep("lib") },
  { name: "cpu            concise, customGrad loss", backend: "cpu", make: () => conciseStep("lib", "customGrad") },
];

async function use(config: { backend: "wasm" | "cpu"; fast?: boolean; alias?: boolean }): Promise<void> {
  if (tf.getBackend() !== config.backend) {
    await tf.setBackend(config.backend);
    await tf.ready();
    if (config.backend === "cpu") (tf.backend() as unknown as { firstUse?: boolean }).firstUse = false;
  }
  if (config.backend === "wasm") {
    if (config.fast === false) restoreWasmMatMul();
    else useFastWasmMatMul({ rewrite: "auto", transposer: "auto" });
    aliasWasmIdentity(config.alias === true);
  }
}

/** Fresh batches (as the data loader makes them: new tensors from a reused buffer). */
function makeBatch(i: number): [tf.Tensor, tf.Tensor] {
  const X = tf.tensor2d(uniform(BATCH * 784, 100 + i, 0, 1), [BATCH, 784]);
  const labels = Int32Array.from(uniform(BATCH, 200 + i, 0, 10), (v) => Math.floor(v));
  return [X, tf.tensor1d(labels, "int32")];
}

async function benchSteps(): Promise<void> {
  console.log(`\n## training step, batch ${BATCH}: median over ${ROUNDS} interleaved rounds of ${STEPS} steps\n`);
  const pool = Array.from({ length: 8 }, (_, i) => makeBatch(i));
  const perStep = STEP_CONFIGS.map(() => [] as number[]);
  for (let round = 0; round < ROUNDS + 1; round++) {
    for (const [ci, config] of STEP_CONFIGS.entries()) {
      await use(config);
      const setup = config.make();
      const batches = pool.map(([X, y]) => [X.clone(), y.clone()] as const);
      setup.step(batches[0][0], batches[0][1]); // warm-up (kernel setup, XNNPACK operators)
      const tensors = tf.memory().numTensors;
      const start = performance.now();
      for (let s = 0; s < STEPS; s++) {
        const [X, y] = batches[s % batches.length];
        setup.step(X, y);
      }
      const ms = (performance.now() - start) / STEPS;
      const leaked = tf.memory().numTensors - tensors;
      setup.dispose();
      tf.dispose(batches.flat());
      // The metrics keep up to two scalars per step, as trainEpochCh3 keeps its step losses.
      if (leaked > 2 * STEPS) throw new Error(`${config.name}: ${leaked} tensors left after ${STEPS} steps`);
      if (round > 0) perStep[ci].push(ms);
    }
  }
  await use({ backend: "wasm" });
  tf.dispose(pool.flat());
  const base = new Map<string, number>();
  table(
    ["configuration", "ms/step", `s/epoch (${STEPS_PER_EPOCH} steps)`, "vs wasm original"],
    STEP_CONFIGS.map((c, ci) => {
      const ms = median(perStep[ci]);
      const model = c.name.includes("scratch") ? "scratch" : "concise";
      if (c.backend === "wasm" && c.fast === false) base.set(model, ms);
      const ref = base.get(model);
      return [c.name, fmt(ms), ((ms * STEPS_PER_EPOCH) / 1000).toFixed(3), ref ? `${(ref / ms).toFixed(2)}x` : ""];
    }),
  );
}

// ---------------------------------------------------------------------------------------------
// Part 3: the step's ops one by one, at the step's shapes (median µs of one call, dispatch included).

function stepOps(): { ops: [string, () => tf.TensorContainer][]; dispose: () => void } {
  const Z = tf.tensor2d(uniform(BATCH * 10, 1), [BATCH, 10]);
  const Z1 = tf.tensor2d(uniform(BATCH, 2), [BATCH, 1]);
  const v = tf.tensor1d(uniform(BATCH, 3, 0.1, 1));
  const b = tf.tensor1d(uniform(10, 4));
  const y = tf.tensor1d(Int32Array.from(uniform(BATCH, 5, 0, 10), Math.floor), "int32");
  const X = tf.tensor2d(uniform(BATCH * 784, 6, 0, 1), [BATCH, 784]);
  const W = tf.tensor2d(uniform(784 * 10, 7), [784, 10]);
  const [s1, s2] = [tf.scalar(2), tf.scalar(3)];
  const rowStarts = tf.range(0, BATCH * 10, 10, "int32");
  const ops: [string, () => tf.TensorContainer][] = [
    ["add scalar+scalar (dispatch overhead)", () => tf.add(s1, s2)],
    ["matMul X·W [256,784]·[784,10]", () => tf.matMul(X, W)],
    ["add [256,10]+[10] (bias)", () => tf.add(Z, b)],
    ["exp [256,10]", () => tf.exp(Z)],
    ["sum(1, keepDims) [256,10]", () => tf.sum(Z, 1, true)],
    ["div [256,10]/[256,1]", () => tf.div(Z, Z1)],
    ["mul [256,10]*[256,10]", () => tf.mul(Z, Z)],
    ["mul [256,10]*[256,1]", () => tf.mul(Z, Z1)],
    ["sub [256,10]-[256,1]", () => tf.sub(Z, Z1)],
    ["equal [256,10]==[256,1] (max grad)", () => tf.equal(Z, Z1)],
    ["max(1, keepDims) [256,10]", () => tf.max(Z, 1, true)],
    ["log [256]", () => tf.log(v)],
    ["neg [256]", () => tf.neg(v)],
    ["sum [256]", () => tf.sum(v)],
    ["oneHot(y, 10)", () => tf.oneHot(y, 10)],
    ["pick true class: oneHot+mul+sum(1)", () => tf.tidy(() => tf.mul(Z, tf.oneHot(y, 10)).sum(1))],
    ["pick true class: gather(flat, 10i+y)", () => tf.tidy(() => tf.gather(Z.reshape([-1]), rowStarts.add(y)))],
    ["softmax (lib: exp, sum, div)", () => softmax(Z)],
    ["tf.softmax [256,10]", () => tf.softmax(Z)],
    ["logSumExp(1, keepDims) [256,10]", () => tf.logSumExp(Z, 1, true)],
    ["argMax(1) [256,10]", () => tf.argMax(Z, 1)],
    ["cast int32->float32 [256]", () => tf.cast(y, "float32")],
    ["clone [256,784] (engine saves X)", () => tf.clone(X)],
    ["clone [256,10]", () => tf.clone(Z)],
    ["sub [784,10]-[784,10] (sgd)", () => tf.sub(W, W)],
    ["mul [784,10]*scalar (sgd)", () => tf.mul(W, s1)],
  ];
  return { ops, dispose: () => tf.dispose([Z, Z1, v, b, y, X, W, s1, s2, rowStarts]) };
}

async function benchOps(): Promise<void> {
  console.log(`\n## the step's ops one at a time: median µs of ${REPS} calls (dispatch included)\n`);
  const backends = ["wasm", "cpu"] as const;
  let names: string[] = [];
  const medians: number[][] = [];
  for (const backend of backends) {
    await use({ backend });
    const { ops, dispose } = stepOps();
    names = ops.map(([name]) => name);
    const times = ops.map(() => [] as number[]);
    for (let rep = 0; rep < REPS + 20; rep++) {
      for (const [oi, [, op]] of ops.entries()) {
        const start = performance.now();
        const out = op();
        const ms = performance.now() - start;
        tf.dispose(out);
        if (rep >= 20) times[oi].push(ms);
      }
    }
    dispose();
    medians.push(times.map(median));
  }
  await use({ backend: "wasm" });
  table(
    ["op", ...backends.map((b) => `${b} µs`)],
    names.map((name, oi) => [name, ...medians.map((m) => (1000 * m[oi]).toFixed(1))]),
  );
}

// ---------------------------------------------------------------------------------------------
// Part 4: where a step's time goes, by kernel (tf.profile; kernels are synchronous on wasm and
// cpu, so kernelTimeMs is their run time, but profiling inflates it: use it for shares).

async function profileStep(config: StepConfig): Promise<void> {
  await use(config);
  const setup = config.make();
  const batches = Array.from({ length: 4 }, (_, i) => makeBatch(i));
  setup.step(batches[0][0], batches[0][1]);
  const steps = 20;
  let wall = 0;
  const info = await tf.profile(() => {
    const start = performance.now();
    for (let s = 0; s < steps; s++) setup.step(batches[s % 4][0], batches[s % 4][1]);
    wall = performance.now() - start;
  });
  setup.dispose();
  tf.dispose(batches.flat());
  const byName = new Map<string, { ms: number; calls: number; shapes: Set<string> }>();
  for (const k of info.kernels) {
    // A customGrad op (fusedMatMul__op) is profiled around the kernels it runs: skip it.
    if (k.name.endsWith("__op")) continue;
    const e = byName.get(k.name) ?? { ms: 0, calls: 0, shapes: new Set<string>() };
    e.ms += Number(k.kernelTimeMs);
    e.calls += 1;
    e.shapes.add(k.inputShapes.map((s) => `[${s}]`).join(""));
    byName.set(k.name, e);
  }
  const calls = [...byName.values()].reduce((s, e) => s + e.calls, 0);
  const kernelMs = [...byName.values()].reduce((s, e) => s + e.ms, 0);
  console.log(
    `\n### ${config.name}: ${calls / steps} kernel calls/step, ` +
      `kernels ${fmt(kernelMs / steps)} ms/step of ${fmt(wall / steps)} ms/step wall under the profiler\n`,
  );
  const rows = [...byName.entries()].sort((x, y) => y[1].ms - x[1].ms);
  table(
    ["kernel", "ms/step", "share", "calls/step", "input shapes"],
    rows.map(([name, e]) => [
      name,
      fmt(e.ms / steps),
      `${((100 * e.ms) / kernelMs).toFixed(0)}%`,
      String(e.calls / steps),
      [...e.shapes].slice(0, 3).join(" "),
    ]),
  );
}

async function main(): Promise<void> {
  await initBackend("wasm", { quiet: true });
  console.log(`tfjs ${tf.version_core}, backend wasm (plus cpu for comparison), ${new Date().toISOString()}`);
  if (PART === "kernels" || PART === "all") benchKernels();
  if (PART === "step" || PART === "all") await benchSteps();
  if (PART === "ops" || PART === "all") await benchOps();
  if (PART === "profile" || PART === "all") {
    console.log("\n## kernel breakdown of a training step (20 steps under tf.profile)");
    const names = ["wasm fast      scratch", "wasm fast      concise", "cpu            scratch", "cpu            concise"];
    for (const c of STEP_CONFIGS.filter((c) => names.includes(c.name))) await profileStep(c);
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
