/**
 * A real front end: Debian's classic Jupyter Notebook server on 127.0.0.1 with this
 * project's kernel, driven by headless Chromium. It runs all cells of notebook 3.6, watches
 * the training chart redraw in place while it trains and end at 10 epochs, then re-runs the
 * training cell and checks the notebook still holds one chart, not two. A learner's own cell then
 * draws a polar chart, a trace outside Plotly's cartesian bundle that the notebook carries: the
 * full plotly.js goes out with it, and the saved notebook's `npm run export` draws every chart
 * offline. The kernel runs seeded
 * (D2L_SEED, 0 unless the test run sets another), so the notebook's asserts about its training
 * hold or fail on every run.
 */
import { spawn } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pathToFileURL } from "node:url";
import { BUILD_DIR, NOTEBOOKS_DIR, ROOT } from "../../scripts/lib/paths";
import { findPython } from "../../scripts/lib/python";
import { CHROMIUM, DRIVE_FRONTENDS, launchChromium } from "./browser";
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

describe.runIf(runnable && DRIVE_FRONTENDS)("notebook 3.6 in a real Jupyter front end", () => {
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
    // Every epoch count the training cell's chart shows, recorded at each change of the page: polling alone can miss
    // the redraws when the browser is busy drawing (it once saw one intermediate count on a loaded CI machine).
    await page.evaluate(() => {
      type Cell = { cell_type: string; get_text(): string; element: HTMLElement[] };
      const w = window as unknown as { Jupyter: { notebook: { get_cells(): Cell[] } }; d2lEpochsDrawn?: number[] };
      const drawn: number[] = (w.d2lEpochsDrawn = []);
      new MutationObserver(() => {
        const cell = w.Jupyter.notebook.get_cells().find((c) => c.cell_type === "code" && /^(?!\s*(export\s+)?(async\s+)?function\b).*\btrainCh3\(/m.test(c.get_text()) && !/function\s+trainCh3/.test(c.get_text()));
        for (const p of Array.from(cell?.element[0]?.querySelectorAll(".d2l-plot") ?? [])) {
          const data = (p as unknown as { data?: { x?: number[] }[] }).data ?? [];
          drawn.push(Math.max(0, ...data.map((t) => t.x?.length ?? 0)));
        }
      }).observe(document.body, { subtree: true, childList: true, attributes: true });
    });
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
    const drawn = await page.evaluate(() => (window as unknown as { d2lEpochsDrawn: number[] }).d2lEpochsDrawn);
    const intermediate = new Set([...seen, ...drawn].filter((e) => e > 0 && e < 10));
    expect(intermediate.size).toBeGreaterThanOrEqual(2);
    await expect.poll(isIdle, { timeout: 120_000 }).toBe(true);
    // The first cell's line says the run was seeded.
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

  it("a learner's own cell draws a polar chart (outside the cartesian bundle): the full plotly.js comes with it, and the export draws it offline", async () => {
    const code = [
      "d2l.showFigure({",
      '  data: [{ type: "scatterpolar", r: [1, 3, 2, 4, 1], theta: [0, 72, 144, 216, 288], mode: "lines+markers", name: "mine" }],',
      "  layout: { width: 400, height: 320 },",
      "});",
    ].join("\n");
    const index = await page.evaluate((text) => {
      const nb = (window as unknown as { Jupyter: { notebook: { insert_cell_at_bottom(type: string): { set_text(t: string): void; execute(): void }; ncells(): number } } }).Jupyter.notebook;
      const cell = nb.insert_cell_at_bottom("code");
      cell.set_text(text);
      cell.execute();
      return nb.ncells() - 1;
    }, code);
    const polar = () =>
      page.evaluate((i) => {
        type Cell = { input_prompt_number?: number | string | null; element: HTMLElement[]; output_area: { outputs: { data?: Record<string, unknown> }[] } };
        const cell = (window as unknown as { Jupyter: { notebook: { get_cell(i: number): Cell } } }).Jupyter.notebook.get_cell(i);
        const el = cell.element[0];
        return {
          done: typeof cell.input_prompt_number === "number",
          traces: el.querySelectorAll(".d2l-plot .polarlayer .trace").length,
          carriers: cell.output_area.outputs.map((o) => /data-d2l-plotly="(\w+)"/.exec(String(o.data?.["text/html"] ?? ""))?.[1]).filter(Boolean),
          errors: Array.from(el.querySelectorAll(".output_error, .output_stderr"), (e) => (e.textContent ?? "").slice(0, 300)),
        };
      }, index);
    await expect.poll(polar, { timeout: 120_000 }).toMatchObject({ done: true, errors: [] });
    await expect.poll(async () => (await polar()).traces, { timeout: 20_000 }).toBeGreaterThan(0);
    expect((await polar()).carriers).toEqual(["full"]);
    // No chart anywhere on the page kept its "needs plotly.js" message.
    expect(await page.locator(".d2l-plot-message").count()).toBe(0);

    // Saved and exported as the learner would, then opened with every http(s) request refused.
    await page.evaluate(() => (window as unknown as { Jupyter: { notebook: { save_notebook(): Promise<unknown> } } }).Jupyter.notebook.save_notebook());
    await expect.poll(() => readFileSync(join(BUILD_DIR, "frontend", NOTEBOOK), "utf8").includes("scatterpolar"), { timeout: 30_000 }).toBe(true);
    const html = join(BUILD_DIR, "frontend", "learner-polar.html");
    const exported = await new Promise<{ code: number | null; output: string }>((resolve) => {
      const child = spawn(process.execPath, [join(ROOT, "node_modules", "tsx", "dist", "cli.mjs"), join(ROOT, "scripts", "export.ts"), "3.6", "--from", join(BUILD_DIR, "frontend", NOTEBOOK), "--out", html], { cwd: ROOT });
      let output = "";
      child.stdout.on("data", (d) => (output += d));
      child.stderr.on("data", (d) => (output += d));
      child.on("close", (code) => resolve({ code, output }));
    });
    expect(exported.code, exported.output).toBe(0);
    expect(statSync(html).size).toBeLessThan(8e6);
    const offline = await browser.newPage();
    const remote: string[] = [];
    const errors: string[] = [];
    offline.on("pageerror", (e) => errors.push(e.message));
    await offline.route(/^https?:/, (route) => {
      remote.push(route.request().url());
      return route.abort();
    });
    // Both plotly.js builds inline (about 6.5 MB of script): slow to parse on a busy machine.
    await offline.goto(pathToFileURL(html).href, { timeout: 180_000 });
    const view = () =>
      offline.evaluate(() => ({
        plots: document.querySelectorAll(".d2l-plot").length,
        drawn: Array.from(document.querySelectorAll(".d2l-plot")).filter((p) => p.querySelector(".main-svg") !== null).length,
        polar: document.querySelectorAll(".d2l-plot .polarlayer .trace").length,
        waiting: document.querySelectorAll(".d2l-plot-message").length,
      }));
    await expect.poll(async () => (await view()).waiting, { timeout: 30_000 }).toBe(0);
    const drawn = await view();
    expect(drawn.plots).toBeGreaterThanOrEqual(3);
    expect(drawn.drawn).toBe(drawn.plots);
    expect(drawn.polar).toBeGreaterThan(0);
    expect(remote).toEqual([]);
    expect(errors).toEqual([]);
    await offline.close();
  }, 300_000);
});
