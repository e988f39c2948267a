import { randomBytes } from "crypto";
import { readFileSync } from "fs";

/** Plotly's MIME type: the chart's JSON, drawn by plotly's JupyterLab renderer and by VS Code. */
export const PLOTLY_MIME = "application/vnd.plotly.v1+json";

/** A Jupyter MIME bundle: one representation of the same output per MIME type. */
export type MimeBundle = Record<string, unknown>;

type WriteDisplayData = (
  data: { data: MimeBundle; metadata: Record<string, unknown>; transient: { display_id?: string } },
  update: boolean,
) => void;

/**
 * tslab's writer for the cell now running. tslab only exposes single-MIME displays, while a
 * plot needs several (Plotly JSON for JupyterLab and VS Code, HTML for nbconvert and classic
 * notebook), so we use the writer tslab sets for each execution. Looked up in the module
 * cache so that plain Node (tests, scripts) never loads tslab.
 */
function kernelWriter(): WriteDisplayData | undefined {
  for (const [path, mod] of Object.entries(require.cache)) {
    if (/[\\/]tslab[\\/]dist[\\/]jupyter\.js$/.test(path)) {
      const writer = (mod?.exports as { lastWriteDisplayData?: unknown } | undefined)?.lastWriteDisplayData;
      if (typeof writer === "function") return writer as WriteDisplayData;
    }
  }
  return undefined;
}

/** True when running inside a tslab Jupyter kernel, where rich outputs can be shown. */
export function inKernel(): boolean {
  return kernelWriter() !== undefined;
}

/**
 * An output area that can be drawn again in place (Jupyter's `update_display_data`), as
 * tslab's `newDisplay()` does, but for a whole MIME bundle. Outside a kernel `show` returns false.
 */
export class DisplayHandle {
  /** The Jupyter display id shared by every update of this output. */
  readonly id = randomBytes(8).toString("hex");
  private shown = false;

  /**
   * Shows the bundle, replacing what this handle showed before. An update of a Plotly chart
   * goes out twice, first without its Plotly JSON: JupyterLab reuses an output's renderer
   * when the preferred MIME type stays the same, and plotly's Lab renderer (jupyterlab-plotly)
   * ignores new data once it has drawn, so a single update would leave the first epoch on
   * screen. The switch to `text/html` and back makes Lab build a fresh renderer; front ends
   * that render `text/html` (classic notebook, nbconvert) just draw twice. Set
   * `D2L_PLOTLY_REDRAW=0` to send each update once.
   */
  show(bundle: MimeBundle): boolean {
    const write = kernelWriter();
    if (!write) return false;
    if (this.shown && PLOTLY_MIME in bundle && process.env.D2L_PLOTLY_REDRAW !== "0") {
      const { [PLOTLY_MIME]: _plotly, ...withoutPlotly } = bundle;
      write({ data: withoutPlotly, metadata: {}, transient: { display_id: this.id } }, true);
    }
    write({ data: bundle, metadata: {}, transient: { display_id: this.id } }, this.shown);
    this.shown = true;
    return true;
  }
}

/** Shows a MIME bundle as a new output of the running cell; returns false outside a kernel. */
export function displayBundle(bundle: MimeBundle): boolean {
  const write = kernelWriter();
  if (!write) return false;
  write({ data: bundle, metadata: {}, transient: {} }, false);
  return true;
}

/**
 * Makes JavaScript or JSON safe to embed in an inline `<script>`: a `</script` inside would
 * end the element early. `<\/` means the same in JS strings, regexes and JSON.
 */
export function scriptSafe(text: string): string {
  return text.replace(/<\/script/gi, "<\\/script");
}

/**
 * The plotly.js builds d2l sends: Plotly's partial "cartesian" bundle (plotly.js-cartesian-dist-min,
 * about 1.5 MB: every chart of the book) and the full one (plotly.js-dist-min, about 4.8 MB, every
 * trace type), the same plotly.js version.
 */
export type PlotlyBuild = "cartesian" | "full";

/** The trace types the cartesian bundle registers (its README; test/unit/plotly-carrier.test.ts reads the bundle). */
export const CARTESIAN_TRACE_TYPES: ReadonlySet<string> = new Set([
  "bar", "box", "contour", "heatmap", "histogram", "histogram2d", "histogram2dcontour", "image", "pie", "scatter", "scatterternary", "violin",
]);

/** The smallest build that draws every trace of `types` (a trace without a type is a scatter, as in Plotly). */
export function plotlyBuildFor(types: Iterable<string | undefined>): PlotlyBuild {
  for (const type of types) if (!CARTESIAN_TRACE_TYPES.has(type ?? "scatter")) return "full";
  return "cartesian";
}

const PLOTLY_FILES: Record<PlotlyBuild, string> = {
  cartesian: "plotly.js-cartesian-dist-min/plotly-cartesian.min.js",
  full: "plotly.js-dist-min/plotly.min.js",
};
const plotlySources: Partial<Record<PlotlyBuild, string>> = {};

