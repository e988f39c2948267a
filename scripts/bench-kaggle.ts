/**
 * `npm run bench -- --model kaggle`: section 4.10's K-fold job outside Jupyter, with the library's own
 * code (d2l.loadHousePrices: the data hub, readCsv, the preprocessing; d2l.kFold: train with Adam):
 * k 5, 100 epochs, lr 5, weight decay 0, batch 64 (5 folds x 100 epochs x 19 steps).
 *
 *   npm run bench -- --model kaggle [--epochs 100] [--backend B] [--seed N] [--json]
 *                   [--runs N] [--peer] [--seeds N]
 *
 * The job runs in a process of its own, scripts/bench-kaggle-job.cjs, by plain Node on the compiled lib
 * (as the peer is plain Python; tsx's transpiling would add ~1 s of CPU). One run prints each fold's log
 * RMSE, the means, and its seconds: "seconds" is the whole process as the parent sees it (Node's start,
 * loading the lib and tfjs, the backend, reading and preprocessing the CSV files, the K-fold training),
 * "kfoldSeconds" the K-fold training alone, "cpuSeconds" the process's CPU time (less disturbed by a
 * busy machine). --runs N takes medians over N runs, each in a
 * process of its own. --peer alternates each run with d2l's own PyTorch code for the same job
 * (scripts/peer/kaggle_torch.py: pandas and PyTorch, its seconds likewise from outside the process) and
 * prints the medians and their ratio. --seeds N runs seeds 0..N-1 and prints min / median / max of the
 * mean train and validation log RMSE: the spread the notebook's bounds must hold across. With --json
 * the last line is one JSON object.
 */
import { spawn, spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import * as d2l from "../lib/src/index";
import { HOW_TO_GET_TORCH, findTorchPython } from "./bench-peer";

const HERE = dirname(fileURLToPath(import.meta.url));
const PEER = join(HERE, "peer", "kaggle_torch.py");
const JOB = join(HERE, "bench-kaggle-job.cjs");
const USAGE = "usage: npm run bench -- --model kaggle [--epochs N] [--backend tensorflow|wasm|cpu] [--seed N] [--json] [--runs N] [--peer] [--seeds N]";

interface KaggleOptions {
  epochs: number;
  backend?: d2l.BackendName;
  seed?: number;
  json: boolean;
  runs: number;
  peer: boolean;
  seeds: number;
}

/** One run's JSON line (ours and the peer's share these keys). */
interface KaggleResult {
  backend: string;
  seconds: number;
  kfoldSeconds: number;
  /** Ours only: seconds from the process's start to the bench's first line (Node, tsx, lib, tfjs), the backend's set-up, reading and preprocessing the data. */
  importSeconds?: number;
  backendSeconds?: number;
  loadSeconds?: number;
  cpuSeconds: number;
  trainLogRmse: number;
  validLogRmse: number;
  features: number;
  seed?: number | null;
}

class UsageError extends Error {}

function count(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!/^\s*\d+\s*$/.test(text) || !Number.isSafeInteger(n) || n < 1) throw new UsageError(`--${name} must be a positive integer; got "${text}"`);
  return n;
}

