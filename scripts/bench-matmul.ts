/**
 * Micro-benchmark of the wasm matMul fix (lib/src/engine/wasm-matmul.ts): the chapter's matMul
 * shapes with and without transpose flags, tfjs's original kernel against the fast path
 * ("fast": our SIMD kernels for at most 16 columns, else a transpose and XNNPACK) and its
 * variants without those kernels. Whole training runs are `npm run bench`'s job.
 *
 *   npx tsx scripts/bench-matmul.ts [--reps N]
 *
 * Every number is a median, and the variants being compared run interleaved in the same
 * process, so the ratios hold even when the machine is busy (absolute times are noisy).
 *
 * The general products are also given as a fraction of the machine's 128-bit FMA peak, measured
 * first: independent chains of f32x4.relaxed_madd (8 to 14 of them; the most GFLOP/s of CPU time
 * any count reaches), and of mul-then-add chains where relaxed SIMD is absent.
 *   npx tsx scripts/bench-matmul.ts --general [--rows auto,4,6]
 *
 * The general products run on one thread, since the peak is one core's; where d2l uses more
 * threads (d2l.setThreads, D2L_THREADS, by default the cores Node reports) a last column runs the
 * default block split across them, as training does, in CPU time of all threads: it adds the
 * split's hand-off and whatever the other cores' sharing costs (two vCPUs of one host here).
 */
import { parseArgs } from "node:util";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/src/backend";
import { loadDataFashionMnist } from "../lib/src/fashion-mnist";
import { cpus } from "node:os";
import { denseRows, packedMatMul, registerBlock } from "../lib/src/engine/packed-matmul";
import {
  BR_IF_0, END, F32X4_ADD, F32X4_MUL, F32X4_RELAXED_MADD, GT_S, LOOP, SUB, V128, get, i32, load, locals,
  moduleWithImportedMemory, set, store, tee, voidType,
} from "../lib/src/engine/wasm-asm";
import { relaxedSimdAvailable } from "../lib/src/engine/relaxed-simd";
import { getThreads, setThreads } from "../lib/src/engine/thread-pool";
import { restoreWasmMatMul, useFastWasmMatMul, type FastMatMulOptions } from "../lib/src/engine/wasm-matmul";

const { values } = parseArgs({
  options: {
    reps: { type: "string", default: "200" },
    /** Only the general products. */
    general: { type: "boolean", default: false },
    /** Register-block heights of the packed kernel to compare ("auto": the one it chooses on this machine). */
    rows: { type: "string", default: "auto" },
  },
});
const REPS = Number(values.reps);
if (!Number.isInteger(REPS) || REPS < 1) throw new Error(`--reps must be a positive integer; got ${values.reps}`);

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
// The matMul kernels, original vs fast, on the chapter's shapes.

type Variant = { name: string; install: () => void };

const VARIANTS: Variant[] = [
  { name: "original", install: () => restoreWasmMatMul() },
  { name: "fast", install: () => useFastWasmMatMul({ rewrite: "auto", transposer: "auto", skinny: true }) },
  { name: "xnnpack", install: () => useFastWasmMatMul({ rewrite: "auto", transposer: "auto", skinny: false }) },
  ...(
    [
      ["operands", "read-order"],
      ["operands", "write-order"],
      ["output", "read-order"],
      ["output", "write-order"],
    ] as const
  ).map(([rewrite, transposer]): Variant => {
    const options: FastMatMulOptions = { rewrite, transposer, skinny: false };
    return { name: `${rewrite}/${transposer}`, install: () => useFastWasmMatMul(options) };
  }),
];

interface MatMulCase {
  name: string;
  a: number[];
  b: number[];
  tA: boolean;
  tB: boolean;
  /** A is a batch of Fashion-MNIST images (half their pixels are 0) instead of uniform values. */
  images?: boolean;
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
  useFastWasmMatMul({ rewrite: "auto", transposer: "auto", skinny: true });
  const med = times.map((row) => row.map(median));
  table(
    ["case", ...VARIANTS.map((v) => v.name), "original/fast"],
    CASES.map((c, ci) => [c.name, ...med[ci].map(fmt), `${(med[ci][0] / med[ci][1]).toFixed(1)}x`]),
  );
}

