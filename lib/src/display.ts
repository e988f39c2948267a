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

let plotlyBundle: string | undefined;
let plotlySentInKernel = false;

/** The plotly.js bundle, read once from the installed `plotly.js-dist-min`. */
function plotlySource(): string {
  plotlyBundle ??= scriptSafe(readFileSync(require.resolve("plotly.js-dist-min"), "utf8"));
  return plotlyBundle;
}

/**
 * Sends plotly.js (about 4.8 MB) as an output of its own, the first time a kernel session
 * shows a chart, unless `sendPlotly` already did: the bundle travels once per notebook, and
 * the charts' own outputs stay small, so redrawing one in place never drops it.
 */
export function sendPlotlyOnce(): void {
  if (!plotlySentInKernel) sendPlotly();
}

/**
 * Sends plotly.js as an output of the running cell, every time. `initBackend` does, so that
 * it lands in a notebook's first cell: had it travelled with the first chart, re-running
 * that chart's cell (a training, say) would clear it, and the saved notebook and its HTML
 * export would lose every chart's plotly.js.
 */
export function sendPlotly(): void {
  if (!inKernel()) return;
  displayBundle({ "text/html": plotlyOutputHtml(), "text/plain": "" });
  plotlySentInKernel = true;
}

/**
 * The `text/html` output that carries plotly.js: the bundle, then the drawing of charts whose
 * script ran before it and queued itself in `window.d2lPlotlyWaiting`. A front end that
 * renders outputs out of order (one that attaches cells lazily, bottom first) still draws
 * them; JupyterLab 4.6 rendered them in order in every windowing mode tried.
 */
export function plotlyOutputHtml(): string {
  return `<script type="text/javascript">${plotlySource()}</script>
<script type="text/javascript">(window.d2lPlotlyWaiting || []).splice(0).forEach(function (draw) { draw(); });</script>`;
}
