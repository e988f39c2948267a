/**
 * What share of the MLP's training CPU time is in the products that threads split (Amdahl's
 * bound on what threads can gain): 4.3's MLP (scripts/bench-models.ts) trained on 40 Fashion-MNIST
 * batches and tested on 40 (one trainCh3 epoch), on one thread, against the same number of its
 * split products alone (X·W1 + relu and Xᵀ·dH per training step, X·W1 + relu per test batch).
 * Three rounds; the first includes compiling.
 *
 *   npx tsx scripts/bench-split-share.ts
 */
import * as tf from "@tensorflow/tfjs";
import * as d2l from "../lib/src/index";
import { makeJob } from "./bench-models";

const BATCHES = 40;

async function main(): Promise<void> {
  await d2l.initBackend("wasm", { quiet: true });
  d2l.setThreads(1);
  const [train] = await d2l.loadDataFashionMnist(256);
  const batches: tf.Tensor[][] = [];
  for (const [x, y] of train) {
    batches.push([x.clone(), y.clone()]);
    if (batches.length === BATCHES) break;
  }
  const source = { numExamples: BATCHES * 256, batchSize: 256, *[Symbol.iterator]() { yield* batches; } } as unknown as d2l.BatchSource;
  const job = makeJob("mlp", 0.1);
  const X = batches[0][0].reshape([256, 784]);
  const W1 = tf.randomNormal([784, 256], 0, 0.01);
  const dH = tf.randomNormal([256, 256]);
  const cpuMs = () => {
    const c = process.cpuUsage();
    return (c.user + c.system) / 1000;
  };
  const log = console.log;
  for (let round = 1; round <= 3; round++) {
    let start = cpuMs();
    console.log = () => undefined; // trainCh3's line per epoch
    try {
      d2l.trainCh3(job.net, source, source, job.loss, 1, job.updater);
    } catch {
      // d2l's checks of a finished training fail after one short epoch; the time is what counts
    } finally {
      console.log = log;
    }
    const epoch = cpuMs() - start;
    start = cpuMs();
    for (let i = 0; i < BATCHES; i++) {
      tf.tidy(() => {
        tf.relu(tf.matMul(X, W1));
        tf.matMul(X, dH, true, false);
        tf.relu(tf.matMul(X, W1));
      });
    }
    const products = cpuMs() - start;
    console.log(`round ${round}: ${BATCHES} steps + ${BATCHES} test batches ${epoch.toFixed(0)} ms CPU; ` +
      `their split products alone ${products.toFixed(0)} ms (${((100 * products) / epoch).toFixed(0)}%)`);
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
