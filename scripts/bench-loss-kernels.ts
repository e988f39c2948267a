/**
 * Times the small kernels around a softmax-regression step's loss, alone (no training step around
 * them), in CPU time of the process (process.cpuUsage), best and median of --rounds rounds of --calls
 * calls each, on the wasm backend with one thread:
 *
 * - fused-softmax-ce.ts's forward (loss and probabilities; with the backend's Exp and Log) and gradient
 *   kernels on [n, K] logits (softmax regression's 256×10 by default), called directly;
 * - the Accumulator's `sum()` then `cast("float32")` of a scalar, with lean-scalar-ops.ts off (two
 *   kernels) and on (none), interleaved round by round.
 *
 *   npx tsx scripts/bench-loss-kernels.ts [--n 256] [--k 10] [--calls 5000] [--rounds 11]
 */
import * as tf from "@tensorflow/tfjs";
import { parseArgs } from "node:util";
import { cpus } from "node:os";
import * as d2l from "../lib/src/index";
import { useLeanScalarOps } from "../lib/src/engine/lean-scalar-ops";

const { values: v } = parseArgs({
  options: {
    n: { type: "string", default: "256" },
    k: { type: "string", default: "10" },
    calls: { type: "string", default: "5000" },
    rounds: { type: "string", default: "11" },
  },
});
const positive = (name: string, text: string | undefined, min = 1): number => {
  const x = Number(text);
  if (!Number.isInteger(x) || x < min) throw new Error(`--${name} must be an integer >= ${min}; got "${text}"`);
  return x;
};
const [n, k, calls, rounds] = [positive("n", v.n), positive("k", v.k, 2), positive("calls", v.calls), positive("rounds", v.rounds)];

await d2l.initBackend("wasm", { quiet: true });
d2l.setThreads(1);
const backend = tf.backend() as unknown as tf.KernelBackend & { disposeData(dataId: tf.DataId): boolean };
const logits = tf.randomNormal([n, k]);
const labels = tf.randomUniform([n], 0, k, "int32");
d2l.softmaxCrossEntropy(logits, labels).dispose(); // registers the fused kernels
const forward = tf.getKernel("D2lSoftmaxCrossEntropy", "wasm")?.kernelFunc;
const gradient = tf.getKernel("D2lSoftmaxCrossEntropyGrad", "wasm")?.kernelFunc;
if (forward === undefined || gradient === undefined) throw new Error("the fused softmax-CE kernels are not registered (speed-ups off?)");
const info = (t: tf.Tensor): tf.TensorInfo => ({ dataId: t.dataId, shape: t.shape, dtype: t.dtype });
const probs = tf.softmax(logits);
const dy = tf.fill([n], 1 / n);
const attrs = { labelSmoothing: 0 } as unknown as tf.NamedAttrMap;
const free = (out: tf.TensorInfo | tf.TensorInfo[]) => (Array.isArray(out) ? out : [out]).forEach((t) => backend.disposeData(t.dataId));

const cpuMs = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
};
/** Microseconds a call of f, one round. */
const round = (f: () => void): number => {
  const t0 = cpuMs();
  for (let i = 0; i < calls; i++) f();
  return ((cpuMs() - t0) / calls) * 1000;
};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const report = (name: string, us: number[]) => console.log(`${name.padEnd(44)} ${Math.min(...us).toFixed(2).padStart(7)} ${median(us).toFixed(2).padStart(7)}`);

const jobs: Record<string, () => void> = {
  [`softmax-CE forward kernel [${n},${k}]`]: () => free(forward({ inputs: { logits: info(logits), labels: info(labels) }, backend, attrs }) as tf.TensorInfo[]),
  [`softmax-CE gradient kernel [${n},${k}]`]: () => free(gradient({ inputs: { dy: info(dy), probs: info(probs), labels: info(labels) }, backend, attrs }) as tf.TensorInfo),
};
const scalar = tf.scalar(0.5);
const sumCast = () => tf.tidy(() => void scalar.sum().cast("float32"));
const times: Record<string, number[]> = {};
for (let r = -2; r < rounds; r++) {
  for (const [name, f] of Object.entries(jobs)) {
    const us = round(f);
    if (r >= 0) (times[name] ??= []).push(us);
  }
  for (const on of r % 2 === 0 ? [false, true] : [true, false]) {
    useLeanScalarOps(on);
    const us = round(sumCast);
    if (r >= 0) (times[`scalar sum() + cast() in a tidy, lean-scalar-ops ${on ? "on" : "off"}`] ??= []).push(us);
  }
}
useLeanScalarOps(true);
console.log(`µs a call, CPU (process), best and median of ${rounds} rounds of ${calls}, ${cpus()[0]?.model ?? "unknown CPU"}`);
for (const [name, us] of Object.entries(times)) report(name, us);
tf.dispose([logits, labels, probs, dy, scalar]);
