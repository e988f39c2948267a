/**
 * `npm run bench`'s contract, run for real (the real Fashion-MNIST files, the real training loop),
 * with few epochs: the JSON line and its keys, --baseline, --runs and --compare, --seed and --seeds,
 * and the usage errors. Runs are seeded (test/setup.ts sets D2L_SEED, which the bench inherits). How fast it runs is the benchmark's to report, not this test's to assert.
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { ROOT } from "../../scripts/lib/paths";
import { realDataDir } from "../unit/fashion-mnist-fixtures";

/** Runs the bench with `args`; its exit status, stdout and stderr. */
function bench(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  // Asynchronously: a worker blocked in spawnSync can miss vitest's RPC deadline.
  const child = spawn(process.execPath, [join(ROOT, "node_modules", "tsx", "dist", "cli.mjs"), "scripts/bench.ts", ...args], {
    cwd: ROOT,
    env: { ...process.env, FORCE_COLOR: "0" },
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  return new Promise((resolve) => child.on("close", (status) => resolve({ status, stdout, stderr })));
}

const lastJson = (stdout: string) => JSON.parse(stdout.trim().split("\n").pop()!) as Record<string, unknown>;

const KEYS = ["backend", "epochs", "batchSize", "lr", "loadSeconds", "secondsPerEpoch", "totalSeconds", "trainLoss", "trainAccuracy", "testAccuracy", "seed"];

describe("npm run bench", () => {
  beforeAll(() => {
    realDataDir(); // fails with what to install when the dataset is missing
  });

  it("runs the scratch job and ends with the JSON line of the contract", async () => {
    const { status, stdout, stderr } = await bench(["--epochs", "2", "--json"]);
    expect(status, stderr).toBe(0);
    expect(stdout).toMatch(/epoch\s+train loss\s+train acc\s+test acc\s+seconds/); // the table per epoch
    const r = lastJson(stdout);
    for (const key of KEYS) expect(r).toHaveProperty(key);
    expect(r).toMatchObject({ epochs: 2, batchSize: 256, lr: 0.1, speedups: true, seed: Number(process.env.D2L_SEED) });
    expect(r.secondsPerEpoch as number).toBeGreaterThan(0);
    expect(r.totalSeconds as number).toBeGreaterThan(r.secondsPerEpoch as number);
    expect(r.trainLoss as number).toBeLessThan(0.7); // two epochs of softmax regression
    expect(r.testAccuracy as number).toBeGreaterThan(0.75);
  });

  it("--baseline trains the concise model on tfjs's own kernels to the same quality", async () => {
    const { status, stdout, stderr } = await bench(["--epochs", "2", "--model", "concise", "--baseline", "--json"]);
    expect(status, stderr).toBe(0);
    expect(stdout).toContain("(tfjs's own kernels)");
    const r = lastJson(stdout);
    expect(r.speedups).toBe(false);
    expect(r.testAccuracy as number).toBeGreaterThan(0.75);
  });

  it("--compare --runs 2 alternates the two variants and reports medians and their ratio", async () => {
    const { status, stdout, stderr } = await bench(["--epochs", "1", "--runs", "2", "--compare", "--json"]);
    expect(status, stderr).toBe(0);
    const lines = stdout.split("\n").filter((l) => l.startsWith("run "));
    expect(lines.map((l) => l.slice(0, 24))).toEqual(["run 1/2  d2l speed-ups  ", "run 1/2  tfjs's kernels ", "run 2/2  d2l speed-ups  ", "run 2/2  tfjs's kernels "]);
    const r = lastJson(stdout);
    for (const key of KEYS) expect(r).toHaveProperty(key);
    expect(r.runs).toBe(2);
    const runs = r.secondsPerEpochRuns as number[];
    expect(runs).toHaveLength(2);
    expect(r.secondsPerEpoch).toBeCloseTo((runs[0] + runs[1]) / 2, 10);
    const baseline = r.baseline as { secondsPerEpoch: number; secondsPerEpochRuns: number[] };
    expect(baseline.secondsPerEpochRuns).toHaveLength(2);
    expect(r.speedup).toBeCloseTo(baseline.secondsPerEpoch / (r.secondsPerEpoch as number), 10);
  });

  it("--seed N repeats a run to the last digit; --seed random draws fresh numbers", async () => {
    // Four processes at once: a seeded run's floats do not depend on what else the machine runs.
    const outs = await Promise.all(["3", "3", "random", "random"].map((seed) => bench(["--epochs", "1", "--seed", seed, "--json"])));
    const runs = outs.map(({ status, stdout, stderr }) => {
      expect(status, stderr).toBe(0);
      return lastJson(stdout);
    });
    const metrics = (r: Record<string, unknown>) => [r.trainLoss, r.trainAccuracy, r.testAccuracy];
    expect(runs.map((r) => r.seed)).toEqual([3, 3, null, null]);
    expect(metrics(runs[1])).toEqual(metrics(runs[0]));
    expect(metrics(runs[3])).not.toEqual(metrics(runs[2]));
    expect(metrics(runs[2])).not.toEqual(metrics(runs[0]));
  });

  it("--seeds 2 trains under seeds 0 and 1 and reports min, median and max", async () => {
    const { status, stdout, stderr } = await bench(["--seeds", "2", "--epochs", "1", "--model", "concise", "--json"]);
    expect(status, stderr).toBe(0);
    expect(stdout).toMatch(/2 seeds \(0\.\.1\), 1 epochs, \w+ backend: min \/ median \/ max/);
    const r = lastJson(stdout) as { seeds: number; models: Record<string, Record<string, { min: number; median: number; max: number }> & { runs: { seed: number; testAccuracy: number; trainLoss: number }[] }> };
    expect(Object.keys(r.models)).toEqual(["concise"]);
    const { testAccuracy, runs } = r.models.concise;
    expect(runs.map((x) => x.seed)).toEqual([0, 1]);
    const accs = runs.map((x) => x.testAccuracy);
    expect(testAccuracy).toEqual({ min: Math.min(...accs), median: (accs[0] + accs[1]) / 2, max: Math.max(...accs) });
    expect(runs[0].trainLoss).not.toBe(runs[1].trainLoss); // two seeds, two runs
  });

  it("runs 4.2's MLP (mlp-scratch) and names the model and the Node version in the JSON line", async () => {
    const { status, stdout, stderr } = await bench(["--epochs", "1", "--model", "mlp-scratch", "--json"]);
    expect(status, stderr).toBe(0);
    expect(stdout).toContain("multilayer perceptron 784-256-10 (scratch, 4.2)");
    const r = lastJson(stdout);
    for (const key of KEYS) expect(r).toHaveProperty(key);
    expect(r).toMatchObject({ model: "mlp-scratch", node: process.version, epochs: 1 });
    expect(r.cpuSecondsPerEpoch as number).toBeGreaterThan(0);
    expect(r.testAccuracy as number).toBeGreaterThan(0.5); // one epoch: 0.65-0.75 here, chance is 0.1
  }, 240_000);

  it("rejects bad arguments with a usage line, exit status 2", async () => {
    const cases = [
      [["--runs", "0"], /--runs must be a positive integer; got "0"/],
      [["--compare", "--baseline"], /--compare runs with and without the speed-ups itself; leave out --baseline/],
      [["--seed", "1.5"], /--seed must be a non-negative integer or "random"; got "1.5"/],
      [["--seeds", "3", "--runs", "2"], /--seeds runs seeds 0\.\.N-1 once each; leave out --seed, --runs and --compare/],
      [["--model", "resnet"], /--model must be one of scratch, concise, mlp, mlp-scratch, lenet; got "resnet"/],
      [["--compare", "--peer"], /--compare and --peer each alternate with another run; choose one/],
    ] as const;
    const outs = await Promise.all(cases.map(([args]) => bench([...args])));
    cases.forEach(([, message], i) => {
      expect(outs[i].status).toBe(2);
      expect(outs[i].stderr).toMatch(message);
      expect(outs[i].stderr).toContain("usage: npm run bench");
    });
  });
});
