import { DisplayHandle, MimeBundle, PLOTLY_MIME, displayBundle, ensurePlotly, inKernel, plotlyBuildFor, scriptSafe } from "./display";
import { recoverFromInterrupt } from "./engine/interrupt";

/**
 * One Plotly trace: the attributes d2l's own charts use, typed. Any other trace type or attribute
 * of Plotly's (a learner's `scatterpolar` or `surface`, say) passes through to Plotly; a type
 * outside Plotly's cartesian bundle makes the notebook carry the full plotly.js (display.ts).
 */
export interface Trace {
  type: "scatter" | "heatmap" | "bar" | (string & {});
  x?: number[];
  y?: number[];
  z?: number[][];
  mode?: "lines" | "markers" | "lines+markers";
  name?: string;
  showlegend?: boolean;
  xaxis?: string;
  yaxis?: string;
  line?: { color?: string; dash?: string; width?: number };
  marker?: { color?: string; size?: number; symbol?: string; opacity?: number };
  colorscale?: string | [number, string][];
  showscale?: boolean;
  zmin?: number;
  zmax?: number;
  zmid?: number;
  colorbar?: Record<string, unknown>;
  hoverinfo?: string;
  [attribute: string]: unknown;
}

/** A Plotly axis: the subset of Plotly's axis attributes d2l uses. */
export interface Axis {
  title?: { text: string };
  type?: "linear" | "log";
  range?: [number, number];
  domain?: [number, number];
  anchor?: string;
  showgrid?: boolean;
  zeroline?: boolean;
  visible?: boolean;
  autorange?: boolean | "reversed";
  scaleanchor?: string;
  showticklabels?: boolean;
  exponentformat?: "none" | "e" | "E" | "power" | "SI" | "B";
  showline?: boolean;
  mirror?: boolean;
  linecolor?: string;
}

/** A Plotly layout: size, margins, axes (`xaxis`, `yaxis`, `xaxis2`, ...), legend. */
export interface Layout {
  width: number;
  height: number;
  title?: { text: string };
  margin?: { l: number; r: number; t: number; b: number };
  showlegend?: boolean;
  legend?: Record<string, unknown>;
  annotations?: Record<string, unknown>[];
  grid?: Record<string, unknown>;
  [axis: `xaxis${string}` | `yaxis${string}`]: Axis | undefined;
  /** Any other layout attribute of Plotly's (`polar`, `scene`, ...). */
  [attribute: string]: unknown;
}

/** A chart ready to show: Plotly's data and layout. */
export interface Figure {
  data: Trace[];
  layout: Layout;
}

/** Pixels per inch when converting d2l's matplotlib `figsize` (inches) to Plotly's pixels. */
export const PIXELS_PER_INCH = 150;

const PLOTLY_CONFIG = { responsive: true, displaylogo: false };

/** A one-line text description of a figure, the `text/plain` form of a chart. */
export function describeFigure(fig: Figure): string {
  const names = fig.data.map((t, i) => t.name ?? `trace ${i}`).join(", ");
  return `<Figure ${fig.layout.width}x${fig.layout.height}: ${fig.data.length} trace(s): ${names}>`;
}

/** Data arrays of at least this many numbers go out as typed arrays (see {@link compactFigure}). */
export const TYPED_ARRAY_MIN_LENGTH = 64;

/** Plotly's JSON form of a typed array: base64 bytes, their type, and for a 2-D array its shape. */
export interface TypedArraySpec {
  dtype: "u1" | "i2" | "i4" | "f4" | "f8";
  bdata: string;
  shape?: string;
}

