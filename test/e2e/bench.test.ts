/**
 * `npm run bench`'s contract, run for real (the real Fashion-MNIST files, the real training loop),
 * with few epochs: the JSON line and its keys, --baseline, --runs and --compare, and the usage
 * errors. How fast it runs is the benchmark's to report, not this test's to assert.
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

const KEYS = ["backend", "epochs", "batchSize", "lr", "loadSeconds", "secondsPerEpoch", "totalSeconds", "trainLoss", "trainAccuracy", "testAccuracy"];

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
    expect(r).toMatchObject({ epochs: 2, batchSize: 256, lr: 0.1, speedups: true });
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
    const { status, stdout, stderr } = await bench(["--epochs", "2", "--runs", "2", "--compare", "--json"]);
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
    for (const [args, message] of [
      [["--runs", "0"], /--runs must be a positive integer; got "0"/],
      [["--compare", "--baseline"], /--compare runs with and without the speed-ups itself; leave out --baseline/],
      [["--model", "lenet"], /--model must be one of scratch, concise, mlp, mlp-scratch; got "lenet"/],
      [["--compare", "--peer"], /--compare and --peer each alternate with another run; choose one/],
    ] as const) {
      const { status, stderr } = await bench([...args]);
      expect(status).toBe(2);
      expect(stderr).toMatch(message);
      expect(stderr).toContain("usage: npm run bench");
    }
  });
});
