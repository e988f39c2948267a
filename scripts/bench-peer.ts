/**
 * npm run bench -- --peer: the same job in PyTorch (scripts/peer/bench_torch.py, written for speed),
 * run alternately with ours, both times printed with their ratio. Needs a Python with torch:
 * D2L_PYTHON if set, else python3 on PATH, else /usr/bin/python3 (Debian's python3-torch).
 *
 * PyTorch is set up as an expert would (scripts/peer/blas_setup.py): OpenBLAS's kernels chosen for
 * the CPU once per command (checked against float64), then each run under one of
 * {@link peerSettings}: held to one core (one torch thread, OPENBLAS_NUM_THREADS=1: the resources
 * of our single-threaded wasm) and the settings that may be faster on a machine of more cores;
 * the fastest is "PyTorch's best".
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { availableParallelism } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Model } from "./bench-models";

const HERE = dirname(fileURLToPath(import.meta.url));
const SCRIPT = join(HERE, "peer", "bench_torch.py");
const BLAS_SETUP = join(HERE, "peer", "blas_setup.py");

/** What to do when no Python with torch is found. */
export const HOW_TO_GET_TORCH =
  "no Python with PyTorch found (tried $D2L_PYTHON, python3 on PATH, /usr/bin/python3). " +
  "On Debian or Ubuntu: sudo apt-get install python3-torch; elsewhere: pip install torch " +
  "(https://pytorch.org/get-started/locally/); or point D2L_PYTHON at a python that has it.";

/** The first Python that can import torch, or undefined. */
export function findTorchPython(): string | undefined {
  const candidates = [process.env.D2L_PYTHON, "python3", "/usr/bin/python3"].filter((p): p is string => !!p);
  for (const python of candidates) {
    const probe = spawnSync(python, ["-c", "import torch"], { encoding: "utf8" });
    if (probe.status === 0) return python;
  }
  return undefined;
}

/** The folder holding Fashion-MNIST's four .gz files, looked up as the lib's loader does (D2L_DATA_DIR, the cache, Debian's copy). */
export function fashionMnistDir(projectRoot: string): string {
  const candidates = [
    process.env.D2L_DATA_DIR,
    process.env.D2L_CACHE_DIR ? join(process.env.D2L_CACHE_DIR, "fashion-mnist") : join(projectRoot, "data", "fashion-mnist"),
    "/usr/share/datasets/fashion-mnist",
  ].filter((d): d is string => !!d);
  const found = candidates.find((d) => existsSync(join(d, "t10k-labels-idx1-ubyte.gz")));
  if (found === undefined) {
    throw new Error(`bench --peer: Fashion-MNIST not found in ${candidates.join(", ")}; run npm run bench once without --peer to download it`);
  }
  return found;
}

/** PyTorch's threads: torch.set_num_threads and OPENBLAS_NUM_THREADS (0: OpenBLAS's default, a thread a core). */
export interface PeerSetting {
  torchThreads: number;
  blasThreads: number;
}

/**
 * The settings tried: the first holds PyTorch to one core; then OpenBLAS's pool under one torch
 * thread (the fastest on the Intel machine of DESIGN.md), and a torch thread a core. The fastest
 * of all is "PyTorch's best".
 */
export function peerSettings(cores = availableParallelism()): PeerSetting[] {
  const settings = [{ torchThreads: 1, blasThreads: 1 }];
  if (cores > 1) settings.push({ torchThreads: 1, blasThreads: 0 }, { torchThreads: cores, blasThreads: 0 });
  return settings;
}

/** A setting as text, e.g. "1 torch thread, OpenBLAS 1 thread". */
export function settingLabel(s: PeerSetting): string {
  const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? "" : "s"}`;
  return `${plural(s.torchThreads, "torch thread")}, OpenBLAS ${s.blasThreads === 0 ? "pool (a thread a core)" : plural(s.blasThreads, "thread")}`;
}

/** blas_setup.py's choice of OpenBLAS kernels on this machine (made once per command). */
export interface BlasChoice {
  cpu: string;
  /** The core OpenBLAS runs, as it prints it ("Cooperlake", "Haswell", ...); null where PyTorch's BLAS is not OpenBLAS. */
  core: string | null;
  /** OPENBLAS_CORETYPE where the choice is not OpenBLAS's own; else null. */
  coreType: string | null;
  /** What OpenBLAS picks by itself, with no OPENBLAS_CORETYPE or OPENBLAS_L2_SIZE. */
  ownCore: string | null;
  note: string;
}

/** Asks blas_setup.py which OpenBLAS kernels to run (a few seconds: it loads torch in child processes). */
export function chooseBlas(python: string): BlasChoice & { json: string } {
  const child = spawnSync(python, [BLAS_SETUP], { encoding: "utf8" });
  const last = child.stdout.trim().split("\n").pop() ?? "";
  if (child.status !== 0 || !last.startsWith("{")) {
    throw new Error(`bench --peer: choosing OpenBLAS's kernels failed (exit ${child.status}): ${child.stderr.trim() || last}`);
  }
  return { ...(JSON.parse(last) as BlasChoice), json: last };
}

/** The peer's JSON line (the keys npm run bench --json shares with it). */
export interface PeerResult {
  backend: string;
  torch: string;
  threads: number;
  cpu: string;
  blasCore: string | null;
  blasCoreType: string | null;
  blasThreads: number;
  torchThreads: number;
  /** Epochs run: fewer than asked where --max-seconds stopped it. */
  epochs: number;
  secondsPerEpoch: number;
  cpuSecondsPerEpoch: number;
  totalSeconds: number;
  testAccuracy: number;
}

export interface PeerOptions {
  model: Model;
  epochs: number;
  batchSize: number;
  lr: number;
  setting: PeerSetting;
  /** Stop after the epoch that passes this many seconds (at least 2 epochs run). */
  maxSeconds?: number;
  /** chooseBlas's JSON, so that each run skips the choosing. */
  blas: string;
}

/** One run of the peer in its own process. */
export function runPeer(python: string, dataDir: string, opts: PeerOptions): PeerResult {
  const job = opts.model === "lenet" ? "lenet" : opts.model.startsWith("mlp") ? "mlp" : "softmax";
  const args = [SCRIPT, "--job", job, "--data-dir", dataDir, "--epochs", String(opts.epochs),
    "--batch-size", String(opts.batchSize), "--lr", String(opts.lr),
    "--threads", String(opts.setting.torchThreads), "--blas-threads", String(opts.setting.blasThreads),
    ...(opts.maxSeconds !== undefined ? ["--max-seconds", String(opts.maxSeconds)] : [])];
  // blas_setup.py sets OPENBLAS_CORETYPE / OPENBLAS_NUM_THREADS from this choice and unsets inherited ones
  const env = { ...process.env, D2L_PEER_BLAS_CORE: opts.blas };
  const child = spawnSync(python, args, { encoding: "utf8", env });
  const last = child.stdout.trim().split("\n").pop() ?? "";
  if (child.status !== 0 || !last.startsWith("{")) {
    throw new Error(`bench --peer: the PyTorch run failed (exit ${child.status}): ${child.stderr.trim() || last}`);
  }
  return JSON.parse(last) as PeerResult;
}
