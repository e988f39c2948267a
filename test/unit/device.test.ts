import * as tf from "@tensorflow/tfjs";
import { afterEach, describe, expect, it } from "vitest";
import { numGpus, tryAllGpus, tryGpu } from "../../lib/src/device";

describe("tryGpu, tryAllGpus, numGpus", () => {
  const active = tf.getBackend();
  afterEach(async () => {
    await tf.setBackend(active);
  });

  it("without a GPU name the active backend as the CPU, whichever it is", async () => {
    for (const backend of [active, "cpu"]) {
      await tf.setBackend(backend);
      expect(numGpus()).toBe(0);
      const device = tryGpu();
      expect({ type: device.type, index: device.index, backend: device.backend }).toEqual({ type: "cpu", index: null, backend });
      expect(String(device)).toBe(`cpu (${backend})`);
      expect(tryGpu(3).backend).toBe(backend);
      expect(tryAllGpus().map(String)).toEqual([`cpu (${backend})`]);
    }
  });

  it("with tfjs-node-gpu on a GPU, gpu:0 on the tensorflow backend and the plain cpu backend beyond it", async () => {
    // tfjs-node-gpu cannot install here: a registered backend that reports what its NodeJSKernelBackend does.
    const fake = Object.assign(Object.create(tf.findBackend("cpu") as object), { isGPUPackage: true, isUsingGpuDevice: true });
    tf.registerBackend("tensorflow", () => fake, -1);
    try {
      await tf.setBackend("tensorflow");
      expect(numGpus()).toBe(1);
      expect(String(tryGpu())).toBe("gpu:0 (tensorflow)");
      expect(tryGpu(0)).toMatchObject({ type: "gpu", index: 0, backend: "tensorflow" });
      expect(tryGpu(1)).toMatchObject({ type: "cpu", index: null, backend: "cpu" });
      expect(tryAllGpus().map(String)).toEqual(["gpu:0 (tensorflow)"]);
    } finally {
      await tf.setBackend(active);
      tf.removeBackend("tensorflow");
    }
  });

  it("rejects an index that is not a non-negative integer, naming it", () => {
    expect(() => tryGpu(-1)).toThrow(/tryGpu: i must be an integer >= 0; got -1/);
    expect(() => tryGpu(0.5)).toThrow(/got 0.5/);
  });
});
