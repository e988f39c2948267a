/**
 * npm run build-lab [-- --force]
 *
 * Bundles the JupyterLab front end the browser tests drive into build/lab (skipped when its
 * inputs did not change since the last build).
 */
import { parseArgs } from "node:util";
import { LAB_BUNDLE_DIR, buildLabBundle } from "./lib/lab-bundle";

const { values } = parseArgs({ options: { force: { type: "boolean", default: false } } });
const started = performance.now();
const built = await buildLabBundle({ force: values.force });
console.log(`${built ? "built" : "up to date:"} ${LAB_BUNDLE_DIR} (${((performance.now() - started) / 1000).toFixed(1)} s)`);
