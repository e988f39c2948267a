// The K-fold job of `npm run bench -- --model kaggle` (scripts/bench-kaggle.ts starts it): section 4.10's
// code as the lib compiles it (lib/dist, `npm run build`), run by plain Node, as PyTorch's peer is run by
// plain Python: the time measured is the program's, not TypeScript's transpiler's (tsx costs ~1 s of CPU
// at start-up). JavaScript rather than TypeScript for that reason alone.
//
//   node scripts/bench-kaggle-job.cjs [--epochs 100] [--backend B] [--seed N] [--json]
"use strict";
const { parseArgs } = require("node:util");
const tf = require("@tensorflow/tfjs");
const d2l = require("d2l");

async function main() {
  const { values } = parseArgs({
    options: { epochs: { type: "string", default: "100" }, backend: { type: "string" }, seed: { type: "string" }, json: { type: "boolean", default: false } },
  });
  // Seconds from the process's start until here: Node, the lib and tfjs loaded.
  const importSeconds = performance.now() / 1000;
  if (values.seed !== undefined) process.env.D2L_SEED = values.seed;
  const { name: backend, seed } = await d2l.initBackend(values.backend, { quiet: values.json });
  const backendSeconds = performance.now() / 1000 - importSeconds;
  const dataStart = performance.now();
  const data = await d2l.loadHousePrices();
  const start = performance.now();
  const log = console.log;
  if (values.json) console.log = () => undefined; // kFold's line per fold
  let means;
  try {
    means = d2l.kFold(5, data.trainFeatures, data.trainLabels, Number(values.epochs), 5, 0, 64);
  } finally {
    console.log = log;
  }
  const end = performance.now();
  const cpu = process.cpuUsage();
  const result = {
    backend, seconds: end / 1000, importSeconds, backendSeconds, loadSeconds: (start - dataStart) / 1000,
    kfoldSeconds: (end - start) / 1000, cpuSeconds: (cpu.user + cpu.system) / 1e6,
    trainLogRmse: means[0], validLogRmse: means[1], features: data.trainFeatures.shape[1], seed: seed ?? null,
  };
  tf.dispose([data.trainFeatures, data.testFeatures, data.trainLabels]);
  console.log(JSON.stringify(result));
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
