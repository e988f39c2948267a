#!/usr/bin/env node
/**
 * The d2l-ts kernel's entry point (the kernelspec's argv, scripts/lib/kernelspec.ts): this checkout's
 * tslab, started as `tslab kernel` starts it, with three changes that make a kernel start and run
 * cells faster.
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
 * 3. A lean program builder. tslab compiles each cell with TypeScript's watch API and its default
 *    builder, which after every cell computes, for every one of the ~800 files of the program
 *    (tfjs's declarations, Node's), which files it references (and every ambient module again for
 *    each): work for incremental rebuilds that tslab never asks for. It only asks one question
 *    of the builder beyond the program itself: which source files the cell imports (to compile a
 *    learner's own .ts modules). TypeScript's abstract builder (`createAbstractBuilder`, meant for
 *    the watch API) holds the program alone; the answer is found here by following the cell's
 *    imports. Every code cell of the notebooks compiles to the same JavaScript, declarations and
 *    diagnostics with either builder; 40 small cells took 6.7-6.9 s of kernel CPU with tslab's and
 *    3.3-3.5 s with this one (Node 20, AMD EPYC Zen 5, machine shared).
 *
 * And one fix:
 *
 * 4. The kernel's five sockets are bound before any message can reach tslab's handlers. tslab starts
 *    reading its sockets, then binds them with zeromq's asynchronous `bind`, which marks the socket
 *    "blocked" until a worker thread's `zmq_bind` has returned *and* the main thread has run its
 *    completion. A front end that connects and sends `kernel_info_request` in between (a worker
 *    thread preempted on a loaded machine: it happened once in ~60 kernel starts of a CI run) has
 *    its message delivered to tslab, whose reply throws EBUSY ("Socket is blocked by a bind or
 *    unbind operation"), and the shell's read loop dies with the next read: the kernel stays up,
 *    deaf, and nbclient gives up on it. zeromq's `bindSync` binds (local ports: microseconds) and
 *    reopens the socket in the same call, so no handler ever sees it blocked.
 *
 * Switch them off with `D2L_KERNEL_TYPES=all` (tslab's own behaviour: every @types package),
 * `D2L_KERNEL_COMPILE_CACHE=0`, `D2L_KERNEL_BUILDER=tslab` or `D2L_KERNEL_BIND=async` in the
 * environment Jupyter starts the kernel in.
 */
"use strict";
const Module = require("node:module");
const { join } = require("node:path");
const { tmpdir } = require("node:os");

if (process.env.D2L_KERNEL_COMPILE_CACHE !== "0" && typeof Module.enableCompileCache === "function") {
  Module.enableCompileCache(join(tmpdir(), "d2l-ts-compile-cache"));
}

const nodeTypesOnly = process.env.D2L_KERNEL_TYPES !== "all";
const leanBuilder = process.env.D2L_KERNEL_BUILDER !== "tslab";

if (nodeTypesOnly || leanBuilder) {
  // tslab reads TypeScript's exports through its own require of this module, which is cached: give
  // that cache entry a copy of the exports whose createWatchCompilerHost sets `types` (when tslab
  // names none) and the builder (when tslab names none). TypeScript's exports are getters that
  // cannot be reassigned, hence the copy.
  const tslabRequire = Module.createRequire(require.resolve("tslab/dist/converter.js"));
  const typescriptPath = tslabRequire.resolve("@tslab/typescript-for-tslab");
  const ts = tslabRequire(typescriptPath);
  const exports = Object.getOwnPropertyDescriptors(ts);
  exports.createWatchCompilerHost = {
    enumerable: true,
    value(rootFiles, options, system, createProgram, ...rest) {
      const types = nodeTypesOnly && options && options.types === undefined ? { ...options, types: ["node"] } : options;
      const builder = leanBuilder && createProgram == null ? createLeanBuilder : createProgram;
      return ts.createWatchCompilerHost(rootFiles, types, system, builder, ...rest);
    },
  };
  require.cache[typescriptPath].exports = Object.defineProperties({}, exports);

  /** TypeScript's abstract builder (a program and nothing more) with the one builder query tslab makes. */
  function createLeanBuilder(...args) {
    const builder = ts.createAbstractBuilder(...args);
    // tslab reads the cell's `locals` right away: they exist once the checker has bound the files
    builder.getProgram().getTypeChecker();
    builder.getAllDependencies = (sourceFile) => sourceDependencies(builder.getProgram(), sourceFile);
    return builder;
  }

  /** The file and the source (not declaration) files it imports, directly or through each other. */
  function sourceDependencies(program, sourceFile) {
    const checker = program.getTypeChecker();
    const seen = new Set([sourceFile.fileName]);
    const queue = [sourceFile];
    while (queue.length > 0) {
      const file = queue.pop();
      // `imports`: the module names the file imports or requires (TypeScript fills it while parsing)
      for (const name of file.imports ?? []) {
        for (const declaration of checker.getSymbolAtLocation(name)?.declarations ?? []) {
          const dependency = declaration.getSourceFile();
          if (dependency.isDeclarationFile || seen.has(dependency.fileName)) continue;
          seen.add(dependency.fileName);
          queue.push(dependency);
        }
      }
    }
    return [...seen];
  }
}

if (process.env.D2L_KERNEL_BIND !== "async") {
  const { ZmqServer } = require("tslab/dist/jupyter.js");
  const bindAsync = ZmqServer.prototype.bindSocket;
  ZmqServer.prototype.bindSocket = async function bindSocket(socket, port) {
    if (typeof socket.bindSync !== "function") return bindAsync.call(this, socket, port);
    const { transport, ip } = this.connInfo;
    socket.bindSync(`${transport}://${ip}:${port}`);
  };
}

require("tslab/dist/main.js").main();
