/**
 * Registers this project's tslab as the Jupyter kernel "tslab" (display name TypeScript),
 * run by this Node with this checkout's tslab: no global install needed.
 *
 *   npm run kernel                 register (fails when no Python has Jupyter)
 *   tsx scripts/register-kernel.ts --if-jupyter   (npm install) register, or explain and succeed
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { tslabKernelSpec } from "./lib/kernelspec";
import { ROOT } from "./lib/paths";
import { INSTALL_JUPYTER_HINT, findPython } from "./lib/python";

const { values } = parseArgs({ options: { "if-jupyter": { type: "boolean", default: false } } });


const python = findPython(["jupyter_client"]);
if (!python) {
  console.log(`d2l-ts: kernel not registered. ${INSTALL_JUPYTER_HINT}`);
  process.exit(values["if-jupyter"] ? 0 : 1);
}

// The kernel runs on the Node that runs this script: the one `npm install` was run with.
const spec = { ...tslabKernelSpec(), metadata: { d2l: { project: ROOT } } };
const dir = mkdtempSync(join(tmpdir(), "d2l-kernel-"));
try {
  writeFileSync(join(dir, "kernel.json"), JSON.stringify(spec, null, 2));
  // Inside a conda environment the kernel belongs to it; elsewhere to the user.
  const where = process.env.CONDA_PREFIX && python.startsWith(process.env.CONDA_PREFIX) ? "--sys-prefix" : "--user";
  const result = spawnSync(python, ["-m", "jupyter", "kernelspec", "install", dir, "--name", "tslab", where], {
    encoding: "utf8",
  });
  if (result.status !== 0) {
    console.error(`d2l-ts: registering the kernel with ${python} failed:\n${result.stderr}`);
    process.exit(1);
  }
  const installed = result.stderr.trim().split("\n").pop() ?? "";
  console.log(
    `d2l-ts: kernel "tslab" (TypeScript, Node ${process.version}) registered with ${python}: ${installed.replace(/^\[InstallKernelSpec\] /, "")}`,
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
