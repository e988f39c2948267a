import { copyFileSync, existsSync, mkdirSync, writeFileSync } from "fs";
import { createServer } from "net";
import { join } from "path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { readFashionMnistSplit } from "../../lib/src/fashion-mnist";
import { NAMES, gz, idxBytes, listing, realDataDir, realGz, realRaw, tempDir } from "./fashion-mnist-fixtures";

// Broken copies of the test split's files are written into a temporary cache; no system copy
// and a base URL nobody listens on, so nothing can come from elsewhere.
const work = tempDir("fm-broken");
afterAll(work.cleanup);
let closedPort = 0;
let cacheDir = "";
let run = 0;

beforeAll(async () => {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  closedPort = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
});

beforeEach(() => {
  cacheDir = join(work.dir, `cache-${run++}`);
  mkdirSync(cacheDir);
});

function options() {
  return { cacheDir, systemDir: null, baseUrl: `http://127.0.0.1:${closedPort}/`, progress: false };
}

/** The real test labels, decompressed, to be altered. */
const labelsRaw = () => realRaw(NAMES.testLabels).slice();

/** Puts the real test images and the given (broken) labels file into the cache. */
function cacheWith(labelsGz: Uint8Array): void {
  copyFileSync(join(realDataDir(), NAMES.testImages), join(cacheDir, NAMES.testImages));
  writeFileSync(join(cacheDir, NAMES.testLabels), labelsGz);
}

