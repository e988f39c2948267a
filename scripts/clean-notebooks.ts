/**
 * npm run clean-notebooks [-- --check]
 *
 * Strips outputs, execution counts and run metadata from notebooks/*.ipynb and sets the
 * project's kernelspec ("d2l-ts", whatever kernel a notebook was saved with or written for),
 * so notebooks are committed clean. With --check it changes nothing and exits 1 naming the
 * notebooks that are not clean.
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { cleanFile, isClean } from "./lib/notebook-json";
import { NOTEBOOKS_DIR, notebookNames } from "./lib/paths";

const { values } = parseArgs({ options: { check: { type: "boolean", default: false } } });
const paths = notebookNames().map((name) => join(NOTEBOOKS_DIR, `${name}.ipynb`));
if (values.check) {
  const dirty = paths.filter((p) => !isClean(p));
  for (const p of dirty) console.error(`not clean (outputs, counts or metadata): ${p}`);
  if (dirty.length) console.error("run: npm run clean-notebooks");
  process.exit(dirty.length ? 1 : 0);
}
const changed = paths.filter((p) => cleanFile(p));
console.log(changed.length ? `cleaned: ${changed.join(", ")}` : `all ${paths.length} notebooks already clean`);