/** A plotly.js build's source, read once from its npm package. */
function plotlySource(build: PlotlyBuild): string {
  return (plotlySources[build] ??= scriptSafe(readFileSync(require.resolve(PLOTLY_FILES[build]), "utf8")));
}

/**
 * The `text/html` output that carries plotly.js (`data-d2l-plotly` names the build): the bundle,
 * then the drawing of charts whose script ran before it and queued itself in
 * `window.d2lPlotlyWaiting`. A front end that renders outputs out of order (one that attaches cells
 * lazily, bottom first) still draws them. The full build, loaded after the cartesian one, replaces
 * `window.Plotly`; charts already drawn stay as they are.
 */
export function plotlyOutputHtml(build: PlotlyBuild = "cartesian"): string {
  return `<script type="text/javascript" data-d2l-plotly="${build}">${plotlySource(build)}</script>
<script type="text/javascript">(window.d2lPlotlyWaiting || []).splice(0).forEach(function (draw) { draw(); });</script>`;
}

/** An output that carries plotly.js in the notebook: its build and the cell that sent it. */
interface Carrier {
  build: PlotlyBuild;
  cell: string | undefined;
}
/** The outputs this kernel session sent that carry plotly.js, at most one per build. */
const carriers = new Map<PlotlyBuild, Carrier>();

function sendCarrier(build: PlotlyBuild, write: WriteDisplayData, cell: string | undefined): void {
  write({ data: { "text/html": plotlyOutputHtml(build), "text/plain": "" }, metadata: {}, transient: {} }, false);
  carriers.set(build, { build, cell });
}

/**
 * Makes sure the notebook carries a plotly.js build that draws `build`'s traces, sending it as an
 * output of the running cell, ahead of its chart, when the kernel session has sent none yet: the
 * cartesian bundle for the book's charts, the full one the first time a trace outside it is drawn.
 * A notebook without charts carries none. Re-running the cell that carries a build (its outputs are
 * cleared) sends that build again as the cell starts (see {@link useCarrierResend}), so the saved
 * notebook and its HTML keep every chart drawable.
 */
export function ensurePlotly(build: PlotlyBuild): void {
  const write = kernelWriter();
  if (!write) return;
  useCarrierResend();
  if (carriers.has("full") || carriers.has(build)) return;
  sendCarrier(build, write, cellOf.get(write));
}

/** The cell each execution runs (JupyterLab's cellId, else its code), by the execution's display writer. */
const cellOf = new WeakMap<WriteDisplayData, string>();
const RESEND = Symbol.for("d2l.plotlyCarrierResend");

interface TslabModule {
  JupyterHandlerImpl?: { prototype: Record<string | symbol, unknown> };
  ZmqServer?: { prototype: Record<string | symbol, unknown> };
}

/**
 * Hooks tslab's execution of a cell (once per kernel): when a cell that sent a plotly.js carrier
 * runs again, the front end clears its outputs, carrier included, so the carrier goes out again
 * before the cell's code runs, whatever the code now draws. A cell is known by the `cellId`
 * JupyterLab sends with each request, else by its code (the classic notebook and nbclient send no
 * id: an edited carrier cell then loses its carrier; `npm run export` puts it back). Not in d2l:
 * it keeps plotly.js in a notebook without sending it with every chart.
 */
export function useCarrierResend(): void {
  const mod = Object.entries(require.cache).find(([path]) => /[\\/]tslab[\\/]dist[\\/]jupyter\.js$/.test(path))?.[1]?.exports as TslabModule | undefined;
  const handler = mod?.JupyterHandlerImpl?.prototype;
  const server = mod?.ZmqServer?.prototype;
  if (!handler || !server || handler[RESEND] || typeof handler.handleExecuteImpl !== "function" || typeof server.handleExecute !== "function") return;
  handler[RESEND] = true;
  const cellIds = new WeakMap<object, string>();
  const serverExecute = server.handleExecute as (this: unknown, sock: unknown, msg: { content: object; metadata?: { cellId?: unknown } }) => unknown;
  server.handleExecute = function (this: unknown, sock: unknown, msg: { content: object; metadata?: { cellId?: unknown } }) {
    const id = msg?.metadata?.cellId;
    if (typeof id === "string" && msg.content) cellIds.set(msg.content, `id:${id}`);
    return serverExecute.call(this, sock, msg);
  };
  const execute = handler.handleExecuteImpl as (this: unknown, req: { code?: string }, ...rest: unknown[]) => unknown;
  handler.handleExecuteImpl = function (this: unknown, req: { code?: string }, writeStream: unknown, write: WriteDisplayData, ...rest: unknown[]) {
    const cell = cellIds.get(req) ?? `code:${req?.code ?? ""}`;
    if (typeof write === "function") {
      cellOf.set(write, cell);
      for (const carrier of [...carriers.values()]) if (carrier.cell === cell) sendCarrier(carrier.build, write, cell);
    }
    return execute.call(this, req, writeStream, write, ...rest);
  };
}
