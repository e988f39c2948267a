/**
 * npm start [-- JUPYTER_ARGS...]
 *
 * Opens the chapter's notebooks in JupyterLab, or in the classic notebook where JupyterLab
 * is not installed (Debian 12 has only the latter), after building the lib and registering
 * the project's kernel "d2l-ts" so that the notebooks run this checkout's code.
 */
import { spawn, spawnSync } from "node:child_process";
import { join } from "node:path";
import { KERNEL_DISPLAY_NAME } from "./lib/kernelspec";
import { NOTEBOOKS_DIR, ROOT } from "./lib/paths";
import { INSTALL_JUPYTER_HINT, findPython } from "./lib/python";

const tsx = join(ROOT, "node_modules", "tsx", "dist", "cli.mjs");
const step = (args: string[]) => spawnSync(process.execPath, args, { cwd: ROOT, stdio: "inherit" }).status === 0;
if (!step([join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-b", "lib"])) process.exit(1);
if (!step([tsx, join(ROOT, "scripts", "register-kernel.ts")])) process.exit(1);

const lab = findPython(["jupyterlab"]);
const classic = lab ? undefined : findPython(["notebook"]);
const python = lab ?? classic;
if (!python) {
  console.error(INSTALL_JUPYTER_HINT);
  process.exit(1);
}
const app = lab ? "lab" : "notebook";
console.log(`d2l-ts: opening ${NOTEBOOKS_DIR} in Jupyter ${lab ? "Lab" : "Notebook (classic; JupyterLab is not installed)"}; the notebooks run in the kernel "${KERNEL_DISPLAY_NAME}"`);
const child = spawn(python, ["-m", "jupyter", app, `--notebook-dir=${NOTEBOOKS_DIR}`, ...process.argv.slice(2)], { stdio: "inherit" });
child.on("exit", (code) => process.exit(code ?? 0));
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => child.kill(signal));
