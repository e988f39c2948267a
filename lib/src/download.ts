import { SingleBar } from "cli-progress";
import { randomBytes } from "crypto";
import { createWriteStream, mkdirSync, readdirSync, renameSync, rmSync } from "fs";
import * as http from "http";
import * as https from "https";
import { basename, dirname, join } from "path";

/** A download that failed: the message names the URL and what happened. */
export class DownloadError extends Error {
  constructor(
    /** The URL that was being fetched. */
    readonly url: string,
    message: string,
  ) {
    super(message);
    this.name = "DownloadError";
  }
}

/** Options of {@link downloadFile}. */
export interface DownloadOptions {
  /**
   * Checks the complete temporary file before it is renamed into place; throwing rejects the
   * download (the file is deleted and the error passed on).
   */
  verify?: (tempPath: string) => void | Promise<void>;
  /** Show progress on stderr (a bar on a terminal, percentage steps otherwise). Default true. */
  progress?: boolean;
  /** Give up when the server sends nothing for this many seconds. Default 30. */
  idleTimeoutSeconds?: number;
}

const MAX_REDIRECTS = 5;

/** Progress on stderr: cli-progress's bar on a terminal, else " 10% 20% ..." on one line (notebooks, CI logs). */
class Progress {
  private bar?: SingleBar;
  private line = false;
  private step = 0;

  constructor(label: string, private readonly total: number | undefined, enabled: boolean) {
    if (!enabled) return;
    const mb = total === undefined ? "" : ` (${total >= 1e6 ? `${(total / 1e6).toFixed(1)} MB` : `${Math.ceil(total / 1e3)} kB`})`;
    if (process.stderr.isTTY && total !== undefined) {
      this.bar = new SingleBar({
        format: `Downloading ${label}${mb} [{bar}] {percentage}% | {eta_formatted}`,
        stream: process.stderr,
        hideCursor: null,
      });
      this.bar.start(total, 0);
    } else {
      process.stderr.write(`Downloading ${label}${mb}:`);
      this.line = true;
    }
  }

  update(received: number): void {
    if (this.bar) {
      this.bar.update(received);
    } else if (this.line && this.total) {
      const step = Math.floor((10 * received) / this.total);
      if (step > this.step) {
        process.stderr.write(` ${step * 10}%`);
        this.step = step;
      }
    }
  }

  stop(outcome: string): void {
    if (this.bar) {
      this.bar.stop();
      if (outcome !== "done") process.stderr.write(`${outcome}\n`);
    } else if (this.line) {
      process.stderr.write(` ${outcome}\n`);
    }
    this.bar = undefined;
    this.line = false;
  }
}

