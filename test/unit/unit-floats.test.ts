import * as tf from "@tensorflow/tfjs";
import { describe, expect, it } from "vitest";
import { fashionMnist } from "../../lib/src/fashion-mnist";
import { ImageDataset } from "../../lib/src/image-data";
import { UNIT_FLOATS_WASM } from "../../lib/src/engine/simd-kernels";
import { UnitFloats } from "../../lib/src/engine/unit-floats";
import { realDataDir } from "./fashion-mnist-fixtures";

/** What the batches were before the SIMD conversion: floats 0..255, divided by 255 in the backend. */
function dividedInBackend(bytes: Uint8Array, shape: number[]): Float32Array {
  return tf.tidy(() => tf.div(tf.tensor(Float32Array.from(bytes), shape, "float32"), 255).dataSync() as Float32Array);
}

describe("UnitFloats", () => {
  it("is a valid WebAssembly module, and runs here", () => {
    expect(WebAssembly.validate(new Uint8Array(UNIT_FLOATS_WASM))).toBe(true);
    expect(UnitFloats.create()).toBeDefined();
  });

  it("gives every byte 0..255 exactly the float32 the backend's division by 255 gives", () => {
    const unit = UnitFloats.create()!;
    const bytes = Uint8Array.from({ length: 256 }, (_, i) => i);
    unit.input(256).set(bytes);
    const floats = Array.from(unit.run(256));
    expect(floats).toEqual(Array.from(dividedInBackend(bytes, [256])));
    expect(floats).toEqual(Array.from(bytes, (b) => Math.fround(b / 255)));
    expect(floats[0]).toBe(0);
    expect(floats[255]).toBe(1);
  });

  it("converts lengths that are not multiples of 16, and grows its memory for large inputs", () => {
    const unit = UnitFloats.create()!;
    for (const n of [1, 15, 17, 784, 3 * 784 + 5, 1024 * 784]) {
      const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 37 + n) & 255);
      unit.input(n).set(bytes);
      const floats = unit.run(n);
      expect(floats.length).toBe(n);
      let bad = 0;
      for (let i = 0; i < n; i++) if (floats[i] !== Math.fround(bytes[i] / 255)) bad++;
      expect(bad).toBe(0);
    }
  });
});

describe("ImageDataset batches with the SIMD conversion", () => {
  it("are bit for bit the batches of the backend's division, on the whole Fashion-MNIST test set", async () => {
    const [, test] = await fashionMnist({ root: realDataDir(), progress: false });
    const order = Uint32Array.from({ length: test.length }, (_, i) => (i * 7919) % test.length); // a permutation
    for (const [from, count] of [[0, 256], [9744, 256], [5000, 1]]) {
      const [X, y] = test.batch(order, from, count);
      const rows = new Uint8Array(count * 784);
      for (let k = 0; k < count; k++) rows.set(test.images.subarray(order[from + k] * 784, (order[from + k] + 1) * 784), k * 784);
      expect(X.shape).toEqual([count, 28, 28, 1]);
      expect(X.dtype).toBe("float32");
      expect(Array.from(X.dataSync())).toEqual(Array.from(dividedInBackend(rows, [count, 28, 28, 1])));
      expect(Array.from(y.dataSync())).toEqual(Array.from(order.subarray(from, from + count), (i) => test.labels[i]));
      tf.dispose([X, y]);
    }
  });

  it("do not share memory with the next batch, on any backend", () => {
    const images = Uint8Array.from({ length: 6 * 4 }, (_, i) => i * 10);
    const data = new ImageDataset(images, Uint8Array.from([0, 1, 2, 3, 4, 5]), 2, 2);
    const order = Uint32Array.from([0, 1, 2, 3, 4, 5]);
    const first = data.batch(order, 0, 3);
    const values = Array.from(first[0].dataSync());
    const second = data.batch(order, 3, 3);
    expect(Array.from(first[0].dataSync())).toEqual(values);
    expect(values[5]).toBe(Math.fround(50 / 255));
    expect(second[0].dataSync()[0]).toBe(Math.fround(120 / 255));
    tf.dispose([...first, ...second]);
  });
});