// ---------------------------------------------------------------------------------------------
// The machine's 128-bit multiply-add peak.

/**
 * f(iterations, p): `chains` independent chains, each acc = a·b + acc (relaxed_madd) or acc·a + b
 * (mul, then add), 4 times a turn; a, b and the accumulators' start read from p (so V8 cannot fold
 * them), the accumulators stored after them at the end.
 */
function peakModule(chains: number, relaxed: boolean): number[] {
  const [ITERS, P, A, B, ACC] = [0, 1, 2, 3, 4];
  const body = [...locals([2 + chains, V128]), ...get(P), ...load(0), ...set(A), ...get(P), ...load(16), ...set(B)];
  for (let c = 0; c < chains; c++) body.push(...get(P), ...load(32), ...set(ACC + c));
  body.push(...LOOP);
  for (let u = 0; u < 4; u++) {
    for (let c = 0; c < chains; c++) {
      if (relaxed) body.push(...get(A), ...get(B), ...get(ACC + c), ...F32X4_RELAXED_MADD, ...set(ACC + c));
      else body.push(...get(ACC + c), ...get(A), ...F32X4_MUL, ...get(B), ...F32X4_ADD, ...set(ACC + c));
    }
  }
  body.push(...get(ITERS), ...i32(1), SUB, ...tee(ITERS), ...i32(0), GT_S, ...BR_IF_0, END);
  for (let c = 0; c < chains; c++) body.push(...get(P), ...get(ACC + c), ...store(48 + 16 * c));
  body.push(END);
  return moduleWithImportedMemory(voidType(2), "f", body);
}

/** GFLOP/s of CPU time of the best chain count: the median of 7 timings of ~25 ms each. */
function measurePeak(relaxed: boolean): { gflops: number; chains: number } {
  const memory = new WebAssembly.Memory({ initial: 1 });
  new Float32Array(memory.buffer).set([1e-3, 1e-3, 1e-3, 1e-3, 0.5, 0.5, 0.5, 0.5, 0, 0, 0, 0]);
  let best = { gflops: 0, chains: 0 };
  for (const chains of [8, 10, 12, 14]) {
    const f = new WebAssembly.Instance(new WebAssembly.Module(new Uint8Array(peakModule(chains, relaxed))), { e: { m: memory } })
      .exports.f as (iterations: number, p: number) => void;
    const iterations = Math.round(4e7 / (4 * chains));
    for (let i = 0; i < 30; i++) f(1000, 0); // past V8's baseline code
    const rates: number[] = [];
    for (let r = 0; r < 7; r++) {
      const start = process.cpuUsage();
      f(iterations, 0);
      const used = process.cpuUsage(start);
      rates.push((iterations * 4 * chains * 8) / ((used.user + used.system) * 1e3));
    }
    const gflops = median(rates);
    if (gflops > best.gflops) best = { gflops, chains };
  }
  return best;
}

// ---------------------------------------------------------------------------------------------
// General products (the MLP's and a square one): GFLOP/s of XNNPACK against the packed kernel.

const GENERAL: MatMulCase[] = [
  { name: "MLP X·W1        256x784·784x256", a: [256, 784], b: [784, 256], tA: false, tB: false },
  { name: "MLP dW1=Xᵀ·dH   (256x784)ᵀ·256x256", a: [256, 784], b: [256, 256], tA: true, tB: false },
  { name: "MLP dX=dH·W1ᵀ   256x256·(784x256)ᵀ", a: [256, 256], b: [784, 256], tA: false, tB: true },
  { name: "MLP dH=dY·W2ᵀ   256x10·(256x10)ᵀ", a: [256, 10], b: [256, 10], tA: false, tB: true },
  { name: "square          512x512·512x512", a: [512, 512], b: [512, 512], tA: false, tB: false },
  { name: "MLP X·W1, images", a: [256, 784], b: [784, 256], tA: false, tB: false, images: true },
  { name: "MLP dW1=Xᵀ·dH, images", a: [256, 784], b: [256, 256], tA: true, tB: false, images: true },
];

