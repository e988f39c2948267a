/**
 * LeNet's convolution kernels alone on wasm (batch 256), in CPU time (process.cpuUsage: every
 * thread's), best of --runs interleaved runs: the forward pass of both layers by d2l's SIMD kernel
 * and by tfjs's (XNNPACK), the filter gradients, and the input gradient of layer 2.
 *
 *   npx tsx scripts/bench-conv.ts [--runs 15] [--threads 1]
 *
 * CPU time of two threads counts both, so with --threads 2 a kernel split in halves shows about
 * the same CPU time as on one thread; the wall time (printed beside it) is what a split saves.
 */
import * as tf from "@tensorflow/tfjs";
import { parseArgs } from "node:util";
import { cpus } from "node:os";
import * as d2l from "../lib/src/index";
import { restoreSimdConv2d, simdConv2d, useSimdConv2d } from "../lib/src/engine/conv2d-simd";
import type { WasmBackendLike } from "../lib/src/engine/wasm-kernels";

const { values: v } = parseArgs({ options: { runs: { type: "string", default: "15" }, threads: { type: "string", default: "1" } } });
const runs = Number(v.runs);
if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs must be a positive integer; got "${v.runs}"`);

await d2l.initBackend("wasm", { quiet: true });
d2l.setThreads(Number(v.threads));
const backend = tf.backend() as unknown as WasmBackendLike;
const x1 = tf.randomUniform([256, 28, 28, 1]);
const w1 = tf.randomNormal([5, 5, 1, 6]);
const dy1 = tf.randomNormal([256, 28, 28, 6]);
const x2 = tf.randomUniform([256, 14, 14, 6]);
const w2 = tf.randomNormal([5, 5, 6, 16]);
const dy2 = tf.randomNormal([256, 10, 10, 16]);
const info = (x: tf.Tensor, w: tf.Tensor, pad: number | "valid") =>
  tf.backend_util.computeConv2DInfo(x.shape as [number, number, number, number], w.shape as [number, number, number, number], 1, 1, pad);
const run = (name: string, attrs: object, inputs: tf.NamedTensorMap) => () => {
  const out = tf.engine().runKernel(name, inputs, attrs as never) as tf.Tensor;
  out.dispose();
};
const ours = (x: tf.Tensor, w: tf.Tensor, pad: number | "valid") => () => {
  const out = simdConv2d(backend, x as never, w as never, info(x, w, pad))!;
  backend.disposeData(out.dataId);
};
const xnnpack = (x: tf.Tensor, w: tf.Tensor, pad: number | "valid") => () => {
  restoreSimdConv2d();
  run(tf.Conv2D, { strides: 1, pad, dataFormat: "NHWC", dilations: 1 }, { x, filter: w })();
  useSimdConv2d();
};
const cases: Array<[string, () => void]> = [
  ["Conv2D layer 1 (1 → 6), d2l", ours(x1, w1, 2)],
  ["Conv2D layer 1 (1 → 6), XNNPACK", xnnpack(x1, w1, 2)],
  ["Conv2D layer 2 (6 → 16), d2l", ours(x2, w2, "valid")],
  ["Conv2D layer 2 (6 → 16), XNNPACK", xnnpack(x2, w2, "valid")],
  ["Conv2D layer 2 as registered", run(tf.Conv2D, { strides: 1, pad: "valid", dataFormat: "NHWC", dilations: 1 }, { x: x2, filter: w2 })],
  ["Conv2DBackpropFilter layer 1", run(tf.Conv2DBackpropFilter, { strides: 1, pad: 2, dataFormat: "NHWC", filterShape: [5, 5, 1, 6] }, { x: x1, dy: dy1 })],
  ["Conv2DBackpropFilter layer 2", run(tf.Conv2DBackpropFilter, { strides: 1, pad: "valid", dataFormat: "NHWC", filterShape: [5, 5, 6, 16] }, { x: x2, dy: dy2 })],
  ["Conv2DBackpropInput layer 2", run(tf.Conv2DBackpropInput, { strides: 1, pad: "valid", dataFormat: "NHWC", inputShape: [256, 14, 14, 6] }, { dy: dy2, filter: w2 })],
];
const cpu = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
};
const best = cases.map(() => ({ cpu: Infinity, wall: Infinity }));
for (let r = 0; r < runs; r++) {
  cases.forEach(([, f], i) => {
    const c0 = cpu();
    const t0 = performance.now();
    f();
    best[i].wall = Math.min(best[i].wall, performance.now() - t0);
    best[i].cpu = Math.min(best[i].cpu, cpu() - c0);
  });
}
console.log(`LeNet's convolutions, batch 256, ${d2l.getThreads()} thread(s), ${cpus()[0]?.model ?? "unknown CPU"}; best of ${runs}`);
console.log("  ms CPU   ms wall  kernel");
cases.forEach(([name], i) => console.log(`${best[i].cpu.toFixed(2).padStart(8)}  ${best[i].wall.toFixed(2).padStart(8)}  ${name}`));
