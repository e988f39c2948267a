import type AdmZipType from "adm-zip";
import { createHash } from "crypto";
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "fs";
import { createServer, Server } from "http";
import { join } from "path";
import { createRequire } from "module";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { DATA_HUB, DATA_URL, SHIPPED_DATA_DIR, download, downloadExtract, shippedCopy } from "../../lib/src/data-hub";
import { DownloadError } from "../../lib/src/download";
import { tempDir } from "./fashion-mnist-fixtures";

// The archive packages are the lib's dependencies (nested under lib/node_modules: the root's lock has
// older optional copies for tfjs-node), so they are loaded as the lib loads them.
const libRequire = createRequire(join(__dirname, "..", "..", "lib", "package.json"));
const AdmZip = libRequire("adm-zip") as typeof AdmZipType;
const tar = libRequire("tar") as { c(options: { file: string; cwd: string; gzip?: boolean }, paths: string[]): Promise<void> };

/**
 * d2l's data hub against a real HTTP server on 127.0.0.1: /ok/<name> serves a file, /cut/<name> closes
 * the connection halfway through it, anything else is a 404. The files: the real Kaggle training CSV
 * under another name (so the shipped copy does not answer for it), and .zip, .tar and .tar.gz archives
 * made here with adm-zip and node-tar. Requests are counted.
 */
const work = tempDir("data-hub");
const files = new Map<string, Buffer>();
const requests: string[] = [];
let server: Server;
let base = "";
const sha1 = (bytes: Buffer) => createHash("sha1").update(bytes).digest("hex");
const TRAIN_CSV = readFileSync(join(SHIPPED_DATA_DIR, "kaggle-house", "kaggle_house_pred_train.csv"));
const TRAIN_SHA1 = "585e9cc93e70b39160e7921475f9bcd7d31219ce";
const count = (prefix: string) => requests.filter((r) => r.startsWith(prefix)).length;
const listing = (dir: string) => (existsSync(dir) ? readdirSync(dir).sort() : []);
/** Registers `name` in DATA_HUB for a file on the test server; removed after each test. */
const registered: string[] = [];
function register(name: string, path: string, digest: string): void {
  DATA_HUB[name] = [`${base}${path}`, digest];
  registered.push(name);
}

