/**
 * `npm run kernel` against the real `jupyter kernelspec` (jupyter_client), in a throwaway
 * JUPYTER_DATA_DIR that already holds what a learner's global tslab registered (`tslab install`:
 * the kernels "tslab" and "jslab"). The project's kernel "d2l-ts" goes in beside them and leaves
 * them byte for byte; a notebook as committed runs in it; a notebook in the plain tslab kernel
 * says how to get the project's; a "d2l-ts" another checkout wrote is replaced, naming that
 * checkout; one d2l-ts did not write is left alone; `--remove` removes only the project's kernels.
 */
import { spawn } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KERNEL_DISPLAY_NAME, KERNEL_ENTRY, KERNEL_NAME } from "../../scripts/lib/kernelspec";
import { readNotebook, type Notebook } from "../../scripts/lib/notebook-json";
import { BUILD_DIR, NOTEBOOKS_DIR, ROOT } from "../../scripts/lib/paths";
import { findPython } from "../../scripts/lib/python";

const python = findPython(["jupyter_client", "nbconvert", "nbclient", "IPython"]);
if (process.env.CI && !python) throw new Error("CI must register the kernel with a real Jupyter, but no Python has jupyter_client and nbconvert");
if (!python) console.warn("SKIPPING the kernelspec tests: no Python with jupyter_client, nbconvert and IPython");

/** A notebook that runs fast and prints d2l's first line. */
const NOTEBOOK = "6.3-padding-and-strides";

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end (async: a long spawnSync would time out vitest's worker RPC). */
function run(command: string, args: string[], env: NodeJS.ProcessEnv, cwd = ROOT): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (status) => resolve({ status, stdout, stderr }));
  });
}