/** 256 Fashion-MNIST training images as [256, 784] floats in [0, 1], or undefined where the dataset is not found. */
async function imageBatch(): Promise<Float32Array | undefined> {
  try {
    const [train] = await loadDataFashionMnist(256);
    const [X, y] = train[Symbol.iterator]().next().value as [tf.Tensor, tf.Tensor];
    const pixels = X.dataSync() as Float32Array;
    tf.dispose([X, y]);
    return pixels;
  } catch (error) {
    console.log(`(no Fashion-MNIST, so no "images" rows: ${(error as Error).message.split("\n")[0]})`);
    return undefined;
  }
}

/** The product's 2mkn floating-point operations. */
function flopsOf(c: MatMulCase): number {
  const [m, k] = c.tA ? [c.a[1], c.a[0]] : c.a;
  const n = c.tB ? c.b[0] : c.b[1];
  return 2 * m * k * n;
}

/**
 * The share of the steps of the inner dimension the zero-skipping kernel computes on an image
 * batch (rows × cols floats): those where its block of `rows` rows of op(A) is not all zero (A
 * plain: rows are images, steps pixels; transposed: rows are neighbouring pixels, steps images).
 */
function keptSteps(pixels: Float32Array, rowsOfA: number, cols: number, transposeA: boolean, rows: number): number {
  const [m, k] = transposeA ? [cols, rowsOfA] : [rowsOfA, cols];
  const at = (i: number, kk: number) => (transposeA ? pixels[kk * cols + i] : pixels[i * cols + kk]);
  let kept = 0;
  for (let i = 0; i < m; i += rows) {
    for (let kk = 0; kk < k; kk++) {
      let nonzero = false;
      for (let r = i; r < Math.min(m, i + rows); r++) if (at(r, kk) !== 0) nonzero = true;
      if (nonzero) kept++;
    }
  }
  return kept / (Math.ceil(m / rows) * k);
}

