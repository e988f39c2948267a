/**
 * What a split's hand-off costs the calling thread (thread-pool.ts's runChunks): a kernel of almost
 * --work cut into LeNet-like guided chunks, run back to back and with --gap µs of other work of the
 * calling thread between splits (as tfjs's bookkeeping between a step's kernels), with idle workers
 * watching for their next job (setSpin, --spin µs) and sleeping at once (0), alternated --rounds
 * times; prints wall µs a split beyond the gap, median (best), and the calling thread's CPU µs.
 *
 *   npx tsx scripts/bench-handoff.ts [--threads 2] [--gap 100] [--spin 200] [--rounds 7] [--splits 500] [--work 20000]
 */
import * as tf from "@tensorflow/tfjs";
import { readFileSync } from "node:fs";
import { cpus } from "node:os";
import { parseArgs } from "node:util";
import * as d2l from "../lib/src/index";
import { guidedRanges, runChunks, setSpin, setThreads } from "../lib/src/engine/thread-pool";
import { ADD, END, LOOP, SUB, BR_IF_0, get, i32, loadI32, moduleWithImportedMemory, set, storeI32, tee, voidType } from "../lib/src/engine/wasm-asm";
import { type WasmBackendLike, wasmKernel } from "../lib/src/engine/wasm-kernels";

const { values: v } = parseArgs({
  options: {
    threads: { type: "string", default: "2" },
    gap: { type: "string", default: "100" },
    spin: { type: "string", default: "200" },
    rounds: { type: "string", default: "7" },
    splits: { type: "string", default: "500" },
    /** Increments a chunk (about 1 ns each): 13 chunks of 20000 are about 0.26 ms of work a split. */
    work: { type: "string", default: "20000" },
  },
});
const [threads, gap, spin, rounds, splits, work] = [v.threads, v.gap, v.spin, v.rounds, v.splits, v.work].map(Number);
for (const [name, x] of Object.entries({ threads, gap, spin, rounds, splits, work })) {
  if (!Number.isInteger(x) || x < 0 || (x === 0 && name !== "gap" && name !== "spin")) throw new Error(`--${name} must be a whole number${name === "gap" || name === "spin" ? "" : " above 0"}; got "${v[name as keyof typeof v]}"`);
}

await d2l.initBackend("wasm", { quiet: true });
setThreads(threads);
const backend = tf.backend() as unknown as WasmBackendLike;
// c(p, n): n times *p += 1 (about a nanosecond each: --work per chunk)
const body = [0x00, ...LOOP, ...get(0), ...get(0), ...loadI32(), ...i32(1), ADD, ...storeI32(), ...get(1), ...i32(1), SUB, ...tee(1), ...BR_IF_0, END, END];
const kernel = wasmKernel(backend, "bench-handoff", () => moduleWithImportedMemory(voidType(2), "c", body), "c")!;
const memory = (tf.backend() as unknown as { wasm: { asm: { memory: WebAssembly.Memory } } }).wasm.asm.memory;
const counts = tf.zeros([64], "int32");
const base = backend.getMemoryOffset(counts.dataId);
const ranges = guidedRanges(256, threads, 1, 4); // LeNet's batch of 256 images, chunks of at least 4
const mainUs = () => Number(readFileSync(`/proc/self/task/${process.pid}/schedstat`, "utf8").split(" ")[0]) / 1e3;

/** Wall and calling-thread CPU µs a split beyond the gap. */
function block(watch: number): { wall: number; main: number } {
  setSpin(watch);
  const m0 = mainUs();
  const t0 = performance.now();
  for (let i = 0; i < splits; i++) {
    const until = performance.now() + gap / 1000;
    while (performance.now() < until);
    runChunks(memory, ranges.length, threads, (c) => [[kernel, [base + 4 * (c % 64), work]]]);
  }
  return { wall: ((performance.now() - t0) * 1000) / splits - gap, main: (mainUs() - m0) / splits - gap };
}
block(spin);
block(0);
const runs = { off: [] as Array<{ wall: number; main: number }>, on: [] as Array<{ wall: number; main: number }> };
for (let r = 0; r < rounds; r++) {
  for (const on of r % 2 === 0 ? [false, true] : [true, false]) runs[on ? "on" : "off"].push(block(on ? spin : 0));
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
console.log(`a split of ${ranges.length} chunks of ${work} increments on ${threads} threads, ${gap} µs apart (${cpus()[0]?.model}): µs beyond the gap, median (best) of ${rounds}`);
for (const key of ["off", "on"] as const) {
  const wall = runs[key].map((x) => x.wall);
  const main = runs[key].map((x) => x.main);
  console.log(`  watch ${key === "on" ? spin : 0} µs: wall ${median(wall).toFixed(1)} (${Math.min(...wall).toFixed(1)}), calling thread CPU ${median(main).toFixed(1)}`);
}
setSpin(spin);
counts.dispose();
