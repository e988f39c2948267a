/**
 * npm run notebooks [-- NAME ...] [--jobs N] [--timeout S] [--seed N|random] [--passes 2]
 *
 * Executes the chapter's notebooks (all, or those named) in the real tslab kernel through
 * Jupyter, writing build/notebooks/NAME.ipynb (executed) and build/html/NAME.html.
 * Exits non-zero if any cell fails, naming the notebook and the cell. `--passes 2` runs every
 * notebook a second time in the same kernel (a second Run All, no restart; the first is exported)
 * and fails unless it passes again leaving the same tf.memory().numTensors.
 *
 * The kernel runs with D2L_SEED set (d2l.initBackend applies it), so the exported notes are
 * reproducible: the seed is --seed's, else D2L_SEED's, else 0; `--seed random` runs unseeded.
 * The executed notebook's metadata (`d2l.seed`) and the HTML's last line say which seed made them.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { writeHtmlTemplate } from "./lib/html-template";
import { prerenderMathFile } from "./lib/prerender-math";
import { KERNEL_NAME, writeKernelSpec } from "./lib/kernelspec";
import { BUILD_DIR, NOTEBOOKS_DIR, ROOT, notebookNames } from "./lib/paths";
import { INSTALL_JUPYTER_HINT, findPython } from "./lib/python";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    jobs: { type: "string", default: "1" },
    timeout: { type: "string", default: "600" },
    seed: { type: "string" },
    passes: { type: "string", default: "1" },
  },
});
const jobs = Number(values.jobs);
if (!Number.isInteger(jobs) || jobs < 1) throw new Error(`--jobs must be a positive integer; got ${values.jobs}`);
const seedText = (values.seed ?? process.env.D2L_SEED ?? "0").trim() || "0";
if (seedText !== "random" && !(/^\d+$/.test(seedText) && Number.isSafeInteger(Number(seedText)))) {
  const source = values.seed === undefined ? "D2L_SEED" : "--seed";
  console.error(`${source} must be a non-negative integer or "random" (no seed); got "${seedText}"`);
  process.exit(2);
}
const seed = seedText === "random" ? undefined : String(Number(seedText));
const passes = Number(values.passes);
if (!Number.isInteger(passes) || passes < 1) throw new Error(`--passes must be a positive integer; got ${values.passes}`);

interface Summary {
  cells: { cell: number; seconds: number }[];
  failure: { cell: number; pass?: number; source: string; error: string } | null;
  /** tf.memory().numTensors after each pass (with --passes 2 or more). */
  passes?: { numTensors: number }[];
}

const all = notebookNames();
const names = positionals.length ? positionals.map((p) => p.replace(/^.*[\\/]/, "").replace(/\.ipynb$/, "")) : all;
const unknown = names.filter((n) => !all.includes(n));
if (unknown.length) {
  console.error(`Unknown notebook(s): ${unknown.join(", ")}. Known: ${all.join(", ")}`);
  process.exit(2);
}

const python = findPython(["nbclient", "nbconvert", "nbformat"]);
if (!python) {
  console.error(INSTALL_JUPYTER_HINT);
  process.exit(1);
}

// Notebooks import the compiled lib (lib/dist); build it so they never run stale code.
const build = spawnSync(process.execPath, [join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-b", "lib"], {
  cwd: ROOT,
  stdio: "inherit",
});
if (build.status !== 0) process.exit(build.status ?? 1);

// The runner brings its own kernelspec and template, so it always runs this checkout's
// tslab (the kernel d2l-ts, first on JUPYTER_PATH), whatever kernels the user has registered.
const jupyterDir = join(BUILD_DIR, "jupyter");
writeKernelSpec(jupyterDir);
const templateDir = join(BUILD_DIR, "nbconvert-templates");
writeHtmlTemplate(templateDir);
mkdirSync(join(BUILD_DIR, "html"), { recursive: true });
const env: NodeJS.ProcessEnv = {
  ...process.env,
  JUPYTER_PATH: [jupyterDir, process.env.JUPYTER_PATH].filter(Boolean).join(process.platform === "win32" ? ";" : ":"),
  PYDEVD_DISABLE_FILE_VALIDATION: "1",
};
// The kernel inherits this environment; d2l.initBackend() in each notebook's first cells seeds from it.
if (seed === undefined) delete env.D2L_SEED;
else env.D2L_SEED = seed;

