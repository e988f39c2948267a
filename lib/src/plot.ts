import * as tf from "@tensorflow/tfjs";
import { Axis, Figure, PIXELS_PER_INCH, Trace, showFigure } from "./figure";
import { ArgumentError } from "./validate";

/** Values to plot: an array, a typed array or a tensor (flattened). */
export type Series = ArrayLike<number> | tf.Tensor;

/** d2l's `plot` options; sizes are in inches like matplotlib's, formats are matplotlib's. */
export interface PlotOptions {
  xlabel?: string;
  ylabel?: string;
  /** One name per line. */
  legend?: string[];
  xlim?: [number, number];
  ylim?: [number, number];
  xscale?: "linear" | "log";
  yscale?: "linear" | "log";
  /** matplotlib format strings, one per line, cycled: color letter, line style, marker. */
  fmts?: string[];
  /** [width, height] in inches. */
  figsize?: [number, number];
  title?: string;
}

/** d2l's default line formats: solid, magenta dashed, green dash-dot, red dotted. */
export const DEFAULT_FMTS = ["-", "m--", "g-.", "r:"];

const COLORS: Record<string, string> = {
  b: "#1f77b4", g: "#2ca02c", r: "#d62728", c: "#17becf",
  m: "#c71585", y: "#bcbd22", k: "#000000", w: "#ffffff",
};
const DASHES: Record<string, string> = { "--": "dash", "-.": "dashdot", ":": "dot", "-": "solid" };
const MARKERS: Record<string, string> = {
  o: "circle", ".": "circle", x: "x", "+": "cross", "*": "star", s: "square", "^": "triangle-up", v: "triangle-down", d: "diamond",
};
/** matplotlib's default color cycle, for formats that name no color. */
const CYCLE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];

/** Turns a matplotlib format string ('-', 'm--', 'g-.', 'r:', 'o', 'b.-') into Plotly line and marker styles. */
export function parseFmt(fmt: string, index: number): Pick<Trace, "mode" | "line" | "marker"> {
  let rest = fmt;
  let color: string | undefined;
  const colorLetter = rest.match(/[bgrcmykw]/);
  if (colorLetter) {
    color = COLORS[colorLetter[0]];
    rest = rest.replace(colorLetter[0], "");
  }
  color ??= CYCLE[index % CYCLE.length];
  const dashKey = ["--", "-.", ":", "-"].find((d) => rest.includes(d));
  if (dashKey) rest = rest.replace(dashKey, "");
  const markerKey = Object.keys(MARKERS).find((m) => rest.includes(m));
  if (rest.replace(markerKey ?? "", "").length > 0) {
    throw new Error(`plot: fmts entry "${fmt}" is not a matplotlib format (color letter, line style, marker)`);
  }
  const hasLine = dashKey !== undefined || markerKey === undefined;
  const mode = hasLine && markerKey ? "lines+markers" : hasLine ? "lines" : "markers";
  return {
    mode,
    line: hasLine ? { color, dash: DASHES[dashKey ?? "-"], width: 2 } : undefined,
    marker: markerKey ? { color, symbol: MARKERS[markerKey], size: markerKey === "." ? 4 : 7 } : undefined,
  };
}

function toNumbers(values: Series, name: string): number[] {
  if (values instanceof tf.Tensor) return Array.from(values.dataSync());
  if (values === null || typeof values !== "object" || typeof values.length !== "number") {
    throw new Error(`plot: ${name} must be an array, a typed array or a tensor; got ${values === null ? "null" : typeof values}`);
  }
  return Array.from(values, Number);
}

/** True when `v` holds several series rather than one: an array of arrays, or a 2-D tensor. */
function isSeriesList(v: Series | Series[]): v is Series[] {
  if (v instanceof tf.Tensor) return false;
  return Array.isArray(v) && v.length > 0 && typeof v[0] === "object";
}

function asSeriesList(v: Series | Series[], name: string): number[][] {
  // A [n, 1] or [1, n] tensor (a column of labels, say) is one series, as matplotlib reads it.
  if (v instanceof tf.Tensor && v.rank === 2 && !v.shape.includes(1)) return (v.arraySync() as number[][]).map((row, i) => toNumbers(row, `${name}[${i}]`));
  return isSeriesList(v) ? v.map((s, i) => toNumbers(s, `${name}[${i}]`)) : [toNumbers(v, name)];
}

