/**
 * Where 2 threads gain or lose in a training step: runs scripts/profile-step.ts with 1 and with N
 * threads, alternated `--runs` times (so a change in the machine's load hits both alike), and prints
 * each kernel's median milliseconds a step with 1 thread and with N, their ratio, and the step's.
 *
 *   npx tsx scripts/profile-threads.ts --model lenet [--runs 3] [--threads 2] [--steps 20] [--cpu | --main]
 *
 * Wall-clock figures only mean something on a quiet machine (a second thread that finds no free core
 * runs after the calling thread, not beside it); `--cpu` passes profile-step's CPU-time option (every
 * thread's CPU: a split kernel shows its overhead, not its gain); `--main` times the calling thread's
 * own CPU (Linux): what a split leaves on it, the bound 2 threads reach when the workers find free cores.
 */
import { spawnSync } from "node:child_process";
import { cpus } from "node:os";
import { parseArgs } from "node:util";

const { values: v } = parseArgs({
  options: {
    model: { type: "string", default: "lenet" },
    runs: { type: "string", default: "3" },
    threads: { type: "string", default: "2" },
    steps: { type: "string", default: "20" },
    cpu: { type: "boolean", default: false },
    main: { type: "boolean", default: false },
  },
});
const runs = Number(v.runs);
const threads = Number(v.threads);
if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs must be a positive integer; got "${v.runs}"`);
if (!Number.isInteger(threads) || threads < 2) throw new Error(`--threads must be an integer of at least 2; got "${v.threads}"`);

/** Milliseconds a step by kernel (and "step" for the step), from one profile-step run. */
function profile(n: number): Map<string, number> {
  const args = ["tsx", "scripts/profile-step.ts", "--model", v.model!, "--steps", v.steps!, "--threads", String(n), ...(v.cpu ? ["--cpu"] : []), ...(v.main ? ["--main"] : [])];
  const run = spawnSync("npx", args, { encoding: "utf8" });
  if (run.status !== 0) throw new Error(`profile-step failed: ${run.stderr || run.stdout}`);
  const out = new Map<string, number>();
  for (const line of run.stdout.split("\n")) {
    const step = /^a step: ([\d.]+) ms wall, ([\d.]+) ms CPU(?:, ([\d.]+) ms on the calling thread)?/.exec(line);
    if (step) out.set("step", Number(v.cpu ? step[2] : v.main ? step[3] : step[1]));
    const kernel = /^\s*([\d.]+)\s+[\d.]+\s+(.+)$/.exec(line);
    if (kernel) out.set(kernel[2], Number(kernel[1]));
  }
  return out;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? 0 : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const samples = new Map<string, [number[], number[]]>();
for (let r = 0; r < runs; r++) {
  for (const [i, n] of [1, threads].entries()) {
    for (const [key, ms] of profile(n)) {
      if (!samples.has(key)) samples.set(key, [[], []]);
      samples.get(key)![i].push(ms);
    }
  }
}
console.log(`${v.model}: medians of ${runs} alternated runs of profile-step (${v.cpu ? "CPU" : v.main ? "calling thread's CPU" : "wall"} ms a step), 1 against ${threads} threads, ${cpus()[0]?.model ?? "unknown CPU"}`);
const rows = [...samples.entries()].map(([key, [one, many]]) => ({ key, one: median(one), many: median(many) }));
rows.sort((a, b) => (a.key === "step" ? -1 : b.key === "step" ? 1 : b.one - a.one));
for (const { key, one, many } of rows) {
  console.log(`${one.toFixed(3).padStart(8)} -> ${many.toFixed(3).padStart(8)}  ${one > 0 ? (many / one).toFixed(2) : "-   "}x  ${key}`);
}
