/**
 * Which plotly.js a notebook carries (display.ts): none without charts, Plotly's cartesian bundle
 * with the first chart, the full bundle the first time a trace outside it is drawn, and the carrier
 * sent again when the cell that carries it runs again. A stand-in for tslab's kernel module records
 * the outputs; the browser tests (test/e2e) run the real kernel and front ends.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { afterAll, describe, expect, it } from "vitest";
import { CARTESIAN_TRACE_TYPES, plotlyBuildFor, plotlyOutputHtml } from "../../lib/src/display";
import { showFigure, type Figure } from "../../lib/src/figure";
import { initBackend } from "../../lib/src/backend";

// The bundles as the lib resolves them (npm may place them under lib/node_modules).
const require = createRequire(new URL("../../lib/src/display.ts", import.meta.url));
const bundle = (file: string) => readFileSync(require.resolve(file), "utf8");
const CARTESIAN = bundle("plotly.js-cartesian-dist-min/plotly-cartesian.min.js");
const FULL = bundle("plotly.js-dist-min/plotly.min.js");
/** The trace types a plotly.js bundle registers. */
const traceTypes = (source: string) => new Set([...source.matchAll(/moduleType:"trace",name:"(\w+)"/g)].map((m) => m[1]));
const version = (source: string) => /plotly\.js (?:\([^)]*\) )?v(\d+\.\d+\.\d+)/.exec(source.slice(0, 200))?.[1];

describe("the plotly.js builds", () => {
  it("CARTESIAN_TRACE_TYPES are the trace types the cartesian bundle registers; the full one has them all and more", () => {
    expect([...traceTypes(CARTESIAN)].sort()).toEqual([...CARTESIAN_TRACE_TYPES].sort());
    const full = traceTypes(FULL);
    for (const type of CARTESIAN_TRACE_TYPES) expect(full.has(type), type).toBe(true);
    expect(full.has("scatterpolar") && full.has("surface")).toBe(true);
  });

  it("are the same plotly.js release", () => {
    expect(version(CARTESIAN)).toMatch(/^\d+\.\d+\.\d+$/);
    expect(version(CARTESIAN)).toBe(version(FULL));
  });

  it("plotlyBuildFor picks the cartesian bundle for the book's traces, the full one for any other", () => {
    expect(plotlyBuildFor(["scatter", "heatmap", "bar", "image", undefined])).toBe("cartesian");
    expect(plotlyBuildFor([])).toBe("cartesian");
    expect(plotlyBuildFor(["scatter", "scatterpolar"])).toBe("full");
    expect(plotlyBuildFor(["surface"])).toBe("full");
  });

  it("the carrier output names its build and holds it", () => {
    expect(plotlyOutputHtml("cartesian")).toContain('data-d2l-plotly="cartesian"');
    expect(plotlyOutputHtml("cartesian")).toContain("plotly.js (cartesian - minified) v");
    expect(plotlyOutputHtml("full")).toContain('data-d2l-plotly="full"');
    expect(plotlyOutputHtml("cartesian").length).toBeLessThan(1.6e6);
  });
});

/** What one cell's execution sent: "carrier:<build>", "chart" or "other". */
type Sent = string[];
type Writer = (msg: { data: Record<string, unknown> }, update: boolean) => void;

/**
 * A stand-in for tslab's dist/jupyter.js: its ZmqServer hands each execute request to
 * JupyterHandlerImpl.handleExecuteImpl with a display writer of its own, as tslab does.
 */
class FakeTslab {
  readonly key = "/fake/node_modules/tslab/dist/jupyter.js";
  readonly exports: Record<string, unknown> = { lastWriteDisplayData: null };

  constructor() {
    const exports = this.exports;
    class JupyterHandlerImpl {
      handleExecuteImpl(req: { code: string; run: () => void }, _writeStream: unknown, write: Writer) {
        exports.lastWriteDisplayData = write;
        req.run();
      }
    }
    const handler = new JupyterHandlerImpl();
    class ZmqServer {
      handleExecute(_sock: unknown, msg: { content: { code: string; run: () => void }; metadata: Record<string, unknown>; write: Writer }) {
        handler.handleExecuteImpl(msg.content, null, msg.write);
      }
    }
    Object.assign(exports, { JupyterHandlerImpl, ZmqServer, server: new ZmqServer() });
    require.cache[this.key] = { exports } as unknown as NodeJS.Module;
  }

  /** Executes a cell (its code and, as JupyterLab sends it, its id), returning what it sent. */
  execute(code: string, run: () => void, cellId?: string): Sent {
    const sent: Sent = [];
    const write: Writer = (msg) => {
      const html = String(msg.data["text/html"] ?? "");
      const build = /data-d2l-plotly="(\w+)"/.exec(html)?.[1];
      sent.push(build ? `carrier:${build}` : "application/vnd.plotly.v1+json" in msg.data ? "chart" : "other");
    };
    const server = this.exports.server as { handleExecute(sock: unknown, msg: unknown): void };
    server.handleExecute(null, { content: { code, run }, metadata: cellId ? { cellId } : {}, write });
    return sent;
  }

  remove() {
    delete require.cache[this.key];
  }
}

const figure = (type: string): Figure => ({ data: [{ type, x: [1, 2], y: [3, 4] }], layout: { width: 300, height: 200 } });

describe("the carrier in a kernel session", () => {
  const kernel = new FakeTslab();
  afterAll(() => kernel.remove());

  it("a notebook without charts carries no plotly.js (initBackend sends none)", async () => {
    const sent = kernel.execute("await d2l.initBackend();", () => undefined);
    await initBackend(undefined, { quiet: true });
    expect(sent).toEqual([]);
    expect(kernel.execute("const x = 1;", () => undefined)).toEqual([]);
  });

  it("the first chart brings the cartesian bundle ahead of it; later charts bring none", () => {
    expect(kernel.execute("d2l.plot(a)", () => showFigure(figure("scatter")), "cell-a")).toEqual(["carrier:cartesian", "chart"]);
    expect(kernel.execute("d2l.plot(b)", () => showFigure(figure("heatmap")), "cell-b")).toEqual(["chart"]);
  });

  it("a trace outside the cartesian bundle brings the full bundle, once", () => {
    expect(kernel.execute("polar", () => showFigure(figure("scatterpolar")))).toEqual(["carrier:full", "chart"]);
    expect(kernel.execute("surface", () => showFigure(figure("surface")))).toEqual(["chart"]);
    expect(kernel.execute("d2l.plot(c)", () => showFigure(figure("bar")))).toEqual(["chart"]);
  });

  it("re-running a cell that carries a build sends that build again first, whatever the cell now draws", () => {
    // Known by JupyterLab's cell id, even edited; without an id (classic notebook, nbclient), by its code.
    expect(kernel.execute("d2l.plot(a, { xlabel: 'x' })", () => showFigure(figure("scatter")), "cell-a")).toEqual(["carrier:cartesian", "chart"]);
    expect(kernel.execute("polar", () => undefined)).toEqual(["carrier:full"]);
    expect(kernel.execute("d2l.plot(b)", () => showFigure(figure("heatmap")), "cell-b")).toEqual(["chart"]);
    expect(kernel.execute("d2l.plot(a)", () => showFigure(figure("scatter")), "cell-other")).toEqual(["chart"]);
  });
});