function axis(name: "x" | "y", label: string | undefined, scale: "linear" | "log" | undefined, lim: [number, number] | undefined): Axis {
  if (scale === "log" && lim && !(lim[0] > 0 && lim[1] > 0)) {
    throw new ArgumentError("plot", `${name}lim`, `positive on a log axis (${name}scale "log")`, `[${lim.join(", ")}]`);
  }
  const range = lim && (scale === "log" ? ([Math.log10(lim[0]), Math.log10(lim[1])] as [number, number]) : lim);
  return {
    title: label ? { text: label } : undefined,
    type: scale ?? "linear",
    range,
    showgrid: true,
    zeroline: false,
    // Plotly's default SI suffixes ("100µ") read oddly on a log axis; 10⁻⁴ doesn't.
    exponentformat: scale === "log" ? "power" : undefined,
  };
}

/** The Plotly layout for d2l-style options: size from `figsize`, labels, limits and scales. */
export function layoutFor(options: PlotOptions) {
  const [w, h] = options.figsize ?? [3.5, 2.5];
  return {
    width: Math.round(w * PIXELS_PER_INCH),
    height: Math.round(h * PIXELS_PER_INCH),
    title: options.title ? { text: options.title } : undefined,
    margin: { l: 60, r: 20, t: options.title ? 40 : 20, b: 50 },
    showlegend: options.legend !== undefined && options.legend.length > 0,
    xaxis: axis("x", options.xlabel, options.xscale, options.xlim),
    yaxis: axis("y", options.ylabel, options.yscale, options.ylim),
  };
}

/**
 * Builds d2l's line chart without showing it: the same rules for X and Y as d2l's `plot`
 * (one X shared by several Y, or Y omitted to plot X against its index).
 */
export function lineFigure(X: Series | Series[], Y?: Series | Series[], options: PlotOptions = {}): Figure {
  let xs = asSeriesList(X, "X");
  let ys: number[][];
  if (Y === undefined) {
    ys = xs;
    xs = ys.map((y) => y.map((_, i) => i));
  } else {
    ys = asSeriesList(Y, "Y");
  }
  if (xs.length !== ys.length) {
    if (xs.length !== 1) throw new Error(`plot: got ${xs.length} X series for ${ys.length} Y series; give one X or one per Y`);
    xs = ys.map(() => xs[0]);
  }
  const fmts = options.fmts ?? DEFAULT_FMTS;
  const data: Trace[] = ys.map((y, i) => {
    if (xs[i].length !== y.length) {
      throw new Error(`plot: X has ${xs[i].length} values but Y[${i}] has ${y.length}`);
    }
    return { type: "scatter", x: xs[i], y, name: options.legend?.[i] ?? `line ${i}`, ...parseFmt(fmts[i % fmts.length], i) };
  });
  return { data, layout: layoutFor(options) };
}

/**
 * Plots data points, as d2l's `plot`: `plot(x, [y1, y2], { xlabel, legend: ["a", "b"] })`.
 * Shows the chart in the notebook; {@link lineFigure} builds the same figure without showing it.
 * @see d2l.plot (section 2.4, calculus)
 */
export function plot(X: Series | Series[], Y?: Series | Series[], options: PlotOptions = {}): void {
  showFigure(lineFigure(X, Y, options));
}

/**
 * A scatter plot of y against x, as the book's `d2l.plt.scatter(x, y, 1)`;
 * `size` is the marker size in pixels.
 */
export function scatter(x: Series, y: Series, options: PlotOptions & { size?: number } = {}): void {
  showFigure(scatterFigure(x, y, options));
}

/** Builds {@link scatter}'s figure without showing it. */
export function scatterFigure(x: Series, y: Series, options: PlotOptions & { size?: number } = {}): Figure {
  const fig = lineFigure(x, y, { ...options, fmts: options.fmts ?? ["o"] });
  for (const trace of fig.data) {
    if (trace.marker) trace.marker = { ...trace.marker, size: options.size ?? 4, opacity: 0.7 };
  }
  return fig;
}
