import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./paths";

/** The tslab kernelspec: this Node running this checkout's tslab, so no global tslab is needed. */
export function tslabKernelSpec() {
  return {
    argv: [process.execPath, join(ROOT, "node_modules", "tslab", "bin", "tslab"), "kernel", "--config-path", "{connection_file}"],
    display_name: "TypeScript",
    language: "typescript",
  };
}

/** Writes `<dir>/kernels/<name>/kernel.json`; put `dir` on JUPYTER_PATH to use it. */
export function writeKernelSpec(dir: string, name = "tslab"): string {
  const kernelDir = join(dir, "kernels", name);
  mkdirSync(kernelDir, { recursive: true });
  writeFileSync(join(kernelDir, "kernel.json"), JSON.stringify(tslabKernelSpec(), null, 2));
  return kernelDir;
}
