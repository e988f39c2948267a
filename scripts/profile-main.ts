/**
 * Where the calling thread's time goes in a training step, with 1 thread and with N: runs
 * scripts/profile-step.ts with `--cpu-prof` (a V8 CPU profile of the calling thread over the timed
 * steps), alternated `--runs` times, and prints milliseconds a step by bucket (wasm kernels, the
 * wait for workers, handing jobs out: the JavaScript of thread-pool.ts's runChunks and runSplitCalls
 * and the argument lists they ask for; the rest of the JavaScript: tfjs's engine and tape, d2l's
 * loop; the garbage collector) and the functions with the most self time.
 *
 *   npx tsx scripts/profile-main.ts --model lenet [--runs 3] [--threads 2] [--steps 20] [--top 15]
 *
 * The profile samples the calling thread's wall time: on a busy machine a sample taken after the
 * thread waited for a CPU is charged to whatever it ran then, so read it at a quiet moment.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";

const { values: v } = parseArgs({
  options: {
    model: { type: "string", default: "lenet" },
    runs: { type: "string", default: "3" },
    threads: { type: "string", default: "2" },
    steps: { type: "string", default: "20" },
    top: { type: "string", default: "15" },
  },
});
const runs = Number(v.runs);
const threads = Number(v.threads);
const steps = Number(v.steps);
if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs must be a positive integer; got "${v.runs}"`);
if (!Number.isInteger(threads) || threads < 2) throw new Error(`--threads must be an integer of at least 2; got "${v.threads}"`);
if (!Number.isInteger(steps) || steps < 1) throw new Error(`--steps must be a positive integer; got "${v.steps}"`);

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const BUCKETS = ["wasm kernels", "waiting for workers", "handing out jobs", "JavaScript (engine, tape, d2l)", "garbage collector"] as const;
type Bucket = (typeof BUCKETS)[number];

/** Milliseconds a step by bucket and by function (self time) in one profile. */
function digest(profile: Profile): { buckets: Map<Bucket, number>; functions: Map<string, number> } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i + 1] ?? 0)));
  const within = (id: number, names: string[]) => {
    for (let x: number | undefined = id; x !== undefined; x = parent.get(x)) if (names.includes(byId.get(x)!.callFrame.functionName)) return true;
    return false;
  };
  const buckets = new Map<Bucket, number>(BUCKETS.map((b) => [b, 0]));
  const functions = new Map<string, number>();
  for (const [id, us] of self) {
    const frame = byId.get(id)!.callFrame;
    const ms = us / 1000 / steps;
    if (frame.functionName === "(idle)" || frame.functionName === "(root)") continue;
    const bucket: Bucket = frame.functionName === "(garbage collector)" ? "garbage collector"
      : within(id, ["settle", "settleThreads"]) ? "waiting for workers"
      : frame.url.startsWith("wasm://") ? "wasm kernels"
      : within(id, ["runChunks", "runSplitCalls"]) ? "handing out jobs"
      : "JavaScript (engine, tape, d2l)";
    buckets.set(bucket, buckets.get(bucket)! + ms);
    const name = frame.url.startsWith("wasm://") ? "(wasm kernels)" : `${frame.functionName || "(anonymous)"} ${frame.url.replace(/^.*\//, "")}`;
    functions.set(name, (functions.get(name) ?? 0) + ms);
  }
  return { buckets, functions };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? 0 : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const dir = mkdtempSync(join(tmpdir(), "d2l-profile-"));
const samples: Array<Map<string, number[]>> = [new Map(), new Map()];
const add = (i: number, key: string, ms: number) => samples[i].set(key, [...(samples[i].get(key) ?? []), ms]);
try {
  for (let r = 0; r < runs; r++) {
    for (const [i, n] of [1, threads].entries()) {
      const file = join(dir, `${r}-${n}.cpuprofile`);
      const args = ["tsx", "scripts/profile-step.ts", "--model", v.model!, "--steps", String(steps), "--threads", String(n), "--cpu-prof", file];
      const run = spawnSync("npx", args, { encoding: "utf8" });
      if (run.status !== 0) throw new Error(`profile-step failed: ${run.stderr || run.stdout}`);
      const { buckets, functions } = digest(JSON.parse(readFileSync(file, "utf8")) as Profile);
      let total = 0;
      for (const [b, ms] of buckets) {
        add(i, `bucket ${b}`, ms);
        total += ms;
      }
      add(i, "bucket step (sampled)", total);
      for (const [f, ms] of functions) add(i, `fn ${f}`, ms);
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const show = (key: string, label: string) => {
  const [one, many] = [median(samples[0].get(key) ?? [0]), median(samples[1].get(key) ?? [0])];
  console.log(`${one.toFixed(3).padStart(8)} -> ${many.toFixed(3).padStart(8)}  ${label}`);
};
console.log(`${v.model}: the calling thread's ms a step (V8 CPU profile, medians of ${runs} alternated runs), 1 against ${threads} threads, ${cpus()[0]?.model ?? "unknown CPU"}`);
show("bucket step (sampled)", "step");
for (const b of BUCKETS) show(`bucket ${b}`, b);
console.log("functions by self time (1 thread):");
const keys = [...samples[0].keys(), ...samples[1].keys()].filter((k, i, all) => k.startsWith("fn ") && all.indexOf(k) === i);
keys.sort((a, b) => median(samples[0].get(b) ?? [0]) - median(samples[0].get(a) ?? [0]));
for (const key of keys.slice(0, Number(v.top))) show(key, key.slice(3));
