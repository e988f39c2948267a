/**
 * `file://` for TensorFlow.js's model files on every backend. `model.save("file://dir")` and
 * `tf.loadLayersModel("file://dir/model.json")` are tfjs's documented API, but only tfjs-node registers the
 * `file://` scheme: on wasm and cpu they fail with "Cannot find any save handlers for URL". This handler
 * writes and reads the same two files tfjs-node's (tfjs-node/src/io/file_system.ts) does, so a model saved
 * by either loads with either:
 *
 * - `model.json`: `{modelTopology, weightsManifest: [{paths: ["weights.bin"], weights: [...specs]}],
 *   format, generatedBy, convertedBy}`, plus `trainingConfig`, `signature` and `userDefinedMetadata`
 *   when the model has them;
 * - `weights.bin`: every weight's bytes, in the order of the specs.
 *
 * Unlike tfjs-node's, it writes each file under a temporary name and renames it into place (weights
 * first), so a save that fails half-way leaves the previous files whole, and a loading error says what is
 * wrong: not a model file, weights that do not fit the manifest, a layer class never registered.
 *
 * It answers only where no other handler does (with tfjs-node loaded, tfjs-node's serves `file://`).
 * `useFileIO(false)` switches it off. Not in d2l.
 */
import * as tf from "@tensorflow/tfjs";
import { mkdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { processState } from "./process-state";

const SCHEME = "file://";
const MODEL_JSON = "model.json";
const WEIGHTS_BIN = "weights.bin";

/**
 * The switch, whether the routers are registered, and whether a router is asking the registry about
 * other handlers, shared by every copy of this module: a second copy registers no second router, and
 * its `useFileIO(false)` switches the registered one off.
 */
const state = processState("d2l.fileIO", () => ({ enabled: false, registered: false, asking: false }));

/**
 * Serves `file://` URLs for `model.save` and `tf.loadLayersModel` (`true`, as importing d2l leaves it)
 * where no other handler does, or leaves them to tfjs (`false`). Not in d2l.
 */
export function useFileIO(on: boolean): void {
  state.enabled = on;
  if (on && !state.registered) {
    // tfjs types a router as returning a handler, but its registry skips a router that returns null
    tf.io.registerSaveRouter((url) => route(url, "save") as tf.io.IOHandler);
    tf.io.registerLoadRouter((url) => route(url, "load") as tf.io.IOHandler);
    state.registered = true;
  }
}

function route(url: string | string[], kind: "save" | "load"): tf.io.IOHandler | null {
  if (!state.enabled || state.asking || typeof url !== "string" || !url.startsWith(SCHEME)) return null;
  state.asking = true;
  try {
    const others = kind === "save" ? tf.io.getSaveHandlers(url) : tf.io.getLoadHandlers(url);
    if (others.length > 0) return null; // tfjs-node's handler
  } finally {
    state.asking = false;
  }
  return new FileHandler(url.slice(SCHEME.length), url);
}

/** Writes `data` to `path` under a temporary name first, then renames it: the old file stays whole until then. */
function writeAtomically(path: string, data: string | Uint8Array): void {
  const temporary = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  try {
    writeFileSync(temporary, data);
    renameSync(temporary, path);
  } catch (error) {
    try {
      unlinkSync(temporary);
    } catch {
      // never written
    }
    throw error;
  }
}

/** The bytes each weight takes in weights.bin, or undefined when they cannot be known from the spec (strings). */
function byteLength(spec: tf.io.WeightsManifestEntry): number | undefined {
  const count = spec.shape.reduce((a, b) => a * b, 1);
  if (spec.quantization) return count * ({ uint8: 1, uint16: 2, float16: 2 } as Record<string, number>)[spec.quantization.dtype];
  const size = ({ float32: 4, int32: 4, bool: 1, complex64: 8 } as Record<string, number>)[spec.dtype];
  return size === undefined ? undefined : count * size;
}

/** Every `class_name` in a Keras topology: layers, initializers, regularizers, constraints. */
function classNames(node: unknown, out: Set<string>): Set<string> {
  if (Array.isArray(node)) {
    for (const item of node) classNames(item, out);
  } else if (node !== null && typeof node === "object") {
    for (const [key, value] of Object.entries(node)) {
      if (key === "class_name" && typeof value === "string") out.add(value);
      else classNames(value, out);
    }
  }
  return out;
}

/** Reads and writes model.json + weights.bin in tfjs-node's format (see the file's header). */
class FileHandler implements tf.io.IOHandler {
  private readonly path: string;

  constructor(
    path: string,
    private readonly url: string,
  ) {
    this.path = resolve(path);
  }

  async save(artifacts: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> {
    if (artifacts.modelTopology instanceof ArrayBuffer) {
      throw new Error(`d2l: ${this.url}: saving a binary (GraphDef) topology is not supported, as in tfjs-node`);
    }
    let isDirectory = false;
    try {
      isDirectory = statSync(this.path).isDirectory();
      if (!isDirectory) throw new Error(`d2l: cannot save to ${this.url}: it exists as a file; give a directory, which is created if missing`);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
    }
    if (!isDirectory) mkdirSync(this.path, { recursive: true });
    const weights = artifacts.weightData === undefined ? new ArrayBuffer(0) : tf.io.CompositeArrayBuffer.join(artifacts.weightData);
    const modelJson: tf.io.ModelJSON = {
      modelTopology: artifacts.modelTopology as tf.io.ModelJSON["modelTopology"],
      weightsManifest: [{ paths: [WEIGHTS_BIN], weights: artifacts.weightSpecs ?? [] }],
      format: artifacts.format,
      generatedBy: artifacts.generatedBy,
      convertedBy: artifacts.convertedBy,
    };
    if (artifacts.trainingConfig != null) modelJson.trainingConfig = artifacts.trainingConfig;
    if (artifacts.signature != null) modelJson.signature = artifacts.signature;
    if (artifacts.userDefinedMetadata != null) modelJson.userDefinedMetadata = artifacts.userDefinedMetadata;
    // weights first: model.json never names weights that are not written yet
    writeAtomically(join(this.path, WEIGHTS_BIN), new Uint8Array(weights));
    writeAtomically(join(this.path, MODEL_JSON), JSON.stringify(modelJson));
    return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
  }

  async load(): Promise<tf.io.ModelArtifacts> {
    let text: string;
    try {
      if (statSync(this.path).isDirectory()) {
        throw new Error(`d2l: cannot load ${this.url}: it is a directory; load the model.json inside it, ${SCHEME}${join(this.path, MODEL_JSON)}`);
      }
      text = readFileSync(this.path, "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") throw new Error(`d2l: cannot load ${this.url}: ${this.path} does not exist`);
      throw error;
    }
    let json: Partial<tf.io.ModelJSON>;
    try {
      json = JSON.parse(text) as Partial<tf.io.ModelJSON>;
    } catch (error) {
      throw new Error(`d2l: ${this.url} is not a model file: it is not JSON (${(error as Error).message})`);
    }
    if (json === null || typeof json !== "object" || (json.modelTopology == null && json.weightsManifest == null)) {
      throw new Error(`d2l: ${this.url} is not a model file: it has neither a modelTopology nor a weightsManifest (a model.json written by model.save has both)`);
    }
    this.checkClassesRegistered(json.modelTopology);
    const artifacts: tf.io.ModelArtifacts = {
      modelTopology: json.modelTopology,
      format: json.format,
      generatedBy: json.generatedBy,
      convertedBy: json.convertedBy,
    };
    if (json.weightsManifest != null) {
      const [specs, data] = this.readWeights(json.weightsManifest);
      artifacts.weightSpecs = specs;
      artifacts.weightData = data;
    }
    if (json.trainingConfig != null) artifacts.trainingConfig = json.trainingConfig;
    if (json.signature != null) artifacts.signature = json.signature;
    if (json.userDefinedMetadata != null) artifacts.userDefinedMetadata = json.userDefinedMetadata;
    return artifacts;
  }

  /** tfjs's own message for an unknown class does not say which file; this one names both, and the fix. */
  private checkClassesRegistered(topology: unknown): void {
    const known = tf.serialization.SerializationMap.getMap().classNameMap;
    const missing = [...classNames(topology, new Set())].filter((name) => !(name in known));
    if (missing.length > 0) {
      const list = missing.join(", ");
      throw new Error(
        `d2l: ${this.url} uses the class${missing.length > 1 ? "es" : ""} ${list}, not registered with TensorFlow.js. ` +
          `Define ${missing.length > 1 ? "each" : "it"} (a class extending tf.layers.Layer with static className = "${missing[0]}") ` +
          `and call tf.serialization.registerClass(${missing[0]}) before loading.`,
      );
    }
  }

  private readWeights(manifest: tf.io.WeightsManifestConfig): [tf.io.WeightsManifestEntry[], ArrayBuffer] {
    if (!Array.isArray(manifest)) throw new Error(`d2l: ${this.url} is not a model file: its weightsManifest is not a list`);
    const directory = dirname(this.path);
    const buffers: ArrayBuffer[] = [];
    const specs: tf.io.WeightsManifestEntry[] = [];
    for (const group of manifest) {
      for (const file of group.paths) {
        let bytes: Buffer;
        try {
          bytes = readFileSync(join(directory, file));
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === "ENOENT") {
            throw new Error(`d2l: cannot load ${this.url}: its weight file ${join(directory, file)} does not exist`);
          }
          throw error;
        }
        buffers.push(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer);
      }
      specs.push(...group.weights);
    }
    const data = tf.io.CompositeArrayBuffer.join(buffers);
    const sizes = specs.map(byteLength);
    if (sizes.every((size) => size !== undefined)) {
      const expected = (sizes as number[]).reduce((a, b) => a + b, 0);
      if (expected !== data.byteLength) {
        throw new Error(
          `d2l: cannot load ${this.url}: its weight files hold ${data.byteLength} bytes, but its weightsManifest ` +
            `describes ${expected} (${specs.map((s) => `${s.name} [${s.shape}]`).join(", ")}): the files do not belong together`,
        );
      }
    }
    return [specs, data];
  }
}
