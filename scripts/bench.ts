/**
 * The chapters' headline jobs outside Jupyter: softmax regression (3.6, 3.7) and the multilayer
 * perceptron (4.2, 4.3) on Fashion-MNIST, trained with the library's own loadDataFashionMnist and
 * trainCh3, the code a reader of those notebooks runs.
 *
 *   npm run bench -- [--epochs 10] [--backend tensorflow|wasm|cpu] [--model scratch|concise|mlp|mlp-scratch|lenet]
 *                    [--batch-size 256] [--lr 0.1] [--json] [--baseline] [--runs N] [--compare] [--peer]
 *                    [--seed N|random] [--seeds N] [--threads N|N,M,...]
 *
 * --model kaggle runs section 4.10's K-fold job instead, with options of its own (scripts/bench-kaggle.ts).
 *
 * The models (scratch and concise: 3.6 and 3.7; mlp-scratch and mlp: 4.2 and 4.3; lenet: 6.6) are
 * described in scripts/bench-models.ts; --lr and --batch-size default to each model's (lenet: lr 0.9).
 * Prints a table per epoch (a progress bar on stderr when it is a
 * terminal); with --json the last line is one JSON object:
 * {"backend","node","model","epochs","batchSize","lr","loadSeconds","secondsPerEpoch","totalSeconds","trainLoss","trainAccuracy","testAccuracy"}
 * (node: process.version; also "cpuSecondsPerEpoch", the process's CPU time likewise, which a
 * busy machine disturbs less than the wall clock) secondsPerEpoch is the median over the epochs after the first (an epoch: training and the test
 * accuracy, as trainCh3 runs them); totalSeconds is the whole job, backend and data loading included.
 *
 * --baseline runs the job on tfjs's own kernels (d2l.useSpeedups(false)). --runs N runs the job N
 * times, each in a process of its own, and reports the medians; --compare alternates runs with and
 * without d2l's speed-ups, so both see the same machine load, and reports the ratio. Their JSON
 * line has the same keys (medians) plus "runs", "secondsPerEpochRuns", and with --compare
 * "baseline" ({secondsPerEpoch, totalSeconds, secondsPerEpochRuns}) and "speedup" (baseline's
 * median seconds per epoch over ours).
 *
 * --seed N seeds every random number (d2l.setSeed, as D2L_SEED=N does), so two runs print the same
 * losses and accuracies; without it (or with --seed random) D2L_SEED's seed is used if set, else
 * none. The JSON line's "seed" says which (null: unseeded). --seeds N trains under seeds 0..N-1,
 * each run in a process of its own, the model given by --model or else both 3.6's and 3.7's, and
 * reports min, median and max of the final test accuracy, train accuracy and train loss: the spread
 * that the bounds the notebooks and tests assert must hold across. Its JSON line is
 * {"seeds","epochs","backend","models":{model:{"testAccuracy":{min,median,max},"trainAccuracy":...,"trainLoss":...,"runs":[...]}}}.
 * --peer alternates each run with the same job in PyTorch (scripts/peer/bench_torch.py: data as
 * tensors, OpenBLAS's kernels chosen for the CPU; see scripts/bench-peer.ts for how its Python is
 * found and which thread settings it tries) and prints the medians and two ratios: to PyTorch held
 * to one core (one torch thread, OPENBLAS_NUM_THREADS=1) and to PyTorch's best setting here. Its
 * JSON line adds "cpu", "peer" ({torch, cpu, blasCore, blasCoreType, threads, secondsPerEpoch,
 * secondsPerEpochRuns, testAccuracy: the one-core figures; oneCore, best, settings: each setting's
 * {torchThreads, blasThreads, secondsPerEpoch, ...}}), "ratioToPeer" (our median seconds per epoch
 * over PyTorch's on one core) and "ratioToPeerBest" (over its best).
 *
 * --threads N splits the engine's large products across N threads (d2l.setThreads; default
 * D2L_THREADS, else the cores Node reports); every run prints its thread count, and the JSON line
 * has "threads". --threads 1,2 alternates runs with each count (--runs N of each), prints each
 * median and its ratio to the first count's, and with --peer PyTorch runs beside them with the
 * largest count as its thread count.
 */
