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
 */
import { parseArgs } from "node:util";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/src/backend";
import { loadDataFashionMnist } from "../lib/src/fashion-mnist";
import { DEFAULT_ROWS, packedMatMul } from "../lib/src/engine/packed-matmul";
import { relaxedSimdAvailable } from "../lib/src/engine/relaxed-simd";
import { restoreWasmMatMul, useFastWasmMatMul, type FastMatMulOptions } from "../lib/src/engine/wasm-matmul";

const { values } = parseArgs({
  options: {
    reps: { type: "string", default: "200" },
    /** Only the general products. */
    general: { type: "boolean", default: false },
    /** Register-block heights of the packed kernel to compare. */
    rows: { type: "string", default: String(DEFAULT_ROWS) },
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

async function benchGeneral(rowChoices: number[]): Promise<void> {
  const relaxed = relaxedSimdAvailable();
  console.log(`\n## General products: GFLOP/s of CPU time (median of ${REPS} interleaved repetitions, fresh operands each time)`);
  console.log(`relaxed SIMD ${relaxed ? "available" : `unavailable: the "relaxed" columns repeat mul+add`}; ` +
    `"xnnpack" is the backend's own product (transposed operands copied first), "rows R" our kernel's register block\n`);
  const backend = tf.backend() as unknown as Parameters<typeof packedMatMul>[0];
  const info = (t: tf.Tensor): tf.TensorInfo => ({ dataId: t.dataId, shape: t.shape, dtype: t.dtype });
  type Run = { name: string; run: (a: tf.Tensor, b: tf.Tensor, c: MatMulCase) => tf.Tensor };
  const ours = (rows: number, fma: boolean): Run => ({
    name: `${fma ? "relaxed" : "mul+add"} rows ${rows}`,
    // rows 4 is the default block, with its choice of another where zeros are skipped
    run: (a, b, c) => tf.engine().makeTensorFromTensorInfo(
      packedMatMul(backend, info(a), info(b), c.tA, c.tB, {}, { relaxed: fma, ...(rows === DEFAULT_ROWS ? {} : { rows }) })!),
  });
  const runs: Run[] = [
    { name: "xnnpack", run: (a, b, c) => tf.matMul(a, b, c.tA, c.tB) },
    ...rowChoices.flatMap((rows) => [ours(rows, false), ours(rows, true)]),
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
        const [a, b] = operands[ci].map((t) => t.clone());
        // CPU time, not wall time: on a shared machine the wall clock counts other processes' turns
        const start = process.cpuUsage();
        const out = r.run(a, b, c);
        const used = process.cpuUsage(start);
        const ms = (used.user + used.system) / 1000;
        tf.dispose([a, b, out]);
        if (rep >= 5) times[ci][ri].push(ms);
      }
    }
  }
  tf.dispose(operands.flat());
  useFastWasmMatMul({ skinny: true, packed: true });
  const gflops = (c: MatMulCase, ms: number) => {
    const [m, k] = c.tA ? [c.a[1], c.a[0]] : c.a;
    const n = c.tB ? c.b[0] : c.b[1];
    return (2 * m * k * n) / (ms * 1e6);
  };
  table(
    ["case (GFLOP/s; ms of xnnpack)", ...runs.map((r) => r.name)],
    cases.map((c, ci) => [`${c.name} (${fmt(median(times[ci][0]))} ms)`, ...times[ci].map((t) => gflops(c, median(t)).toFixed(1))]),
  );
  if (images !== undefined) {
    console.log(`\n"images" rows: A is a Fashion-MNIST batch, whose zeros the packed kernel skips (same floats as computing them); ` +
      `GFLOP/s count the dense product's 2mkn operations`);
  }
}

await initBackend("wasm", { quiet: true });
console.log(`tfjs ${tf.version_core}, backend wasm, Node ${process.version}, ${new Date().toISOString()}`);
if (!values.general) benchKernels();
await benchGeneral(values.rows!.split(",").map(Number));
