import * as tf from "@tensorflow/tfjs";
import { recoverFromInterrupt, useFixes, useSpeedups } from "./engine";
import { useIopubQueue } from "./engine/iopub-queue";
import { withSharedWasmMemory } from "./engine/shared-memory";
import { seedFromEnv, setSeed } from "./seed";
import { useCarrierResend } from "./display";
import { kernelAdvice } from "./kernel";

/** The backends d2l can run on, fastest first. */
export const BACKENDS = ["tensorflow", "wasm", "cpu"] as const;

/** One of {@link BACKENDS}. */
export type BackendName = (typeof BACKENDS)[number];

/** What {@link initBackend} chose, and why. */
export interface BackendChoice {
  /** The tfjs backend now active. */
  name: BackendName;
  /** Why it was chosen: forced by the caller or D2L_BACKEND, or why faster ones were skipped. */
  reason: string;
  /** The seed applied from D2L_SEED (see {@link setSeed}), absent when D2L_SEED is unset. */
  seed?: number;
}

/** How each backend is made available to tfjs, and how to get it when it is missing. */
const LOADERS: Record<BackendName, { load: () => void; install: string }> = {
  tensorflow: {
    load: loadTensorflow,
    install:
      "npm install @tensorflow/tfjs-node (it downloads libtensorflow; see the README when that fails), " +
      "or @tensorflow/tfjs-node-gpu on Linux with an NVIDIA GPU and CUDA",
  },
  wasm: {
    load: () => require("@tensorflow/tfjs-backend-wasm"),
    install: "npm install @tensorflow/tfjs-backend-wasm",
  },
  cpu: { load: () => undefined, install: "npm install @tensorflow/tfjs" },
};

/** Which package provides the "tensorflow" backend, once loaded: both register it under that name. */
let tensorflowPackage: "tfjs-node-gpu" | "tfjs-node" | undefined;

/**
 * Loads TensorFlow's C library for the "tensorflow" backend: `@tensorflow/tfjs-node-gpu` (CUDA) when it
 * is installed, else `@tensorflow/tfjs-node`. Only one of them may load in a process.
 */
function loadTensorflow(): void {
  try {
    require("@tensorflow/tfjs-node-gpu");
    tensorflowPackage = "tfjs-node-gpu";
    return;
  } catch (error) {
    if (shortError(error) !== "not installed") {
      const text = error instanceof Error ? error.message : String(error);
      throw new Error(`@tensorflow/tfjs-node-gpu: ${text}`);
    }
  }
  require("@tensorflow/tfjs-node");
  tensorflowPackage = "tfjs-node";
}

/** "tfjs-node-gpu, on the GPU" or "tfjs-node-gpu, no GPU found": said when the GPU package runs. */
function gpuNote(): string {
  if (tensorflowPackage !== "tfjs-node-gpu") return "";
  const flags = tf.findBackend("tensorflow") as unknown as { isUsingGpuDevice?: boolean } | null;
  return flags?.isUsingGpuDevice ? "tfjs-node-gpu, on the GPU" : "tfjs-node-gpu, no GPU found: on the CPU";
}

let current: Promise<BackendChoice> | undefined;
let currentRequest: BackendName | undefined;

function isBackendName(name: string): name is BackendName {
  return (BACKENDS as readonly string[]).includes(name);
}

function shortError(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  if (/^Cannot find module '@tensorflow\/[^'/]+'/.test(text)) {
    return "not installed";
  }
  return `failed to load: ${text.split("\n")[0]}`;
}

/** Loads the backend's package and makes it tfjs's active backend; throws when it cannot. */
async function activate(name: BackendName): Promise<void> {
  LOADERS[name].load();
  // wasm: its memory is made shared, so worker threads can compute on the tensors (engine/thread-pool.ts)
  const set = () => tf.setBackend(name);
  if (!(await (name === "wasm" ? withSharedWasmMemory(set) : set()))) {
    throw new Error(`tfjs could not initialise the ${name} backend`);
  }
  await tf.ready();
  useSpeedups(true);
  useFixes();
  if (name === "cpu") {
    // The cpu backend prints a multi-line "install tfjs-node" banner on first use; d2l
    // already reports the backend in one line, so mark the banner as shown.
    (tf.backend() as unknown as { firstUse?: boolean }).firstUse = false;
  }
}

