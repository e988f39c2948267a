/**
 * `npm run bench -- --model kaggle`'s contract, run for real (the shipped Kaggle files, the lib's kFold)
 * with few epochs: its JSON line, --peer where a Python with pandas and torch is found, and its usage
 * errors. How fast it runs is the benchmark's to report, not this test's to assert.
 */
import { spawn, spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "../../scripts/lib/paths";

function bench(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
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

const lastJson = (stdout: string) => JSON.parse(stdout.trim().split("\n").pop()!) as Record<string, number>;
const torchPython = ["python3", "/usr/bin/python3"].find((p) => spawnSync(p, ["-c", "import torch, pandas"]).status === 0);

describe("npm run bench -- --model kaggle", () => {
  it("runs the K-fold job on the 331 features and ends with its JSON line", async () => {
    const { status, stdout, stderr } = await bench(["--model", "kaggle", "--epochs", "20", "--json"]);
    expect(status, stderr).toBe(0);
    const r = lastJson(stdout);
    expect(r).toMatchObject({ backend: "wasm", features: 331, seed: Number(process.env.D2L_SEED) });
    expect(r.seconds).toBeGreaterThan(r.kfoldSeconds);
    expect(r.kfoldSeconds).toBeGreaterThan(0);
    // After 20 of the 100 epochs the log RMSE is still falling from ~4 (the chart in 4.10): between 0.3 and 2
    expect(r.trainLogRmse).toBeGreaterThan(0.3);
    expect(r.trainLogRmse).toBeLessThan(2);
    expect(r.validLogRmse).toBeLessThan(2);
  }, 300_000);

  it.skipIf(torchPython === undefined)("--peer alternates with d2l's PyTorch code and reports the ratio", async () => {
    const { status, stdout, stderr } = await bench(["--model", "kaggle", "--epochs", "5", "--peer", "--json"]);
    expect(status, stderr).toBe(0);
    expect(stdout).toMatch(/run 1\/1 PyTorch/);
    const r = lastJson(stdout) as unknown as { ratioToPeer: number; peer: { validLogRmse: number; seconds: number } };
    expect(r.ratioToPeer).toBeGreaterThan(0);
    expect(r.peer.seconds).toBeGreaterThan(0);
    expect(r.peer.validLogRmse).toBeGreaterThan(0.3); // 5 epochs: far from trained, as ours
  }, 300_000);

  it("refuses bad options with the usage line", async () => {
    const { status, stderr } = await bench(["--model", "kaggle", "--runs", "0"]);
    expect(status).toBe(2);
    expect(stderr).toContain('--runs must be a positive integer; got "0"');
    expect(stderr).toContain("usage: npm run bench -- --model kaggle");
  });
});
