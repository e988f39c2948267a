/// <reference lib="es2021.weakref" />
import * as tf from "@tensorflow/tfjs";
import { keepBackendBuffer } from "./interrupt";
import { GATHER_UNIT_WASM } from "./simd-kernels";
import { type WasmBackendLike, wasmFunction } from "./wasm-kernels";
import { activeBackend, getBackend, tfEngine } from "./tf-direct";

/**
 * On the wasm backend, image batches are assembled inside the backend's own memory: a dataset's
 * pixel bytes are copied there once, and one SIMD kernel ({@link GATHER_UNIT_WASM}) gathers a
 * batch's rows and converts them to [0, 1] straight into the new tensor's buffer. That saves
 * copying 256 rows in JavaScript and then copying the batch into the backend, about 0.15 ms of a
 * 0.25 ms batch. The other backends keep the array a tensor is made from (no copy to save).
 * The values are exactly those of `tf.div(pixels, 255)`; the unit tests compare them.
 */

/** The pixels of a dataset, image after image (0..255), `pixels` bytes each. */
export interface PixelRows {
  readonly images: Uint8Array;
  readonly pixels: number;
}

type Gather = (images: number, rows: number, count: number, pixels: number, dst: number) => number;

/** The kernel and the buffers it uses in one wasm backend's memory. */
interface Gatherer {
  gather: Gather;
  /** Each dataset's bytes, copied into the backend's memory on first use, freed with the dataset. */
  resident: WeakMap<PixelRows, tf.TensorInfo>;
  freed: FinalizationRegistry<tf.DataId>;
  /** The row numbers of the batch being made. */
  rows?: tf.TensorInfo;
}

/** One gatherer per backend instance; null where the kernel cannot run there. */
const gatherers = new WeakMap<object, Gatherer | null>();

function gathererFor(backend: WasmBackendLike): Gatherer | undefined {
  let g = gatherers.get(backend);
  if (g === undefined) {
    const gather = backend.wasm?.HEAPU8 === undefined ? undefined : wasmFunction<Gather>(backend, "gather", () => GATHER_UNIT_WASM, "g");
    // null: no SIMD here
    g = gather === undefined ? null : {
      gather,
      resident: new WeakMap(),
      freed: new FinalizationRegistry<tf.DataId>((dataId) => backend.disposeData(dataId)),
    };
    gatherers.set(backend, g);
  }
  return g ?? undefined;
}

/**
 * Images order[from..from+count) of `source` as a float32 tensor of `shape` in [0, 1], made in
 * the wasm backend's memory; undefined when the active backend is not wasm, the kernel cannot run,
 * or an image's size is not a multiple of 16 bytes (then the caller makes the batch itself).
 */
export function wasmImageBatch(source: PixelRows, order: Uint32Array, from: number, count: number, shape: number[]): tf.Tensor | undefined {
  if (getBackend() !== "wasm" || source.pixels % 16 !== 0 || count < 1) return undefined;
  const backend = activeBackend() as unknown as WasmBackendLike;
  const g = gathererFor(backend);
  if (g === undefined) return undefined;
  let images = g.resident.get(source);
  if (images === undefined) {
    const made = backend.makeOutput([source.images.length], "bool"); // one byte per element
    backend.wasm!.HEAPU8!.set(source.images, backend.getMemoryOffset(made.dataId));
    keepBackendBuffer(made.dataId); // cached, not a tensor's: an interrupt must not free it
    images = made;
    g.resident.set(source, images);
    g.freed.register(source, images.dataId);
  }
  if (g.rows === undefined || g.rows.shape[0] < count) {
    if (g.rows !== undefined) backend.disposeData(g.rows.dataId);
    const rows = backend.makeOutput([Math.max(count, 256)], "int32");
    keepBackendBuffer(rows.dataId);
    g.rows = rows;
  }
  const out = backend.makeOutput(shape, "float32");
  // Offsets stay valid when an allocation grows the memory; views of it must be made afresh.
  const rowsOffset = backend.getMemoryOffset(g.rows.dataId);
  new Uint32Array(backend.wasm!.HEAPU8!.buffer, rowsOffset, count).set(order.subarray(from, from + count));
  g.gather(backend.getMemoryOffset(images.dataId), rowsOffset, count, source.pixels, backend.getMemoryOffset(out.dataId));
  return tfEngine().makeTensorFromTensorInfo(out, backend as unknown as tf.KernelBackend);
}
