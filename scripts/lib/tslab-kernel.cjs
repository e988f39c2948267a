#!/usr/bin/env node
/**
 * The d2l-ts kernel's entry point (the kernelspec's argv, scripts/lib/kernelspec.ts): this checkout's
 * tslab, started as `tslab kernel` starts it, with two changes that make a kernel start faster.
 *
 * 1. Global declarations from `@types/node` only. tslab's compiler options name no `types`, so
 *    TypeScript loads every package under node_modules/@types as globals into each kernel, and
 *    the project's dev dependencies (JupyterLab for the browser tests) bring ~60 of them (react,
 *    d3, jquery, lodash, backbone...): a learner's cells saw `$` and `_` as globals, and each kernel
 *    parsed them all before its first cell. A cell's `import` of any package still finds that
 *    package's types (TypeScript resolves `@types/<name>` for imports whatever `types` says).
 *    Measured (kernel CPU time from start to after the first `import * as d2l from "d2l"` cell,
 *    AMD EPYC Zen 5): Node 20 7.3 -> 4.5 s, Node 24 5.8 -> 4.3 s.
 * 2. Node's compile cache (Node 22.1 and later: `module.enableCompileCache`) in the OS's temporary
 *    folder: the bytecode of tslab's TypeScript (9 MB of JavaScript) and of tfjs is kept between
 *    kernels. Node 20 has none and starts without it.
 *
 * Switch either off with `D2L_KERNEL_TYPES=all` (tslab's own behaviour: every @types package)
 * or `D2L_KERNEL_COMPILE_CACHE=0` in the environment Jupyter starts the kernel in.
 */
"use strict";
const Module = require("node:module");
const { join } = require("node:path");
const { tmpdir } = require("node:os");

if (process.env.D2L_KERNEL_COMPILE_CACHE !== "0" && typeof Module.enableCompileCache === "function") {
  Module.enableCompileCache(join(tmpdir(), "d2l-ts-compile-cache"));
}

if (process.env.D2L_KERNEL_TYPES !== "all") {
  // tslab reads TypeScript's exports through its own require of this module, which is cached: give
  // that cache entry a copy of the exports whose createWatchCompilerHost adds `types` when none is set.
  // (TypeScript's exports are getters that cannot be reassigned, hence the copy.)
  const tslabRequire = Module.createRequire(require.resolve("tslab/dist/converter.js"));
  const typescriptPath = tslabRequire.resolve("@tslab/typescript-for-tslab");
  const ts = tslabRequire(typescriptPath);
  const exports = Object.getOwnPropertyDescriptors(ts);
  exports.createWatchCompilerHost = {
    enumerable: true,
    value(rootFiles, options, ...rest) {
      const withTypes = options && options.types === undefined ? { ...options, types: ["node"] } : options;
      return ts.createWatchCompilerHost(rootFiles, withTypes, ...rest);
    },
  };
  require.cache[typescriptPath].exports = Object.defineProperties({}, exports);
}

require("tslab/dist/main.js").main();