import * as tf from "@tensorflow/tfjs";
import cliProgress from "cli-progress";
import { spawnSync } from "node:child_process";
import { parseArgs } from "node:util";
// Only through index: importing lib modules one by one from this ES module would load a second
// copy of those that index also reaches (tsx loads lib/src as CommonJS), e.g. optim's gradient store.
import * as d2l from "../lib/src/index";
import { DEFAULTS, DESCRIPTIONS, MODELS, type Model, makeJob } from "./bench-models";
import { availableParallelism, cpus } from "node:os";
import {
  HOW_TO_GET_TORCH, type PeerResult, chooseBlas, fashionMnistDir, findTorchPython, peerSettings, runPeer, settingLabel,
} from "./bench-peer";
import { kaggleMain } from "./bench-kaggle";


interface Options {
  epochs: number;
  backend?: d2l.BackendName;
  model: Model;
  batchSize: number;
  lr: number;
  json: boolean;
  /** Run on tfjs's own kernels, d2l's speed-ups off. */
  baseline: boolean;
  /** How many runs (each in its own process) to take medians over. */
  runs: number;
  /** Alternate runs with and without the speed-ups. */
  compare: boolean;
  /** The seed of every random number (--seed), "random" for none; undefined: D2L_SEED's, if any. */
  seed?: number | "random";
  /** Sweep seeds 0..seeds-1 (--seeds); 0: no sweep. */
  seeds: number;
  /** Whether --model was given (a sweep without it covers both softmax models). */
  modelGiven: boolean;
  /** Alternate runs with the PyTorch peer (scripts/peer/bench_torch.py). */
  peer: boolean;
  /** --threads: the thread counts to run with (alternating when several); undefined: d2l's default. */
  threadCounts?: number[];
}

const USAGE =
  "usage: npm run bench -- [--epochs N] [--backend tensorflow|wasm|cpu] [--model scratch|concise|mlp|mlp-scratch|lenet] " +
  "[--batch-size N] [--lr X] [--json] [--baseline] [--runs N] [--compare] [--peer] [--seed N|random] [--seeds N] [--threads N|N,M,...]";

class UsageError extends Error {}

function positiveInt(name: string, text: string): number {
  const n = Number(text);
  if (!/^\s*\d+\s*$/.test(text) || !Number.isSafeInteger(n) || n < 1) {
    throw new UsageError(`--${name} must be a positive integer; got "${text}"`);
  }
  return n;
}

function oneOf<T extends string>(name: string, text: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(text)) {
    throw new UsageError(`--${name} must be one of ${allowed.join(", ")}; got "${text}"`);
  }
  return text as T;
}

