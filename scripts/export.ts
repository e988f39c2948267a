/**
 * npm run export -- NAME [--from FILE.ipynb] [--out FILE.html]
 *
 * Exports one notebook as you have it (outputs and all, nothing re-run: a long training
 * stays as it ran) to build/html/NAME.html, the same offline HTML as `npm run notebooks`
 * (math typeset to SVG, plotly.js inline, no network). NAME is the notebook's name or its section
 * number ("3.6"); --from exports another copy of it (say one saved elsewhere), --out writes
 * the HTML elsewhere.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { parseArgs } from "node:util";
import { PLOTLY_MIME, plotlyBuildFor, plotlyOutputHtml, type PlotlyBuild } from "../lib/src/display";
import { writeHtmlTemplate } from "./lib/html-template";
import { readNotebook } from "./lib/notebook-json";
import { prerenderMathFile } from "./lib/prerender-math";
import { BUILD_DIR, NOTEBOOKS_DIR, ROOT, notebookNames } from "./lib/paths";
import { INSTALL_JUPYTER_HINT, findPython } from "./lib/python";

const { values, positionals } = parseArgs({ allowPositionals: true, options: { from: { type: "string" }, out: { type: "string" } } });
if (positionals.length !== 1) {
  console.error("usage: npm run export -- NAME [--from FILE.ipynb] [--out FILE.html]   (NAME: a notebook's name or section, e.g. 3.6)");
  process.exit(2);
}
const wanted = positionals[0].replace(/^.*[\\/]/, "").replace(/\.ipynb$/, "");
const all = notebookNames();
const name = all.find((n) => n === wanted) ?? all.find((n) => n.startsWith(`${wanted}-`));
if (!name) {
  console.error(`Unknown notebook: ${wanted}. Known: ${all.join(", ")}`);
  process.exit(2);
}
const source = values.from ?? join(NOTEBOOKS_DIR, `${name}.ipynb`);
if (!existsSync(source)) {
  console.error(`--from: no such file: ${source}`);
  process.exit(2);
}
const python = findPython(["nbconvert", "nbformat"]);
if (!python) {
  console.error(INSTALL_JUPYTER_HINT);
  process.exit(1);
}

const templateDir = join(BUILD_DIR, "nbconvert-templates");
writeHtmlTemplate(templateDir);
const html = resolve(values.out ?? join(BUILD_DIR, "html", `${name}.html`));
mkdirSync(dirname(html), { recursive: true });
const args = [join(ROOT, "scripts", "export_notebook.py"), source, "--html", html, "--template-dir", templateDir, "--name", name];
const missing = missingPlotly(source);
if (missing) {
  // The charts' plotly.js is gone (its cell cleared, or the notebook saved by an older d2l): it goes back in.
  const plotlyOutput = join(templateDir, "plotly-output.html");
  writeFileSync(plotlyOutput, plotlyOutputHtml(missing));
  args.push("--plotly-output", plotlyOutput);
}
const code = await new Promise<number>((resolve) => spawn(python, args, { stdio: "inherit" }).on("close", (c) => resolve(c ?? 1)));
if (code !== 0) process.exit(code);
await prerenderMathFile(html);
console.log(`${relative(ROOT, source)} → ${relative(ROOT, html)}`);

/**
 * The plotly.js build a saved notebook's charts need and its outputs no longer carry, if any: the
 * charts' trace types (their Plotly JSON) against the builds its outputs carry (`data-d2l-plotly`;
 * an older d2l's carrier, with plotly.js's licence header only, is the full build).
 */
function missingPlotly(file: string): PlotlyBuild | undefined {
  const outputs = readNotebook(file).cells.flatMap((c) => (c.outputs ?? []) as { data?: Record<string, unknown> }[]);
  const html = (o: { data?: Record<string, unknown> }) => [o.data?.["text/html"] ?? ""].flat().join("");
  const charts = outputs.filter((o) => o.data?.[PLOTLY_MIME] !== undefined || html(o).includes('class="d2l-plot"'));
  if (charts.length === 0) return undefined;
  const types = charts.flatMap((o) => ((o.data?.[PLOTLY_MIME] as { data?: { type?: string }[] } | undefined)?.data ?? [{}]).map((t) => t.type));
  const needed = plotlyBuildFor(types);
  const carried = new Set(outputs.flatMap((o) => {
    const text = html(o);
    const build = /data-d2l-plotly="(\w+)"/.exec(text)?.[1];
    return build ? [build] : text.includes("* plotly.js v") ? ["full"] : [];
  }));
  return carried.has("full") || carried.has(needed) ? undefined : needed;
}
