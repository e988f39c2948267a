/**
 * Every notebook executed by the real tslab kernel through Jupyter (`npm run notebooks`), twice
 * in one kernel as a reader's second Run All does (every cell must pass both times and leave the
 * same tf.memory().numTensors; the first pass is exported), then every exported HTML page opened offline in headless Chromium: each chart must have
 * drawn its SVG, the math must have rendered, and the page must log no error and request
 * nothing from the network. Screenshots of each chart go to build/screenshots/. The notes stay
 * light enough to share: each executed notebook of chapters 2-4 at most 1.8 MB, each page 2.5 MB.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readNotebook } from "../../scripts/lib/notebook-json";
import { BUILD_DIR, ROOT, notebookNames } from "../../scripts/lib/paths";
import { findPython } from "../../scripts/lib/python";
import { CHROMIUM, launchChromium } from "./browser";

const names = notebookNames();
const hasJupyter = findPython(["nbclient", "nbconvert", "nbformat"]) !== undefined;
const hasChromium = existsSync(CHROMIUM);

// A developer without Jupyter or Chromium gets a skip and a reason; CI gets a failure.
if (process.env.CI && (!hasJupyter || !hasChromium)) {
  throw new Error(`CI must run the notebooks end to end, but ${!hasJupyter ? "no Python has Jupyter (nbclient, nbconvert)" : `Chromium is missing at ${CHROMIUM}`}`);
}
if (!hasJupyter) console.warn("SKIPPING notebook tests: no Python with Jupyter (see README, 'Set up')");

/**
 * How many times each notebook runs in one kernel: twice (a second Run All, no restart) unless
 * D2L_TEST_NOTEBOOK_PASSES=1, which .ci/run sets for its second Node version to keep CI short.
 */
const PASSES = process.env.D2L_TEST_NOTEBOOK_PASSES?.trim() || "2";
if (PASSES !== "1" && PASSES !== "2") throw new Error(`D2L_TEST_NOTEBOOK_PASSES must be 1 or 2; got "${PASSES}"`);
/**
 * How many notebooks run at once, each in its own kernel: 2 by default, since one kernel at a time
 * leaves the second core mostly idle (vitest runs one test file at a time on two cores);
 * D2L_TEST_NOTEBOOK_JOBS=1 for one.
 */
const JOBS = process.env.D2L_TEST_NOTEBOOK_JOBS?.trim() || "2";
if (!/^[1-9]\d*$/.test(JOBS)) throw new Error(`D2L_TEST_NOTEBOOK_JOBS must be a positive integer; got "${JOBS}"`);

