/**
 * Many outputs from one cell in the real tslab kernel (test/e2e/kernel_burst.py drives it through
 * jupyter_client): two cells each redraw one output 700 times without yielding, which crosses
 * zeromq's 512 synchronous sends; every update arrives, in order, and the kernel lives on
 * (lib/src/engine/iopub-queue.ts). Without the fix the kernel died or lost outputs here.
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { writeKernelSpec } from "../../scripts/lib/kernelspec";
import { BUILD_DIR, NOTEBOOKS_DIR, ROOT } from "../../scripts/lib/paths";
import { findPython } from "../../scripts/lib/python";

const python = findPython(["jupyter_client"]);
if (process.env.CI && !python) throw new Error("CI must drive the real kernel, but no Python has jupyter_client");
if (!python) console.warn("SKIPPING the output burst test: no Python with jupyter_client (see README, 'Set up')");

const UPDATES = 700;

interface Cell {
  status: string;
  displays: number;
  last: string | null;
  stdout: string;
}

describe.runIf(python)("a burst of outputs in the real tslab kernel", () => {
  let report: { cells: Cell[]; alive: boolean };

  beforeAll(async () => {
    const jupyterDir = join(BUILD_DIR, "jupyter-burst");
    writeKernelSpec(jupyterDir);
    const child = spawn(python!, [join(ROOT, "test", "e2e", "kernel_burst.py"), "--notebooks", NOTEBOOKS_DIR, "--updates", String(UPDATES)], {
      env: { ...process.env, JUPYTER_PATH: jupyterDir, PYDEVD_DISABLE_FILE_VALIDATION: "1" },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    await new Promise((resolve) => child.on("close", resolve));
    const last = stdout.trim().split("\n").pop() ?? "";
    if (!last.startsWith("{")) throw new Error(`kernel_burst.py printed no report:\n${stdout}\n${stderr}`);
    report = JSON.parse(last);
  }, 300_000);

  it(`delivers all ${UPDATES} updates of each burst, in order, and the kernel lives on`, () => {
    const [, first, second, after] = report.cells;
    for (const burst of [first, second]) {
      expect(burst.status).toBe("ok");
      expect(burst.displays).toBe(UPDATES);
      expect(burst.last).toBe(`update ${UPDATES}`);
      expect(burst.stdout).toContain("burst done");
    }
    expect(after.status).toBe("ok");
    expect(after.stdout).toContain("still here");
    expect(report.alive).toBe(true);
  });
});