beforeAll(async () => {
  files.set("house.csv", TRAIN_CSV);
  // Archives holding a folder "pack" with two files, as d2l's archives hold a folder of data.
  const src = join(work.dir, "src");
  mkdirSync(join(src, "pack"), { recursive: true });
  writeFileSync(join(src, "pack", "a.txt"), "alpha\n");
  writeFileSync(join(src, "pack", "b.csv"), "x,y\n1,2\n");
  const zip = new AdmZip();
  zip.addLocalFolder(join(src, "pack"), "pack");
  files.set("pack.zip", zip.toBuffer());
  await tar.c({ file: join(work.dir, "pack.tar"), cwd: src }, ["pack"]);
  await tar.c({ file: join(work.dir, "pack.tar.gz"), cwd: src, gzip: true }, ["pack"]);
  files.set("pack.tar", readFileSync(join(work.dir, "pack.tar")));
  files.set("pack.tar.gz", readFileSync(join(work.dir, "pack.tar.gz")));
  files.set("broken.zip", Buffer.from("this is not a zip archive"));
  files.set("notes.txt", Buffer.from("not an archive"));
  server = createServer((req, res) => {
    requests.push(req.url ?? "");
    const [, mode, name] = (req.url ?? "").split("/");
    const body = files.get(name ?? "");
    if (!body || (mode !== "ok" && mode !== "cut")) {
      res.writeHead(404, { "content-type": "text/plain" }).end("no such file");
    } else if (mode === "cut") {
      res.writeHead(200, { "content-length": body.length });
      res.write(body.subarray(0, body.length >> 1), () => setTimeout(() => res.destroy(), 20));
    } else {
      res.writeHead(200, { "content-length": body.length }).end(body);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});

afterEach(() => {
  for (const name of registered.splice(0)) delete DATA_HUB[name];
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  work.cleanup();
});

describe("DATA_HUB", () => {
  it("registers the Kaggle house files as d2l does", () => {
    expect(DATA_URL).toBe("http://d2l-data.s3-accelerate.amazonaws.com/");
    expect(DATA_HUB.kaggle_house_train).toEqual([`${DATA_URL}kaggle_house_pred_train.csv`, TRAIN_SHA1]);
    expect(DATA_HUB.kaggle_house_test).toEqual([`${DATA_URL}kaggle_house_pred_test.csv`, "fa19780a7b011d9b009e8bff8e99922a8ee2eb90"]);
  });

  it("ships both files with the digests it registers", async () => {
    for (const name of ["kaggle_house_train", "kaggle_house_test"]) {
      const [url, digest] = DATA_HUB[name];
      const path = await shippedCopy(url.split("/").pop()!, digest);
      expect(path).toBeDefined();
      expect(sha1(readFileSync(path!))).toBe(digest);
    }
  });
});

describe("download", () => {
  it("downloads into the cache, checks the SHA-1, and the next call is a cache hit", async () => {
    const cache = join(work.dir, "cache-ok");
    register("house", "/ok/house.csv", TRAIN_SHA1);
    const path = await download("house", cache);
    expect(path).toBe(join(cache, "house.csv"));
    expect(readFileSync(path).equals(TRAIN_CSV)).toBe(true);
    expect(await download("house", cache)).toBe(path);
    expect(count("/ok/house.csv")).toBe(1);
    expect(listing(cache)).toEqual(["house.csv"]);
  });

  it("replaces a cached file whose SHA-1 is wrong", async () => {
    const cache = join(work.dir, "cache-stale");
    mkdirSync(cache, { recursive: true });
    writeFileSync(join(cache, "house.csv"), "an old, different file");
    register("house", "/ok/house.csv", TRAIN_SHA1);
    const before = count("/ok/house.csv");
    await download("house", cache);
    expect(count("/ok/house.csv")).toBe(before + 1);
    expect(readFileSync(join(cache, "house.csv")).equals(TRAIN_CSV)).toBe(true);
  });

  it("a wrong digest is an error naming both digests, and leaves nothing", async () => {
    const cache = join(work.dir, "cache-wrong");
    const wrong = "0".repeat(40);
    register("house", "/ok/house.csv", wrong);
    const error = await download("house", cache).catch((e: Error) => e);
    expect(error).toBeInstanceOf(DownloadError);
    expect((error as Error).message).toBe(
      `download: ${base}/ok/house.csv: the downloaded file was rejected and deleted: its SHA-1 is ${TRAIN_SHA1}, DATA_HUB expects ${wrong}`,
    );
    expect(listing(cache)).toEqual([]);
  });

  it("a truncated download is an error saying how much arrived, and leaves nothing", async () => {
    const cache = join(work.dir, "cache-cut");
    register("house", "/cut/house.csv", TRAIN_SHA1);
    await expect(download("house", cache)).rejects.toThrow(
      new RegExp(`house\\.csv: the connection closed after \\d+ of ${TRAIN_CSV.length} bytes`),
    );
    expect(listing(cache)).toEqual([]);
  });

  it("an HTTP error is an error naming the URL and the status, and leaves nothing", async () => {
    const cache = join(work.dir, "cache-404");
    register("house", "/missing/house.csv", TRAIN_SHA1);
    await expect(download("house", cache)).rejects.toThrow(`download: ${base}/missing/house.csv: the server answered HTTP 404 Not Found`);
    expect(listing(cache)).toEqual([]);
  });

  it("serves the shipped copy when it has the right digest, without the network", async () => {
    const cache = join(work.dir, "cache-shipped");
    // A URL that would fail: the shipped copy must answer before it is tried.
    register("shipped", "/missing/kaggle_house_pred_train.csv", TRAIN_SHA1);
    const before = requests.length;
    const path = await download("shipped", cache);
    expect(requests.length).toBe(before);
    expect(path).toBe(join(cache, "kaggle_house_pred_train.csv"));
    expect(readFileSync(path).equals(TRAIN_CSV)).toBe(true);
    // d2l's own entries, from the shipped copies (DATA_URL is not reachable here).
    const test = await download("kaggle_house_test", cache);
    expect(sha1(readFileSync(test))).toBe("fa19780a7b011d9b009e8bff8e99922a8ee2eb90");
  });

  it("does not take a shipped file whose digest differs from the registered one", async () => {
    const cache = join(work.dir, "cache-not-shipped");
    register("other", "/missing/kaggle_house_pred_train.csv", "1".repeat(40));
    await expect(download("other", cache)).rejects.toThrow(/HTTP 404/);
    expect(listing(cache)).toEqual([]);
  });

  it("an unknown name is an error listing the names it knows", async () => {
    await expect(download("kaggle_house", join(work.dir, "unused"))).rejects.toThrow(
      /^download: name must be a name in DATA_HUB \(.*kaggle_house_train, kaggle_house_test.*\); got "kaggle_house"$/,
    );
  });
});

describe("downloadExtract", () => {
  const saved = process.env.D2L_CACHE_DIR;
  afterAll(() => {
    if (saved === undefined) delete process.env.D2L_CACHE_DIR;
    else process.env.D2L_CACHE_DIR = saved;
  });

  for (const archive of ["pack.zip", "pack.tar", "pack.tar.gz"]) {
    it(`downloads and extracts a ${archive.slice(5)} archive next to itself`, async () => {
      const cache = join(work.dir, `extract-${archive}`);
      process.env.D2L_CACHE_DIR = cache;
      register(archive, `/ok/${archive}`, sha1(files.get(archive)!));
      const folder = await downloadExtract(archive, "pack");
      expect(folder).toBe(join(cache, "pack"));
      expect(readFileSync(join(folder, "a.txt"), "utf8")).toBe("alpha\n");
      expect(readFileSync(join(folder, "b.csv"), "utf8")).toBe("x,y\n1,2\n");
      // Without a folder: the archive's path without its extension, as d2l returns.
      expect(await downloadExtract(archive)).toBe(join(cache, "pack"));
      expect(count(`/ok/${archive}`)).toBe(1);
    });
  }

  it("a damaged archive is an error naming it; a file that is no archive is refused", async () => {
    process.env.D2L_CACHE_DIR = join(work.dir, "extract-bad");
    register("broken", "/ok/broken.zip", sha1(files.get("broken.zip")!));
    await expect(downloadExtract("broken")).rejects.toThrow(/^downloadExtract: could not extract .*broken\.zip: /);
    register("notes", "/ok/notes.txt", sha1(files.get("notes.txt")!));
    await expect(downloadExtract("notes")).rejects.toThrow(
      'downloadExtract: name must be the name of a .zip, .tar, .tar.gz or .tgz file; got "notes"',
    );
  });
});
