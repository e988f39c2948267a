import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { BUILD_DIR, ROOT } from "./paths";

const require = createRequire(import.meta.url);

/** The test front end's sources, its Python server and templates. */
export const LAB_SOURCE_DIR = join(ROOT, "scripts", "lab");
/** Where the bundle goes: bundle.js and bundle.css, served as the app's static files. */
export const LAB_BUNDLE_DIR = join(BUILD_DIR, "lab");
const STAMP = join(LAB_BUNDLE_DIR, "inputs.sha256");

/** A hash of everything the bundle is made from: the app's sources, the lockfile, esbuild's version. */
function inputsHash(): string {
  const hash = createHash("sha256");
  for (const file of readdirSync(LAB_SOURCE_DIR, { recursive: true, encoding: "utf8" }).sort()) {
    if (/\.(ts|css)$/.test(file)) hash.update(file).update(readFileSync(join(LAB_SOURCE_DIR, file)));
  }
  hash.update(readFileSync(join(ROOT, "package-lock.json")));
  hash.update(readFileSync(join(ROOT, "scripts", "lib", "lab-bundle.ts")));
  hash.update((require("esbuild/package.json") as { version: string }).version);
  return hash.digest("hex");
}

/** webpack's css-loader reads `@import "~pkg/file.css"` as a package path; so does this plugin. */
const webpackTilde = {
  name: "webpack-tilde",
  setup(build: { onResolve: Function; resolve: Function }) {
    build.onResolve({ filter: /^~/ }, (args: { path: string; resolveDir: string; kind: string }) =>
      build.resolve(args.path.slice(1), { resolveDir: args.resolveDir, kind: args.kind }),
    );
  },
};

/**
 * Bundles the JupyterLab front end (scripts/lab/app.ts) into build/lab with esbuild, unless
 * the bundle there was made from the same inputs. Returns whether it had to build.
 */
export async function buildLabBundle(options: { force?: boolean; minify?: boolean } = {}): Promise<boolean> {
  const hash = inputsHash();
  if (!options.force && existsSync(STAMP) && readFileSync(STAMP, "utf8") === hash) return false;
  const { build } = await import("esbuild");
  rmSync(LAB_BUNDLE_DIR, { recursive: true, force: true });
  mkdirSync(LAB_BUNDLE_DIR, { recursive: true });
  await build({
    entryPoints: { bundle: join(LAB_SOURCE_DIR, "app.ts") },
    outdir: LAB_BUNDLE_DIR,
    bundle: true,
    format: "iife",
    target: "es2020",
    minify: options.minify ?? true,
    logLevel: "warning",
    // The @jupyterlab packages are written for webpack: fonts and images become files or inline data.
    loader: { ".svg": "text", ".woff": "file", ".woff2": "file", ".ttf": "file", ".eot": "file", ".png": "dataurl", ".gif": "dataurl" },
    alias: {
      // jupyterlab-plotly imports plotly.js's unminified bundle; the minified one is the same code.
      "plotly.js/dist/plotly": "plotly.js/dist/plotly.min.js",
      // jupyterlab-plotly asks for Lumino 1; one Lumino (JupyterLab 4's) keeps its widget a real one.
      "@lumino/widgets": "@lumino/widgets",
      "@lumino/messaging": "@lumino/messaging",
    },
    absWorkingDir: ROOT,
    define: { "process.env.NODE_ENV": '"production"', global: "globalThis", __dirname: '"/"' },
    plugins: [webpackTilde],
  });
  writeFileSync(STAMP, hash);
  return true;
}
