/**
 * npm run export -- NAME [--from FILE.ipynb] [--out FILE.html]
 *
 * Exports one notebook as you have it (outputs and all, nothing re-run: a long training
 * stays as it ran) to build/html/NAME.html, the same offline HTML as `npm run notebooks`
 * (MathJax and plotly.js inline, no network). NAME is the notebook's name or its section
 * number ("3.6"); --from exports another copy of it (say one saved elsewhere), --out writes
 * the HTML elsewhere.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { parseArgs } from "node:util";
import { plotlyOutputHtml } from "../lib/src/display";
import { writeHtmlTemplate } from "./lib/html-template";
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
const plotlyOutput = join(templateDir, "plotly-output.html");
writeFileSync(plotlyOutput, plotlyOutputHtml());
const html = resolve(values.out ?? join(BUILD_DIR, "html", `${name}.html`));
mkdirSync(dirname(html), { recursive: true });
const args = [join(ROOT, "scripts", "export_notebook.py"), source, "--html", html, "--template-dir", templateDir, "--plotly-output", plotlyOutput, "--name", name];
const code = await new Promise<number>((resolve) => spawn(python, args, { stdio: "inherit" }).on("close", (c) => resolve(c ?? 1)));
if (code !== 0) process.exit(code);
console.log(`${relative(ROOT, source)} → ${relative(ROOT, html)}`);
