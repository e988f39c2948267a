import * as tf from "@tensorflow/tfjs";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { useFileIO } from "../../lib/src/engine/file-io";

// What importing d2l does (lib/src/index.ts).
useFileIO(true);

/** A layer of our own, to be saved and loaded as part of a model: y = x - mean(x), times a learned scale. */
class ScaledCentered extends tf.layers.Layer {
  static className = "ScaledCentered";
  private scale!: tf.LayerVariable;
  build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = inputShape as tf.Shape;
    this.scale = this.addWeight("scale", [shape[shape.length - 1] as number], "float32", tf.initializers.randomNormal({}));
    this.built = true;
  }
  call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      return x.sub(x.mean()).mul(this.scale.read());
    });
  }
}

const BACKENDS = ["wasm", "cpu"] as const;
const root = mkdtempSync(join(tmpdir(), "d2l-file-io-"));
const active = tf.getBackend();
let registeredCustom = false;

function model(): tf.Sequential {
  if (!registeredCustom) {
    tf.serialization.registerClass(ScaledCentered);
    registeredCustom = true;
  }
  return tf.sequential({
    layers: [
      tf.layers.dense({ units: 16, inputShape: [5], activation: "relu" }),
      new ScaledCentered({}),
      tf.layers.dense({ units: 3, useBias: false }),
    ],
  });
}

/** Every weight's bytes, in order: equal arrays mean equal bits. */
function weightBytes(m: tf.LayersModel): number[][] {
  return m.getWeights().map((w) => Array.from(new Uint8Array(w.dataSync().buffer.slice(0))));
}

function output(m: tf.LayersModel, X: tf.Tensor): number[] {
  return tf.tidy(() => Array.from((m.predict(X) as tf.Tensor).dataSync()));
}

/** Makes `name` tfjs's backend, without the cpu backend's "install tfjs-node" banner. */
async function use(name: string): Promise<void> {
  await tf.setBackend(name);
  (tf.backend() as unknown as { firstUse?: boolean }).firstUse = false;
}

