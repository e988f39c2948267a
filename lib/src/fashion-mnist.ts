import * as tf from "@tensorflow/tfjs";
import { createHash } from "crypto";
import { readFileSync, rmSync, statSync } from "fs";
import { dirname, join, resolve, sep } from "path";
import type { BatchSource } from "./batches";
import { DownloadError, downloadFile } from "./download";
import { DataFileError, gunzipFile, parseIdx } from "./idx";
import { ImageDataset } from "./image-data";
import { ArgumentError, checkPositiveInt } from "./validate";

/** One of the four Fashion-MNIST files, with the SHA-256 of its decompressed (IDX) bytes. */
interface FileSpec {
  name: string;
  sha256: string;
}

/**
 * The dataset's files. The checksums are of the decompressed bytes: Debian recompressed the
 * .gz files, so their MD5s differ from the ones the authors publish while the IDX bytes agree.
 */
export const FASHION_MNIST_FILES = {
  train: {
    images: { name: "train-images-idx3-ubyte.gz", sha256: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888" },
    labels: { name: "train-labels-idx1-ubyte.gz", sha256: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9" },
  },
  test: {
    images: { name: "t10k-images-idx3-ubyte.gz", sha256: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b" },
    labels: { name: "t10k-labels-idx1-ubyte.gz", sha256: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34" },
  },
} as const satisfies Record<string, Record<"images" | "labels", FileSpec>>;

/** Where the dataset's authors publish the files (the README Debian ships with them). */
export const FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/";

/** Debian's `dataset-fashion-mnist` package installs the files here. */
export const FASHION_MNIST_SYSTEM_DIR = "/usr/share/datasets/fashion-mnist";

/** Where to look for the files and where to fetch them from; every field has a default. */
export interface FashionMnistOptions {
  /** A folder holding the .gz files, looked in first. Default: `D2L_DATA_DIR`. */
  root?: string;
  /** The cache downloads go to. Default: `$D2L_CACHE_DIR/fashion-mnist`, else `data/fashion-mnist` at the project root. */
  cacheDir?: string;
  /** A system-wide copy, looked in after the cache; null skips it. Default: Debian's /usr/share/datasets/fashion-mnist. */
  systemDir?: string | null;
  /** The base URL of the four files. Default: `D2L_FASHION_MNIST_URL`, else {@link FASHION_MNIST_URL}. */
  baseUrl?: string;
  /** Show download progress on stderr; default true. */
  progress?: boolean;
}

/**
 * The project's root: the folder holding `lib/`, found from this module's own place (lib/dist
 * or lib/src), so notebooks (cwd notebooks/) and scripts (cwd the root) share one cache. When
 * the package is installed under node_modules, the folder holding that node_modules; when no
 * `d2l` package encloses `from` (a bundle), the working directory.
 */
export function projectRoot(from: string = __dirname): string {
  let dir = resolve(from);
  while (!isD2lPackage(dir)) {
    if (dirname(dir) === dir) return process.cwd();
    dir = dirname(dir);
  }
  const parts = dir.split(sep);
  const nodeModules = parts.lastIndexOf("node_modules");
  return nodeModules > 0 ? parts.slice(0, nodeModules).join(sep) || sep : dirname(dir);
}

function isD2lPackage(dir: string): boolean {
  try {
    return JSON.parse(readFileSync(join(dir, "package.json"), "utf8")).name === "d2l";
  } catch {
    return false;
  }
}

interface Place {
  dir: string;
  kind: "root" | "cache" | "system";
}

/** The folders to look in, in order, with every option's default filled in. */
function places(options: FashionMnistOptions): { places: Place[]; cacheDir: string; baseUrl: string } {
  const root = options.root ?? (process.env.D2L_DATA_DIR || undefined);
  const cacheDir = resolve(
    options.cacheDir ??
      (process.env.D2L_CACHE_DIR ? join(process.env.D2L_CACHE_DIR, "fashion-mnist") : join(projectRoot(), "data", "fashion-mnist")),
  );
  const systemDir = options.systemDir === undefined ? FASHION_MNIST_SYSTEM_DIR : options.systemDir;
  const list: Place[] = [];
  if (root) list.push({ dir: resolve(root), kind: "root" });
  list.push({ dir: cacheDir, kind: "cache" });
  if (systemDir) list.push({ dir: resolve(systemDir), kind: "system" });
  let baseUrl = options.baseUrl ?? (process.env.D2L_FASHION_MNIST_URL || FASHION_MNIST_URL);
  if (!baseUrl.endsWith("/")) baseUrl += "/";
  return { places: list, cacheDir, baseUrl };
}

/** A decoded file and where it came from. */
interface Decoded {
  path: string;
  place: Place | "download";
  raw: Uint8Array;
  dims: number[];
  data: Uint8Array;
}

/** Decompresses and parses one file, checking the structure a Fashion-MNIST file must have. */
function decode(path: string, kind: "images" | "labels", name: string): Omit<Decoded, "place"> {
  const raw = gunzipFile(path);
  const { dims, data } = parseIdx(raw, path, kind === "images" ? 3 : 1);
  if (kind === "images" && (dims[1] !== 28 || dims[2] !== 28)) {
    throw new DataFileError(path, `${path}: holds ${dims[1]}x${dims[2]} images; ${name} holds 28x28`);
  }
  if (kind === "labels") {
    const bad = data.findIndex((v) => v > 9);
    if (bad >= 0) throw new DataFileError(path, `${path}: label ${bad} is ${data[bad]}; Fashion-MNIST labels are 0..9`);
  }
  return { path, raw, dims, data };
}

function isFile(path: string): boolean {
  return statSync(path, { throwIfNoEntry: false })?.isFile() ?? false;
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

function checksumError(path: string, spec: FileSpec, actual: string): DataFileError {
  return new DataFileError(
    path,
    `${path}: checksum mismatch: the SHA-256 of its decompressed bytes is ${actual}, ` +
      `the published ${spec.name} has ${spec.sha256}`,
  );
}

/**
 * Deals with a bad file: deletes it if it is ours (the cache), leaves it otherwise (the user's
 * folder, the system copy), and returns the sentence saying which.
 */
function fateOf(file: { path: string; place: Place | "download" }): string {
  if (file.place === "download") return "";
  if (file.place.kind === "cache") {
    rmSync(file.path, { force: true });
    return " The file was deleted from the cache; the next load fetches a fresh copy.";
  }
  const fix =
    file.place.kind === "system"
      ? "reinstall it (sudo apt-get install --reinstall dataset-fashion-mnist)"
      : "replace it with the published file, or remove it to use another copy";
  return ` The file was left in place: ${fix}.`;
}

/** `error` with the fate of the bad file appended to its message. */
function discard(error: unknown, file: { path: string; place: Place | "download" }): Error {
  const err = error instanceof Error ? error : new Error(String(error));
  const fate = fateOf(file);
  if (fate) err.message = err.message.replace(/\.?$/, ".") + fate;
  return err;
}

/** Downloads one file into the cache, keeping it only if it decodes and matches its checksum. */
async function fetchFile(
  spec: FileSpec,
  kind: "images" | "labels",
  dest: string,
  baseUrl: string,
  looked: Place[],
  progress: boolean,
): Promise<Decoded> {
  const url = baseUrl + spec.name;
  let decoded: Omit<Decoded, "place"> | undefined;
  try {
    await downloadFile(url, dest, {
      progress,
      verify: (temp) => {
        decoded = decode(temp, kind, spec.name);
        const actual = sha256(decoded.raw);
        if (actual !== spec.sha256) throw checksumError(spec.name, spec, actual);
      },
    });
  } catch (error) {
    if (!(error instanceof DownloadError)) throw error;
    const where = looked.map((p) => `  ${p.dir} (${p.kind})`).join("\n");
    throw new DownloadError(
      url,
      `Fashion-MNIST: ${spec.name} was not found in\n${where}\nand downloading it failed: ${error.message}\n` +
        `Either install Debian's copy (sudo apt-get install dataset-fashion-mnist), or put the four ` +
        `*-ubyte.gz files in ${dirname(dest)} (or a folder named by D2L_DATA_DIR); ` +
        `D2L_FASHION_MNIST_URL sets another mirror.`,
    );
  }
  return { ...decoded!, path: dest, place: "download" };
}

/**
 * Reads and checks one split ("train" or "test") of Fashion-MNIST without caching: finds each
 * file (`root` or D2L_DATA_DIR, the project cache, Debian's copy, else a download into the
 * cache), then checks its gzip and IDX structure, 28x28 images, labels 0..9, as many labels
 * as images, and the SHA-256 of its content. A bad file in the cache is deleted; the error
 * says what was wrong.
 */
export async function readFashionMnistSplit(split: "train" | "test", options: FashionMnistOptions = {}): Promise<ImageDataset> {
  if (split !== "train" && split !== "test") {
    throw new ArgumentError("readFashionMnistSplit", "split", '"train" or "test"', split);
  }
  const { places: looked, cacheDir, baseUrl } = places(options);
  const specs = FASHION_MNIST_FILES[split];
  const files: Decoded[] = [];
  for (const kind of ["images", "labels"] as const) {
    const spec = specs[kind];
    const place = looked.find((p) => isFile(join(p.dir, spec.name)));
    if (!place) {
      files.push(await fetchFile(spec, kind, join(cacheDir, spec.name), baseUrl, looked, options.progress ?? true));
      continue;
    }
    const path = join(place.dir, spec.name);
    try {
      files.push({ ...decode(path, kind, spec.name), place });
    } catch (error) {
      throw discard(error, { path, place });
    }
  }
  const [images, labels] = files;
  const checks = files.map((f, i) => {
    const spec = i === 0 ? specs.images : specs.labels;
    const actual = f.place === "download" ? spec.sha256 : sha256(f.raw);
    return actual === spec.sha256 ? undefined : checksumError(f.path, spec, actual);
  });
  if (images.dims[0] !== labels.dims[0]) {
    // Both files are well-formed; the checksums tell which one is not Fashion-MNIST's.
    let message = `Fashion-MNIST ${split}: ${images.path} holds ${images.dims[0]} images but ${labels.path} holds ${labels.dims[0]} labels.`;
    files.forEach((f, i) => {
      if (checks[i]) message += ` ${f.path} does not match the published checksum.${fateOf(f)}`;
    });
    throw new DataFileError(labels.path, message);
  }
  checks.forEach((c, i) => {
    if (c) throw discard(c, files[i]);
  });
  return new ImageDataset(images.data, labels.data, 28, 28);
}

let loaded: Promise<[ImageDataset, ImageDataset]> | undefined;

/**
 * Fashion-MNIST's training (60000) and test (10000) sets, read, checked and decoded once per
 * process: later calls return the same datasets whatever their options (the checksums make
 * any copy identical). See {@link readFashionMnistSplit} for where the files are looked for.
 * @see torchvision.datasets.FashionMNIST as used in d2l section 3.5.1
 */
export function fashionMnist(options: FashionMnistOptions = {}): Promise<[ImageDataset, ImageDataset]> {
  if (!loaded) {
    loaded = (async () => {
      const train = await readFashionMnistSplit("train", options);
      const test = await readFashionMnistSplit("test", options);
      return [train, test] as [ImageDataset, ImageDataset];
    })();
    loaded.catch(() => (loaded = undefined));
  }
  return loaded;
}

/**
 * Downloads (if needed) Fashion-MNIST and returns `[trainIter, testIter]`: batches [X, y] with
 * X float32 [b, 28, 28, 1] in [0, 1] (NHWC) and y int32 [b]. The training source reshuffles
 * every epoch; `resize` makes X [b, resize, resize, 1] (bilinear).
 * @see d2l.load_data_fashion_mnist (section 3.5.3)
 */
export async function loadDataFashionMnist(
  batchSize: number,
  options: FashionMnistOptions & { resize?: number } = {},
): Promise<[BatchSource, BatchSource]> {
  checkPositiveInt("loadDataFashionMnist", "batchSize", batchSize);
  if (options.resize !== undefined) checkPositiveInt("loadDataFashionMnist", "resize", options.resize);
  const [mnistTrain, mnistTest] = await fashionMnist(options);
  return [
    mnistTrain.batches(batchSize, { shuffle: true, resize: options.resize }),
    mnistTest.batches(batchSize, { shuffle: false, resize: options.resize }),
  ];
}

/**
 * The text labels of Fashion-MNIST's numeric labels.
 * @see d2l.get_fashion_mnist_labels (section 3.5.1)
 */
export function getFashionMnistLabels(labels: tf.Tensor | ArrayLike<number>): string[] {
  const textLabels = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"];
  const values = labels instanceof tf.Tensor ? labels.dataSync() : labels;
  if (values === null || typeof values !== "object" || typeof values.length !== "number") {
    throw new ArgumentError("getFashionMnistLabels", "labels", "a tensor or an array of integers 0..9", labels);
  }
  return Array.from(values, (v, i) => {
    if (!Number.isInteger(v) || v < 0 || v > 9) {
      throw new ArgumentError("getFashionMnistLabels", `labels[${i}]`, "an integer in 0..9", v);
    }
    return textLabels[v];
  });
}