/** Sends a GET request, following redirects; resolves with a 200 response or rejects with a DownloadError. */
function request(url: string, timeoutMs: number, redirects = 0): Promise<http.IncomingMessage> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return Promise.reject(new DownloadError(url, `download: "${url}" is not a valid URL`));
  }
  const client = parsed.protocol === "https:" ? https : parsed.protocol === "http:" ? http : undefined;
  if (!client) {
    return Promise.reject(new DownloadError(url, `download: ${url}: only http and https URLs are supported`));
  }
  return new Promise((resolve, reject) => {
    const req = client.get(parsed, (res) => {
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400 && res.headers.location) {
        res.resume();
        if (redirects >= MAX_REDIRECTS) {
          reject(new DownloadError(url, `download: ${url}: more than ${MAX_REDIRECTS} redirects`));
          return;
        }
        resolve(request(new URL(res.headers.location, parsed).href, timeoutMs, redirects + 1));
        return;
      }
      if (status !== 200) {
        res.resume();
        reject(new DownloadError(url, `download: ${url}: the server answered HTTP ${status} ${res.statusMessage ?? ""}`.trim()));
        return;
      }
      resolve(res);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no data for ${timeoutMs / 1000} s`)));
    req.on("error", (error: NodeJS.ErrnoException) => {
      const code = error.code && !error.message.includes(error.code) ? ` (${error.code})` : "";
      reject(new DownloadError(url, `download: ${url}: could not reach the server: ${error.message}${code}`));
    });
  });
}

/** Writes the response body to `path`, reporting progress; rejects if the body ends short. */
function saveBody(res: http.IncomingMessage, url: string, path: string, progress: Progress, total?: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const out = createWriteStream(path);
    let received = 0;
    let settled = false;
    const finish = (error?: Error) => {
      if (settled) return;
      settled = true;
      if (error) {
        res.destroy();
        out.destroy();
        // Let the file handle close before the caller deletes the file (matters on Windows).
        out.once("close", () => reject(error));
        if (out.closed) reject(error);
      } else {
        resolve(received);
      }
    };
    const cutShort = () => {
      const of = total === undefined ? "" : ` of ${total}`;
      return new DownloadError(url, `download: ${url}: the connection closed after ${received}${of} bytes`);
    };
    res.on("data", (chunk: Buffer) => {
      received += chunk.length;
      progress.update(received);
      if (!out.write(chunk)) {
        res.pause();
        out.once("drain", () => res.resume());
      }
    });
    res.on("error", () => finish(cutShort()));
    res.on("aborted", () => finish(cutShort()));
    res.on("end", () => {
      if (!res.complete || (total !== undefined && received !== total)) {
        finish(cutShort());
        return;
      }
      out.end(() => finish());
    });
    res.on("close", () => {
      if (!res.complete) finish(cutShort());
    });
    out.on("error", (error) => finish(new DownloadError(url, `download: could not write ${path}: ${error.message}`)));
  });
}

/**
 * Downloads `url` to `dest`: into a temporary file next to it, checked with `verify`, then
 * renamed into place, so `dest` is either absent or complete and verified. Any failure
 * (HTTP error, connection closed mid-file, failed verification) deletes the temporary file
 * and throws a {@link DownloadError} that names the URL.
 */
export async function downloadFile(url: string, dest: string, options: DownloadOptions = {}): Promise<void> {
  const { verify, progress = true, idleTimeoutSeconds = 30 } = options;
  removeStaleParts(dest);
  const temp = `${dest}.${process.pid}-${randomBytes(4).toString("hex")}.part`;
  let bar: Progress | undefined;
  let res: http.IncomingMessage | undefined;
  // A kernel cell's synchronous part runs with the SIGINT listeners set aside (Node's breakOnSigint); they are back after it.
  await Promise.resolve();
  const stop = whenInterrupted(url, () => res?.destroy());
  try {
    const pending = request(url, idleTimeoutSeconds * 1000);
    pending.then((r) => stop.interrupted && r.destroy(), () => undefined); // a response that comes too late
    res = await Promise.race([pending, stop.promise]);
    try {
      mkdirSync(dirname(dest), { recursive: true }); // only now: a failed request leaves no empty folder
    } catch (error) {
      res.destroy();
      throw error;
    }
    const length = Number(res.headers["content-length"]);
    const total = Number.isFinite(length) && length > 0 ? length : undefined;
    bar = new Progress(basename(dest), total, progress);
    await Promise.race([saveBody(res, url, temp, bar, total), stop.promise]);
    if (verify) {
      try {
        await verify(temp);
      } catch (error) {
        const reason = error instanceof Error ? error.message : String(error);
        throw new DownloadError(url, `download: ${url}: the downloaded file was rejected and deleted: ${reason}`);
      }
    }
    renameSync(temp, dest);
    bar.stop("done");
  } catch (error) {
    bar?.stop(stop.interrupted ? "interrupted" : "failed");
    throw error;
  } finally {
    stop.release();
    rmSync(temp, { force: true });
  }
}

/**
 * Ends a download when the Jupyter kernel is interrupted (the Stop button). tslab ends the cell
 * that awaits it, but the request would go on in the background and finish the file later; this
 * rejects it instead, so nothing half-written stays and the next load starts afresh. Only where
 * something already handles SIGINT (tslab's kernel): elsewhere Ctrl-C still ends the process.
 */
function whenInterrupted(url: string, abort: () => void) {
  let reject: (error: Error) => void = () => undefined;
  const promise = new Promise<never>((_, r) => (reject = r));
  promise.catch(() => undefined);
  const state = { promise, interrupted: false, release: () => {} };
  if (process.listenerCount("SIGINT") > 0) {
    const onSigint = () => {
      state.interrupted = true;
      abort();
      reject(new DownloadError(url, `download: ${url}: interrupted; nothing was kept, the next load starts again`));
    };
    process.on("SIGINT", onSigint);
    state.release = () => void process.off("SIGINT", onSigint);
  }
  return state;
}

/**
 * Deletes the temporary files earlier downloads of `dest` left when their process was killed
 * (`dest.<pid>-<random>.part` whose process no longer runs).
 */
function removeStaleParts(dest: string): void {
  let names: string[];
  try {
    names = readdirSync(dirname(dest));
  } catch {
    return;
  }
  const prefix = `${basename(dest)}.`;
  for (const name of names) {
    const pid = Number(/^(\d+)-[0-9a-f]+\.part$/.exec(name.slice(prefix.length))?.[1]);
    if (!name.startsWith(prefix) || !pid || pid === process.pid || isRunning(pid)) continue;
    rmSync(join(dirname(dest), name), { force: true });
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
