import { DisplayHandle, MimeBundle, PLOTLY_MIME, displayBundle, inKernel, scriptSafe, sendPlotlyOnce } from "./display";
import { recoverFromInterrupt } from "./engine/interrupt";

/** One Plotly trace: the subset of Plotly's trace attributes d2l uses. */
export interface Trace {
  type: "scatter" | "heatmap" | "bar";
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

/** The MIME bundle of a figure: Plotly JSON (JupyterLab, VS Code), HTML (nbconvert, classic notebook), text. */
export function figureBundle(fig: Figure): MimeBundle {
  return {
    [PLOTLY_MIME]: { data: fig.data, layout: fig.layout, config: PLOTLY_CONFIG },
    "text/html": figureHtml(fig),
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
  sendPlotlyOnce();
  const bundle = figureBundle(fig);
  if (handle) handle.show(bundle);
  else displayBundle(bundle);
}
