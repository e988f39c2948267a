import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeKernelSpec } from "../../scripts/lib/kernelspec";
import { BUILD_DIR } from "../../scripts/lib/paths";

/** A port on 127.0.0.1 nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

/** Polls `url` until it answers 200, failing early with the server's log if it exits. */
export async function waitForServer(url: string, server: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (server.exitCode !== null) throw new Error(`the notebook server exited (${server.exitCode}):\n${log()}`);
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`the notebook server did not answer at ${url}:\n${log()}`);
}

/** A Jupyter server started for one test file, with this checkout's kernel and a throwaway home. */
export interface JupyterServer {
  base: string;
  token: string;
  log(): string;
  stop(): void;
}

/**
 * Starts `python args... --port=P` with the project's kernelspec on JUPYTER_PATH and config,
 * runtime and data folders of its own, so the user's Jupyter setup plays no part.
 */
export async function startJupyterServer(python: string, args: (port: number, token: string) => string[]): Promise<JupyterServer> {
  const jupyterDir = join(BUILD_DIR, "jupyter");
  writeKernelSpec(jupyterDir);
  const home = mkdtempSync(join(tmpdir(), "d2l-jupyter-"));
  const token = randomBytes(16).toString("hex");
  const port = await freePort();
  let output = "";
  const server = spawn(python, args(port, token), {
    env: {
      ...process.env,
      JUPYTER_PATH: jupyterDir,
      JUPYTER_CONFIG_DIR: join(home, "config"),
      JUPYTER_RUNTIME_DIR: join(home, "runtime"),
      JUPYTER_DATA_DIR: join(home, "data"),
      PYDEVD_DISABLE_FILE_VALIDATION: "1",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  server.stdout!.on("data", (d) => (output += d));
  server.stderr!.on("data", (d) => (output += d));
  const base = `http://127.0.0.1:${port}`;
  await waitForServer(`${base}/api/status?token=${token}`, server, () => output);
  return {
    base,
    token,
    log: () => output,
    stop: () => {
      server.kill("SIGTERM");
      rmSync(home, { recursive: true, force: true });
    },
  };
}
