import * as tf from "@tensorflow/tfjs";
import { describe, expect, it } from "vitest";
import { GATHER_UNIT_WASM } from "../../lib/src/engine/simd-kernels";
import { wasmImageBatch } from "../../lib/src/engine/wasm-batches";

const onWasm = tf.getBackend() === "wasm";

/** n images of `pixels` bytes, image i's bytes a function of i (so every row is recognisable). */
function dataset(n: number, pixels: number, salt: number) {
  const images = Uint8Array.from({ length: n * pixels }, (_, j) => (Math.floor(j / pixels) * 31 + (j % pixels) * 7 + salt) & 255);
  return { images, pixels };
}

/** The expected batch: rows order[from..from+count), each byte b as float32 b / 255. */
function expected(d: { images: Uint8Array; pixels: number }, order: Uint32Array, from: number, count: number): number[] {
  const out: number[] = [];
  for (let k = 0; k < count; k++) {
    const s = order[from + k] * d.pixels;
    for (let j = 0; j < d.pixels; j++) out.push(Math.fround(d.images[s + j] / 255));
  }
  return out;
}

describe("GATHER_UNIT_WASM", () => {
  it("is a valid WebAssembly module", () => {
    expect(WebAssembly.validate(new Uint8Array(GATHER_UNIT_WASM))).toBe(true);
  });
});

describe.runIf(onWasm)("wasmImageBatch (wasm backend)", () => {
  it("gathers and converts rows exactly, for batches of 1 to 1000 rows and from several datasets in turn", () => {
    const a = dataset(1200, 32, 0);
    const b = dataset(50, 784, 99);
    const orderA = Uint32Array.from({ length: 1200 }, (_, i) => (i * 611) % 1200); // a permutation
    const orderB = Uint32Array.from({ length: 50 }, (_, i) => 49 - i);
    for (const [d, order, from, count] of [[a, orderA, 0, 256], [b, orderB, 10, 40], [a, orderA, 200, 1000], [b, orderB, 49, 1], [a, orderA, 1199, 1]] as const) {
      const X = wasmImageBatch(d, order, from, count, [count, d.pixels])!;
      expect(X).toBeDefined();
      expect(X.shape).toEqual([count, d.pixels]);
      expect(X.dtype).toBe("float32");
      expect(Array.from(X.dataSync())).toEqual(expected(d, order, from, count));
      X.dispose();
    }
  });

  it("leaves nothing behind per batch: one resident copy per dataset, reused", () => {
    const d = dataset(300, 16, 5);
    const order = Uint32Array.from({ length: 300 }, (_, i) => i);
    wasmImageBatch(d, order, 0, 10, [10, 16])!.dispose(); // the first call copies the dataset in
    const tensors = tf.memory().numTensors;
    const buffers = tf.engine().backend.numDataIds();
    for (let i = 0; i < 20; i++) {
      const X = wasmImageBatch(d, order, 10 * i, 10, [10, 4, 4, 1])!;
      expect(X.shape).toEqual([10, 4, 4, 1]);
      X.dispose();
    }
    expect(tf.memory().numTensors).toBe(tensors);
    expect(tf.engine().backend.numDataIds()).toBe(buffers);
  });

  it("declines images whose size is not a multiple of 16 bytes, and other backends' batches", () => {
    const d = dataset(10, 12, 0);
    expect(wasmImageBatch(d, Uint32Array.of(0, 1), 0, 2, [2, 12])).toBeUndefined();
  });
});
