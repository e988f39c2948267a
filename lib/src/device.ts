import * as tf from "@tensorflow/tfjs";
import { ArgumentError } from "./validate";

/**
 * Where TensorFlow.js does its arithmetic: PyTorch's `torch.device`. TensorFlow.js has no devices to
 * put a tensor on, only one active *backend* at a time (`tf.getBackend()`), and every operation runs
 * there. So a device names that backend and says whether it computes on a GPU.
 *
 * In place of PyTorch's `.to(device)`: the active backend is chosen once, by `d2l.initBackend()` (or
 * `tf.setBackend(device.backend)`), and every tensor and model is made on it. A tensor made on another
 * backend moves by itself the first time an operation of the active backend reads it.
 * Not in d2l, which uses `torch.device`.
 */
export class Device {
  constructor(
    /** "gpu" when the backend computes on a GPU (tfjs-node-gpu with CUDA, webgl, webgpu), else "cpu". */
    readonly type: "gpu" | "cpu",
    /** The GPU's number, as in PyTorch's `cuda:0`; null for the CPU. */
    readonly index: number | null,
    /** The tfjs backend that runs the work: "tensorflow" (tfjs-node, tfjs-node-gpu), "wasm", "cpu", ... */
    readonly backend: string,
  ) {}

  /** "gpu:0 (tensorflow)" or "cpu (wasm)": what d2l prints as `cuda:0` or `cpu`. */
  toString(): string {
    return this.type === "gpu" ? `gpu:${this.index} (${this.backend})` : `cpu (${this.backend})`;
  }
}

/**
 * The number of GPUs TensorFlow.js computes on: 1 when the active backend runs on a GPU (tfjs-node-gpu
 * places every operation on the first GPU it sees, `CUDA_VISIBLE_DEVICES` chooses which; in a browser,
 * webgl and webgpu), else 0. @see d2l.num_gpus (section 5.6)
 */
export function numGpus(): number {
  const backend = tf.getBackend();
  if (backend === "webgl" || backend === "webgpu") return 1;
  // tfjs-node's backend says whether TensorFlow found a GPU
  const node = tf.findBackend(backend) as { isUsingGpuDevice?: boolean } | null;
  return backend === "tensorflow" && node?.isUsingGpuDevice === true ? 1 : 0;
}

/**
 * Returns GPU `i` if it exists, otherwise the CPU: the device whose backend will run the work. Without a
 * GPU this is the active backend (`cpu (wasm)` here); with tfjs-node-gpu on a GPU, `gpu:0 (tensorflow)`,
 * and for an `i` beyond the GPUs, tfjs's plain JavaScript backend, `cpu (cpu)`.
 * @see d2l.try_gpu (section 5.6)
 */
export function tryGpu(i = 0): Device {
  if (!Number.isInteger(i) || i < 0) throw new ArgumentError("tryGpu", "i", "an integer >= 0", i);
  if (i < numGpus()) return new Device("gpu", i, tf.getBackend());
  return new Device("cpu", null, numGpus() > 0 ? "cpu" : tf.getBackend());
}

/** Returns all available GPUs, or `[cpu]` if there is none. @see d2l.try_all_gpus (section 5.6) */
export function tryAllGpus(): Device[] {
  const devices = Array.from({ length: numGpus() }, (_, i) => tryGpu(i));
  return devices.length > 0 ? devices : [tryGpu()];
}
