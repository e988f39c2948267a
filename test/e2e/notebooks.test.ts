/**
 * Every notebook executed by the real tslab kernel through Jupyter (`npm run notebooks`), twice
 * in one kernel as a reader's second Run All does (every cell must pass both times and leave the
 * same tf.memory().numTensors; the first pass is exported), then every exported HTML page opened offline in headless Chromium: each chart must have
 * drawn its SVG, the math must have rendered, and the page must log no error and request
 * nothing from the network. Screenshots of each chart go to build/screenshots/.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
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

describe.runIf(hasJupyter)("notebooks in the real tslab kernel", () => {
  let run: { status: number | null; output: string };

  beforeAll(async () => {
    // Asynchronously: a worker blocked for minutes in spawnSync misses vitest's RPC deadline.
    const child = spawn(process.execPath, [join(ROOT, "node_modules", "tsx", "dist", "cli.mjs"), "scripts/run-notebooks.ts", "--passes", "2"], {
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

  it("all execute without a failing cell, twice in one kernel, the second Run All leaving the tensors the first left", () => {
    expect(run.output).toMatch(new RegExp(`notebooks: ${names.length} passed, 0 failed`));
    expect(run.status).toBe(0);
    for (const name of names) expect(run.output).toMatch(new RegExp(`✓ ${name.replace(/\./g, "\\.")} .*, 2 passes leaving \\d+ tensors each`));
  });

  for (const name of names) {
    it(`${name}: every code cell ran, in order, and the kernel replied to each`, () => {
      const nb = readNotebook(join(BUILD_DIR, "notebooks", `${name}.ipynb`));
      const code = nb.cells.filter((c) => c.cell_type === "code");
      expect(code.length).toBeGreaterThan(0);
      expect(code.map((c) => c.execution_count)).toEqual(code.map((_, i) => i + 1));
      // plotly.js (4.8 MB) travels once per notebook, not with every chart.
      const bundles = code.flatMap((c) => (c.outputs ?? []) as { data?: Record<string, unknown> }[])
        .filter((o) => String(o.data?.["text/html"] ?? "").includes("plotly.js v")).length;
      const charts = code.flatMap((c) => (c.outputs ?? []) as { data?: Record<string, unknown> }[])
        .filter((o) => o.data?.["application/vnd.plotly.v1+json"] !== undefined).length;
      expect(bundles).toBe(charts > 0 ? 1 : 0);
      const replies = code.map((c) => (c.metadata.execution as Record<string, string> | undefined)?.["shell.execute_reply"]);
      expect(replies.every((t) => typeof t === "string")).toBe(true);
      expect([...replies].sort()).toEqual(replies); // in order
    });
  }

  describe.runIf(hasChromium)("exported HTML in headless Chromium, offline", () => {
    let browser: Browser;
    beforeAll(async () => {
      browser = await launchChromium();
      mkdirSync(join(BUILD_DIR, "screenshots"), { recursive: true });
    });
    afterAll(async () => browser?.close());

    for (const name of names) {
      it(`${name}: every chart drew, math rendered, no errors, no network`, async () => {
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
        if (/^3\.[67]-/.test(name)) {
          // The training chart: d2l's three curves, one point per epoch, 10 epochs.
          const curves = await charts.evaluateAll((els) =>
            els.map((el) => ((el as unknown as { data: { name?: string; x?: number[] }[] }).data ?? []).map((t) => `${t.name}:${t.x?.length ?? 0}`).join(",")),
          );
          expect(curves).toContain("train loss:10,train acc:10,test acc:10");
        }
        if (/\$[^$]+\$/.test(html)) {
          await expect.poll(() => page.locator("mjx-container svg").count(), { timeout: 20_000 }).toBeGreaterThan(0);
          expect(await page.locator("mjx-merror").count(), "MathJax reported a TeX error").toBe(0);
        }
        expect(problems).toEqual([]);
        await context.close();
      });
    }
  });
});
