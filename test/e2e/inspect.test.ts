/**
 * What notebook 2.7 tells a reader to do: Tab completes `tf.rand` and Shift+Tab shows the
 * signature and documentation of `tf.ones`. A real tslab kernel, started by jupyter_client
 * as a front end starts it, answers complete_request and inspect_request. And the globals a
 * cell sees (scripts/lib/tslab-kernel.cjs): Node's, not those of every @types package the
 * project's dev dependencies bring, while an imported package still comes with its types.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KERNEL_NAME, writeKernelSpec } from "../../scripts/lib/kernelspec";
import { NOTEBOOKS_DIR } from "../../scripts/lib/paths";
import { findPython } from "../../scripts/lib/python";
import { runPythonDriver } from "./python-driver";

const python = findPython(["jupyter_client"]);
if (process.env.CI && !python) throw new Error("CI must ask a real tslab kernel, but no Python has jupyter_client");

/**
 * Starts the kernel in a folder, as Jupyter does, runs the cells given (JSON [name, code] pairs) and,
 * if asked, asks it what a reader's Tab and Shift+Tab would; prints the replies as JSON.
 */
const DRIVER = `
import json, sys, time
from jupyter_client.manager import start_new_kernel
km, kc = start_new_kernel(kernel_name=sys.argv[2], cwd=sys.argv[1], startup_timeout=120)
try:
    replies = {"cells": {}}
    for name, code in json.loads(sys.argv[3]):
        out = {"stdout": "", "error": ""}
        def hook(msg, out=out):
            if msg["msg_type"] == "stream":
                out["stdout" if msg["content"]["name"] == "stdout" else "error"] += msg["content"]["text"]
            elif msg["msg_type"] == "error":
                out["error"] += msg["content"]["evalue"]
        reply = kc.execute_interactive(code, timeout=120, output_hook=hook)
        out["status"] = reply["content"]["status"]
        if out["status"] != "ok":
            out["error"] += reply["content"].get("evalue", "")
            time.sleep(0.3)  # tslab aborts requests that arrive within 200 ms of a failed one (tslab issue 19)
        replies["cells"][name] = out
    if sys.argv[4] == "inspect":
        for kind, code in [("inspect", "tf.ones"), ("complete", "tf.rand")]:
            getattr(kc, kind)(code, len(code))
            replies[kind] = kc.get_shell_msg(timeout=120)["content"]
    print(json.dumps(replies))
finally:
    kc.stop_channels()
    km.shutdown_kernel(now=True)
`;

interface Cell {
  status: string;
  stdout: string;
  error: string;
}
interface Replies {
  cells: Record<string, Cell>;
  inspect: { status: string; found: boolean; data: Record<string, string> };
  complete: { status: string; matches: string[] };
}

/** Runs {@link DRIVER} in `cwd` with the project's kernel (a kernelspec written into `jupyterDir`). */
async function drive(jupyterDir: string, cwd: string, cells: [string, string][], inspect: boolean): Promise<Replies> {
  return runPythonDriver<Replies>(python!, DRIVER, [cwd, KERNEL_NAME, JSON.stringify(cells), inspect ? "inspect" : ""], { env: { ...process.env, JUPYTER_PATH: jupyterDir } });
}

