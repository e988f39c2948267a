/**
 * A kernel start as Jupyter makes it: the front end has connected and sent `kernel_info_request`
 * before the kernel process runs. scripts/lib/tslab-kernel.cjs binds the kernel's five sockets with
 * zeromq's `bindSync`, so that no message reaches tslab's handlers while a socket is still marked
 * "blocked" by an asynchronous bind (a reply then throws EBUSY and the kernel goes deaf: one CI run
 * lost notebook 6.6 that way). A spy loaded into the kernel (`--require`) records each socket's binds;
 * the race itself needs a preempted worker thread and cannot be forced, so the test checks the binds
 * and that the kernel answers what was sent before it started.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KERNEL_ENTRY } from "../../scripts/lib/kernelspec";
import { findPython } from "../../scripts/lib/python";
import { runPythonDriver } from "./python-driver";

const python = findPython(["jupyter_client"]);
if (process.env.CI && !python) throw new Error("CI must start a real tslab kernel, but no Python has jupyter_client");

/** Notes every bind of a zeromq socket (which call, which port) in the file D2L_BIND_LOG names. */
const SPY = `
const { appendFileSync } = require("node:fs");
const zmq = require("zeromq");
// zeromq's native methods are read-only: shadow them on each socket class's prototype
for (const Class of Object.values(zmq)) {
  if (typeof Class !== "function" || !(Class.prototype instanceof zmq.Socket)) continue;
  for (const name of ["bind", "bindSync"]) {
    const original = zmq.Socket.prototype[name];
    Object.defineProperty(Class.prototype, name, {
      value(address) {
        appendFileSync(process.env.D2L_BIND_LOG, JSON.stringify({ call: name, address }) + "\\n");
        return original.call(this, address);
      },
    });
  }
}
`;

/**
 * Queues kernel_info_request and an execute_request on a client, then starts the kernel (argv after
 * the connection file's folder), reads the replies, checks the first cell's value with two more cells (one
 * that must pass, one that must fail) and prints all as JSON, with any exception the client raised and
 * the kernel's output.
 */
const DRIVER = `
import json, os, subprocess, sys
from jupyter_client import BlockingKernelClient
from jupyter_client.connect import write_connection_file
path, _ = write_connection_file(os.path.join(sys.argv[1], "connection.json"), key=os.urandom(16).hex().encode())
client = BlockingKernelClient(connection_file=path)
client.load_connection_file()
client.start_channels()
client.kernel_info()
client.execute("const answer: number = 6 * 7; answer")
kernel = subprocess.Popen(sys.argv[2:] + ["kernel", "--config-path", path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
def ask(code):
    """Runs a cell and returns its execute_reply's status ("ok" or "error") from the shell channel."""
    sent = client.execute(code)
    while True:
        msg = client.get_shell_msg(timeout=120)
        if msg["parent_header"].get("msg_id") == sent:
            return msg["content"]["status"]
replies = {}
try:
    while len(replies) < 2:
        msg = client.get_shell_msg(timeout=120)
        replies[msg["msg_type"]] = msg["content"]
    # read the queued cell's value back through the shell channel (iopub drops what is published
    # before the client's subscription reaches the kernel): a cell that throws unless it holds 42
    replies["check"] = ask('if (answer !== 42) throw new Error("answer is " + answer)')
    replies["control"] = ask('if (answer !== 41) throw new Error("answer is " + answer)')
except Exception as error:
    replies["error"] = repr(error)
finally:
    client.stop_channels()
    kernel.kill()
    replies["output"] = kernel.communicate()[0].decode(errors="replace")
print(json.dumps(replies))
`;

interface Start {
  kernel_info_reply?: { implementation: string; language_info: { name: string } };
  execute_reply?: { status: string };
  check?: string;
  control?: string;
  error?: string;
  output: string;
  binds: { call: string; address: string }[];
}

/** Starts the kernel entry once (environment `env` added) behind a client that is already waiting. */
async function start(dir: string, env: Record<string, string>): Promise<Start> {
  const log = join(dir, `binds-${Object.keys(env).length}.jsonl`);
  writeFileSync(log, "");
  const replies = await runPythonDriver<Omit<Start, "binds">>(python!, DRIVER, [dir, process.execPath, "--require", join(dir, "spy.cjs"), KERNEL_ENTRY], {
    cwd: dir,
    env: { ...process.env, ...env, D2L_BIND_LOG: log, NODE_PATH: join(__dirname, "..", "..", "node_modules") },
  });
  const binds = readFileSync(log, "utf8").trim().split("\n").filter(Boolean).map((line) => JSON.parse(line) as Start["binds"][number]);
  return { ...replies, binds };
}

describe.runIf(python)("a kernel start with the front end already waiting", () => {
  let dir: string;
  let ours: Start;
  let tslabs: Start;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "d2l-kernel-start-"));
    writeFileSync(join(dir, "spy.cjs"), SPY);
    ours = await start(dir, {});
    tslabs = await start(dir, { D2L_KERNEL_BIND: "async" });
  }, 300_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("answers the kernel_info_request and runs the cell that were sent before it started", () => {
    expect(ours.error, ours.output).toBeUndefined();
    expect(ours.kernel_info_reply?.implementation, ours.output).toBe("tslab");
    expect(ours.kernel_info_reply?.language_info.name).toBe("typescript");
    expect(ours.execute_reply?.status, ours.output).toBe("ok");
    expect(ours.check, ours.output).toBe("ok");
    expect(ours.control).toBe("error");
    expect(ours.output).not.toMatch(/EBUSY|blocked by a bind/);
  });

  it("binds its five sockets with bindSync, never with the asynchronous bind", () => {
    expect(ours.binds.map((b) => b.call)).toEqual(Array(5).fill("bindSync"));
    expect(new Set(ours.binds.map((b) => b.address)).size).toBe(5);
  });

  it("D2L_KERNEL_BIND=async gives tslab's own binds back (and the spy sees them)", () => {
    expect(tslabs.binds.map((b) => b.call)).toEqual(Array(5).fill("bind"));
    expect(tslabs.kernel_info_reply?.implementation, tslabs.output).toBe("tslab");
  });
});
