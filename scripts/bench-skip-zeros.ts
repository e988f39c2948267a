/**
 * The packed product's register blocks on the MLP's two products with a real Fashion-MNIST batch
 * (X·W1 and Xᵀ·dH, 256 images, half their pixels 0), with and without skipping A's zeros: the
 * dense 6×8 block against each block given, timed interleaved in one process, best of --reps in
 * CPU time (a machine shared with other jobs distorts the best least). GFLOP/s count the dense
 * product's 2mkn operations (skipped zeros as done); "executed" counts only the steps the block
 * keeps, and "% peak" compares that with --peak (GFLOP/s; scripts/bench-matmul.ts --general measures it).
 *
 *   npx tsx scripts/bench-skip-zeros.ts [--blocks 2x3,2x2,4x1,2x3x0] [--reps 40] [--peak 55] [--mul-add]
 *
 * --mul-add: f32x4.mul then f32x4.add instead of relaxed SIMD's fused multiply-add.
 *
 * A block is RxP (R rows × P panels of 8 columns, zeros skipped) or RxPx0 (the same block, every
 * step computed).
 */
import { parseArgs } from "node:util";
import { cpus } from "node:os";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/src/backend";
import { loadDataFashionMnist } from "../lib/src/fashion-mnist";
import { packedMatMul, type PackedOptions } from "../lib/src/engine/packed-matmul";

const { values } = parseArgs({
  options: {
    blocks: { type: "string", default: "2x3,2x2,4x1,2x3x0" },
    reps: { type: "string", default: "40" },
    peak: { type: "string" },
    "mul-add": { type: "boolean", default: false },
  },
});
const reps = Number(values.reps);
if (!Number.isInteger(reps) || reps < 1) throw new Error(`--reps must be a positive integer; got "${values.reps}"`);
const peak = values.peak === undefined ? undefined : Number(values.peak);
if (peak !== undefined && !(peak > 0)) throw new Error(`--peak must be a positive number (GFLOP/s); got "${values.peak}"`);
const relaxed = !values["mul-add"];
const blocks = values.blocks!.split(",").map((spec) => {
  const [rows, panels, skip] = spec.split("x").map(Number);
  if (!(rows >= 1 && panels >= 1) || (skip !== undefined && skip !== 0)) throw new Error(`--blocks: "${spec}" is not RxP or RxPx0`);
  return { spec, rows, panels, skipZeros: skip === undefined };
});

await initBackend("wasm", { quiet: true });
const [train] = await loadDataFashionMnist(256);
const [images, labels] = train[Symbol.iterator]().next().value as [tf.Tensor, tf.Tensor];
const X = images.reshape([256, 784]);
const pixels = X.dataSync() as Float32Array;
const W1 = tf.randomNormal([784, 256], 0, 0.01, "float32", 1);
const dH = tf.randomNormal([256, 256], 0, 1, "float32", 2);
const backend = tf.backend() as unknown as Parameters<typeof packedMatMul>[0];
const info = (t: tf.Tensor): tf.TensorInfo => ({ dataId: t.dataId, shape: t.shape, dtype: t.dtype });

/** The share of steps where a block of `rows` rows of op(A) is not all zero (A plain: rows are images; transposed: pixels). */
function kept(transposeA: boolean, rows: number): number {
  const [m, k] = transposeA ? [784, 256] : [256, 784];
  const at = (i: number, kk: number) => (transposeA ? pixels[kk * 784 + i] : pixels[i * 784 + kk]);
  let count = 0;
  for (let i = 0; i < m; i += rows) {
    for (let kk = 0; kk < k; kk++) {
      let nonzero = false;
      for (let r = i; r < Math.min(m, i + rows); r++) if (at(r, kk) !== 0) nonzero = true;
      if (nonzero) count++;
    }
  }
  return count / (Math.ceil(m / rows) * k);
}

interface Variant { name: string; transposeA: boolean; options: PackedOptions; share: number }
const variants: Variant[] = [];
for (const transposeA of [false, true]) {
  const product = transposeA ? "Xᵀ·dH" : "X·W1";
  variants.push({ name: `${product} dense 6x1`, transposeA, options: { relaxed, skipZeros: false, rows: 6, panels: 1 }, share: 1 });
  for (const b of blocks) {
    variants.push({
      name: `${product} ${b.skipZeros ? "skip" : "dense"} ${b.rows}x${b.panels}`, transposeA,
      options: { relaxed, skipZeros: b.skipZeros, rows: b.rows, panels: b.panels },
      share: b.skipZeros ? kept(transposeA, b.rows) : 1,
    });
  }
}
const best = variants.map(() => Infinity);
for (let rep = 0; rep < reps + 3; rep++) {
  variants.forEach((v, i) => {
    const start = process.cpuUsage();
    const out = packedMatMul(backend, info(X), info(v.transposeA ? dH : W1), v.transposeA, false, {}, v.options);
    const used = process.cpuUsage(start);
    if (out === undefined) throw new Error(`${v.name}: the packed kernel declined`);
    backend.disposeData(out.dataId);
    if (rep >= 3) best[i] = Math.min(best[i], (used.user + used.system) / 1000);
  });
}
console.log(`CPU ${cpus()[0]?.model.trim()}, ${new Date().toISOString()}; best of ${reps}, CPU time; ${relaxed ? "relaxed_madd" : "mul then add"}`);
console.log("product, block        ms     GFLOP/s (dense-equivalent)  steps kept  executed GFLOP/s" + (peak ? "  % peak" : ""));
variants.forEach((v, i) => {
  const dense = (2 * 256 * 784 * 256) / (best[i] * 1e6);
  const executed = dense * v.share;
  console.log(`${v.name.padEnd(20)} ${best[i].toFixed(3).padStart(6)}  ${dense.toFixed(1).padStart(8)}  ${(100 * v.share).toFixed(1).padStart(27)}%  ` +
    `${executed.toFixed(1).padStart(16)}${peak ? `  ${((100 * executed) / peak).toFixed(0).padStart(6)}%` : ""}`);
});
tf.dispose([images, labels, X, W1, dH]);
