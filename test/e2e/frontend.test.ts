/**
 * A real front end: Debian's classic Jupyter Notebook server on 127.0.0.1 with this
 * project's kernel, driven by headless Chromium. It runs all cells of notebook 3.6, watches
 * the training chart redraw in place while it trains and end at 10 epochs, then re-runs the
 * training cell and checks the notebook still holds one chart, not two. The kernel runs seeded
 * (D2L_SEED, 0 unless the test run sets another), so the notebook's asserts about its training
 * hold or fail on every run.
 */
import { copyFileSync, existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BUILD_DIR, NOTEBOOKS_DIR } from "../../scripts/lib/paths";
import { findPython } from "../../scripts/lib/python";
import { CHROMIUM, launchChromium } from "./browser";
import { startJupyterServer, type JupyterServer } from "./jupyter-server";

const NOTEBOOK = "3.6-softmax-regression-scratch.ipynb";
const SEED = process.env.D2L_SEED ?? "0";
const python = findPython(["notebook", "jupyter_client"]);
const runnable = python !== undefined && existsSync(CHROMIUM);
if (process.env.CI && !runnable) {
  throw new Error(`CI must drive a real front end, but ${python ? `Chromium is missing at ${CHROMIUM}` : "no Python has the Jupyter notebook server"}`);
}

/** What the page shows of the training cell: its charts and the epochs drawn in each. */
interface TrainingView {
  index: number;
  charts: number;
  epochs: number[];
  running: boolean;
  /** The cell has finished running at least once (its prompt shows a number). */
  executed: boolean;
  allCharts: number;
  errors: string[];
}

function trainingView(page: Page): Promise<TrainingView> {
  return page.evaluate(() => {
    type Cell = { cell_type: string; get_text(): string; element: HTMLElement[]; input_prompt_number?: number | string | null };
    const nb = (window as unknown as { Jupyter: { notebook: { get_cells(): Cell[] } } }).Jupyter.notebook;
    const cells = nb.get_cells();
    // The cell that calls trainCh3 (not the one that defines it).
    const index = cells.findIndex((c) => c.cell_type === "code" && /^(?!\s*(export\s+)?(async\s+)?function\b).*\btrainCh3\(/m.test(c.get_text()) && !/function\s+trainCh3/.test(c.get_text()));
    const el = cells[index]?.element[0];
    const plots = el ? Array.from(el.querySelectorAll(".d2l-plot")) : [];
    const epochs = plots.map((p) => {
      const data = (p as unknown as { data?: { x?: number[] }[] }).data ?? [];
      return Math.max(0, ...data.map((t) => t.x?.length ?? 0));
    });
    const errors = Array.from(document.querySelectorAll(".output_error, .output_stderr")).map((e) => (e.textContent ?? "").slice(0, 300));
    return {
      index,
      charts: plots.length,
      epochs,
      running: cells[index]?.input_prompt_number === "*",
      executed: typeof cells[index]?.input_prompt_number === "number",
      allCharts: document.querySelectorAll(".d2l-plot").length,
      errors,
    };
  });
}

/** Polls the training cell until `done` says so, recording every distinct epoch count drawn. */
async function watchTraining(page: Page, done: (v: TrainingView) => boolean, timeoutMs: number): Promise<{ seen: number[]; last: TrainingView }> {
  const seen = new Set<number>();
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const view = await trainingView(page);
    view.epochs.forEach((e) => seen.add(e));
    if (view.errors.length) throw new Error(`a cell failed in the browser:\n${view.errors.join("\n")}`);
    if (done(view)) return { seen: [...seen].sort((a, b) => a - b), last: view };
    if (Date.now() > deadline) throw new Error(`timed out; last view ${JSON.stringify(view)}`);
    await page.waitForTimeout(100);
  }
}

