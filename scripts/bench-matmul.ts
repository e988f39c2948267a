/**
 * Micro-benchmark of the wasm matMul fix (lib/src/wasm-matmul.ts) and of a softmax-regression
 * training step (batch 256, W [784, 10]) on wasm before/after and on the cpu backend.
 *
 *   npx tsx scripts/bench-matmul.ts [--part kernels|step|profile|all] [--reps N] [--steps N] [--rounds N]
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
// Part 2: one training step of softmax regression, as the library's trainEpochCh3 runs it.

interface StepSetup {
  /** Runs one step on the batch; returns nothing, keeps only parameters and metrics. */
  step: (X: tf.Tensor, y: tf.Tensor) => void;
  dispose: () => void;
}

/** The scratch model of section 3.6: softmax(XW + b), crossEntropy, d2l's sgd on the summed loss. */
function scratchStep(withMetrics = true): StepSetup {
  const W = tf.variable(tf.randomNormal([784, 10], 0, 0.01), true, "bench_W");
  const b = tf.variable(tf.zeros([10]), true, "bench_b");
  const metric = new Accumulator(3);
  const losses: tf.Tensor[] = [];
  return {
    step: (X, y) =>
      tf.tidy(() => {
        backward(() => {
          const yHat = softmax(tf.matMul(X.reshape([-1, 784]), W).add(b));
          const l = crossEntropy(yHat, y);
          if (withMetrics) {
            const lSum = tf.keep(l.sum());
            losses.push(lSum);
            metric.add(lSum, accuracy(yHat, y), y.shape[0]);
          }
          return l.sum() as tf.Scalar;
        }, [W, b]);
        sgd([W, b], 0.1, X.shape[0]);
      }),
    dispose: () => {
      metric.reset();
      tf.dispose([W, b, ...losses]);
    },
  };
}

/** The concise model of section 3.7: a Dense layer, softmaxCrossEntropy on logits, tf.train.sgd. */
function conciseStep(withMetrics = true): StepSetup {
  const model = tf.sequential({ layers: [tf.layers.dense({ units: 10, inputShape: [784] })] });
  const optimizer = tf.train.sgd(0.1);
  const metric = new Accumulator(3);
  const losses: tf.Tensor[] = [];
  return {
    step: (X, y) =>
      tf.tidy(() => {
        optimizer.minimize(() => {
          const yHat = model.apply(X) as tf.Tensor;
          const l = softmaxCrossEntropy(yHat, y);
          if (withMetrics) {
            const lSum = tf.keep(l.sum());
            losses.push(lSum);
            metric.add(lSum, accuracy(yHat, y), y.shape[0]);
          }
          return l.mean() as tf.Scalar;
        });
      }),
    dispose: () => {
      metric.reset();
      optimizer.dispose();
      model.dispose();
      tf.dispose(losses);
    },
  };
}

interface StepConfig {
  name: string;
  backend: "wasm" | "cpu";
  fast?: boolean;
  make: () => StepSetup;
}

const STEP_CONFIGS: StepConfig[] = [
  { name: "wasm original, scratch", backend: "wasm", fast: false, make: () => scratchStep() },
  { name: "wasm fast,     scratch", backend: "wasm", fast: true, make: () => scratchStep() },
  { name: "wasm original, concise", backend: "wasm", fast: false, make: () => conciseStep() },
  { name: "wasm fast,     concise", backend: "wasm", fast: true, make: () => conciseStep() },
  { name: "wasm fast,     scratch, no metrics", backend: "wasm", fast: true, make: () => scratchStep(false) },
  { name: "wasm fast,     concise, no metrics", backend: "wasm", fast: true, make: () => conciseStep(false) },
  { name: "cpu,           scratch", backend: "cpu", make: () => scratchStep() },
  { name: "cpu,           concise", backend: "cpu", make: () => conciseStep() },
];

async function use(config: { backend: "wasm" | "cpu"; fast?: boolean }): Promise<void> {
  if (tf.getBackend() !== config.backend) {
    await tf.setBackend(config.backend);
    await tf.ready();
    if (config.backend === "cpu") (tf.backend() as unknown as { firstUse?: boolean }).firstUse = false;
  }
  if (config.backend === "wasm") {
    if (config.fast) useFastWasmMatMul({ rewrite: "auto", transposer: "auto" });
    else restoreWasmMatMul();
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
      // The metrics keep one loss tensor per step, as trainEpochCh3 does.
      if (leaked > 2 * STEPS) throw new Error(`${config.name}: ${leaked} tensors left after ${STEPS} steps`);
      if (round > 0) perStep[ci].push(ms);
    }
  }
  await use({ backend: "wasm", fast: true });
  tf.dispose(pool.flat());
  const base = new Map<string, number>();
  table(
    ["configuration", "ms/step", `s/epoch (${STEPS_PER_EPOCH} steps)`, "vs wasm original"],
    STEP_CONFIGS.map((c, ci) => {
      const ms = median(perStep[ci]);
      const model = c.name.includes("scratch") ? "scratch" : "concise";
      if (c.backend === "wasm" && !c.fast) base.set(model, ms);
      const ref = base.get(model);
      return [c.name, fmt(ms), (ms * STEPS_PER_EPOCH / 1000).toFixed(3), ref ? `${(ref / ms).toFixed(2)}x` : ""];
    }),
  );
}

// ---------------------------------------------------------------------------------------------
// Part 3: where a step's time goes, by kernel (tf.profile; the kernels are synchronous on
// wasm and cpu, so kernelTimeMs is their real run time). Gradient kernels are included.

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
    const e = byName.get(k.name) ?? { ms: 0, calls: 0, shapes: new Set<string>() };
    e.ms += Number(k.kernelTimeMs);
    e.calls += 1;
    e.shapes.add(k.inputShapes.map((s) => `[${s}]`).join(""));
    byName.set(k.name, e);
  }
  const kernelMs = [...byName.values()].reduce((s, e) => s + e.ms, 0);
  console.log(
    `\n### ${config.name}: ${info.kernels.length / steps} kernel calls/step, ` +
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
  if (PART === "profile" || PART === "all") {
    console.log("\n## kernel breakdown of a training step (20 steps under tf.profile)");
    for (const c of STEP_CONFIGS.filter((c) => c.fast !== false && !c.name.includes("no metrics"))) {
      await profileStep(c);
    }
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