describe.runIf(hasJupyter)("notebooks in the real tslab kernel", () => {
  let run: { status: number | null; output: string };

  beforeAll(async () => {
    // Asynchronously: a worker blocked for minutes in spawnSync misses vitest's RPC deadline.
    const child = spawn(process.execPath, [join(ROOT, "node_modules", "tsx", "dist", "cli.mjs"), "scripts/run-notebooks.ts", "--passes", PASSES, "--jobs", JOBS], {
      cwd: ROOT,
      env: { ...process.env, FORCE_COLOR: "0" },
    });
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    const status = await new Promise<number | null>((resolve) => child.on("close", resolve));
    run = { status, output };
    console.log(output.trim());
  });

  it(`all execute without a failing cell${PASSES === "2" ? ", twice in one kernel, the second Run All leaving the tensors the first left" : ""}`, () => {
    expect(run.output).toMatch(new RegExp(`notebooks: ${names.length} passed, 0 failed`));
    expect(run.status).toBe(0);
    if (PASSES === "2") {
      for (const name of names) expect(run.output).toMatch(new RegExp(`✓ ${name.replace(/\./g, "\\.")} .*, 2 passes leaving \\d+ tensors each`));
    }
  });

  for (const name of names) {
    it(`${name}: every code cell ran, in order, and the kernel replied to each`, () => {
      const nb = readNotebook(join(BUILD_DIR, "notebooks", `${name}.ipynb`));
      const code = nb.cells.filter((c) => c.cell_type === "code");
      expect(code.length).toBeGreaterThan(0);
      expect(code.map((c) => c.execution_count)).toEqual(code.map((_, i) => i + 1));
      // plotly.js travels once per notebook, not with every chart, and only in a notebook with
      // charts: Plotly's cartesian bundle (every chart of the book), ahead of the first chart.
      const outputs = code.flatMap((c) => (c.outputs ?? []) as { data?: Record<string, unknown> }[]);
      const carrier = (o: (typeof outputs)[number]) => /data-d2l-plotly="(\w+)"/.exec(String(o.data?.["text/html"] ?? ""))?.[1];
      const firstChart = outputs.findIndex((o) => o.data?.["application/vnd.plotly.v1+json"] !== undefined);
      const carriers = outputs.map(carrier).filter((b) => b !== undefined);
      if (firstChart < 0) {
        expect(carriers, "a notebook without charts carries no plotly.js").toEqual([]);
      } else {
        expect(carriers).toEqual(["cartesian"]);
        expect(outputs.findIndex((o) => carrier(o) !== undefined)).toBeLessThan(firstChart);
      }
      expect(JSON.stringify(nb)).not.toContain("* plotly.js v"); // the full bundle stays out
      if (/^[234]\./.test(name)) {
        expect(statSync(join(BUILD_DIR, "notebooks", `${name}.ipynb`)).size, "executed notebook size").toBeLessThanOrEqual(1.8e6);
        expect(statSync(join(BUILD_DIR, "html", `${name}.html`)).size, "exported page size").toBeLessThanOrEqual(2.5e6);
      }
      const replies = code.map((c) => (c.metadata.execution as Record<string, string> | undefined)?.["shell.execute_reply"]);
      expect(replies.every((t) => typeof t === "string")).toBe(true);
      expect([...replies].sort()).toEqual(replies); // in order
      // Run seeded (the runner's default; test/setup.ts passes D2L_SEED on), and recorded as such.
      expect(nb.metadata.d2l).toEqual({ seed: Number(process.env.D2L_SEED) });
    });
  }

  describe.runIf(hasChromium)("exported HTML in headless Chromium, offline", () => {
    let browser: Browser;
    beforeAll(async () => {
      browser = await launchChromium();
      mkdirSync(join(BUILD_DIR, "screenshots"), { recursive: true });
    });
    afterAll(async () => browser?.close());

    // Two pages at a time (vitest's maxConcurrency): each page waits on Chromium's renderer and its
    // screenshots, so two keep both cores busy; the context's own expect names the right test.
    for (const name of names) {
      it.concurrent(`${name}: every chart drew, math rendered, no errors, no network`, async ({ expect }) => {
        const file = join(BUILD_DIR, "html", `${name}.html`);
        const html = readFileSync(file, "utf8");
        const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
        const problems: string[] = [];
        const page = await context.newPage();
        page.on("console", (m) => m.type() === "error" && problems.push(`console: ${m.text()}`));
        page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
        page.on("request", (r) => !/^(file|data|blob|about):/.test(r.url()) && problems.push(`network: ${r.url()}`));
        await page.goto(pathToFileURL(file).href, { waitUntil: "load" });

        const expectedCharts = (html.match(/class="d2l-plot"/g) ?? []).length;
        const charts = page.locator(".d2l-plot");
        await expect.poll(() => page.locator(".d2l-plot .main-svg").count(), { timeout: 20_000 }).toBeGreaterThanOrEqual(expectedCharts);
        expect(await charts.count()).toBe(expectedCharts);
        for (let i = 0; i < expectedCharts; i++) {
          const chart = charts.nth(i);
          // Plotly draws each trace as a path (lines), points or an image/heatmap layer.
          const marks = await chart.locator(".scatterlayer .trace, .imagelayer image, .heatmaplayer image, .barlayer .trace").count();
          expect(marks, `${name} chart ${i} drew no data`).toBeGreaterThan(0);
          await chart.screenshot({ path: join(BUILD_DIR, "screenshots", `${name}-${i}.png`) });
        }
        expect(await page.locator(".d2l-plot-message").count(), "a chart kept its 'needs plotly.js' message").toBe(0);
        // Curves are read from Plotly's _fullData: a long data array travels as a typed array (figure.ts),
        // which Plotly decodes there, while .data keeps what was sent.
        if (/^(3\.[67]|4\.[236])-/.test(name)) {
          // The training chart: d2l's three curves, one point per epoch, 10 epochs.
          const curves = await charts.evaluateAll((els) =>
            els.map((el) => ((el as unknown as { _fullData: { name?: string; x?: ArrayLike<number> }[] })._fullData ?? []).map((t) => `${t.name}:${t.x?.length ?? 0}`).join(",")),
          );
          expect(curves).toContain("train loss:10,train acc:10,test acc:10");
        }
        if (name === "6.6-lenet") {
          // trainCh6's chart: train metrics five times an epoch, test accuracy once, over 10 epochs.
          const curves = await charts.evaluateAll((els) =>
            els.map((el) => ((el as unknown as { data: { name?: string; x?: number[] }[] }).data ?? []).map((t) => `${t.name}:${t.x?.length ?? 0}`).join(",")),
          );
          expect(curves).toContain("train loss:50,train acc:50,test acc:10");
        }
        if (/^6\.[126]-/.test(name)) {
          // The heatmaps (showHeatmaps, showImages): every matrix drawn as an image, 6.6's six kernels among them.
          const heatmaps = await charts.evaluateAll((els) => els.map((el) => ((el as unknown as { data: { type?: string }[] }).data ?? []).filter((t) => t.type === "heatmap").length));
          const drawn = await charts.evaluateAll((els) => els.map((el) => el.querySelectorAll(".heatmaplayer image").length));
          expect(drawn).toEqual(heatmaps);
          expect(heatmaps.filter((n) => n > 0).length).toBeGreaterThanOrEqual({ "6.1-why-conv": 2, "6.2-conv-layer": 3, "6.6-lenet": 5 }[name]!);
          if (name === "6.6-lenet") expect(heatmaps).toContain(6);
        }
        if (name === "2.4-calculus") {
          // f and its tangent at x = 1 in one figure, over d2l's 30 points.
          const lines = await charts.first().evaluate((el) => ((el as unknown as { _fullData: { name?: string; x?: ArrayLike<number> }[] })._fullData ?? []).map((t) => `${t.name}:${t.x?.length ?? 0}`).join(","));
          expect(lines).toBe("f(x):30,Tangent line (x=1):30");
        }
        if (name === "2.6-probability") {
          // Six running estimates over 500 experiments and the dashed 1/6 line.
          const lines = await charts.first().evaluate((el) => ((el as unknown as { _fullData: { name?: string; x?: ArrayLike<number> }[] })._fullData ?? []).map((t) => `${t.name}:${t.x?.length ?? 0}`).join(","));
          expect(lines).toBe([1, 2, 3, 4, 5, 6].map((k) => `P(die=${k}):500`).concat("1/6:500").join(","));
        }
        if (name === "2.2-pandas") {
          // Arquero's tables are shown as tables (text/html), not as text: the one-hot table with its rows.
          const tables = page.locator("table", { has: page.locator("th", { hasText: "Alley_nan" }) });
          expect(await tables.count()).toBeGreaterThanOrEqual(1);
          expect(await tables.first().locator("th").allTextContents()).toEqual(["NumRooms", "Alley_Pave", "Alley_nan"]);
          expect(await tables.first().locator("tbody tr").count()).toBe(4);
          expect(await tables.first().isVisible()).toBe(true);
        }
        // Math lives in markdown cells; a "$" in code (a template string's ${...}) is not math.
        const markdown = readNotebook(join(BUILD_DIR, "notebooks", `${name}.ipynb`)).cells
          .filter((c) => c.cell_type === "markdown").map((c) => (Array.isArray(c.source) ? c.source.join("") : c.source)).join("\n");
        if (/\$[^$]+\$/.test(markdown)) {
          // Typeset ahead of time (scripts/lib/prerender-math.ts): SVG in the page, no MathJax to run.
          expect(await page.locator("mjx-container svg").count()).toBeGreaterThan(0);
          expect(await page.locator("mjx-merror").count(), "MathJax reported a TeX error").toBe(0);
          // Every glyph a formula uses is defined in the page.
          const missing = await page.evaluate(() =>
            Array.from(document.querySelectorAll("mjx-container use"), (u) => (u.getAttribute("xlink:href") ?? u.getAttribute("href") ?? "").slice(1)).filter((id) => !document.getElementById(id)),
          );
          expect(missing).toEqual([]);
        }
        expect(await page.evaluate(() => "MathJax" in window), "the page loads no MathJax").toBe(false);
        expect(await page.locator("#d2l-run").textContent()).toContain(`with seed ${process.env.D2L_SEED} (D2L_SEED=`);
        expect(problems).toEqual([]);
        await context.close();
      });
    }
  });
});
