import { mkdirSync, readFileSync, writeFileSync } from "fs";
import { createServer, Server } from "http";
import { join } from "path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DownloadError, downloadFile } from "../../lib/src/download";
import { fashionMnist, readFashionMnistSplit } from "../../lib/src/fashion-mnist";
import { NAMES, gz, listing, realDataDir, realGz, realRaw, tempDir } from "./fashion-mnist-fixtures";

/**
 * A real HTTP server on 127.0.0.1 serving the real .gz files under /ok/, and misbehaving under
 * /missing/ (404), /cut/ (closes the connection halfway through the body), /wrong/ (a
 * well-formed file with one label changed) and /moved/ (a redirect to /ok/). It counts requests.
 */
let server: Server;
let base = "";
const requests: string[] = [];
/** Called when a /stall/ response has sent half its body (and then sends nothing more). */
const stalled: (() => void)[] = [];
const work = tempDir("fm-download");

function wrongLabels(): Buffer {
  const raw = realRaw(NAMES.testLabels).slice();
  raw[8] = (raw[8] + 1) % 10;
  return gz(raw);
}

beforeAll(async () => {
  const files = new Map<string, Buffer>(Object.values(NAMES).map((n) => [n, realGz(n)]));
  const wrong = wrongLabels();
  server = createServer((req, res) => {
    requests.push(req.url ?? "");
    const [, mode, name] = (req.url ?? "").split("/");
    const body = files.get(name ?? "");
    if (mode === "moved") {
      res.writeHead(302, { location: `/ok/${name}` }).end();
    } else if (mode === "missing" || !body) {
      res.writeHead(404, { "content-type": "text/plain" }).end("no such file");
    } else if (mode === "stall") {
      res.writeHead(200, { "content-length": body.length });
      res.write(body.subarray(0, body.length >> 1), () => stalled.forEach((f) => f()));
    } else if (mode === "cut") {
      res.writeHead(200, { "content-length": body.length });
      res.write(body.subarray(0, body.length >> 1), () => setTimeout(() => res.destroy(), 20));
    } else if (mode === "wrong") {
      const bytes = name === NAMES.testLabels ? wrong : body;
      res.writeHead(200, { "content-length": bytes.length }).end(bytes);
    } else {
      res.writeHead(200, { "content-length": body.length }).end(body);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  work.cleanup();
});

/** Loader options: a fresh cache under the temp folder, no system copy, files from `mode`. */
function options(cacheName: string, mode: string) {
  return { cacheDir: join(work.dir, cacheName), systemDir: null, baseUrl: `${base}/${mode}/`, progress: false };
}

const count = (prefix: string) => requests.filter((r) => r.startsWith(prefix)).length;

describe("downloading Fashion-MNIST into the cache", () => {
  it("downloads and verifies all four files on the first load, and never again", async () => {
    const opts = options("full", "ok");
    const [train, test] = await fashionMnist(opts);
    expect([train.length, test.length]).toEqual([60000, 10000]);
    expect(count("/ok/")).toBe(4);
    expect(listing(opts.cacheDir)).toEqual(Object.values(NAMES).sort());
    for (const name of Object.values(NAMES)) {
      expect(readFileSync(join(opts.cacheDir, name)).equals(realGz(name))).toBe(true);
    }
    // Same process: the decoded sets are shared, nothing is read or fetched again.
    expect((await fashionMnist(opts))[0]).toBe(train);
    // Reading the files again finds them in the cache.
    const again = await readFashionMnistSplit("test", opts);
    expect(again.length).toBe(10000);
    expect(count("/ok/")).toBe(4);
  });

  it("takes the base URL from D2L_FASHION_MNIST_URL and follows redirects", async () => {
    const opts = options("env", "unused");
    process.env.D2L_FASHION_MNIST_URL = `${base}/moved`;
    try {
      const test = await readFashionMnistSplit("test", { cacheDir: opts.cacheDir, systemDir: null, progress: false });
      expect(test.length).toBe(10000);
    } finally {
      delete process.env.D2L_FASHION_MNIST_URL;
    }
    expect(count(`/moved/${NAMES.testImages}`)).toBe(1);
    expect(count(`/moved/${NAMES.testLabels}`)).toBe(1);
    expect(listing(opts.cacheDir)).toEqual([NAMES.testImages, NAMES.testLabels]);
  });

  it("a 404 is an error naming the URL and the ways out, and leaves no file", async () => {
    const opts = options("missing", "missing");
    const error = await readFashionMnistSplit("test", opts).catch((e: Error) => e);
    expect(error).toBeInstanceOf(DownloadError);
    const message = (error as Error).message;
    expect(message).toContain(`${base}/missing/${NAMES.testImages}: the server answered HTTP 404 Not Found`);
    expect(message).toContain(`${NAMES.testImages} was not found in\n  ${opts.cacheDir} (cache)`);
    expect(message).toContain("apt-get install dataset-fashion-mnist");
    expect(listing(opts.cacheDir)).toEqual([]);
  });

  it("a connection closed mid-file is an error saying how much arrived, and leaves no file", async () => {
    const opts = options("cut", "cut");
    const size = realGz(NAMES.testImages).length;
    await expect(readFashionMnistSplit("test", opts)).rejects.toThrow(
      new RegExp(`${NAMES.testImages}: the connection closed after \\d+ of ${size} bytes`),
    );
    expect(listing(opts.cacheDir)).toEqual([]);
  });

  it("wrong bytes are a checksum error; the download is deleted, the good file kept", async () => {
    const opts = options("wrong", "wrong");
    await expect(readFashionMnistSplit("test", opts)).rejects.toThrow(
      /t10k-labels-idx1-ubyte\.gz: the downloaded file was rejected and deleted: t10k-labels-idx1-ubyte\.gz: checksum mismatch/,
    );
    expect(listing(opts.cacheDir)).toEqual([NAMES.testImages]);
  });
});

describe("downloadFile", () => {
  it("writes the file only after verify accepts it, with progress on stderr", async () => {
    const dest = join(work.dir, "plain", NAMES.testLabels);
    const written: string[] = [];
    const write = process.stderr.write;
    process.stderr.write = ((chunk: string) => written.push(String(chunk)) > 0) as typeof process.stderr.write;
    let verified = "";
    try {
      await downloadFile(`${base}/ok/${NAMES.testLabels}`, dest, {
        verify: (temp) => {
          verified = temp;
          expect(listing(join(work.dir, "plain"))).toHaveLength(1); // only the temporary file
        },
      });
    } finally {
      process.stderr.write = write;
    }
    expect(verified).toMatch(/\.part$/);
    expect(readFileSync(dest).equals(realGz(NAMES.testLabels))).toBe(true);
    expect(listing(join(work.dir, "plain"))).toEqual([NAMES.testLabels]);
    const output = written.join("");
    if (!process.stderr.isTTY) expect(output).toMatch(/^Downloading t10k-labels-idx1-ubyte\.gz \(6 kB\):.* 100% done\n$/);
  });

  it("rejects what verify rejects, and unreachable or malformed URLs", async () => {
    const dir = join(work.dir, "rejected");
    await expect(
      downloadFile(`${base}/ok/${NAMES.testLabels}`, join(dir, "x.gz"), {
        progress: false,
        verify: () => {
          throw new Error("not what I wanted");
        },
      }),
    ).rejects.toThrow(/the downloaded file was rejected and deleted: not what I wanted/);
    await expect(downloadFile("ftp://example.org/x", join(dir, "y.gz"), { progress: false })).rejects.toThrow(
      /only http and https URLs are supported/,
    );
    await expect(downloadFile("not a url", join(dir, "y.gz"), { progress: false })).rejects.toThrow(/is not a valid URL/);
    expect(listing(dir)).toEqual([]);
  });
});

it("serves the same bytes as Debian's copy (sanity check of the fixture server)", () => {
  expect(realGz(NAMES.testLabels).equals(readFileSync(join(realDataDir(), NAMES.testLabels)))).toBe(true);
});

describe("downloadFile and the kernel's Stop button", () => {
  it("ends on SIGINT where something handles it (tslab's kernel): rejects, keeps nothing, the next download works", async () => {
    const dir = join(work.dir, "stop");
    const dest = join(dir, NAMES.testLabels);
    const kernelListener = () => undefined; // tslab's own listener, which keeps SIGINT from ending the process
    process.on("SIGINT", kernelListener);
    try {
      stalled.push(() => setTimeout(() => process.kill(process.pid, "SIGINT"), 50));
      const stop = downloadFile(`${base}/stall/${NAMES.testLabels}`, dest, { progress: false });
      await expect(stop).rejects.toThrow(/interrupted; nothing was kept/);
    } finally {
      stalled.length = 0;
      process.off("SIGINT", kernelListener);
    }
    expect(listing(dir)).toEqual([]);
    await downloadFile(`${base}/ok/${NAMES.testLabels}`, dest, { progress: false });
    expect(listing(dir)).toEqual([NAMES.testLabels]);
  });

  it("deletes the temporary files of a killed process, not those of a running one", async () => {
    const dir = join(work.dir, "stale");
    mkdirSync(dir, { recursive: true });
    const dest = join(dir, NAMES.testLabels);
    const dead = `${NAMES.testLabels}.2147483646-0badc0de.part`; // no such process
    const running = `${NAMES.testLabels}.${process.ppid}-0badc0de.part`; // another live process: it may still be writing
    writeFileSync(join(dir, dead), "half");
    writeFileSync(join(dir, running), "half");
    await downloadFile(`${base}/ok/${NAMES.testLabels}`, dest, { progress: false });
    expect(listing(dir)).toEqual([NAMES.testLabels, running].sort());
  });
});