async function benchGeneral(rowChoices: (number | "auto")[]): Promise<void> {
  const relaxed = relaxedSimdAvailable();
  const peak = measurePeak(relaxed);
  const mulAddPeak = relaxed ? measurePeak(false) : peak;
  console.log(`\n## The 128-bit multiply-add peak (GFLOP/s of CPU time, median of 7, best of 8-14 independent chains)\n`);
  console.log(`f32x4.relaxed_madd: ${relaxed ? `${peak.gflops.toFixed(1)} (${peak.chains} chains)` : "unavailable"}; ` +
    `f32x4.mul then add, dependent (acc·a + b): ${mulAddPeak.gflops.toFixed(1)} (${mulAddPeak.chains} chains)`);
  const reference = peak.gflops;
  const threads = getThreads();
  console.log(`\n## General products: GFLOP/s of CPU time (median of ${REPS} interleaved repetitions, fresh operands each time; ` +
    `a product under 20 MFLOP timed over as many calls as make 20)`);
  console.log(`relaxed SIMD ${relaxed ? "available" : `unavailable: the "relaxed" columns repeat mul+add`}; ` +
    `"xnnpack" is the backend's own product (transposed operands copied first), "rows R" our kernel's register block, on one thread` +
    (threads > 1 ? `; "${threads} threads": the default block split as in training, CPU time of all threads (the split's hand-off and the cores' sharing included)` : "") + "\n");
  const backend = tf.backend() as unknown as Parameters<typeof packedMatMul>[0];
  const info = (t: tf.Tensor): tf.TensorInfo => ({ dataId: t.dataId, shape: t.shape, dtype: t.dtype });
  type Run = { name: string; run: (a: tf.Tensor, b: tf.Tensor, c: MatMulCase) => tf.Tensor; threads: number };
  const ours = (rows: number | "auto", fma: boolean, split = 1): Run => ({
    name: split > 1
      ? `${fma ? "relaxed" : "mul+add"} auto, ${split} threads`
      : `${fma ? "relaxed" : "mul+add"} rows ${rows === "auto" ? `auto (${denseRows(fma && relaxed)})` : rows}`,
    threads: split,
    // "auto" is the default block (denseRows' choice), with its choice of another where zeros are skipped
    run: (a, b, c) => tf.engine().makeTensorFromTensorInfo(
      packedMatMul(backend, info(a), info(b), c.tA, c.tB, {}, { relaxed: fma, ...(rows === "auto" ? {} : { rows }) })!),
  });
  const runs: Run[] = [
    { name: "xnnpack", run: (a, b, c) => tf.matMul(a, b, c.tA, c.tB), threads: 1 },
    ...rowChoices.flatMap((rows) => [ours(rows, false), ours(rows, true)]),
    ...(threads > 1 ? [ours("auto", true, threads)] : []),
  ];
  const images = await imageBatch();
  const cases = GENERAL.filter((c) => !c.images || images !== undefined);
  useFastWasmMatMul({ skinny: false, packed: false });
  const times = cases.map(() => runs.map(() => [] as number[]));
  const operands = cases.map((c, i) => [
    tf.tensor(c.images ? images! : uniform(c.a[0] * c.a[1], 2 * i + 1), c.a),
    tf.tensor(uniform(c.b[0] * c.b[1], 2 * i + 2), c.b),
  ]);
  for (let rep = 0; rep < REPS + 5; rep++) {
    for (const [ci, c] of cases.entries()) {
      for (const [ri, r] of runs.entries()) {
        // a small product is timed over several calls (about 20 MFLOP in all): one of 30 µs is near the clock's cost
        const calls = Math.max(1, Math.round(2e7 / flopsOf(c)));
        const pairs = Array.from({ length: calls }, () => operands[ci].map((t) => t.clone()));
        setThreads(r.threads);
        // CPU time, not wall time: on a shared machine the wall clock counts other processes' turns
        const start = process.cpuUsage();
        const outs = pairs.map(([a, b]) => r.run(a, b, c));
        const used = process.cpuUsage(start);
        const ms = (used.user + used.system) / 1000 / calls;
        tf.dispose([...pairs.flat(), ...outs]);
        if (rep >= 5) times[ci][ri].push(ms);
      }
    }
  }
  tf.dispose(operands.flat());
  setThreads(threads);
  useFastWasmMatMul({ skinny: true, packed: true });
  const gflops = (c: MatMulCase, ms: number) => flopsOf(c) / (ms * 1e6);
  table(
    ["case (GFLOP/s, % of the FMA peak; ms of xnnpack)", ...runs.map((r) => r.name)],
    cases.map((c, ci) => [`${c.name} (${fmt(median(times[ci][0]))} ms)`, ...times[ci].map((t) => {
      const g = gflops(c, median(t));
      return `${g.toFixed(1)} ${((100 * g) / reference).toFixed(0).padStart(3)}%`;
    })]),
  );
  if (images !== undefined) {
    console.log(`\n"images" rows: A is a Fashion-MNIST batch, whose zeros the packed kernel skips (same floats as computing them); ` +
      `GFLOP/s count the dense product's 2mkn operations, the skipped zeros included. What the kernel executes:`);
    for (const [ci, c] of cases.entries()) {
      if (!c.images) continue;
      const { rows, panels } = registerBlock(c.tA, true, relaxed);
      const kept = keptSteps(images, c.a[0], c.a[1], c.tA, rows);
      const [auto] = runs.map((r, ri) => [r, ri] as const).filter(([r]) => r.name.startsWith(relaxed ? "relaxed rows auto" : "mul+add rows auto")).map(([, ri]) => ri);
      const executed = gflops(c, median(times[ci][auto])) * kept;
      console.log(`  ${c.name}: block ${rows}×${8 * panels} keeps ${(100 * kept).toFixed(1)}% of the steps; "${runs[auto].name}" executes ` +
        `${executed.toFixed(1)} GFLOP/s of multiply-adds, ${((100 * executed) / reference).toFixed(0)}% of the peak`);
    }
  }
}

await initBackend("wasm", { quiet: true });
console.log(`tfjs ${tf.version_core}, backend wasm, Node ${process.version}, CPU ${cpus()[0]?.model.trim()}, ${new Date().toISOString()}`);
if (!values.general) benchKernels();
await benchGeneral(values.rows!.split(",").map((r) => (r === "auto" ? "auto" : Number(r))));