describe.runIf(runnable)("notebook 3.6 in a real Jupyter front end", () => {
  let server: JupyterServer;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    // A copy under build/ (inside the project, so the kernel still finds node_modules), so
    // nothing the browser does can touch the committed notebook.
    const dir = join(BUILD_DIR, "frontend");
    mkdirSync(dir, { recursive: true });
    copyFileSync(join(NOTEBOOKS_DIR, NOTEBOOK), join(dir, NOTEBOOK));
    // The kernel inherits D2L_SEED from the test's environment (test/setup.ts); d2l.initBackend() in the first cell applies it.
    server = await startJupyterServer(python!, (port, token) => ["-m", "notebook", "--no-browser", "--allow-root", "--ip=127.0.0.1", `--port=${port}`, `--NotebookApp.token=${token}`, `--notebook-dir=${dir}`]);
    const { base, token } = server;

    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1200, height: 1000 } });
    await page.goto(`${base}/notebooks/${NOTEBOOK}?token=${token}`);
    await page.waitForFunction(
      () => {
        const j = (window as unknown as { Jupyter?: { notebook?: { kernel?: { is_connected(): boolean } } } }).Jupyter;
        return j?.notebook?.kernel?.is_connected() === true;
      },
      undefined,
      { timeout: 60_000 },
    );
    // Never autosave: the copy is thrown away, but a save mid-run would race the test.
    await page.evaluate(() => (window as unknown as { Jupyter: { notebook: { set_autosave_interval(ms: number): void } } }).Jupyter.notebook.set_autosave_interval(0));
  });

  afterAll(async () => {
    await browser?.close();
    server?.stop();
  });

  it("runs every cell, drawing the training chart in place epoch by epoch up to 10", async () => {
    await page.evaluate(() => (window as unknown as { Jupyter: { notebook: { execute_all_cells(): void } } }).Jupyter.notebook.execute_all_cells());
    const isIdle = () =>
      page.evaluate(() => {
        type Cell = { cell_type: string; input_prompt_number?: number | string | null };
        const cells = (window as unknown as { Jupyter: { notebook: { get_cells(): Cell[] } } }).Jupyter.notebook.get_cells().filter((c) => c.cell_type === "code");
        return cells.every((c) => typeof c.input_prompt_number === "number");
      });
    const charts: number[] = [];
    const { seen, last } = await watchTraining(
      page,
      (v) => {
        charts.push(v.charts);
        return v.index >= 0 && v.executed;
      },
      300_000,
    );
    expect(last.index).toBeGreaterThan(0);
    // While training, the cell never held more than one chart: updates replaced it.
    expect(Math.max(...charts)).toBeLessThanOrEqual(1);
    expect(last.charts).toBe(1);
    expect(last.epochs).toEqual([10]);
    // It redrew while training: some intermediate epoch counts were on screen.
    expect(seen.filter((e) => e > 0 && e < 10).length).toBeGreaterThanOrEqual(2);
    await expect.poll(isIdle, { timeout: 120_000 }).toBe(true);
    // The first cell's line says the run was seeded.
    // The first cell's text outputs (it also carries plotly.js, as a script output of its own).
    const firstOutput = await page.evaluate(() =>
      Array.from(document.querySelector(".code_cell")?.querySelectorAll(".output_text") ?? [], (e) => e.textContent ?? "").join("\n"),
    );
    expect(firstOutput).toContain(`, seed ${SEED}`);
  }, 420_000);

  it("re-running the training cell leaves one chart, not two", async () => {
    const before = await trainingView(page);
    await page.evaluate((i) => {
      const nb = (window as unknown as { Jupyter: { notebook: { get_cell(i: number): { execute(): void } } } }).Jupyter.notebook;
      nb.get_cell(i).execute();
    }, before.index);
    await page.waitForFunction((i) => {
      const nb = (window as unknown as { Jupyter: { notebook: { get_cell(i: number): { input_prompt_number?: number | string | null } } } }).Jupyter.notebook;
      return nb.get_cell(i).input_prompt_number === "*";
    }, before.index, { timeout: 30_000 });
    const { seen, last } = await watchTraining(page, (v) => v.executed, 300_000);
    expect(last.charts).toBe(1);
    expect(last.epochs).toEqual([10]);
    expect(last.allCharts).toBe(before.allCharts);
    expect(seen.some((e) => e > 0 && e < 10)).toBe(true);
  }, 420_000);
});
