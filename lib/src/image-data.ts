import * as tf from "@tensorflow/tfjs";
import type { Batch, BatchSource } from "./batches";
import { recoverFromInterrupt } from "./engine/interrupt";
import { wakeThreads } from "./engine/thread-pool";
import { UnitFloats } from "./engine/unit-floats";
import { wasmImageBatch } from "./engine/wasm-batches";
import { ArgumentError, checkPositiveInt } from "./validate";

/** Options of {@link ImageDataset.batches}. */
export interface ImageBatchOptions {
  /** Visit the examples in a new random order every epoch (training); default false. */
  shuffle?: boolean;
  /** Resize every image to resize x resize pixels (bilinear). */
  resize?: number;
}

/**
 * A set of grayscale images kept as the bytes of the data file, with one integer label each:
 * the counterpart of a torchvision dataset such as `FashionMNIST`. Tensors are made only for
 * the examples asked for, so the whole set costs one byte per pixel.
 */
export class ImageDataset {
  /** Pixels per image. */
  readonly pixels: number;

  constructor(
    /** The pixels, image after image, row-major, 0..255. */
    readonly images: Uint8Array,
    /** One label per image. */
    readonly labels: Uint8Array,
    readonly height: number,
    readonly width: number,
  ) {
    this.pixels = height * width;
    if (images.length !== labels.length * this.pixels) {
      throw new Error(
        `ImageDataset: ${labels.length} labels need ${labels.length * this.pixels} pixels of ${height}x${width} images; got ${images.length}`,
      );
    }
  }

  /** The number of examples. */
  get length(): number {
    return this.labels.length;
  }

  /** Example i as [image, label]: a float32 tensor [height, width, 1] in [0, 1] (dispose it), and its label. */
  get(i: number): [tf.Tensor3D, number] {
    this.checkIndex("get", "i", i, this.length - 1);
    const x = this.bytesAsFloats(Uint32Array.of(i), 0, 1);
    return [tf.tidy(() => tf.div<tf.Tensor3D>(tf.tensor3d(x, [this.height, this.width, 1], "float32"), 255)), this.labels[i]];
  }

  /** Examples start..end-1 (in file order) as a batch [X, y]: X float32 [n, height, width, 1], y int32 [n]. */
  slice(start: number, end: number): Batch {
    this.checkIndex("slice", "start", start, this.length - 1);
    this.checkIndex("slice", "end", end, this.length);
    if (end <= start) throw new ArgumentError("ImageDataset.slice", "end", `greater than start (${start})`, end);
    const order = Uint32Array.from({ length: end - start }, (_, k) => start + k);
    return this.batch(order, 0, order.length);
  }

  /**
   * Minibatches of `batchSize` examples, re-iterable: each `for (const [X, y] of source)` is
   * one epoch, the last batch holding the remainder. A batch lives until the loop moves on.
   */
  batches(batchSize: number, options: ImageBatchOptions = {}): BatchSource {
    checkPositiveInt("ImageDataset.batches", "batchSize", batchSize);
    if (options.resize !== undefined) checkPositiveInt("ImageDataset.batches", "resize", options.resize);
    return new ImageBatches(this, batchSize, options.shuffle ?? false, options.resize);
  }

  /**
   * The pixels of examples order[from..from+count) as floats 0..255, written into `into` when
   * given (it must hold at least count images). `set` converts a whole row natively, several
   * times faster than a per-pixel loop; the division by 255 happens in the backend.
   */
  bytesAsFloats(order: Uint32Array, from: number, count: number, into?: Float32Array): Float32Array {
    const p = this.pixels;
    const out = into ?? new Float32Array(count * p);
    for (let k = 0; k < count; k++) {
      const s = order[from + k] * p;
      out.set(this.images.subarray(s, s + p), k * p);
    }
    return out;
  }

  /** The labels of examples order[from..from+count) as int32. */
  labelsOf(order: Uint32Array, from: number, count: number): Int32Array {
    const y = new Int32Array(count);
    for (let k = 0; k < count; k++) y[k] = this.labels[order[from + k]];
    return y;
  }

