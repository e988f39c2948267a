import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./paths";

/**
 * The project's Jupyter kernel: its own name, so a learner's own kernels (a global tslab's
 * "tslab", say) are never replaced. The notebooks' metadata, the runner and the tests name it.
 */
export const KERNEL_NAME = "d2l-ts";
/** What Jupyter's kernel menus show for {@link KERNEL_NAME}. */
export const KERNEL_DISPLAY_NAME = "TypeScript (d2l-ts)";

/** The script the kernelspec runs: tslab's kernel, started faster (see the file). */
export const KERNEL_ENTRY = join(ROOT, "scripts", "lib", "tslab-kernel.cjs");

/** A kernel.json (Jupyter's kernelspec file), with the fields this project reads. */
export interface KernelSpecFile {
  argv: string[];
  display_name: string;
  language: string;
  env?: Record<string, string>;
  /** `d2l.project`: the checkout that wrote it; present only in kernelspecs d2l-ts wrote. */
  metadata?: { d2l?: { project?: string } };
}

/**
 * The project's kernelspec: this Node running this checkout's tslab (through
 * ./tslab-kernel.cjs, which makes it start faster), so no global tslab is needed. `D2L_KERNEL` tells `d2l.initBackend()` that it runs in this kernel (in any other it
 * prints how to register and pick this one); `metadata.d2l.project` marks the file as this
 * project's, so `npm run kernel` knows what it may replace.
 */
export function projectKernelSpec(): KernelSpecFile {
  return {
    argv: [process.execPath, KERNEL_ENTRY, "kernel", "--config-path", "{connection_file}"],
    display_name: KERNEL_DISPLAY_NAME,
    language: "typescript",
    env: { D2L_KERNEL: KERNEL_NAME },
    metadata: { d2l: { project: ROOT } },
  };
}

/** Writes `<dir>/kernels/d2l-ts/kernel.json`; put `dir` on JUPYTER_PATH to use it. */
export function writeKernelSpec(dir: string): string {
  const kernelDir = join(dir, "kernels", KERNEL_NAME);
  mkdirSync(kernelDir, { recursive: true });
  writeFileSync(join(kernelDir, "kernel.json"), JSON.stringify(projectKernelSpec(), null, 2));
  return kernelDir;
}

/**
 * Reads `<kernelDir>/kernel.json`: undefined when there is none, `"foreign"` when it is not a
 * kernelspec d2l-ts wrote (unreadable, or without `metadata.d2l.project`), else the checkout it runs.
 */
export function kernelSpecOwner(kernelDir: string): { project: string } | "foreign" | undefined {
  let text: string;
  try {
    text = readFileSync(join(kernelDir, "kernel.json"), "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    return "foreign";
  }
  try {
    const project = (JSON.parse(text) as KernelSpecFile).metadata?.d2l?.project;
    return typeof project === "string" ? { project } : "foreign";
  } catch {
    return "foreign";
  }
}