afterEach(async () => {
  await tf.setBackend(active);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe("file:// without tfjs-node", () => {
  for (const backend of BACKENDS) {
    it(`saves and loads a model with a custom layer on ${backend}, bit for bit`, async () => {
      await use(backend);
      const dir = join(root, `round-${backend}`);
      const net = model();
      const X = tf.randomNormal([4, 5]);
      const result = await net.save(`file://${dir}`);
      expect(result.modelArtifactsInfo.weightDataBytes).toBe((5 * 16 + 16 + 16 + 16 * 3) * 4);
      const loaded = await tf.loadLayersModel(`file://${dir}/model.json`);
      expect(weightBytes(loaded)).toEqual(weightBytes(net));
      expect(output(loaded, X)).toEqual(output(net, X));
      expect(loaded.layers.map((l) => l.getClassName())).toEqual(["Dense", "ScaledCentered", "Dense"]);
      const before = tf.memory().numTensors;
      loaded.dispose();
      net.dispose();
      X.dispose();
      expect(tf.memory().numTensors).toBeLessThan(before);
    });
  }

  it("loads on cpu what wasm wrote and on wasm what cpu wrote, bit for bit", async () => {
    for (const [from, to] of [["wasm", "cpu"], ["cpu", "wasm"]] as const) {
      await use(from);
      const net = model();
      const dir = join(root, `from-${from}`);
      await net.save(`file://${dir}`);
      const bytes = weightBytes(net);
      const X = [[0.5, -1, 2, 0.25, 3], [1, 1, 1, 1, 1]];
      const y = tf.tidy(() => output(net, tf.tensor2d(X)));
      net.dispose();
      await use(to);
      const loaded = await tf.loadLayersModel(`file://${dir}/model.json`);
      expect(tf.getBackend()).toBe(to);
      expect(weightBytes(loaded)).toEqual(bytes);
      // the same weights give the same outputs up to the backends' rounding
      const z = tf.tidy(() => output(loaded, tf.tensor2d(X)));
      z.forEach((v, i) => expect(v).toBeCloseTo(y[i], 5));
      loaded.dispose();
    }
  });

  it("carries tensors without a model (notebook 5.5's save and load): float32, int32 and bool, across backends, bit for bit", async () => {
    for (const [from, to] of [["wasm", "cpu"], ["cpu", "wasm"], ["wasm", "wasm"]] as const) {
      await use(from);
      const tensors = { x: tf.range(0, 4, 1, "int32"), y: tf.randomNormal([3, 2]), z: tf.tensor1d([true, false, true], "bool") };
      const bytes = Object.values(tensors).map((t) => Array.from(new Uint8Array(t.dataSync().buffer.slice(0))));
      const { data, specs } = await tf.io.encodeWeights(tensors);
      const dir = join(root, `tensors-${from}-${to}`);
      await tf.io.getSaveHandlers(`file://${dir}`)[0].save!({ weightData: data, weightSpecs: specs, format: "d2l-tensors" });
      tf.dispose(Object.values(tensors));
      await use(to);
      const artifacts = await tf.io.getLoadHandlers(`file://${dir}/model.json`)[0].load!();
      expect(artifacts.format).toBe("d2l-tensors");
      expect(artifacts.modelTopology).toBeUndefined();
      const loaded = tf.io.decodeWeights(artifacts.weightData!, artifacts.weightSpecs!);
      expect(Object.keys(loaded)).toEqual(["x", "y", "z"]);
      expect(Object.values(loaded).map((t) => t.dtype)).toEqual(["int32", "float32", "bool"]);
      expect(Object.values(loaded).map((t) => Array.from(new Uint8Array(t.dataSync().buffer.slice(0))))).toEqual(bytes);
      tf.dispose(Object.values(loaded));
    }
  });

  it("writes tfjs-node's files: model.json with the manifest of weights.bin, and nothing else", async () => {
    const dir = join(root, "format");
    const net = model();
    await net.save(`file://${dir}`);
    expect(readdirSync(dir).sort()).toEqual(["model.json", "weights.bin"]);
    const json = JSON.parse(readFileSync(join(dir, "model.json"), "utf8"));
    expect(Object.keys(json)).toEqual(["modelTopology", "weightsManifest", "format", "generatedBy", "convertedBy"]);
    expect(json.format).toBe("layers-model");
    expect(json.convertedBy).toBeNull();
    expect(json.weightsManifest).toHaveLength(1);
    expect(json.weightsManifest[0].paths).toEqual(["weights.bin"]);
    expect(json.weightsManifest[0].weights.map((w: tf.io.WeightsManifestEntry) => w.shape)).toEqual([[5, 16], [16], [16], [16, 3]]);
    const bin = readFileSync(join(dir, "weights.bin"));
    const expected = Buffer.concat(net.getWeights().map((w) => Buffer.from(w.dataSync().buffer)));
    expect(bin.equals(expected)).toBe(true);
    net.dispose();
  });

  it("replaces an earlier save whole, and keeps it whole when a save fails", async () => {
    const dir = join(root, "overwrite");
    const first = model();
    await first.save(`file://${dir}`);
    const second = model();
    await second.save(`file://${dir}`);
    const loaded = await tf.loadLayersModel(`file://${dir}/model.json`);
    expect(weightBytes(loaded)).toEqual(weightBytes(second));
    loaded.dispose();
    // a save that cannot write weights.bin (a directory stands in its way) leaves model.json as it was
    const blocked = join(root, "blocked");
    await first.save(`file://${blocked}`);
    const jsonBefore = readFileSync(join(blocked, "model.json"));
    rmSync(join(blocked, "weights.bin"));
    mkdirSync(join(blocked, "weights.bin"));
    await expect(second.save(`file://${blocked}`)).rejects.toThrow();
    expect(readFileSync(join(blocked, "model.json")).equals(jsonBefore)).toBe(true);
    expect(readdirSync(blocked).sort()).toEqual(["model.json", "weights.bin"]); // no temporary file left
    // a path that is a file is not overwritten
    const file = join(root, "a-file");
    writeFileSync(file, "keep me");
    await expect(first.save(`file://${file}`)).rejects.toThrow(/it exists as a file/);
    expect(readFileSync(file, "utf8")).toBe("keep me");
    first.dispose();
    second.dispose();
  });

  it("says clearly what is wrong with a file it cannot load", async () => {
    const bad = join(root, "bad");
    mkdirSync(bad, { recursive: true });
    writeFileSync(join(bad, "notes.txt"), "hello");
    await expect(tf.loadLayersModel(`file://${bad}/notes.txt`)).rejects.toThrow(/notes\.txt is not a model file: it is not JSON/);
    writeFileSync(join(bad, "other.json"), JSON.stringify({ hello: 1 }));
    await expect(tf.loadLayersModel(`file://${bad}/other.json`)).rejects.toThrow(/other\.json is not a model file: it has neither a modelTopology nor a weightsManifest/);
    await expect(tf.loadLayersModel(`file://${bad}/missing.json`)).rejects.toThrow(/missing\.json does not exist/);
    await expect(tf.loadLayersModel(`file://${bad}`)).rejects.toThrow(/it is a directory; load the model\.json inside it/);

    // weights.bin from another model
    const net = model();
    const a = join(root, "mismatch-a");
    await net.save(`file://${a}`);
    const small = tf.sequential({ layers: [tf.layers.dense({ units: 2, inputShape: [5] })] });
    const b = join(root, "mismatch-b");
    await small.save(`file://${b}`);
    writeFileSync(join(a, "weights.bin"), readFileSync(join(b, "weights.bin")));
    await expect(tf.loadLayersModel(`file://${a}/model.json`)).rejects.toThrow(/weight files hold 48 bytes, but its weightsManifest describes 640 .*do not belong together/);
    rmSync(join(a, "weights.bin"));
    await expect(tf.loadLayersModel(`file://${a}/model.json`)).rejects.toThrow(/weight file .*weights\.bin does not exist/);

    // a custom layer class that was never registered
    const json = readFileSync(join(b, "model.json"), "utf8").replace(/"class_name":"Dense"/, '"class_name":"MyLinear"');
    writeFileSync(join(b, "model.json"), json);
    await expect(tf.loadLayersModel(`file://${b}/model.json`)).rejects.toThrow(
      /uses the class MyLinear, not registered with TensorFlow\.js\. .*static className = "MyLinear".*tf\.serialization\.registerClass\(MyLinear\)/,
    );
    net.dispose();
    small.dispose();
  });

  it("steps aside when switched off or when another handler serves file:// (tfjs-node)", async () => {
    const net = model();
    useFileIO(false);
    try {
      await expect(net.save(`file://${join(root, "off")}`)).rejects.toThrow(/Cannot find any save handlers/);
      expect(existsSync(join(root, "off"))).toBe(false);
    } finally {
      useFileIO(true);
    }
    // tfjs has no way to remove a router: this one serves only URLs under "other-handler"
    const seen: string[] = [];
    const other: tf.io.IOHandler = { save: async () => ({ modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: "JSON" } }) };
    tf.io.registerSaveRouter((url) => {
      if (typeof url === "string" && url.includes("other-handler")) {
        seen.push(url);
        return other;
      }
      return null as unknown as tf.io.IOHandler;
    });
    const url = `file://${join(root, "other-handler")}`;
    expect(tf.io.getSaveHandlers(url)).toEqual([other]);
    await net.save(url);
    expect(seen.length).toBeGreaterThan(0);
    expect(existsSync(join(root, "other-handler"))).toBe(false);
    net.dispose();
  });

  it("a second copy of the module (tsx and tslab load lib twice) registers no second handler, and switches the first off", async () => {
    vi.resetModules();
    const copy = await import("../../lib/src/engine/file-io");
    expect(copy.useFileIO).not.toBe(useFileIO);
    copy.useFileIO(true);
    const url = `file://${join(root, "copy")}`;
    expect(tf.io.getSaveHandlers(url).length).toBe(1); // one router answers, not one per copy
    const net = model();
    copy.useFileIO(false);
    try {
      await expect(net.save(url)).rejects.toThrow(/Cannot find any save handlers/);
      expect(existsSync(join(root, "copy"))).toBe(false);
    } finally {
      useFileIO(true);
    }
    await net.save(url);
    expect(existsSync(join(root, "copy", "model.json"))).toBe(true);
    net.dispose();
  });
});
