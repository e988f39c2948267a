/**
 * npm run bench -- --peer: the same job in PyTorch (scripts/peer/bench_torch.py, written for speed),
 * run alternately with ours, both times printed with their ratio. Needs a Python with torch:
 * D2L_PYTHON if set, else python3 on PATH, else /usr/bin/python3 (Debian's python3-torch).
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Model } from "./bench-models";

const HERE = dirname(fileURLToPath(import.meta.url));
const SCRIPT = join(HERE, "peer", "bench_torch.py");

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

/** The peer's JSON line (the keys npm run bench --json shares with it). */
export interface PeerResult {
  backend: string;
  torch: string;
  threads: number;
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
  /** PyTorch's thread count; 1 is fastest on this 2-core machine. */
  threads?: number;
}

/** One run of the peer in its own process. */
export function runPeer(python: string, dataDir: string, opts: PeerOptions): PeerResult {
  const job = opts.model === "lenet" ? "lenet" : opts.model.startsWith("mlp") ? "mlp" : "softmax";
  const args = [SCRIPT, "--job", job, "--data-dir", dataDir, "--epochs", String(opts.epochs),
    "--batch-size", String(opts.batchSize), "--lr", String(opts.lr), "--threads", String(opts.threads ?? 1)];
  // Debian's OpenBLAS settings inherited from a conda or CI environment slow torch's products; run it with its own defaults.
  const env = { ...process.env };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  const child = spawnSync(python, args, { encoding: "utf8", env });
  const last = child.stdout.trim().split("\n").pop() ?? "";
  if (child.status !== 0 || !last.startsWith("{")) {
    throw new Error(`bench --peer: the PyTorch run failed (exit ${child.status}): ${child.stderr.trim() || last}`);
  }
  return JSON.parse(last) as PeerResult;
}
