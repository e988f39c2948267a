/**
 * Jupyter's Stop button in the real tslab kernel (test/e2e/kernel_interrupt.py drives it through
 * jupyter_client): a training cell interrupted at ten moments, a learner's tf.tidy cell, and a
 * Fashion-MNIST download. After each: the kernel is alive, the next trainCh3 trains and reaches
 * d2l's bounds, tf.memory().numTensors is back where it was, and a download left nothing behind.
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { writeKernelSpec } from "../../scripts/lib/kernelspec";
import { BUILD_DIR, NOTEBOOKS_DIR, ROOT } from "../../scripts/lib/paths";
import { findPython } from "../../scripts/lib/python";
import { realDataDir } from "../unit/fashion-mnist-fixtures";

const python = findPython(["jupyter_client"]);
if (process.env.CI && !python) throw new Error("CI must drive the real kernel, but no Python has jupyter_client");
if (!python) console.warn("SKIPPING kernel interrupt tests: no Python with jupyter_client (see README, 'Set up')");

interface Cut {
  status: string;
  alive: boolean;
  message: string;
  charts: string[];
  pointsDrawn: number[];
}
interface After {
  status: string;
  alive: boolean;
  notes: string[];
  metrics: { trainLoss: number; trainAcc: number; testAcc: number; numTensors: number } | null;
  charts: string[];
  stderr: string;
}
interface Report {
  training: { before: number; runs: { delay: { epochsDrawn: number; seconds: number }; interrupted: Cut; next: After }[] };
  tidy: { before: number; interrupted: Cut; next: After };
  download: {
    interrupted: { status: string; alive: boolean; message: string };
    leftInCache: string[];
    again: { status: string; sizes: [number, number] | null; stderr: string };
    cacheAfter: string[];
    requests: string[];
  };
}

/** d2l's bounds for a successful run, as trainCh3 asserts them (it throws otherwise). */
function expectTrained(next: After, before: number) {
  expect(next.alive).toBe(true);
  expect(next.status, next.stderr).toBe("ok");
  expect(next.metrics!.trainLoss).toBeLessThan(0.5);
  expect(next.metrics!.trainAcc).toBeGreaterThan(0.7);
  expect(next.metrics!.testAcc).toBeGreaterThan(0.7);
  // The user holds W and b, as before the interrupted cell: not one tensor more or fewer.
  expect(next.metrics!.numTensors).toBe(before);
  expect(next.charts).toHaveLength(1); // its own chart
}

describe.runIf(python)("Stop (kernel interrupt) in the real tslab kernel", () => {
  let report: Report;

  beforeAll(async () => {
    const jupyterDir = join(BUILD_DIR, "jupyter");
    writeKernelSpec(jupyterDir);
    const child = spawn(python!, [join(ROOT, "test", "e2e", "kernel_interrupt.py"), "--notebooks", NOTEBOOKS_DIR, "--data", realDataDir()], {
      cwd: ROOT,
      env: { ...process.env, JUPYTER_PATH: [jupyterDir, process.env.JUPYTER_PATH].filter(Boolean).join(":"), PYDEVD_DISABLE_FILE_VALIDATION: "1" },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const status = await new Promise<number | null>((resolve) => child.on("close", resolve));
    if (status !== 0) throw new Error(`kernel_interrupt.py failed (${status}):\n${stderr.slice(-3000)}`);
    report = JSON.parse(stdout.trim().split("\n").pop()!) as Report;
  });

  it("a trainCh3 cell interrupted at ten moments: each time the kernel lives, the next trainCh3 reaches d2l's bounds, no tensor is left", () => {
    const { before, runs } = report.training;
    expect(runs).toHaveLength(10);
    for (const { delay, interrupted, next } of runs) {
      const where = `interrupted at ${JSON.stringify(delay)}`;
      expect(interrupted.status, where).toBe("error");
      expect(interrupted.alive, where).toBe(true);
      expect(interrupted.message, where).toMatch(/interrupted/i);
      // A cut between two of trainCh3's scopes (the chart's redraw, the metrics' bookkeeping) leaves nothing open
      // and nothing alive: there is nothing to repair and no note. Any cut inside one is repaired and says so.
      expect(next.notes.length, where).toBeLessThanOrEqual(1);
      for (const note of next.notes) expect(note, where).toMatch(/^d2l: the previous run was interrupted; freed \d+ tensors? it left behind/);
      expectTrained(next, before);
      // An interrupted chart stays as drawn; the next run draws a chart of its own.
      expect(next.charts.some((id) => interrupted.charts.includes(id)), where).toBe(false);
    }
    // The last four interrupts fall after the chart drew an epoch (kernel_interrupt.py waits for it): those charts kept their points.
    expect(runs.slice(6).map((r) => r.interrupted.pointsDrawn.some((n) => n > 0))).toEqual([true, true, true, true]);
    // Most cuts land mid-step with tensors alive, which the repair frees; a cut that lands while the
    // chart redraws finds none alive (no note, or "freed 0"), which is right too: the count above is what must hold.
    expect(runs.filter((r) => Number(/freed (\d+)/.exec(r.next.notes[0] ?? "")?.[1]) > 0).length).toBeGreaterThanOrEqual(5);
  });

  it("a learner's plain cell looping in tf.tidy: interrupted, then training works and its tensors are freed", () => {
    const { before, interrupted, next } = report.tidy;
    expect(interrupted.status).toBe("error");
    expect(interrupted.alive).toBe(true);
    expect(next.notes).toHaveLength(1);
    expect(Number(/freed (\d+)/.exec(next.notes[0])?.[1])).toBeGreaterThan(0);
    expectTrained(next, before);
  });

  it("a Fashion-MNIST download interrupted halfway keeps nothing in the cache, and the next load works", () => {
    const { interrupted, leftInCache, again, cacheAfter, requests } = report.download;
    expect(interrupted.status).toBe("error");
    expect(interrupted.alive).toBe(true);
    expect(requests.filter((r) => r.startsWith("/slow/"))).toHaveLength(1); // stopped at the first file
    expect(leftInCache).toEqual([]); // no partial file, no .part
    expect(again.status, again.stderr).toBe("ok");
    expect(again.sizes).toEqual([60000, 10000]);
    expect(cacheAfter).toEqual(["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]);
  });
});
