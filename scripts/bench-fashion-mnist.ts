/**
 * How fast Fashion-MNIST loads and reads, outside Jupyter:
 *
 *   npx tsx scripts/bench-fashion-mnist.ts [--runs N] [--batch B] [--json]
 *
 * loadSeconds: finding, decompressing, checking (IDX structure, labels, SHA-256) and decoding
 * both splits from the .gz files, uncached, median of N runs. epochSeconds: one epoch of
 * shuffled training batches (X float32 [B, 28, 28, 1], y int32 [B]), median of N epochs.
 */
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/src/backend";
import { readFashionMnistSplit } from "../lib/src/fashion-mnist";

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function main(): Promise<void> {
  const runs = Number(arg("runs", "7"));
  const batchSize = Number(arg("batch", "256"));
  const json = process.argv.includes("--json");
  const backend = (await initBackend(undefined, { quiet: json })).name;

  const loads: number[] = [];
  let train = await readFashionMnistSplit("train");
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    train = await readFashionMnistSplit("train");
    await readFashionMnistSplit("test");
    loads.push((performance.now() - t0) / 1000);
  }

  const source = train.batches(batchSize, { shuffle: true });
  for (const _ of source) break; // warm up
  const epochs: number[] = [];
  const tensors = tf.memory().numTensors;
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    for (const _batch of source) continue;
    epochs.push((performance.now() - t0) / 1000);
  }
  if (tf.memory().numTensors !== tensors) throw new Error("reading epochs leaked tensors");

  const result = { backend, runs, batchSize, loadSeconds: median(loads), epochSeconds: median(epochs) };
  if (json) {
    console.log(JSON.stringify(result));
  } else {
    console.log(`load + decode (both splits): median ${result.loadSeconds.toFixed(3)} s  [${loads.map((t) => t.toFixed(3)).join(" ")}]`);
    console.log(`one epoch, batch ${batchSize}:    median ${result.epochSeconds.toFixed(3)} s  [${epochs.map((t) => t.toFixed(3)).join(" ")}]`);
  }
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
