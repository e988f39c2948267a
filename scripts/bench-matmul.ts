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
import { restoreWasmMatMul, useFastWasmMatMul, type FastMatMulOptions } from "../lib/src/engine/wasm-matmul";

const { values } = parseArgs({ options: { reps: { type: "string", default: "200" } } });
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

await initBackend("wasm", { quiet: true });
console.log(`tfjs ${tf.version_core}, backend wasm, ${new Date().toISOString()}`);
benchKernels();