describe.runIf(python)("tslab's completion and inspection (notebook 2.7)", () => {
  let replies: Replies;
  let jupyterDir: string;

  beforeAll(async () => {
    jupyterDir = mkdtempSync(join(tmpdir(), "d2l-inspect-"));
    writeKernelSpec(jupyterDir);
    replies = await drive(jupyterDir, NOTEBOOKS_DIR, [
      ["tf", 'import * as tf from "@tensorflow/tfjs";'],
      ["node", 'const cwd: string = process.cwd(); const b: Buffer = Buffer.from("ab"); console.log(b.length)'],
      ["jquery", "console.log(typeof $)"],
      ["lodash", 'import * as lodash from "lodash"; const total: number = lodash.sum([1, 2, 3]); console.log(total)'],
      ["lodash-typed", "const wrong: string = lodash.sum([1, 2]);"],
    ], true);
  }, 300_000);
  afterAll(() => rmSync(jupyterDir, { recursive: true, force: true }));

  it("Shift+Tab on tf.ones shows its signature and documentation", () => {
    expect(replies.inspect.status).toBe("ok");
    expect(replies.inspect.found).toBe(true);
    const text = replies.inspect.data["text/plain"];
    expect(text).toMatch(/function ones<R extends \w*\.?Rank>\(shape:/);
    expect(text).toContain("Creates a `tf.Tensor` with all elements set to 1.");
    expect(text).toContain("@param dtype");
  });

  it("Tab after tf.rand lists the random generators", () => {
    expect(replies.complete.status).toBe("ok");
    expect(replies.complete.matches).toEqual(expect.arrayContaining(["randomNormal", "randomUniform", "randomGamma"]));
    expect(replies.complete.matches.every((m) => m.startsWith("rand"))).toBe(true);
  });

  it("a cell sees Node's globals but not those of every @types package (jQuery's $), and an import brings its package's types", () => {
    const { node, jquery, lodash, "lodash-typed": typed } = replies.cells;
    expect(node.status, node.error).toBe("ok");
    expect(node.stdout.trim()).toBe("2");
    expect(jquery.status).toBe("error");
    expect(jquery.error).toMatch(/Cannot find name '\$'/);
    expect(lodash.status, lodash.error).toBe("ok");
    expect(lodash.stdout.trim()).toBe("6");
    // the import's types are checked: a number is not a string
    expect(typed.status).toBe("error");
    expect(typed.error).toMatch(/Type 'number' is not assignable to type 'string'/);
  });
});

describe.runIf(python)("the kernel's compiler (scripts/lib/tslab-kernel.cjs's lean builder) does what tslab's does", () => {
  let replies: Replies;
  let jupyterDir: string;
  let folder: string;

  beforeAll(async () => {
    jupyterDir = mkdtempSync(join(tmpdir(), "d2l-compiler-"));
    writeKernelSpec(jupyterDir);
    // a learner's own modules beside the notebook: TypeScript importing TypeScript, and plain JavaScript
    folder = mkdtempSync(join(tmpdir(), "d2l-modules-"));
    writeFileSync(join(folder, "helper.ts"), 'import { inner } from "./inner";\nexport function twice(x: number): number { return inner(x) * 2; }\n');
    writeFileSync(join(folder, "inner.ts"), "export const inner = (x: number): number => x + 1;\n");
    writeFileSync(join(folder, "plain.js"), 'exports.hello = (name) => "hello " + name;\n');
    replies = await drive(jupyterDir, folder, [
      ["import", 'import { twice } from "./helper"; console.log(twice(20))'],
      ["misuse", "const wrong: string = twice(1);"],
      ["js", 'import { hello } from "./plain"; console.log(hello("d2l"))'],
      ["declare", "let n: number = 3; const half = (x: number) => x / 2; console.log(n)"],
      ["reuse", "n += 1; console.log(half(n), twice(n))"],
      ["shadow", 'const n2: string = "re-declared"; let half2 = half; console.log(typeof half2, n2)'],
      ["await", "const later = await Promise.resolve(7); console.log(later)"],
      ["after-await", "console.log(later * 6)"],
    ], false);
  }, 300_000);
  afterAll(() => {
    rmSync(jupyterDir, { recursive: true, force: true });
    rmSync(folder, { recursive: true, force: true });
  });

  it("imports a local TypeScript module (and what it imports) and a JavaScript one, with their types", () => {
    const { import: imported, misuse, js } = replies.cells;
    expect(imported.status, imported.error).toBe("ok");
    expect(imported.stdout.trim()).toBe("42");
    expect(misuse.status).toBe("error");
    expect(misuse.error).toMatch(/Type 'number' is not assignable to type 'string'/);
    expect(js.status, js.error).toBe("ok");
    expect(js.stdout.trim()).toBe("hello d2l");
  });

  it("a cell's declarations, imports and top-level await results are there in the next cells", () => {
    for (const name of ["declare", "reuse", "shadow", "await", "after-await"]) expect(replies.cells[name].status, `${name}: ${replies.cells[name].error}`).toBe("ok");
    expect(replies.cells.reuse.stdout.trim()).toBe("2 10");
    expect(replies.cells.shadow.stdout.trim()).toBe("function re-declared");
    expect(replies.cells["after-await"].stdout.trim()).toBe("42");
  });
});
