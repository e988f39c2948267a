import * as tf from "@tensorflow/tfjs";
import { createRequire } from "node:module";
import { afterAll, describe, expect, it } from "vitest";
import { initBackend } from "../../lib/src/backend";
import { useSpeedups } from "../../lib/src/engine";

const hasTfjsNode = (() => {
  try {
    createRequire(import.meta.url).resolve("@tensorflow/tfjs-node");
    return true;
  } catch {
    return false;
  }
})();

describe("initBackend", () => {
  const saved = process.env.D2L_BACKEND;
  // test/setup.ts sets D2L_SEED for every test, so every choice reports it.
  const seed = Number(process.env.D2L_SEED);
  afterAll(async () => {
    if (saved === undefined) delete process.env.D2L_BACKEND;
    else process.env.D2L_BACKEND = saved;
    await initBackend(undefined, { quiet: true });
  });

  it("picks the fastest backend that loads and says why it skipped faster ones", async () => {
    delete process.env.D2L_BACKEND;
    const choice = await initBackend(undefined, { quiet: true });
    expect(tf.getBackend()).toBe(choice.name);
    if (hasTfjsNode) {
      expect(choice.name).toBe("tensorflow");
    } else {
      expect(choice).toEqual({ name: "wasm", reason: "tfjs-node not installed", seed });
    }
  });

  it("honours D2L_BACKEND and prints one line saying so", async () => {
    process.env.D2L_BACKEND = "cpu";
    const lines: string[] = [];
    const log = console.log;
    console.log = (...args: unknown[]) => lines.push(args.join(" "));
    try {
      const choice = await initBackend();
      expect(choice).toEqual({ name: "cpu", reason: "requested", seed });
    } finally {
      console.log = log;
    }
    expect(lines).toEqual([`d2l: backend cpu (requested), seed ${seed}`]);
    expect(tf.getBackend()).toBe("cpu");
    // The cpu backend's multi-line "install tfjs-node" banner stays quiet.
    const warnings: string[] = [];
    const warn = console.warn;
    console.warn = (...args: unknown[]) => warnings.push(args.join(" "));
    try {
      tf.tidy(() => tf.add(tf.tensor([1]), 1).dataSync());
    } finally {
      console.warn = warn;
    }
    expect(warnings).toEqual([]);
  });

  it("an explicit argument beats D2L_BACKEND", async () => {
    process.env.D2L_BACKEND = "cpu";
    expect((await initBackend("wasm", { quiet: true })).name).toBe("wasm");
    expect(tf.getBackend()).toBe("wasm");
  });

  it.skipIf(hasTfjsNode)("a forced backend that cannot load is an error that says how to install it", async () => {
    delete process.env.D2L_BACKEND;
    await expect(initBackend("tensorflow", { quiet: true })).rejects.toThrow(
      /backend "tensorflow" was requested but not installed\. Install it with: npm install @tensorflow\/tfjs-node/,
    );
    // The failed request does not stick: the next call chooses again.
    expect((await initBackend(undefined, { quiet: true })).name).toBe("wasm");
  });

  it("rejects a backend name it does not know, naming where it came from", async () => {
    process.env.D2L_BACKEND = "gpu";
    await expect(initBackend(undefined, { quiet: true })).rejects.toThrow('d2l: D2L_BACKEND must be one of tensorflow, wasm, cpu; got "gpu"');
    delete process.env.D2L_BACKEND;
    await expect(initBackend("webgl" as "cpu", { quiet: true })).rejects.toThrow('initBackend(backend) must be one of');
  });
});

describe("useSpeedups", () => {
  it("turns d2l's kernel speed-ups off and on again; the one-hot fix stays either way", () => {
    const kernel = (name: string) => tf.getKernel(name, "wasm")?.kernelFunc;
    const installed = {
      matMul: kernel(tf.BatchMatMul), identity: kernel(tf.Identity), maximum: kernel(tf.Maximum), sum: kernel(tf.Sum), fused: tf.fused.matMul,
    };
    const oneHot = () => tf.tidy(() => Array.from(tf.oneHot(tf.tensor1d([1, 0], "int32"), 2, 0.9, 0.1, "float32").dataSync()));
    let off: { matMul?: tf.KernelFunc; maximum?: tf.KernelFunc; fused: typeof tf.fused.matMul } | undefined;
    try {
      useSpeedups(false);
      off = { matMul: kernel(tf.BatchMatMul), maximum: kernel(tf.Maximum), fused: tf.fused.matMul };
      expect(tf.fused.matMul).not.toBe(installed.fused);
      if (tf.getBackend() === "wasm") {
        expect(kernel(tf.BatchMatMul)).not.toBe(installed.matMul);
        expect(kernel(tf.Identity)).not.toBe(installed.identity);
        expect(kernel(tf.Maximum)).not.toBe(installed.maximum);
        expect(kernel(tf.Sum)).not.toBe(installed.sum);
        oneHot().forEach((v, i) => expect(v).toBeCloseTo([0.1, 0.9, 0.9, 0.1][i], 6));
      }
    } finally {
      useSpeedups(true);
    }
    expect(tf.fused.matMul).not.toBe(off!.fused);
    if (tf.getBackend() === "wasm") {
      expect(kernel(tf.BatchMatMul)).not.toBe(off!.matMul);
      expect(kernel(tf.Maximum)).not.toBe(off!.maximum);
    }
    oneHot().forEach((v, i) => expect(v).toBeCloseTo([0.1, 0.9, 0.9, 0.1][i], 6));
  });
});
