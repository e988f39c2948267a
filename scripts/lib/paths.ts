import { readdirSync } from "node:fs";
import { join, resolve } from "node:path";

/** The project's root folder (scripts/lib -> ../..). */
export const ROOT = resolve(import.meta.dirname, "..", "..");
/** Where the chapter's notebooks live; also the kernel's working directory. */
export const NOTEBOOKS_DIR = join(ROOT, "notebooks");
/** Build products: executed notebooks, HTML, the runner's kernelspec and template. */
export const BUILD_DIR = join(ROOT, "build");

/** The notebooks' names (without .ipynb) in reading order: 3.1, 3.2, ..., 3.10. */
export function notebookNames(): string[] {
  const key = (name: string) => name.split("-")[0].split(".").map(Number);
  return readdirSync(NOTEBOOKS_DIR)
    .filter((f) => f.endsWith(".ipynb"))
    .map((f) => f.slice(0, -".ipynb".length))
    .sort((a, b) => {
      const [ka, kb] = [key(a), key(b)];
      for (let i = 0; i < Math.max(ka.length, kb.length); i++) {
        const d = (ka[i] ?? -1) - (kb[i] ?? -1);
        if (d !== 0 && !Number.isNaN(d)) return d;
      }
      return a.localeCompare(b);
    });
}
