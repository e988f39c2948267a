import AdmZip from "adm-zip";
import { createHash, randomBytes } from "crypto";
import { copyFileSync, createReadStream, existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from "fs";
import { basename, dirname, join, resolve } from "path";
import * as tar from "tar";
import { DownloadError, downloadFile } from "./download";
import { projectRoot } from "./fashion-mnist";
import { ArgumentError } from "./validate";

/**
 * The data sets the book downloads, by name: each the URL of one file and the SHA-1 of its bytes.
 * Sections register theirs as they need them (`DATA_HUB["kaggle_house_train"] = [url, sha1]`).
 * @see d2l.DATA_HUB (section 4.10.1, downloading and caching datasets)
 */
export const DATA_HUB: Record<string, [url: string, sha1: string]> = {};

/**
 * Where d2l keeps its data sets.
 * @see d2l.DATA_URL (section 4.10.1)
 */
export const DATA_URL = "http://d2l-data.s3-accelerate.amazonaws.com/";

DATA_HUB["kaggle_house_train"] = [DATA_URL + "kaggle_house_pred_train.csv", "585e9cc93e70b39160e7921475f9bcd7d31219ce"];
DATA_HUB["kaggle_house_test"] = [DATA_URL + "kaggle_house_pred_test.csv", "fa19780a7b011d9b009e8bff8e99922a8ee2eb90"];

/** The folder downloads go to: `$D2L_CACHE_DIR` if set, else `data/` at the project's root (d2l's `../data`). */
export function dataCacheDir(): string {
  return resolve(process.env.D2L_CACHE_DIR || join(projectRoot(), "data"));
}

/** The folder of the copies shipped with the lib (lib/data), found from this module's place (lib/dist or lib/src). */
export const SHIPPED_DATA_DIR = resolve(__dirname, "..", "data");

/**
 * The SHA-1 of a file's bytes as hex, read in chunks (d2l's data sets reach gigabytes), or
 * undefined when there is no such file.
 */
export async function sha1File(path: string): Promise<string | undefined> {
  if (!statSync(path, { throwIfNoEntry: false })?.isFile()) return undefined;
  const hash = createHash("sha1");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/**
 * The copy of `fileName` shipped in lib/data (in any of its folders) if its SHA-1 is `sha1`:
 * the data a learner needs without a network. Undefined otherwise.
 */
export async function shippedCopy(fileName: string, sha1: string, dir: string = SHIPPED_DATA_DIR): Promise<string | undefined> {
  if (!existsSync(dir)) return undefined;
  const folders = readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory());
  for (const path of [join(dir, fileName), ...folders.map((d) => join(dir, d.name, fileName))]) {
    if ((await sha1File(path)) === sha1) return path;
  }
  return undefined;
}

/** Copies `from` to `to` through a temporary file renamed into place, so `to` is either absent or complete. */
export function copyFileAtomic(from: string, to: string): void {
  mkdirSync(dirname(to), { recursive: true });
  const temp = `${to}.${process.pid}-${randomBytes(4).toString("hex")}.part`;
  try {
    copyFileSync(from, temp);
    renameSync(temp, to);
  } finally {
    rmSync(temp, { force: true });
  }
}

/** A `verify` for {@link downloadFile}: throws unless the file's SHA-1 is `sha1`. */
export function expectSha1(sha1: string): (path: string) => Promise<void> {
  return async (path) => {
    const actual = await sha1File(path);
    if (actual !== sha1) throw new Error(`its SHA-1 is ${actual}, DATA_HUB expects ${sha1}`);
  };
}

/**
 * Downloads the file DATA_HUB registers under `name` into `cacheDir` and returns its path. A file
 * already there with the right SHA-1 is a cache hit; else the copy shipped with the lib, if it has
 * the right SHA-1, is copied in (no network needed); else the file is downloaded, checked and only
 * then put in place. A wrong digest or a failed download throws a DownloadError and leaves nothing.
 * @see d2l.download (section 4.10.1, downloading and caching datasets)
 */
export async function download(name: string, cacheDir: string = dataCacheDir()): Promise<string> {
  if (!(name in DATA_HUB)) {
    throw new ArgumentError("download", "name", `a name in DATA_HUB (${Object.keys(DATA_HUB).join(", ")})`, name);
  }
  const [url, sha1Hash] = DATA_HUB[name];
  const fname = join(cacheDir, url.split("/").pop()!);
  if ((await sha1File(fname)) === sha1Hash) return fname; // a cache hit
  const shipped = await shippedCopy(basename(fname), sha1Hash);
  if (shipped !== undefined) {
    copyFileAtomic(shipped, fname);
    return fname;
  }
  await downloadFile(url, fname, { verify: expectSha1(sha1Hash) });
  return fname;
}

/**
 * Extracts a .zip, .tar, .tar.gz or .tgz archive into `dir` (adm-zip and node-tar, which keep
 * entries from writing outside `dir`); a damaged archive throws an error naming the file.
 */
export async function extractArchive(archive: string, dir: string): Promise<void> {
  try {
    if (archive.endsWith(".zip")) {
      new AdmZip(archive).extractAllTo(dir, true);
    } else {
      await tar.x({ file: archive, cwd: dir, strict: true });
    }
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new DownloadError(archive, `downloadExtract: could not extract ${archive}: ${reason}`);
  }
}

/**
 * Downloads the .zip or .tar(.gz) archive DATA_HUB registers under `name` (see {@link download}),
 * extracts it next to itself and returns `folder` there if given, else the archive's path
 * without its extension (.zip, .tar, .tar.gz, .tgz).
 * @see d2l.download_extract (section 4.10.1)
 */
export async function downloadExtract(name: string, folder?: string): Promise<string> {
  const fname = await download(name);
  const baseDir = dirname(fname);
  const ext = /\.(zip|tar|tar\.gz|tgz)$/.exec(fname)?.[0];
  if (ext === undefined) {
    throw new ArgumentError("downloadExtract", "name", "the name of a .zip, .tar, .tar.gz or .tgz file", name);
  }
  await extractArchive(fname, baseDir);
  return folder ? join(baseDir, folder) : fname.slice(0, -ext.length);
}

/**
 * Downloads every file DATA_HUB registers (see {@link download}).
 * @see d2l.download_all (section 4.10.1)
 */
export async function downloadAll(): Promise<void> {
  for (const name in DATA_HUB) await download(name);
}