function firstLine(source: string): string {
  const line = source.split("\n").find((l) => l.trim() && !l.trim().startsWith("//")) ?? source.split("\n")[0];
  return line.length > 70 ? `${line.slice(0, 67)}...` : line;
}

function execute(name: string): Promise<boolean> {
  const started = performance.now();
  const html = join(BUILD_DIR, "html", `${name}.html`);
  const args = [
    join(ROOT, "scripts", "execute_notebook.py"),
    join(NOTEBOOKS_DIR, `${name}.ipynb`),
    "--executed", join(BUILD_DIR, "notebooks", `${name}.ipynb`),
    "--html", html,
    "--kernel", KERNEL_NAME,
    "--template-dir", templateDir,
    "--timeout", values.timeout!,
    "--seed", seed ?? "random",
    "--passes", String(passes),
  ];
  return new Promise((resolvePromise) => {
    const child = spawn(python!, args, { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", async (code) => {
      // The page's math, typeset here once instead of by MathJax in every reader's browser.
      if (existsSync(html)) {
        try {
          await prerenderMathFile(html);
        } catch (error) {
          console.error(`✗ ${name}: typesetting the math of ${html} failed: ${(error as Error).message}`);
          return resolvePromise(false);
        }
      }
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      const last = stdout.trim().split("\n").pop() ?? "";
      let summary: Summary | undefined;
      try {
        summary = JSON.parse(last) as Summary;
      } catch {
        summary = undefined;
      }
      if (!summary) {
        console.error(`✗ ${name}: the notebook could not be executed (exit ${code})\n${stderr.trim()}`);
        return resolvePromise(false);
      }
      const slowest = [...summary.cells].sort((a, b) => b.seconds - a.seconds)[0];
      if (summary.failure) {
        const f = summary.failure;
        const error = f.error.split("\n").slice(0, 12).join("\n");
        const pass = f.pass && f.pass > 1 ? ` on pass ${f.pass} (Run All again, same kernel)` : "";
        console.error(`✗ ${name}: cell ${f.cell} failed${pass} (${firstLine(f.source)})\n${error.replace(/^/gm, "    ")}`);
        return resolvePromise(false);
      }
      const counts = (summary.passes ?? []).map((p) => p.numTensors);
      if (counts.some((n) => n !== counts[0])) {
        console.error(`✗ ${name}: tf.memory().numTensors after each Run All in one kernel: ${counts.join(", ")}; a second run must leave what the first left`);
        return resolvePromise(false);
      }
      const twice = counts.length > 1 ? `, ${counts.length} passes leaving ${counts[0]} tensors each` : "";
      console.log(`✓ ${name}  ${seconds} s${slowest ? `  (slowest: cell ${slowest.cell}, ${slowest.seconds.toFixed(1)} s)` : ""}${twice}`);
      resolvePromise(code === 0);
    });
  });
}

/**
 * The notebooks that train longest, longest first (seconds a pass on a 2-vCPU machine, December
 * 2026: 6.6 ~150, 4.6 ~100, 4.10 ~55, 4.3 ~40, 4.2 ~38, 4.8 ~30). With several jobs they start
 * first, so that the last notebook to finish is a short one and no job idles while 6.6 trains alone.
 */
const LONGEST_FIRST = ["6.6-lenet", "4.6-dropout", "4.10-kaggle-house-price", "4.3-mlp-concise", "4.2-mlp-scratch", "4.8-numerical-stability-and-init"];
const cost = (name: string) => {
  const i = LONGEST_FIRST.indexOf(name);
  return i < 0 ? LONGEST_FIRST.length : i;
};

const started = performance.now();
const queue = jobs > 1 ? [...names].sort((a, b) => cost(a) - cost(b)) : [...names];
const results: boolean[] = [];
await Promise.all(
  Array.from({ length: Math.min(jobs, queue.length) }, async () => {
    for (let name = queue.shift(); name !== undefined; name = queue.shift()) results.push(await execute(name));
  }),
);
const failed = results.filter((ok) => !ok).length;
const total = ((performance.now() - started) / 1000).toFixed(1);
const seeded = seed === undefined ? "unseeded" : `seed ${seed}`;
console.log(
  `notebooks: ${results.length - failed} passed, ${failed} failed in ${total} s (${seeded}, Node ${process.version}); HTML in ${join("build", "html")}`,
);
if (!existsSync(join(BUILD_DIR, "html")) || failed > 0) process.exit(1);