  /**
   * The batch of examples order[from..from+count) as tensors. The pixels are converted to
   * [0, 1] with WebAssembly SIMD where it runs (on the wasm backend, inside its memory); otherwise
   * they are staged as floats 0..255 in `into` (when given: the staging tensor is only an input of
   * the division, so the array can be reused) and divided by 255 in the backend. Either way the
   * values are the same.
   */
  batch(order: Uint32Array, from: number, count: number, into?: Float32Array, resize?: number): Batch {
    const shape: [number, number, number, number] = [count, this.height, this.width, 1];
    const labels = () => tf.tensor1d(this.labelsOf(order, from, count), "int32");
    if (resize === undefined) {
      const X = wasmImageBatch(this, order, from, count, shape);
      if (X !== undefined) return [X, labels()];
    }
    const floats = resize === undefined ? unitFloats() : undefined;
    if (floats !== undefined) {
      const p = this.pixels;
      const bytes = floats.input(count * p);
      for (let k = 0; k < count; k++) {
        const s = order[from + k] * p;
        bytes.set(this.images.subarray(s, s + p), k * p);
      }
      return [tensorOf(floats.run(count * p), shape), labels()];
    }
    const x = this.bytesAsFloats(order, from, count, into);
    const values = x.length === count * this.pixels ? x : x.subarray(0, count * this.pixels);
    const X = tf.tidy(() => {
      const unit = tf.div<tf.Tensor4D>(tf.tensor4d(values, shape, "float32"), 255);
      return resize === undefined ? unit : tf.image.resizeBilinear(unit, [resize, resize]);
    });
    return [X, labels()];
  }

  private checkIndex(fn: string, name: string, value: number, max: number): void {
    if (!Number.isInteger(value) || value < 0 || value > max) {
      throw new ArgumentError(`ImageDataset.${fn}`, name, `an integer in 0..${max}`, value);
    }
  }
}

let sharedUnitFloats: UnitFloats | null | undefined;

/** The process's byte-to-float converter, or undefined without WebAssembly SIMD. */
function unitFloats(): UnitFloats | undefined {
  if (sharedUnitFloats === undefined) sharedUnitFloats = UnitFloats.create() ?? null;
  return sharedUnitFloats ?? undefined;
}

/**
 * A float32 tensor of `values`, which the caller goes on to overwrite: the wasm backend copies a
 * new tensor's values into its own memory, the cpu and tensorflow backends keep the array they
 * are given, so they get a copy.
 */
function tensorOf(values: Float32Array, shape: [number, number, number, number]): tf.Tensor4D {
  return tf.tensor4d(tf.getBackend() === "wasm" ? values : values.slice(), shape, "float32");
}

/** Frees a batch's tensors unless the caller kept one with `tf.keep`. */
function release(batch: Batch): void {
  for (const t of batch) if (!t.kept && !t.isDisposed) t.dispose();
}

/** A random permutation of 0..n-1 (Fisher-Yates). */
function permutation(n: number): Uint32Array {
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    const t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  return order;
}

/** The {@link BatchSource} of {@link ImageDataset.batches}. */
class ImageBatches implements BatchSource {
  constructor(
    private readonly data: ImageDataset,
    readonly batchSize: number,
    private readonly shuffle: boolean,
    private readonly resize?: number,
  ) {}

  get numExamples(): number {
    return this.data.length;
  }

  *[Symbol.iterator](): Iterator<Batch> {
    // Every epoch starts afresh: an epoch cut off by an interrupt leaves nothing this one depends on.
    recoverFromInterrupt();
    const n = this.data.length;
    const order = this.shuffle ? permutation(n) : Uint32Array.from({ length: n }, (_, i) => i);
    const staging = new Float32Array(this.batchSize * this.data.pixels);
    let current: Batch | undefined;
    try {
      for (let start = 0; start < n; start += this.batchSize) {
        // a training step's kernels split across the worker threads: wake them while this thread assembles the batch
        wakeThreads();
        // Made in a scope: an interrupt (Stop runs no finally) that lands while the batch is made leaves it
        // open, so the repair frees what was made; outside one it would take the turn for finished, and the
        // half-made batch would stay (a learner's own loop over batches stopped there lost one in three Stops).
        const count = Math.min(this.batchSize, n - start);
        current = tf.tidy(() => this.data.batch(order, start, count, staging, this.resize));
        yield current;
        release(current);
        current = undefined;
      }
    } finally {
      if (current) release(current);
    }
  }
}