function parse(argv: string[]): KaggleOptions {
  let v;
  try {
    v = parseArgs({
      args: argv, strict: true, allowPositionals: false,
      options: {
        model: { type: "string" }, epochs: { type: "string" }, backend: { type: "string" }, seed: { type: "string" },
        json: { type: "boolean", default: false }, runs: { type: "string" }, peer: { type: "boolean", default: false },
        seeds: { type: "string" },
      },
    }).values;
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const backend = v.backend;
  if (backend !== undefined && !(d2l.BACKENDS as readonly string[]).includes(backend)) {
    throw new UsageError(`--backend must be one of ${d2l.BACKENDS.join(", ")}; got "${backend}"`);
  }
  if (v.seed !== undefined && !/^\s*\d+\s*$/.test(v.seed)) throw new UsageError(`--seed must be a non-negative integer; got "${v.seed}"`);
  if (v.seeds !== undefined && (v.peer || v.runs !== undefined || v.seed !== undefined)) {
    throw new UsageError("--seeds runs seeds 0..N-1 once each; leave out --seed, --runs and --peer");
  }
  return {
    epochs: count("epochs", v.epochs, 100),
    backend: backend as d2l.BackendName | undefined,
    seed: v.seed === undefined ? undefined : Number(v.seed),
    json: v.json!,
    runs: count("runs", v.runs, 1),
    peer: v.peer!,
    seeds: v.seeds === undefined ? 0 : count("seeds", v.seeds, 0),
  };
}

/** Runs `command` to its end; resolves with its stdout's last line (a JSON object) and the wall time seen from here. */
function timedChild(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ json: Record<string, unknown>; seconds: number; lines: string[] }> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const child = spawn(command, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d));
    child.stderr.on("data", (d: Buffer) => (err += d));
    child.on("error", reject);
    child.on("close", (code) => {
      const seconds = (performance.now() - start) / 1000;
      const lines = out.trim().split("\n");
      const last = lines[lines.length - 1] ?? "";
      if (code !== 0 || !last.startsWith("{")) {
        reject(new Error(`bench: ${command} failed (exit ${code}): ${err.trim() || last}`));
        return;
      }
      resolve({ json: JSON.parse(last) as Record<string, unknown>, seconds, lines });
    });
  });
}

/**
 * Our job in a process of its own: scripts/bench-kaggle-job.cjs run by plain Node on the compiled lib, as
 * the peer is plain Python; seconds as the parent sees them. `echo` prints the job's own lines (each fold's).
 */
async function runOurs(opts: KaggleOptions, seed?: number, echo = false): Promise<KaggleResult> {
  const args = [JOB, "--epochs", String(opts.epochs), ...(opts.backend ? ["--backend", opts.backend] : []),
    ...(seed !== undefined ? ["--seed", String(seed)] : []), ...(echo ? [] : ["--json"])];
  const { json, seconds, lines } = await timedChild(process.execPath, args);
  if (echo) for (const l of lines.slice(0, -1)) console.log(l);
  return { ...(json as unknown as KaggleResult), seconds };
}