/** The smallest typed array that holds `values`: integers as bytes, shorts or ints, other numbers as float32. */
function typedArray(values: number[]): { dtype: TypedArraySpec["dtype"]; array: ArrayBufferView } {
  let min = Infinity;
  let max = -Infinity;
  let integers = true;
  for (const v of values) {
    if (!Number.isInteger(v)) integers = false;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  if (integers && min >= 0 && max <= 255) return { dtype: "u1", array: Uint8Array.from(values) };
  if (integers && min >= -32768 && max <= 32767) return { dtype: "i2", array: Int16Array.from(values) };
  if (integers && min >= -(2 ** 31) && max < 2 ** 31) return { dtype: "i4", array: Int32Array.from(values) };
  if (integers) return { dtype: "f8", array: Float64Array.from(values) };
  return { dtype: "f4", array: Float32Array.from(values) };
}

function isNumbers(value: unknown): value is number[] {
  return Array.isArray(value) && value.every((v) => typeof v === "number");
}

/** `value` as a typed array spec when it is a long enough array of numbers (1-D, or 2-D with equal rows), else as it is. */
function compactArray(value: unknown): unknown {
  if (!Array.isArray(value)) return value;
  let flat: number[];
  let shape: string | undefined;
  if (isNumbers(value)) {
    flat = value;
  } else if (value.length > 0 && value.every((row) => isNumbers(row) && row.length === (value[0] as number[]).length)) {
    flat = (value as number[][]).flat();
    shape = `${value.length},${(value[0] as number[]).length}`;
  } else {
    return value;
  }
  if (flat.length < TYPED_ARRAY_MIN_LENGTH) return value;
  const { dtype, array } = typedArray(flat);
  const bdata = Buffer.from(array.buffer, array.byteOffset, array.byteLength).toString("base64");
  return shape ? { dtype, bdata, shape } : { dtype, bdata };
}

/**
 * The figure as it goes into the notebook: each long data array (x, y, z, ... with at least
 * {@link TYPED_ARRAY_MIN_LENGTH} numbers) as Plotly's base64 typed array (`{dtype, bdata, shape}`,
 * plotly.js 2.28 and later, what plotly.py 6 sends), the rest as it is. A 1401-point curve takes about
 * 7.5 KB instead of 30 (and a saved notebook writes each plain number on a line of its own). Numbers
 * that are not integers go out as float32, the precision of the tensors they come from; short
 * arrays (a training curve's epochs) stay plain JSON.
 */
export function compactFigure(fig: Figure): Figure {
  const data = fig.data.map((trace) => Object.fromEntries(Object.entries(trace).map(([key, value]) => [key, compactArray(value)])) as Trace);
  return { data, layout: fig.layout };
}

let figureCount = 0;

/** The `text/html` form: a div and a script that draws into it with the page's plotly.js. */
function figureHtml(fig: Figure): string {
  const id = `d2l-fig-${Date.now().toString(36)}-${(figureCount++).toString(36)}`;
  const spec = scriptSafe(JSON.stringify({ data: fig.data, layout: fig.layout, config: PLOTLY_CONFIG }));
  const { width, height } = fig.layout;
  return `<div class="d2l-figure" style="max-width:${width}px">
<div id="${id}" class="d2l-plot" style="width:100%;height:${height}px"></div>
<div id="${id}-msg" class="d2l-plot-message" style="font:13px sans-serif;color:#a33">This chart needs JavaScript and plotly.js: trust the notebook, or run it again from the top (plotly.js is sent with its first chart).</div>
</div>
<script type="text/javascript">
(function () {
  var el = document.getElementById(${JSON.stringify(id)});
  var msg = document.getElementById(${JSON.stringify(id + "-msg")});
  if (!el) return;
  var spec = ${spec};
  function draw() { window.Plotly.newPlot(el, spec.data, spec.layout, spec.config).then(function () { if (msg) msg.remove(); }); }
  // No plotly.js yet (outputs rendered out of order): its output draws the waiting charts when it runs.
  if (window.Plotly) draw(); else (window.d2lPlotlyWaiting = window.d2lPlotlyWaiting || []).push(draw);
})();
</script>`;
}

/**
 * The MIME bundle of a figure: Plotly JSON (JupyterLab, VS Code), HTML (nbconvert, classic notebook),
 * text; long data arrays in both as typed arrays ({@link compactFigure}).
 */
export function figureBundle(fig: Figure): MimeBundle {
  const compact = compactFigure(fig);
  return {
    [PLOTLY_MIME]: { data: compact.data, layout: compact.layout, config: PLOTLY_CONFIG },
    "text/html": figureHtml(compact),
    "text/plain": describeFigure(fig),
  };
}

/**
 * Shows a figure in the running notebook cell, or redraws `handle`'s output in place.
 * Outside a Jupyter kernel nothing is drawn. Returns nothing, so that a cell ending in a
 * plot shows the chart and not the figure's JSON.
 */
export function showFigure(fig: Figure, handle?: DisplayHandle): void {
  recoverFromInterrupt();
  if (!inKernel()) return;
  ensurePlotly(plotlyBuildFor(fig.data.map((trace) => trace.type)));
  const bundle = figureBundle(fig);
  if (handle) handle.show(bundle);
  else displayBundle(bundle);
}
