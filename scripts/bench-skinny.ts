/**
 * Softmax regression's weight gradient Xᵀ·dY (784×256 · 256×10) on a real Fashion-MNIST batch:
 * skinny-matmul.ts's broadcast kernel against skinny-gradient.ts's, interleaved in one process, best
 * and median of --reps rounds of --calls calls each, in CPU time (process.cpuUsage) and wall time;
 * checks that they give the same floats bit for bit. The forward X·W (the broadcast kernel) is timed
 * beside them for scale.
 *
 *   npx tsx scripts/bench-skinny.ts [--reps 30] [--calls 20]
 */
import { parseArgs } from "node:util";
import { cpus } from "node:os";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/src/backend";
import { loadDataFashionMnist } from "../lib/src/fashion-mnist";
import { broadcastMatMul } from "../lib/src/engine/skinny-matmul";
import { gradientMatMul } from "../lib/src/engine/skinny-gradient";
import { relaxedSimdAvailable } from "../lib/src/engine/relaxed-simd";
import type { WasmBackendLike } from "../lib/src/engine/wasm-kernels";

const { values } = parseArgs({
  options: {
    reps: { type: "string", default: "30" },
    calls: { type: "string", default: "20" },
  },
});
const reps = Number(values.reps);
const calls = Number(values.calls);
if (!Number.isInteger(reps) || reps < 1) throw new Error(`--reps must be a positive integer; got "${values.reps}"`);
if (!Number.isInteger(calls) || calls < 1) throw new Error(`--calls must be a positive integer; got "${values.calls}"`);

await initBackend("wasm", { quiet: true });
const [train] = await loadDataFashionMnist(256);
const [images] = train[Symbol.iterator]().next().value as [tf.Tensor, tf.Tensor];
const X = images.reshape([256, 784]);
const W = tf.randomNormal([784, 10], 0, 0.01, "float32", 1);
const dY = tf.randomNormal([256, 10], 0, 0.01, "float32", 2);
const backend = tf.backend() as unknown as WasmBackendLike;
const relaxed = relaxedSimdAvailable();
const info = (t: tf.Tensor): tf.TensorInfo => ({ dataId: t.dataId, shape: t.shape, dtype: t.dtype });

type Run = () => tf.TensorInfo | undefined;
interface Variant { name: string; run: Run }
const products: { name: string; variants: Variant[] }[] = [
  {
    name: "X·W   256x784·784x10",
    variants: [{ name: "broadcast", run: () => broadcastMatMul(backend, info(X), info(W), false, false, undefined, relaxed) }],
  },
  {
    name: "Xᵀ·dY (256x784)ᵀ·256x10",
    variants: [
      { name: "broadcast", run: () => broadcastMatMul(backend, info(X), info(dY), true, false, undefined, relaxed) },
      { name: "gradient", run: () => gradientMatMul(backend, info(X), info(dY), relaxed) },
    ],
  },
];

const read = (out: tf.TensorInfo) => {
  const values = new Float32Array(backend.wasm!.HEAPU8!.buffer, backend.getMemoryOffset(out.dataId), tf.util.sizeFromShape(out.shape)).slice();
  backend.disposeData(out.dataId);
  return values;
};
for (const p of products) {
  const reference = new Uint32Array(read(p.variants[0].run()!).buffer);
  for (const v of p.variants.slice(1)) {
    const out = v.run();
    if (out === undefined) throw new Error(`${p.name} ${v.name}: the kernel did not run`);
    const bits = new Uint32Array(read(out).buffer);
    const differ = reference.reduce((count, x, i) => count + (x !== bits[i] ? 1 : 0), 0);
    console.log(`${p.name} ${v.name}: ${differ} of ${reference.length} floats differ from the broadcast kernel's`);
  }
}

const cpuMs = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const times = products.map((p) => p.variants.map(() => ({ cpu: [] as number[], wall: [] as number[] })));
for (let rep = 0; rep < reps + 5; rep++) {
  for (const [pi, p] of products.entries()) {
    for (const [vi, v] of p.variants.entries()) {
      const c0 = cpuMs();
      const t0 = performance.now();
      for (let c = 0; c < calls; c++) backend.disposeData(v.run()!.dataId);
      const wall = (performance.now() - t0) / calls;
      const cpu = (cpuMs() - c0) / calls;
      if (rep >= 5) {
        times[pi][vi].cpu.push(cpu);
        times[pi][vi].wall.push(wall);
      }
    }
  }
}
console.log(`\n${cpus()[0]?.model}, relaxed SIMD ${relaxed}; µs a call, best / median of ${reps} rounds of ${calls} calls`);
for (const [pi, p] of products.entries()) {
  for (const [vi, v] of p.variants.entries()) {
    const { cpu, wall } = times[pi][vi];
    const us = (xs: number[]) => `${(1000 * Math.min(...xs)).toFixed(1)} / ${(1000 * median(xs)).toFixed(1)}`;
    console.log(`${p.name}  ${v.name.padEnd(12)} CPU ${us(cpu)}   wall ${us(wall)}`);
  }
}
