/**
 * Registers this checkout's tslab with Jupyter as the kernel "d2l-ts" ("TypeScript (d2l-ts)"),
 * run by this Node: no global tslab needed, and a learner's own kernels ("tslab" included) are
 * left alone. A "d2l-ts" kernelspec that d2l-ts did not write is never replaced; one that another
 * checkout wrote is, saying which checkout it ran before.
 *
 *   npm run kernel                 register (fails when no Python has Jupyter)
 *   npm run kernel -- --remove     remove the kernel "d2l-ts" (and the "tslab" an older d2l-ts wrote)
 *   tsx scripts/register-kernel.ts --if-jupyter   (npm install) register, or explain and succeed
 *
 * Where: the user's Jupyter data folder (`jupyter --data-dir`, or JUPYTER_DATA_DIR), or inside an
 * active conda environment that environment's share/jupyter.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { KERNEL_DISPLAY_NAME, KERNEL_NAME, kernelSpecOwner, projectKernelSpec } from "./lib/kernelspec";
import { ROOT } from "./lib/paths";
import { INSTALL_JUPYTER_HINT, findPython } from "./lib/python";

const { values } = parseArgs({
  options: { "if-jupyter": { type: "boolean", default: false }, remove: { type: "boolean", default: false } },
});
/** npm install must not fail over the kernel: it explains and succeeds. */
const lenient = values["if-jupyter"];

const python = findPython(["jupyter_client"]);
if (!python) {
  console.log(`d2l-ts: kernel not registered. ${INSTALL_JUPYTER_HINT}`);
  process.exit(lenient ? 0 : 1);
}

// Inside a conda environment the kernel belongs to it; elsewhere to the user.
const sysPrefix = Boolean(process.env.CONDA_PREFIX && resolve(python).startsWith(resolve(process.env.CONDA_PREFIX)));

/** Where `jupyter kernelspec install` puts a kernel, and which kernelspec Jupyter finds first for each name. */
function jupyterKernels(): { destination: string; found: Record<string, string> } {
  const code = `
import json, os, sys
from jupyter_core.paths import jupyter_data_dir
from jupyter_client.kernelspec import KernelSpecManager
root = os.path.join(sys.prefix, "share", "jupyter") if sys.argv[1] == "1" else jupyter_data_dir()
print(json.dumps({"destination": os.path.join(root, "kernels"), "found": KernelSpecManager().find_kernel_specs()}))`;
  const result = spawnSync(python!, ["-c", code, sysPrefix ? "1" : "0"], { encoding: "utf8" });
  if (result.status !== 0) {
    console.error(`d2l-ts: could not ask ${python} for Jupyter's kernel folders:\n${result.stderr}`);
    process.exit(1);
  }
  return JSON.parse(result.stdout.trim().split("\n").pop()!) as { destination: string; found: Record<string, string> };
}

/** How a checkout is named in messages: its path, and whether it is still there. */
const describe = (project: string) =>
  resolve(project) === ROOT ? `this checkout (${project})` : `${project}${existsSync(project) ? "" : " (no longer there)"}`;

const { destination, found } = jupyterKernels();
const kernelDir = join(destination, KERNEL_NAME);
const owner = kernelSpecOwner(kernelDir);
// Before d2l-ts had a kernel of its own it registered itself as "tslab", replacing a learner's.
const legacyDir = found.tslab;
const legacy = legacyDir ? kernelSpecOwner(legacyDir) : undefined;
const legacyOwner = legacy && legacy !== "foreign" ? legacy.project : undefined;

if (values.remove) {
  let failed = false;
  if (owner === undefined) {
    console.log(`d2l-ts: no kernel "${KERNEL_NAME}" registered at ${kernelDir}: nothing to remove.`);
    if (found[KERNEL_NAME]) console.log(`d2l-ts: Jupyter still finds one at ${found[KERNEL_NAME]} (another Jupyter data folder or environment); it is left as it is.`);
  } else if (owner === "foreign") {
    console.error(`d2l-ts: the kernel "${KERNEL_NAME}" at ${kernelDir} was not written by d2l-ts; it is left as it is.`);
    failed = true;
  } else {
    rmSync(kernelDir, { recursive: true, force: true });
    console.log(`d2l-ts: removed the kernel "${KERNEL_NAME}" (${kernelDir}), which ran ${describe(owner.project)}.`);
  }
  if (legacyOwner) {
    rmSync(legacyDir!, { recursive: true, force: true });
    console.log(
      `d2l-ts: removed the kernel "tslab" (${legacyDir}) that an older d2l-ts registered for ${describe(legacyOwner)}; ` +
        "if you had a tslab of your own before, `tslab install` registers it again.",
    );
  }
  process.exit(failed ? 1 : 0);
}

if (owner === "foreign") {
  console.error(
    [
      `d2l-ts: kernel not registered: a kernel named "${KERNEL_NAME}" that d2l-ts did not write is already at ${kernelDir}.`,
      "It is left as it is. If you do not need it, remove it (jupyter kernelspec remove " + KERNEL_NAME + ") and run `npm run kernel` again.",
    ].join("\n"),
  );
  process.exit(lenient ? 0 : 1);
}

// The kernel runs on the Node that runs this script: the one `npm install` was run with.
const dir = mkdtempSync(join(tmpdir(), "d2l-kernel-"));
try {
  writeFileSync(join(dir, "kernel.json"), JSON.stringify(projectKernelSpec(), null, 2));
  const args = ["-m", "jupyter", "kernelspec", "install", dir, "--name", KERNEL_NAME, sysPrefix ? "--sys-prefix" : "--user"];
  const result = spawnSync(python, args, { encoding: "utf8" });
  if (result.status !== 0) {
    console.error(`d2l-ts: registering the kernel with ${python} failed:\n${result.stderr}`);
    process.exit(1);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
const before = owner === undefined ? "" : resolve(owner.project) === ROOT ? " (updated; it ran this checkout before too)" : ` (replacing the one that ran ${describe(owner.project)})`;
console.log(`d2l-ts: kernel "${KERNEL_NAME}" ("${KERNEL_DISPLAY_NAME}", Node ${process.version}, this checkout) registered at ${kernelDir}${before}.`);
console.log(`d2l-ts: your other kernels are untouched; \`npm run kernel -- --remove\` removes this one.`);

// Another "d2l-ts" earlier on Jupyter's path (JUPYTER_PATH, another environment) would win over this one.
if (found[KERNEL_NAME] && resolve(found[KERNEL_NAME]) !== resolve(kernelDir)) {
  const first = jupyterKernels().found[KERNEL_NAME];
  if (first && resolve(first) !== resolve(kernelDir)) {
    console.warn(`d2l-ts: note: Jupyter finds another kernel "${KERNEL_NAME}" first, at ${first}; notebooks will run that one.`);
  }
}
if (legacyOwner) {
  console.log(
    `d2l-ts: note: an older d2l-ts registered itself as the kernel "tslab" (${legacyDir}, running ${describe(legacyOwner)}). ` +
      "The notebooks no longer use it: `npm run kernel -- --remove` removes it with d2l-ts's own, and `tslab install` registers your own tslab again.",
  );
}