describe.runIf(python)("npm run kernel with a real jupyter kernelspec", () => {
  let home: string;
  let env: NodeJS.ProcessEnv;
  let kernels: string;
  /** The learner's own kernelspecs, byte for byte, as `tslab install` wrote them. */
  const own: Record<string, string> = {};

  const npmRunKernel = (...args: string[]) =>
    run(process.execPath, [join(ROOT, "node_modules", "tsx", "dist", "cli.mjs"), join(ROOT, "scripts", "register-kernel.ts"), ...args], env);
  const kernelspecList = async (): Promise<Record<string, { resource_dir: string; spec: { argv: string[]; display_name: string; env?: Record<string, string> } }>> => {
    const listed = await run(python!, ["-m", "jupyter", "kernelspec", "list", "--json"], env);
    expect(listed.status, listed.stderr).toBe(0);
    return JSON.parse(listed.stdout).kernelspecs;
  };
  const expectOwnKernelsUntouched = () => {
    for (const [name, text] of Object.entries(own)) expect(readFileSync(join(kernels, name, "kernel.json"), "utf8"), name).toBe(text);
  };
  /** Executes a notebook with nbconvert, as `jupyter nbconvert --execute` does: the kernel its metadata names. */
  const execute = async (file: string): Promise<Notebook> => {
    const out = join(home, "out");
    const result = await run(python!, ["-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--output-dir", out, "--ExecutePreprocessor.timeout=300", file], env);
    expect(result.status, result.stderr).toBe(0);
    return readNotebook(join(out, file.replace(/^.*[\\/]/, "")));
  };
  const outputText = (nb: Notebook, stream: string) =>
    nb.cells.flatMap((c) => (c.outputs ?? []) as { name?: string; text?: string | string[] }[]).filter((o) => o.name === stream).map((o) => [o.text ?? ""].flat().join("")).join("");

  beforeAll(async () => {
    home = mkdtempSync(join(tmpdir(), "d2l-kernelspec-"));
    kernels = join(home, "data", "kernels");
    const { JUPYTER_PATH: _p, CONDA_PREFIX: _c, D2L_KERNEL: _k, ...rest } = process.env;
    env = {
      ...rest,
      D2L_PYTHON: python,
      JUPYTER_DATA_DIR: join(home, "data"),
      JUPYTER_CONFIG_DIR: join(home, "config"),
      JUPYTER_RUNTIME_DIR: join(home, "runtime"),
      PYDEVD_DISABLE_FILE_VALIDATION: "1",
      // jupyter_core also searches Python's user base (~/.local/share/jupyter), where this checkout's own
      // `npm install` registered d2l-ts: keep the machine's real kernels out of the learner we play
      PYTHONNOUSERSITE: "1",
    };
    // What `npm i -g tslab && tslab install` leaves: "tslab" and "jslab" running the tslab command.
    const tslab = join(ROOT, "node_modules", ".bin", "tslab");
    const installed = await run(process.execPath, [tslab, "install", `--python=${python}`, `--binary=${tslab}`, "--user"], env);
    expect(installed.status, installed.stderr + installed.stdout).toBe(0);
    for (const name of ["tslab", "jslab"]) own[name] = readFileSync(join(kernels, name, "kernel.json"), "utf8");
  }, 120_000);

  afterAll(() => {
    if (home) rmSync(home, { recursive: true, force: true });
  });

  it('registers "d2l-ts" beside the learner\'s tslab, which stays byte for byte', async () => {
    const result = await npmRunKernel();
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toContain(`kernel "${KERNEL_NAME}" ("${KERNEL_DISPLAY_NAME}"`);
    expect(result.stdout).toContain(join(kernels, KERNEL_NAME));
    expectOwnKernelsUntouched();
    const list = await kernelspecList();
    expect(Object.keys(list)).toEqual(expect.arrayContaining(["tslab", "jslab", KERNEL_NAME]));
    expect(list[KERNEL_NAME].resource_dir).toBe(join(kernels, KERNEL_NAME));
    expect(list[KERNEL_NAME].spec.display_name).toBe(KERNEL_DISPLAY_NAME);
    expect(list[KERNEL_NAME].spec.argv.slice(0, 2)).toEqual([process.execPath, KERNEL_ENTRY]);
    expect(list.tslab.spec.display_name).toBe("TypeScript");
  }, 60_000);

  it("runs a notebook as committed (its metadata names d2l-ts), with no advice to change kernel", async () => {
    expect(readNotebook(join(NOTEBOOKS_DIR, `${NOTEBOOK}.ipynb`)).metadata.kernelspec).toMatchObject({ name: KERNEL_NAME });
    const nb = await execute(join(NOTEBOOKS_DIR, `${NOTEBOOK}.ipynb`));
    expect(outputText(nb, "stdout")).toMatch(/^d2l: backend \w+/m);
    expect(outputText(nb, "stderr")).not.toContain("project's kernel");
  }, 300_000);

  it("in the plain tslab kernel (Jupyter's fallback when d2l-ts is missing) the notebook says what to do", async () => {
    // A copy inside the project (the kernel finds node_modules from its cwd) naming the plain kernel.
    const dir = join(BUILD_DIR, "kernelspec-test");
    mkdirSync(dir, { recursive: true });
    const file = join(dir, "plain-tslab.ipynb");
    const nb = readNotebook(join(NOTEBOOKS_DIR, `${NOTEBOOK}.ipynb`));
    const first = nb.cells.findIndex((c) => c.cell_type === "code");
    nb.cells = [nb.cells[first]];
    nb.metadata.kernelspec = { display_name: "TypeScript", language: "typescript", name: "tslab" };
    writeFileSync(file, JSON.stringify(nb));
    const executed = await execute(file);
    expect(outputText(executed, "stdout")).toMatch(/^d2l: backend \w+/m); // it still runs
    const advice = outputText(executed, "stderr");
    expect(advice).toContain(`not running in the project's kernel "${KERNEL_DISPLAY_NAME}"`);
    expect(advice).toContain(`\`npm run kernel\` in ${ROOT}`);
    expect(advice).toContain(`Kernel → Change Kernel → ${KERNEL_DISPLAY_NAME}`);
    rmSync(dir, { recursive: true, force: true });
  }, 300_000);

  it('replaces a "d2l-ts" another checkout wrote, saying which checkout it ran', async () => {
    const file = join(kernels, KERNEL_NAME, "kernel.json");
    const other = join(home, "old-clone", "d2l-ts");
    const spec = JSON.parse(readFileSync(file, "utf8"));
    writeFileSync(file, JSON.stringify({ ...spec, argv: [process.execPath, join(other, "node_modules", "tslab", "bin", "tslab")], metadata: { d2l: { project: other } } }));
    const result = await npmRunKernel();
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toContain(`replacing the one that ran ${other} (no longer there)`);
    expect(JSON.parse(readFileSync(file, "utf8")).metadata.d2l.project).toBe(ROOT);
    expectOwnKernelsUntouched();
  }, 60_000);

  it('leaves a "d2l-ts" that d2l-ts did not write as it is, and says so', async () => {
    const file = join(kernels, KERNEL_NAME, "kernel.json");
    const saved = readFileSync(file, "utf8");
    const foreign = JSON.stringify({ argv: ["somebody-elses-kernel", "{connection_file}"], display_name: "Mine", language: "typescript" });
    writeFileSync(file, foreign);
    const strict = await npmRunKernel();
    expect(strict.status).toBe(1);
    expect(strict.stderr).toContain("that d2l-ts did not write");
    const lenient = await npmRunKernel("--if-jupyter"); // npm install: explains, succeeds
    expect(lenient.status).toBe(0);
    const removal = await npmRunKernel("--remove");
    expect(removal.status).toBe(1);
    expect(readFileSync(file, "utf8")).toBe(foreign);
    writeFileSync(file, saved);
  }, 60_000);

  it('--remove removes "d2l-ts" and nothing else', async () => {
    const result = await npmRunKernel("--remove");
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toContain(`removed the kernel "${KERNEL_NAME}"`);
    expect(existsSync(join(kernels, KERNEL_NAME))).toBe(false);
    expectOwnKernelsUntouched();
    expect(readdirSync(kernels).sort()).toEqual(["jslab", "tslab"]);
    const names = Object.keys(await kernelspecList());
    expect(names).toEqual(expect.arrayContaining(["jslab", "tslab"]));
    expect(names).not.toContain(KERNEL_NAME);
    const again = await npmRunKernel("--remove");
    expect(again.status).toBe(0);
    expect(again.stdout).toContain("nothing to remove");
  }, 60_000);

  it('an older d2l-ts\'s "tslab" is pointed out on registering and removed by --remove', async () => {
    // A learner's data folder where an older d2l-ts registered itself as "tslab".
    const data = join(home, "legacy");
    const legacy = join(data, "kernels", "tslab");
    mkdirSync(legacy, { recursive: true });
    copyFileSync(join(kernels, "tslab", "kernel.json"), join(legacy, "kernel.json"));
    const spec = JSON.parse(readFileSync(join(legacy, "kernel.json"), "utf8"));
    writeFileSync(join(legacy, "kernel.json"), JSON.stringify({ ...spec, metadata: { d2l: { project: ROOT } } }));
    const saved = env;
    env = { ...env, JUPYTER_DATA_DIR: data };
    try {
      const registered = await npmRunKernel();
      expect(registered.status, registered.stderr).toBe(0);
      expect(registered.stdout).toContain(`an older d2l-ts registered itself as the kernel "tslab" (${legacy}`);
      expect(existsSync(legacy)).toBe(true); // registering never removes it
      const removed = await npmRunKernel("--remove");
      expect(removed.status, removed.stderr).toBe(0);
      expect(removed.stdout).toContain(`removed the kernel "tslab" (${legacy})`);
      expect(existsSync(legacy)).toBe(false);
      expect(existsSync(join(data, "kernels", KERNEL_NAME))).toBe(false);
    } finally {
      env = saved;
    }
    expectOwnKernelsUntouched();
  }, 60_000);
});
