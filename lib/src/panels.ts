import { Axis, Figure, Layout, Trace, showFigure } from "./figure";
import { PlotOptions, Series, layoutFor, lineFigure } from "./plot";

/** One panel of {@link plotPanels}: what `plot` takes (its `figsize` is ignored; `title` heads the panel). */
export interface Panel {
  X: Series | Series[];
  Y?: Series | Series[];
  options?: PlotOptions;
}

/** Options for the whole row of panels: the figure's size in inches, and an overall title. */
export interface PanelsOptions {
  figsize?: [number, number];
  title?: string;
}

/** The horizontal space between two panels, as a fraction of the figure's width. */
const GAP = 0.09;

/**
 * Builds a row of line charts side by side, each with its own axes, labels and title, as
 * matplotlib's `plt.subplots(1, n)` does for the book's multi-panel figures.
 */
export function panelsFigure(panels: Panel[], options: PanelsOptions = {}): Figure {
  const n = panels.length;
  if (n === 0) throw new Error("plotPanels: panels must hold at least one panel; got none");
  const width = (1 - GAP * (n - 1)) / n;
  const hasTitles = panels.some((p) => p.options?.title);
  const base = layoutFor({ figsize: options.figsize ?? [2.6 * n, 2.4], title: options.title });
  const layout: Layout = {
    width: base.width,
    height: base.height,
    title: base.title,
    margin: { l: 50, r: 20, t: (options.title ? 40 : 10) + (hasTitles ? 25 : 0), b: 50 },
    showlegend: false,
  };
  const annotations: Record<string, unknown>[] = [];
  const data: Trace[] = [];
  panels.forEach((panel, i) => {
    const opts = panel.options ?? {};
    const fig = lineFigure(panel.X, panel.Y, { ...opts, title: undefined });
    const suffix = i === 0 ? "" : String(i + 1);
    const domain: [number, number] = [i * (width + GAP), i * (width + GAP) + width];
    layout[`xaxis${suffix}`] = { ...(fig.layout.xaxis as Axis), domain, anchor: `y${suffix}` };
    layout[`yaxis${suffix}`] = { ...(fig.layout.yaxis as Axis), anchor: `x${suffix}` };
    const withLegend = opts.legend !== undefined && opts.legend.length > 0;
    if (withLegend) layout.showlegend = true;
    for (const trace of fig.data) {
      // Without a legend, a line is named after its panel (what hovering over it shows).
      const name = withLegend ? trace.name : (opts.title ?? trace.name);
      data.push({ ...trace, name, xaxis: `x${suffix}`, yaxis: `y${suffix}`, showlegend: withLegend });
    }
    if (opts.title) {
      annotations.push({
        text: opts.title,
        xref: "paper",
        yref: "paper",
        x: (domain[0] + domain[1]) / 2,
        y: 1,
        xanchor: "center",
        yanchor: "bottom",
        showarrow: false,
        font: { size: 13 },
      });
    }
  });
  if (annotations.length > 0) layout.annotations = annotations;
  return { data, layout };
}

/**
 * Plots a row of line charts side by side, e.g. a loss, its likelihood and its gradient:
 * `plotPanels([{ X: x, Y: loss, options: { title: "loss" } }, ...])`.
 * @see d2l.plt.subplots, as used for the loss-function figures of section 3.4
 */
export function plotPanels(panels: Panel[], options: PanelsOptions = {}): void {
  showFigure(panelsFigure(panels, options));
}
