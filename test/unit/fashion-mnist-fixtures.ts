import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "fs";
import { tmpdir } from "os";
import { join } from "path";
import { gunzipSync, gzipSync } from "zlib";
import { FASHION_MNIST_FILES, projectRoot } from "../../lib/src/fashion-mnist";

/** The four file names. */
export const NAMES = {
  trainImages: FASHION_MNIST_FILES.train.images.name,
  trainLabels: FASHION_MNIST_FILES.train.labels.name,
  testImages: FASHION_MNIST_FILES.test.images.name,
  testLabels: FASHION_MNIST_FILES.test.labels.name,
};

/**
 * A folder holding the real four files, read-only: Debian's copy, else the project cache a
 * notebook run downloaded. Tests never write there.
 */
export function realDataDir(): string {
  const candidates = ["/usr/share/datasets/fashion-mnist", join(projectRoot(), "data", "fashion-mnist")];
  const dir = candidates.find((d) => Object.values(NAMES).every((n) => existsSync(join(d, n))));
  if (!dir) {
    throw new Error(
      `these tests need the real Fashion-MNIST files in one of ${candidates.join(", ")}: ` +
        `apt-get install dataset-fashion-mnist, or run notebook 3.5 once to download them`,
    );
  }
  return dir;
}

/** A fresh temporary folder, removed by the returned cleanup. */
export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `d2l-${prefix}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The decompressed bytes of one of the real files. */
export function realRaw(name: string): Uint8Array {
  return new Uint8Array(gunzipSync(readFileSync(join(realDataDir(), name))));
}

/** The real compressed bytes of one file. */
export function realGz(name: string): Buffer {
  return readFileSync(join(realDataDir(), name));
}

/** IDX bytes of unsigned bytes with the given dimensions and values. */
export function idxBytes(dims: number[], values: ArrayLike<number>, type = 0x08): Uint8Array {
  const header = new DataView(new ArrayBuffer(4 + 4 * dims.length));
  header.setUint8(2, type);
  header.setUint8(3, dims.length);
  dims.forEach((d, i) => header.setUint32(4 + 4 * i, d, false));
  const out = new Uint8Array(header.byteLength + values.length);
  out.set(new Uint8Array(header.buffer), 0);
  out.set(Uint8Array.from(values), header.byteLength);
  return out;
}

export function gz(bytes: Uint8Array): Buffer {
  return gzipSync(bytes, { level: 1 });
}

/** The files in a folder, sorted (to assert that nothing partial or bad is left). */
export function listing(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).sort() : [];
}