async function runPeer(python: string, opts: KaggleOptions): Promise<KaggleResult & { torch: string; pandas: string }> {
  const dataDir = dirname(await d2l.download("kaggle_house_train"));
  // Debian's OpenBLAS settings inherited from a conda or CI environment slow torch; run it with its own defaults.
  const env = { ...process.env };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  const { json, seconds } = await timedChild(python, [PEER, "--data-dir", dataDir, "--epochs", String(opts.epochs)], env);
  return { ...(json as unknown as KaggleResult & { torch: string; pandas: string }), seconds };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const line = (who: string, r: KaggleResult) =>
  `${who.padEnd(22)} ${r.seconds.toFixed(2)} s in all (K-fold ${r.kfoldSeconds.toFixed(2)} s, CPU ${r.cpuSeconds.toFixed(2)} s)  ` +
  `mean log RMSE train ${r.trainLogRmse.toFixed(4)}, valid ${r.validLogRmse.toFixed(4)}`;

/** `npm run bench -- --model kaggle ...`. */
export async function kaggleMain(argv: string[]): Promise<void> {
  let opts: KaggleOptions;
  try {
    opts = parse(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`bench: ${error.message}\n${USAGE}`);
    process.exit(2);
  }
  // The job runs the compiled lib (lib/dist): bring it up to date first (quick when it is).
  const build = spawnSync(process.execPath, [join(HERE, "..", "node_modules", "typescript", "bin", "tsc"), "-b", join(HERE, "..", "lib")], { encoding: "utf8" });
  if (build.status !== 0) throw new Error(`bench: building the lib failed: ${build.stdout}${build.stderr}`);
  if (opts.seeds > 0) {
    const runs: KaggleResult[] = [];
    for (let seed = 0; seed < opts.seeds; seed++) {
      const r = await runOurs(opts, seed);
      runs.push(r);
      if (!opts.json) console.log(`seed ${seed}: mean log RMSE train ${r.trainLogRmse.toFixed(4)}, valid ${r.validLogRmse.toFixed(4)}`);
    }
    const spread = (key: "trainLogRmse" | "validLogRmse") => {
      const xs = runs.map((r) => r[key]);
      return { min: Math.min(...xs), median: median(xs), max: Math.max(...xs) };
    };
    const [train, valid] = [spread("trainLogRmse"), spread("validLogRmse")];
    console.log(`${opts.seeds} seeds (0..${opts.seeds - 1}), ${opts.epochs} epochs, min / median / max: ` +
      `train ${train.min.toFixed(4)} / ${train.median.toFixed(4)} / ${train.max.toFixed(4)}, ` +
      `valid ${valid.min.toFixed(4)} / ${valid.median.toFixed(4)} / ${valid.max.toFixed(4)}`);
    if (opts.json) console.log(JSON.stringify({ seeds: opts.seeds, epochs: opts.epochs, trainLogRmse: train, validLogRmse: valid, runs }));
    return;
  }
  if (!opts.peer && opts.runs === 1) {
    const r = await runOurs(opts, opts.seed, !opts.json);
    if (opts.json) {
      console.log(JSON.stringify(r));
    } else {
      console.log(line(`d2l-ts (${r.backend})`, r));
      console.log(`  before the K-fold job: ${r.importSeconds!.toFixed(2)} s to start Node and load the lib and tfjs; ` +
        `${r.backendSeconds!.toFixed(2)} s for the backend; ${r.loadSeconds!.toFixed(2)} s to read and preprocess the data`);
    }
    return;
  }
  const python = opts.peer ? findTorchPython() : undefined;
  if (opts.peer && python === undefined) throw new Error(`bench --peer: ${HOW_TO_GET_TORCH}`);
  const ours: KaggleResult[] = [];
  const peers: KaggleResult[] = [];
  for (let run = 1; run <= opts.runs; run++) {
    const r = await runOurs(opts, opts.seed);
    ours.push(r);
    console.log(line(`run ${run}/${opts.runs} d2l-ts`, r));
    if (python !== undefined) {
      const p = await runPeer(python, opts);
      peers.push(p);
      console.log(line(`run ${run}/${opts.runs} PyTorch ${p.torch}`, p));
    }
  }
  const summary = (rs: KaggleResult[]) => ({
    seconds: median(rs.map((r) => r.seconds)), kfoldSeconds: median(rs.map((r) => r.kfoldSeconds)),
    cpuSeconds: median(rs.map((r) => r.cpuSeconds)), trainLogRmse: median(rs.map((r) => r.trainLogRmse)),
    validLogRmse: median(rs.map((r) => r.validLogRmse)), secondsRuns: rs.map((r) => r.seconds),
  });
  const o = summary(ours);
  console.log(`median of ${opts.runs}: d2l-ts ${o.seconds.toFixed(2)} s (CPU ${o.cpuSeconds.toFixed(2)} s), mean valid log RMSE ${o.validLogRmse.toFixed(4)}`);
  let peer = {};
  if (peers.length > 0) {
    const p = summary(peers);
    const ratio = o.seconds / p.seconds;
    console.log(`median of ${opts.runs}: PyTorch ${p.seconds.toFixed(2)} s (CPU ${p.cpuSeconds.toFixed(2)} s), mean valid log RMSE ${p.validLogRmse.toFixed(4)}`);
    console.log(`d2l-ts takes ${ratio.toFixed(2)}x PyTorch's time (CPU ${(o.cpuSeconds / p.cpuSeconds).toFixed(2)}x), measured alternately in this command`);
    peer = { peer: p, ratioToPeer: ratio };
  }
  if (opts.json) console.log(JSON.stringify({ model: "kaggle", epochs: opts.epochs, runs: opts.runs, ...o, ...peer }));
}