async function choose(requested: BackendName | undefined, log: boolean, seed: number | undefined): Promise<BackendChoice> {
  let choice: BackendChoice;
  if (requested !== undefined) {
    try {
      await activate(requested);
    } catch (error) {
      throw new Error(
        `d2l: backend "${requested}" was requested but ${shortError(error)}. ` +
          `Install it with: ${LOADERS[requested].install}, or choose another with D2L_BACKEND=${BACKENDS.join("|")}.`,
      );
    }
    choice = { name: requested, reason: "requested" };
  } else {
    const skipped: string[] = [];
    choice = { name: "cpu", reason: "" };
    for (const name of BACKENDS) {
      try {
        await activate(name);
        choice = { name, reason: skipped.join("; ") };
        break;
      } catch (error) {
        skipped.push(`${name === "tensorflow" ? "tfjs-node" : name} ${shortError(error)}`);
      }
    }
  }
  const note = choice.name === "tensorflow" ? gpuNote() : "";
  if (note) choice = { ...choice, reason: choice.reason ? `${note}; ${choice.reason}` : note };
  if (log) {
    const seeded = seed === undefined ? "" : `, seed ${seed}`;
    console.log(`d2l: backend ${choice.name}${choice.reason ? ` (${choice.reason})` : ""}${seeded}`);
  }
  return choice;
}

/**
 * Picks the fastest TensorFlow.js backend that loads: TensorFlow's C library ("tensorflow", from
 * tfjs-node-gpu when installed, computing on an NVIDIA GPU, else from tfjs-node), then wasm, then plain
 * JavaScript ("cpu"), and prints one line saying which. `D2L_BACKEND` or the
 * `backend` argument forces one; a forced backend that cannot load is an error saying how to
 * install it. Calling it again returns the first choice unless a different backend is asked for.
 *
 * `D2L_SEED=n` seeds every random number of tfjs and d2l with {@link setSeed}(n), and the line
 * says so (`d2l: backend wasm (tfjs-node not installed), seed 0`). The seed is applied on every
 * call, after the backend is ready, so a notebook that starts with `await d2l.initBackend()` prints
 * the same numbers on each Run All in the same kernel. Without D2L_SEED the random numbers are left
 * as they are (fresh each run, or following an earlier `setSeed`). A D2L_SEED that is not an
 * integer in 0..2^53-1 is an error naming it.
 *
 * In a kernel other than the project's "d2l-ts" it says how to register and pick that one. (plotly.js
 * goes out with a notebook's first chart, see `ensurePlotly`; a notebook without charts carries none.)
 */
export async function initBackend(
  backend: BackendName | undefined = undefined,
  options: { quiet?: boolean } = {},
): Promise<BackendChoice> {
  recoverFromInterrupt();
  const fromEnv = process.env.D2L_BACKEND?.trim();
  const requested = backend ?? (fromEnv ? fromEnv : undefined);
  if (requested !== undefined && !isBackendName(requested)) {
    const source = backend !== undefined ? "initBackend(backend)" : "D2L_BACKEND";
    throw new Error(`d2l: ${source} must be one of ${BACKENDS.join(", ")}; got "${requested}"`);
  }
  const seed = seedFromEnv();
  useIopubQueue(); // in a tslab kernel: many outputs in a row no longer kill it (engine/iopub-queue.ts)
  useCarrierResend(); // in a tslab kernel: a re-run of the cell carrying plotly.js sends it again (display.ts)
  const advice = kernelAdvice();
  if (advice && !options.quiet) console.warn(advice);
  if (current === undefined || requested !== currentRequest) {
    currentRequest = requested;
    current = choose(requested, !options.quiet, seed);
    current.catch(() => {
      current = undefined;
      currentRequest = undefined;
    });
  }
  const choice = await current;
  if (seed === undefined) return choice;
  setSeed(seed);
  return { ...choice, seed };
}