function parseOptions(argv: string[]): Options {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        epochs: { type: "string", default: "10" },
        backend: { type: "string" },
        model: { type: "string" },
        "batch-size": { type: "string" },
        lr: { type: "string" },
        json: { type: "boolean", default: false },
        baseline: { type: "boolean", default: false },
        runs: { type: "string", default: "1" },
        compare: { type: "boolean", default: false },
        seed: { type: "string" },
        seeds: { type: "string" },
        peer: { type: "boolean", default: false },
        threads: { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const v = parsed.values;
  if (v.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const model = oneOf("model", v.model ?? "scratch", MODELS);
  v.lr ??= String(DEFAULTS[model].lr);
  v["batch-size"] ??= String(DEFAULTS[model].batchSize);
  const lr = Number(v.lr);
  if (v.lr!.trim() === "" || !Number.isFinite(lr) || lr <= 0) {
    throw new UsageError(`--lr must be a positive number; got "${v.lr}"`);
  }
  if (v.compare && v.baseline) {
    throw new UsageError("--compare runs with and without the speed-ups itself; leave out --baseline");
  }
  let seed: number | "random" | undefined;
  if (v.seed !== undefined) {
    seed = v.seed.trim() === "random" ? "random" : Number(v.seed);
    if (seed !== "random" && (!/^\s*\d+\s*$/.test(v.seed) || !Number.isSafeInteger(seed))) {
      throw new UsageError(`--seed must be a non-negative integer or "random"; got "${v.seed}"`);
    }
  }
  if (v.seeds !== undefined && (v.seed !== undefined || v.runs !== "1" || v.compare)) {
    throw new UsageError("--seeds runs seeds 0..N-1 once each; leave out --seed, --runs and --compare");
  }
  if (v.compare && v.peer) {
    throw new UsageError("--compare and --peer each alternate with another run; choose one");
  }
  return {
    epochs: positiveInt("epochs", v.epochs!),
    backend: v.backend === undefined ? undefined : oneOf("backend", v.backend, d2l.BACKENDS),
    model,
    batchSize: positiveInt("batch-size", v["batch-size"]!),
    lr,
    json: v.json!,
    baseline: v.baseline!,
    runs: positiveInt("runs", v.runs!),
    compare: v.compare!,
    seed,
    seeds: v.seeds === undefined ? 0 : positiveInt("seeds", v.seeds),
    modelGiven: v.model !== undefined,
    peer: v.peer!,
    threadCounts: v.threads === undefined ? undefined : v.threads.split(",").map((t) => positiveInt("threads", t)),
  };
}

/** The same batches, calling `tick` after each one (for the progress bar). */
function counted(source: d2l.BatchSource, tick: () => void): d2l.BatchSource {
  return {
    numExamples: source.numExamples,
    batchSize: source.batchSize,
    *[Symbol.iterator]() {
      for (const batch of source) {
        yield batch;
        tick();
      }
    },
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const COLUMNS = ["epoch", "train loss", "train acc", "test acc", "seconds"];
const WIDTHS = [5, 10, 9, 8, 7];
const row = (cells: string[]) => cells.map((c, i) => c.padStart(WIDTHS[i])).join("  ");

/** What a run's --json line holds. */
interface RunResult {
  backend: string;
  node: string;
  model: string;
  epochs: number;
  batchSize: number;
  lr: number;
  speedups: boolean;
  loadSeconds: number;
  secondsPerEpoch: number;
  /** CPU time of this process an epoch (median after the first): on a shared machine, less disturbed by other processes than the wall clock. */
  cpuSecondsPerEpoch: number;
  totalSeconds: number;
  trainLoss: number;
  trainAccuracy: number;
  testAccuracy: number;
  /** The seed of the run's random numbers; null when unseeded. */
  seed: number | null;
  /** The threads the large products were split across (d2l.getThreads()). */
  threads: number;
}

/** One run of the job in a process of its own (this script, with --json); its JSON line. */
function runChild(opts: Options, baseline: boolean): RunResult {
  const args = [
    "--epochs", String(opts.epochs), "--model", opts.model, "--batch-size", String(opts.batchSize), "--lr", String(opts.lr),
    "--json", ...(opts.backend ? ["--backend", opts.backend] : []), ...(baseline ? ["--baseline"] : []),
    ...(opts.seed !== undefined ? ["--seed", String(opts.seed)] : []),
    ...(opts.threadCounts !== undefined ? ["--threads", String(opts.threadCounts[0])] : []),
  ];
  // process.execArgv carries tsx's loader, so the child runs this TypeScript file as we do
  const child = spawnSync(process.execPath, [...process.execArgv, process.argv[1], ...args], { encoding: "utf8" });
  const last = child.stdout.trim().split("\n").pop() ?? "";
  if (child.status !== 0 || !last.startsWith("{")) {
    throw new Error(`bench: a run failed (exit ${child.status}): ${child.stderr.trim() || last}`);
  }
  return JSON.parse(last) as RunResult;
}

/** --runs and --compare: runs in separate processes, alternating variants, then the medians (and their ratio). */
function orchestrate(opts: Options): void {
  const variants = opts.compare ? [false, true] : [opts.baseline];
  const label = (baseline: boolean) => (baseline ? "tfjs's kernels" : "d2l speed-ups");
  const results = new Map<boolean, RunResult[]>(variants.map((b) => [b, []]));
  for (let run = 1; run <= opts.runs; run++) {
    for (const baseline of variants) {
      const r = runChild(opts, baseline);
      results.get(baseline)!.push(r);
      console.log(`run ${run}/${opts.runs}  ${label(baseline).padEnd(14)}  ${r.secondsPerEpoch.toFixed(3)} s an epoch (CPU ${r.cpuSecondsPerEpoch.toFixed(3)} s)  ` +
        `${r.totalSeconds.toFixed(2)} s in all  test accuracy ${r.testAccuracy.toFixed(4)}`);
    }
  }
  const summary = (rs: RunResult[]) => ({
    secondsPerEpoch: median(rs.map((r) => r.secondsPerEpoch)),
    cpuSecondsPerEpoch: median(rs.map((r) => r.cpuSecondsPerEpoch)),
    totalSeconds: median(rs.map((r) => r.totalSeconds)),
    secondsPerEpochRuns: rs.map((r) => r.secondsPerEpoch),
  });
  const ours = results.get(variants[0])!;
  const main = summary(ours);
  console.log(`median of ${opts.runs} (${label(variants[0])}): ${main.secondsPerEpoch.toFixed(3)} s an epoch (CPU ${main.cpuSecondsPerEpoch.toFixed(3)} s), ${main.totalSeconds.toFixed(2)} s in all`);
  let comparison = {};
  if (opts.compare) {
    const baseline = summary(results.get(true)!);
    const speedup = baseline.secondsPerEpoch / main.secondsPerEpoch;
    console.log(`median of ${opts.runs} (${label(true)}): ${baseline.secondsPerEpoch.toFixed(3)} s an epoch (CPU ${baseline.cpuSecondsPerEpoch.toFixed(3)} s), ${baseline.totalSeconds.toFixed(2)} s in all`);
    console.log(`speed-up per epoch: ${speedup.toFixed(2)}x (measured alternately in this command)`);
    comparison = { baseline, speedup };
  }
  if (opts.json) {
    const medianOf = (key: keyof RunResult) => median(ours.map((r) => r[key] as number));
    console.log(JSON.stringify({
      ...ours[0],
      loadSeconds: medianOf("loadSeconds"),
      ...main,
      trainLoss: medianOf("trainLoss"),
      trainAccuracy: medianOf("trainAccuracy"),
      testAccuracy: medianOf("testAccuracy"),
      runs: opts.runs,
      ...comparison,
    }));
  }
}

/** --seeds N: each model trained under seeds 0..N-1; min, median and max of the final metrics. */
function sweepSeeds(opts: Options): void {
  const models: Model[] = opts.modelGiven ? [opts.model] : ["scratch", "concise"];
  const keys = ["testAccuracy", "trainAccuracy", "trainLoss"] as const;
  const report: Record<string, Record<string, unknown>> = {};
  let backend = "";
  for (const model of models) {
    const runs: RunResult[] = [];
    for (let seed = 0; seed < opts.seeds; seed++) {
      const r = runChild({ ...opts, model, seed }, opts.baseline);
      backend = r.backend;
      runs.push(r);
      if (!opts.json) console.log(`${model} seed ${seed}: test acc ${r.testAccuracy.toFixed(4)}, train acc ${r.trainAccuracy.toFixed(4)}, train loss ${r.trainLoss.toFixed(4)}`);
    }
    const spread = (key: (typeof keys)[number]) => {
      const xs = runs.map((r) => r[key]);
      return { min: Math.min(...xs), median: median(xs), max: Math.max(...xs) };
    };
    report[model] = {
      ...Object.fromEntries(keys.map((k) => [k, spread(k)])),
      runs: runs.map((r) => ({ seed: r.seed, testAccuracy: r.testAccuracy, trainAccuracy: r.trainAccuracy, trainLoss: r.trainLoss })),
    };
  }
  console.log(`${opts.seeds} seeds (0..${opts.seeds - 1}), ${opts.epochs} epochs, ${backend} backend: min / median / max`);
  console.log(`${"model".padEnd(8)}  ${keys.map((k) => k.padEnd(26)).join("  ")}`);
  for (const model of models) {
    const cells = keys.map((k) => {
      const { min, median: mid, max } = report[model][k] as { min: number; median: number; max: number };
      return `${min.toFixed(4)} / ${mid.toFixed(4)} / ${max.toFixed(4)}`.padEnd(26);
    });
    console.log(`${model.padEnd(8)}  ${cells.join("  ")}`);
  }
  if (opts.json) console.log(JSON.stringify({ seeds: opts.seeds, epochs: opts.epochs, backend, models: report }));
}

/** --peer: our runs alternating with PyTorch's on the same job (each of its thread settings), the medians and both ratios. */
function orchestratePeer(opts: Options): void {
  const python = findTorchPython();
  if (python === undefined) throw new Error(`bench --peer: ${HOW_TO_GET_TORCH}`);
  const dataDir = fashionMnistDir(d2l.projectRoot());
  const blas = chooseBlas(python);
  const cpu = cpuModel();
  console.log(`CPU ${cpu}, ${availableParallelism()} logical cores; PyTorch's OpenBLAS core ${blas.core ?? "unknown"}` +
    `${blas.coreType ? ` (OPENBLAS_CORETYPE=${blas.coreType})` : ""}: ${blas.note}`);
  const settings = peerSettings();
  const ours: RunResult[] = [];
  const peers: PeerResult[][] = settings.map(() => []);
  for (let run = 1; run <= opts.runs; run++) {
    const r = runChild(opts, opts.baseline);
    ours.push(r);
    console.log(`run ${run}/${opts.runs}  d2l-ts (${r.backend}, ${r.threads} thread${r.threads === 1 ? "" : "s"})  ${r.secondsPerEpoch.toFixed(3)} s an epoch (CPU ${r.cpuSecondsPerEpoch.toFixed(3)} s)  test accuracy ${r.testAccuracy.toFixed(4)}`);
    for (const [i, setting] of settings.entries()) {
      // a setting 3x slower than one core cannot be the best: 2 epochs of it tell (2 torch threads on 2 busy vCPUs: 20 s an epoch)
      const maxSeconds = i === 0 ? undefined : Math.max(5, 3 * opts.epochs * peers[0][peers[0].length - 1].secondsPerEpoch);
      const p = runPeer(python, dataDir, { ...opts, setting, maxSeconds, blas: blas.json });
      peers[i].push(p);
      const stopped = p.epochs < opts.epochs ? ` (stopped after ${p.epochs} epochs: 3x slower than one core)` : "";
      console.log(`run ${run}/${opts.runs}  PyTorch ${p.torch} (${settingLabel(setting)})  ${p.secondsPerEpoch.toFixed(3)} s an epoch (CPU ${p.cpuSecondsPerEpoch.toFixed(3)} s)  test accuracy ${p.testAccuracy.toFixed(4)}${stopped}`);
    }
  }
  const oursMedian = median(ours.map((r) => r.secondsPerEpoch));
  const summaries = settings.map((setting, i) => ({
    ...setting,
    secondsPerEpoch: median(peers[i].map((p) => p.secondsPerEpoch)),
    cpuSecondsPerEpoch: median(peers[i].map((p) => p.cpuSecondsPerEpoch)),
    secondsPerEpochRuns: peers[i].map((p) => p.secondsPerEpoch),
    testAccuracy: median(peers[i].map((p) => p.testAccuracy)),
  }));
  const oneCore = summaries[0];
  const best = summaries.reduce((a, b) => (b.secondsPerEpoch < a.secondsPerEpoch ? b : a));
  const ratio = oursMedian / oneCore.secondsPerEpoch;
  const ratioBest = oursMedian / best.secondsPerEpoch;
  console.log(`median of ${opts.runs}: d2l-ts ${oursMedian.toFixed(3)} s an epoch; PyTorch held to one core ${oneCore.secondsPerEpoch.toFixed(3)}, ` +
    `at its best here (${settingLabel(best)}) ${best.secondsPerEpoch.toFixed(3)}`);
  console.log(`d2l-ts takes ${ratio.toFixed(2)}x the time of PyTorch held to one core, ${ratioBest.toFixed(2)}x PyTorch at its best ` +
    `(CPU ${cpu}, OpenBLAS core ${blas.core ?? "unknown"}; measured alternately in this command)`);
  if (opts.json) {
    console.log(JSON.stringify({
      ...ours[0],
      cpu,
      secondsPerEpoch: oursMedian,
      cpuSecondsPerEpoch: median(ours.map((r) => r.cpuSecondsPerEpoch)),
      secondsPerEpochRuns: ours.map((r) => r.secondsPerEpoch),
      testAccuracy: median(ours.map((r) => r.testAccuracy)),
      runs: opts.runs,
      peer: {
        torch: peers[0][0].torch, cpu: peers[0][0].cpu, blasCore: blas.core, blasCoreType: blas.coreType, blasOwnCore: blas.ownCore, blasNote: blas.note,
        // the one-core figures, as before under these keys
        threads: 1, secondsPerEpoch: oneCore.secondsPerEpoch, cpuSecondsPerEpoch: oneCore.cpuSecondsPerEpoch,
        secondsPerEpochRuns: oneCore.secondsPerEpochRuns, testAccuracy: oneCore.testAccuracy,
        oneCore, best, settings: summaries,
      },
      /** Ours over PyTorch held to one core. */
      ratioToPeer: ratio,
      ratioToPeerBest: ratioBest,
    }));
  }
}

/** The CPU's model name (/proc/cpuinfo's, as os.cpus() reads it). */
function cpuModel(): string {
  return cpus()[0]?.model.trim() || "unknown CPU";
}

/**
 * --threads N,M,...: runs with each thread count in turn (and PyTorch's with each, with --peer),
 * the medians, their ratios to the first count's and to PyTorch's best, and whether seeded runs
 * gave the same train loss.
 */
function orchestrateThreads(opts: Options): void {
  const counts = opts.threadCounts!;
  const python = opts.peer ? findTorchPython() : undefined;
  if (opts.peer && python === undefined) throw new Error(`bench --peer: ${HOW_TO_GET_TORCH}`);
  const plural = (n: number) => `${n} thread${n === 1 ? "" : "s"}`;
  const ours = new Map<number, RunResult[]>(counts.map((n) => [n, []]));
  // PyTorch runs the settings --peer tries (held to one core, OpenBLAS's pool, a torch thread a core) beside each round
  const blas = python === undefined ? undefined : chooseBlas(python);
  const settings = peerSettings();
  const peers = settings.map((): PeerResult[] => []);
  for (let run = 1; run <= opts.runs; run++) {
    for (const n of counts) {
      const r = runChild({ ...opts, threadCounts: [n] }, opts.baseline);
      ours.get(n)!.push(r);
      console.log(`run ${run}/${opts.runs}  d2l-ts (${r.backend}, ${plural(r.threads)})  ${r.secondsPerEpoch.toFixed(3)} s an epoch ` +
        `(CPU ${r.cpuSecondsPerEpoch.toFixed(3)} s)  test accuracy ${r.testAccuracy.toFixed(4)}  train loss ${r.trainLoss}`);
    }
    if (python === undefined || blas === undefined) continue;
    for (const [i, setting] of settings.entries()) {
      const p = runPeer(python, fashionMnistDir(d2l.projectRoot()), { ...opts, setting, blas: blas.json });
      peers[i].push(p);
      console.log(`run ${run}/${opts.runs}  PyTorch ${p.torch} (${settingLabel(setting)})  ${p.secondsPerEpoch.toFixed(3)} s an epoch ` +
        `(CPU ${p.cpuSecondsPerEpoch.toFixed(3)} s)  test accuracy ${p.testAccuracy.toFixed(4)}`);
    }
  }
  const medians = counts.map((n) => median(ours.get(n)!.map((r) => r.secondsPerEpoch)));
  const peerMedians = python === undefined ? [] : settings.map((_, i) => median(peers[i].map((p) => p.secondsPerEpoch)));
  const best = peerMedians.length ? Math.min(...peerMedians) : undefined;
  counts.forEach((n, i) => {
    const vsPeer = best === undefined ? "" : `; ${(medians[i] / best).toFixed(2)}x PyTorch's best`;
    console.log(`median of ${opts.runs}, d2l-ts ${plural(n)}: ${medians[i].toFixed(3)} s an epoch, ${(medians[i] / medians[0]).toFixed(2)}x the ${plural(counts[0])} time${vsPeer}`);
  });
  settings.forEach((setting, i) => {
    if (best !== undefined) console.log(`median of ${opts.runs}, PyTorch (${settingLabel(setting)}): ${peerMedians[i].toFixed(3)} s an epoch`);
  });
  const losses = new Set(counts.flatMap((n) => ours.get(n)!.map((r) => r.trainLoss)));
  const seeded = ours.get(counts[0])![0].seed !== null;
  if (seeded) {
    console.log(losses.size === 1 ? "seeded runs: the same train loss, digit for digit, with every thread count" : `seeded runs DIFFER: train losses ${[...losses].join(", ")}`);
  }
  if (opts.json) {
    console.log(JSON.stringify({
      threads: counts,
      secondsPerEpoch: medians,
      cpuSecondsPerEpoch: counts.map((n) => median(ours.get(n)!.map((r) => r.cpuSecondsPerEpoch))),
      secondsPerEpochRuns: counts.map((n) => ours.get(n)!.map((r) => r.secondsPerEpoch)),
      trainLosses: counts.map((n) => ours.get(n)!.map((r) => r.trainLoss)),
      runs: opts.runs,
      ...(best === undefined ? {} : { peer: { settings, secondsPerEpoch: peerMedians, best, blasCore: blas?.core } }),
    }));
  }
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  // Section 4.10's K-fold job has options of its own (scripts/bench-kaggle.ts).
  if (argv.some((a, i) => a === "--model=kaggle" || (a === "--model" && argv[i + 1] === "kaggle"))) return kaggleMain(argv);
  const opts = parseOptions(argv);
  if (opts.seeds > 0) {
    sweepSeeds(opts);
    return;
  }
  if (opts.threadCounts !== undefined && opts.threadCounts.length > 1) {
    orchestrateThreads(opts);
    return;
  }
  if (opts.peer) {
    orchestratePeer(opts);
    return;
  }
  if (opts.runs > 1 || opts.compare) {
    orchestrate(opts);
    return;
  }
  // --seed works through D2L_SEED, which initBackend applies (and names in its line).
  if (opts.seed === "random") delete process.env.D2L_SEED;
  else if (opts.seed !== undefined) process.env.D2L_SEED = String(opts.seed);
  const start = performance.now();
  const { name: backend, seed } = await d2l.initBackend(opts.backend, { quiet: opts.json });
  if (opts.baseline) d2l.useSpeedups(false);
  if (opts.threadCounts !== undefined) d2l.setThreads(opts.threadCounts[0]);
  const threads = opts.baseline ? 1 : d2l.getThreads();

  const loadStart = performance.now();
  const [trainIter, testIter] = await d2l.loadDataFashionMnist(opts.batchSize);
  const loadSeconds = (performance.now() - loadStart) / 1000;

  const job = makeJob(opts.model, opts.lr);
  const stepsPerEpoch = Math.ceil(trainIter.numExamples / opts.batchSize);
  const bar = process.stderr.isTTY
    ? new cliProgress.SingleBar(
        { format: "training |{bar}| {value}/{total} steps  epoch {epoch}", stream: process.stderr, hideCursor: true },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  let steps = 0;
  let epochShown = 1;
  const train = bar ? counted(trainIter, () => bar.update(++steps, { epoch: `${epochShown}/${opts.epochs}` })) : trainIter;
  let barShown = false;
  /** A line on stdout, above the bar rather than through it. */
  const print = (line: string) => {
    if (barShown) process.stderr.write("\r\x1b[2K");
    process.stdout.write(line + "\n");
    if (barShown) bar?.render();
  };

  print(`${DESCRIPTIONS[opts.model]} on Fashion-MNIST, ${backend} backend${opts.baseline ? " (tfjs's own kernels)" : ""}` +
    `${seed === undefined ? "" : `, seed ${seed}`}, ${threads} thread${threads === 1 ? "" : "s"}: ` +
    `${opts.epochs} epochs, batch ${opts.batchSize}, lr ${opts.lr}; data loaded in ${loadSeconds.toFixed(3)} s`);
  print(row(COLUMNS));
  const epochSeconds: number[] = [];
  let last: d2l.TrainMetrics = { trainLoss: NaN, trainAcc: NaN, testAcc: NaN };
  let epochStart = performance.now();
  const epochCpuSeconds: number[] = [];
  let epochCpu = process.cpuUsage();
  const onEpoch = (epoch: number, metrics: d2l.TrainMetrics) => {
    const now = performance.now();
    epochSeconds.push((now - epochStart) / 1000);
    epochStart = now;
    const cpu = process.cpuUsage(epochCpu);
    epochCpuSeconds.push((cpu.user + cpu.system) / 1e6);
    epochCpu = process.cpuUsage();
    last = metrics;
    epochShown = Math.min(epoch + 1, opts.epochs);
    print(row([String(epoch), metrics.trainLoss.toFixed(4), metrics.trainAcc.toFixed(4), metrics.testAcc.toFixed(4),
      epochSeconds[epoch - 1].toFixed(3)]));
  };

  bar?.start(opts.epochs * stepsPerEpoch, 0, { epoch: `1/${opts.epochs}` });
  barShown = bar !== undefined;
  // Outside a notebook trainCh3's Animator prints a line per epoch; the table above replaces it.
  const log = console.log;
  console.log = () => undefined;
  let failedCheck: Error | undefined;
  try {
    d2l.trainCh3(job.net, train, testIter, job.loss, opts.epochs, job.updater, onEpoch);
  } catch (error) {
    // d2l's checks of a successful run fail after too few epochs; the numbers are still worth reporting.
    if (epochSeconds.length !== opts.epochs) throw error;
    failedCheck = error as Error;
  } finally {
    console.log = log;
    bar?.stop();
    barShown = false;
    job.dispose();
  }
  if (failedCheck) process.stderr.write(`note: ${failedCheck.message}\n`);
  const totalSeconds = (performance.now() - start) / 1000;
  const afterFirst = (xs: number[]) => (xs.length > 1 ? xs.slice(1) : xs);
  const secondsPerEpoch = median(afterFirst(epochSeconds));
  const cpuSecondsPerEpoch = median(afterFirst(epochCpuSeconds));

  console.log(`${secondsPerEpoch.toFixed(3)} s an epoch (median after the first), ${totalSeconds.toFixed(2)} s in all; ` +
    `test accuracy ${last.testAcc.toFixed(4)}`);
  if (opts.json) {
    console.log(JSON.stringify({
      backend,
      node: process.version,
      model: opts.model,
      epochs: opts.epochs,
      batchSize: opts.batchSize,
      lr: opts.lr,
      speedups: !opts.baseline,
      loadSeconds,
      secondsPerEpoch,
      cpuSecondsPerEpoch,
      totalSeconds,
      trainLoss: last.trainLoss,
      trainAccuracy: last.trainAcc,
      testAccuracy: last.testAcc,
      seed: seed ?? null,
      threads,
    }));
  }
}

main().catch((error) => {
  if (error instanceof UsageError) {
    console.error(`bench: ${error.message}\n${USAGE}`);
    process.exit(2);
  }
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