describe("readFashionMnistSplit with broken files in the cache", () => {
  it("reads the intact files (the control case)", async () => {
    cacheWith(realGz(NAMES.testLabels));
    const test = await readFashionMnistSplit("test", options());
    expect(test.length).toBe(10000);
    expect(listing(cacheDir)).toEqual([NAMES.testImages, NAMES.testLabels]);
  });

  it("bad magic number: a clear error, and the file is deleted", async () => {
    const raw = labelsRaw();
    raw.set([0x50, 0x4b, 0x03, 0x04], 0); // a zip header instead of 00 00 08 01
    cacheWith(gz(raw));
    await expect(readFashionMnistSplit("test", options())).rejects.toThrow(
      /t10k-labels-idx1-ubyte\.gz: is not an IDX file: its magic number is 50 4b 03 04.*deleted from the cache/,
    );
    expect(listing(cacheDir)).toEqual([NAMES.testImages]);
  });

  it("truncated gzip: a clear error, and the file is deleted", async () => {
    const whole = realGz(NAMES.testImages);
    writeFileSync(join(cacheDir, NAMES.testImages), whole.subarray(0, 100_000));
    await expect(readFashionMnistSplit("test", options())).rejects.toThrow(
      /t10k-images-idx3-ubyte\.gz: is not a complete gzip file \(unexpected end of file\).*deleted from the cache/,
    );
    expect(listing(cacheDir)).toEqual([]);
  });

  it("a header promising more bytes than the file holds: a clear error, and the file is deleted", async () => {
    const raw = realRaw(NAMES.testImages);
    writeFileSync(join(cacheDir, NAMES.testImages), gz(raw.subarray(0, raw.length - 784 * 10)));
    writeFileSync(join(cacheDir, NAMES.testLabels), realGz(NAMES.testLabels));
    await expect(readFashionMnistSplit("test", options())).rejects.toThrow(
      /t10k-images-idx3-ubyte\.gz: is truncated: its header promises 7840000 values \(dimensions 10000x28x28\), the file holds 7832160\. The file was deleted/,
    );
    expect(listing(cacheDir)).toEqual([NAMES.testLabels]);
  });

  it("as many images as labels: a mismatch names both counts, and the wrong file is deleted", async () => {
    const raw = labelsRaw();
    new DataView(raw.buffer).setUint32(4, 9999, false);
    cacheWith(gz(raw.subarray(0, raw.length - 1)));
    await expect(readFashionMnistSplit("test", options())).rejects.toThrow(
      /Fashion-MNIST test: .*t10k-images-idx3-ubyte\.gz holds 10000 images but .*t10k-labels-idx1-ubyte\.gz holds 9999 labels\. .*t10k-labels-idx1-ubyte\.gz does not match the published checksum\. The file was deleted/,
    );
    expect(listing(cacheDir)).toEqual([NAMES.testImages]); // the images are intact and stay
  });

  it("a label of 10: a clear error, and the file is deleted", async () => {
    const raw = labelsRaw();
    raw[8 + 5] = 10;
    cacheWith(gz(raw));
    await expect(readFashionMnistSplit("test", options())).rejects.toThrow(
      /t10k-labels-idx1-ubyte\.gz: label 5 is 10; Fashion-MNIST labels are 0\.\.9\. The file was deleted/,
    );
    expect(listing(cacheDir)).toEqual([NAMES.testImages]);
  });

  it("one corrupted byte that keeps the file well-formed: a checksum error, and the file is deleted", async () => {
    const raw = labelsRaw();
    raw[8 + 1234] = (raw[8 + 1234] + 1) % 10;
    cacheWith(gz(raw));
    await expect(readFashionMnistSplit("test", options())).rejects.toThrow(
      /t10k-labels-idx1-ubyte\.gz: checksum mismatch: the SHA-256 of its decompressed bytes is [0-9a-f]{64}, the published t10k-labels-idx1-ubyte\.gz has 0402a96d.*deleted from the cache; the next load fetches a fresh copy/,
    );
    expect(listing(cacheDir)).toEqual([NAMES.testImages]);
  });

  it("leaves a bad file in the user's own folder (root) in place, and says so", async () => {
    const root = join(work.dir, "mine");
    mkdirSync(root);
    const raw = labelsRaw();
    raw[8] = 11;
    writeFileSync(join(root, NAMES.testLabels), gz(raw));
    copyFileSync(join(realDataDir(), NAMES.testImages), join(root, NAMES.testImages));
    await expect(readFashionMnistSplit("test", { ...options(), root })).rejects.toThrow(
      /label 0 is 11.*The file was left in place: replace it with the published file, or remove it to use another copy\./,
    );
    expect(existsSync(join(root, NAMES.testLabels))).toBe(true);
  });

  it("with no copy anywhere and no server: says where it looked, the URL, and the two ways out", async () => {
    const error = await readFashionMnistSplit("test", options()).catch((e: Error) => e);
    expect(error).toBeInstanceOf(Error);
    const message = (error as Error).message;
    expect(message).toContain(`${NAMES.testImages} was not found in\n  ${cacheDir} (cache)`);
    expect(message).toContain(`http://127.0.0.1:${closedPort}/${NAMES.testImages}: could not reach the server`);
    expect(message).toContain("ECONNREFUSED");
    expect(message).toContain("sudo apt-get install dataset-fashion-mnist");
    expect(message).toContain(`put the four *-ubyte.gz files in ${cacheDir}`);
    expect(listing(cacheDir)).toEqual([]);
  });

  it("looks in D2L_DATA_DIR first, and downloads into $D2L_CACHE_DIR/fashion-mnist by default", async () => {
    const mine = join(work.dir, "env-data");
    mkdirSync(mine);
    for (const name of [NAMES.testImages, NAMES.testLabels]) copyFileSync(join(realDataDir(), name), join(mine, name));
    const envCache = join(work.dir, "env-cache");
    process.env.D2L_DATA_DIR = mine;
    process.env.D2L_CACHE_DIR = envCache;
    try {
      const test = await readFashionMnistSplit("test", { systemDir: null, baseUrl: options().baseUrl, progress: false });
      expect(test.length).toBe(10000);
      delete process.env.D2L_DATA_DIR;
      const error = await readFashionMnistSplit("test", { systemDir: null, baseUrl: options().baseUrl, progress: false }).catch((e: Error) => e);
      expect(String(error)).toContain(`was not found in\n  ${join(envCache, "fashion-mnist")} (cache)`);
    } finally {
      delete process.env.D2L_DATA_DIR;
      delete process.env.D2L_CACHE_DIR;
    }
    expect(listing(envCache)).toEqual([]);
  });

  it("rejects an unknown split", async () => {
    await expect(readFashionMnistSplit("validation" as "test", options())).rejects.toThrow(
      /readFashionMnistSplit: split must be "train" or "test"; got "validation"/,
    );
  });
});

it("builds IDX fixtures the way the reader expects (sanity check of the helpers)", () => {
  expect(Array.from(idxBytes([2], [7, 8]))).toEqual([0, 0, 8, 1, 0, 0, 0, 2, 7, 8]);
});
