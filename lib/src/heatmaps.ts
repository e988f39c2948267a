import * as tf from "@tensorflow/tfjs";
import { Figure, Layout, PIXELS_PER_INCH, Trace, showFigure } from "./figure";
import { ArgumentError, checkFinite } from "./validate";

/** The color maps {@link showHeatmaps} knows, by matplotlib's names. */
export type Colormap = "Reds" | "Blues" | "gray" | "RdBu";

/**
 * Each map as Plotly color stops (matplotlib's colors). "RdBu" is diverging: its white middle
 * is zero, red negative and blue positive, so a signed matrix (an edge detector's output) reads at a glance.
 */
const COLORMAPS: Record<Colormap, [number, string][]> = {
  Reds: [[0, "#fff5f0"], [0.25, "#fcbba1"], [0.5, "#fb6a4a"], [0.75, "#cb181d"], [1, "#67000d"]],
  Blues: [[0, "#f7fbff"], [0.25, "#c6dbef"], [0.5, "#6baed6"], [0.75, "#2171b5"], [1, "#08306b"]],
  gray: [[0, "#000000"], [1, "#ffffff"]],
  RdBu: [[0, "#67001f"], [0.25, "#f4a582"], [0.5, "#f7f7f7"], [0.75, "#92c5de"], [1, "#053061"]],
};

const MARGIN = { t: 8, r: 70, b: 8, l: 8 };
const LABEL_SPACE = 36;
const TITLE_SPACE = 22;
const TICK_SPACE = 22;
const GAP = 12;
/** A thin frame around each matrix, so that white cells at its border stay visible. */
const FRAME = { showline: true, mirror: true, linecolor: "#999" } as const;

/** Values rounded to 4 significant decimals: plenty for a picture, and much less JSON. */
const round = (v: number): number => Math.round(v * 1e4) / 1e4;

/** The matrices as nested arrays [rows][cols][h][w], checked to be 4-D and finite. */
function toGrid(matrices: tf.Tensor | number[][][][]): number[][][][] {
  const fn = "showHeatmaps";
  const expected = "a 4-D tensor or array [rows, cols, height, width] of finite numbers";
  let grid: number[][][][];
  if (matrices instanceof tf.Tensor) {
    if (matrices.rank !== 4) throw new ArgumentError(fn, "matrices", expected, matrices);
    grid = matrices.arraySync() as number[][][][];
  } else if (Array.isArray(matrices) && matrices.every((r) => Array.isArray(r) && r.every((m) => Array.isArray(m) && m.every(Array.isArray)))) {
    grid = matrices;
  } else {
    throw new ArgumentError(fn, "matrices", expected, matrices);
  }
  const [h, w] = [grid[0]?.[0]?.length ?? 0, grid[0]?.[0]?.[0]?.length ?? 0];
  if (h === 0 || w === 0) throw new ArgumentError(fn, "matrices", expected + ", none of them empty", matrices);
  for (const row of grid) {
    if (row.length !== grid[0].length) throw new ArgumentError(fn, "matrices", expected + " (every row as long)", matrices);
    for (const m of row) {
      if (m.length !== h || m.some((r) => r.length !== w || r.some((v) => !Number.isFinite(v)))) {
        throw new ArgumentError(fn, "matrices", `${expected}, each ${h} x ${w}`, matrices);
      }
    }
  }
  return grid;
}

/**
 * Builds the figure of {@link showHeatmaps} without showing it.
 */
export function heatmapsFigure(
  matrices: tf.Tensor | number[][][][],
  xlabel: string,
  ylabel: string,
  titles?: string[],
  figsize: [number, number] = [2.5, 2.5],
  cmap: Colormap = "Reds",
): Figure {
  const fn = "showHeatmaps";
  const grid = toGrid(matrices);
  if (!(cmap in COLORMAPS)) throw new ArgumentError(fn, "cmap", `one of ${Object.keys(COLORMAPS).join(", ")}`, cmap);
  if (!Array.isArray(figsize) || figsize.length !== 2) throw new ArgumentError(fn, "figsize", "[width, height] in inches", figsize);
  figsize.forEach((v, i) => {
    checkFinite(fn, `figsize[${i}]`, v);
    if (v <= 0) throw new ArgumentError(fn, `figsize[${i}]`, "positive", v);
  });
  const [numRows, numCols] = [grid.length, grid[0].length];
  const [h, w] = [grid[0][0].length, grid[0][0][0].length];
  if (titles !== undefined && (!Array.isArray(titles) || (titles.length !== numCols && titles.length !== numRows * numCols))) {
    throw new ArgumentError(fn, "titles", `${numCols} titles (one per column) or ${numRows * numCols} (one per matrix)`, titles);
  }

  // One color scale for every matrix, so that the single color bar is true of all of them.
  const values = grid.flat(3);
  let zmin = Math.min(...values);
  let zmax = Math.max(...values);
  if (cmap === "RdBu") [zmin, zmax] = [-Math.max(Math.abs(zmin), Math.abs(zmax)), Math.max(Math.abs(zmin), Math.abs(zmax))];
  if (zmin === zmax) [zmin, zmax] = [zmin - 1, zmax + 1];

  // Square pixels: the largest cells that fit in figsize, then the figure shrinks around them.
  const titleSpace = titles ? TITLE_SPACE : 0;
  const left = MARGIN.l + (ylabel ? LABEL_SPACE : 0) + TICK_SPACE;
  const bottom = MARGIN.b + (xlabel ? LABEL_SPACE : 0) + TICK_SPACE;
  const availW = figsize[0] * PIXELS_PER_INCH - left - MARGIN.r - GAP * (numCols - 1);
  const availH = figsize[1] * PIXELS_PER_INCH - MARGIN.t - bottom - (GAP + titleSpace) * numRows + GAP;
  const pixel = Math.max(2, Math.floor(Math.min(availW / (numCols * w), availH / (numRows * h)))); // whole pixels: exact squares
  const [cellW, cellH] = [pixel * w, pixel * h];
  const plotW = numCols * cellW + GAP * (numCols - 1);
  const plotH = numRows * (cellH + titleSpace) + GAP * (numRows - 1);
  const layout: Layout = {
    width: Math.round(plotW + left + MARGIN.r),
    height: Math.round(plotH + MARGIN.t + bottom),
    margin: { l: left, r: MARGIN.r, t: MARGIN.t, b: bottom },
    showlegend: false,
    annotations: [],
  };
  const data: Trace[] = [];
  grid.forEach((row, i) => {
    row.forEach((z, j) => {
      const k = i * numCols + j;
      const suffix = k === 0 ? "" : String(k + 1);
      const x0 = (j * (cellW + GAP)) / plotW;
      const yTop = 1 - (i * (cellH + titleSpace + GAP) + titleSpace) / plotH;
      const xDomain: [number, number] = [x0, x0 + cellW / plotW];
      const yDomain: [number, number] = [yTop - cellH / plotH, yTop];
      const bottomRow = i === numRows - 1;
      const firstCol = j === 0;
      layout[`xaxis${suffix}`] = {
        domain: xDomain, anchor: `y${suffix}`, range: [-0.5, w - 0.5], showgrid: false, zeroline: false, ...FRAME,
        showticklabels: bottomRow, ...(bottomRow && xlabel ? { title: { text: xlabel } } : {}),
      };
      layout[`yaxis${suffix}`] = {
        domain: yDomain, anchor: `x${suffix}`, range: [h - 0.5, -0.5], showgrid: false, zeroline: false, ...FRAME,
        showticklabels: firstCol, ...(firstCol && ylabel ? { title: { text: ylabel } } : {}),
      };
      const title = titles === undefined ? undefined : titles.length === numCols ? titles[j] : titles[k];
      if (title !== undefined) {
        layout.annotations!.push({
          text: String(title), xref: "paper", yref: "paper", x: (xDomain[0] + xDomain[1]) / 2, y: yTop,
          xanchor: "center", yanchor: "bottom", showarrow: false, font: { size: 12 },
        });
      }
      data.push({
        type: "heatmap",
        z: z.map((r) => r.map(round)),
        xaxis: `x${suffix}`,
        yaxis: `y${suffix}`,
        colorscale: COLORMAPS[cmap],
        zmin,
        zmax,
        showscale: k === 0,
        ...(k === 0 ? { colorbar: { len: Math.min(1, 0.6 + 0.2 * numRows), thickness: 12, x: 1, xpad: 10 } } : {}),
        hoverinfo: "x+y+z",
        name: title ?? `matrix ${i},${j}`,
      });
    });
  });
  return { data, layout };
}

/**
 * Plots a grid of matrices as heatmaps, as d2l's `show_heatmaps`: `matrices` has shape
 * [rows, cols, height, width], drawn row by row with `xlabel` under the bottom row, `ylabel` beside
 * the first column and `titles` above (one per column, as d2l, or one per matrix). All share one
 * color scale and one color bar; `cmap` "RdBu" centers it on zero (red negative, blue positive).
 * Each matrix element is a square pixel; the figure is at most `figsize` inches. Row 0 is at the
 * top, as in an image.
 * @see d2l.show_heatmaps (section 10.1.3, visualizing attention), used here from chapter 6 on
 */
export function showHeatmaps(
  matrices: tf.Tensor | number[][][][],
  xlabel: string,
  ylabel: string,
  titles?: string[],
  figsize: [number, number] = [2.5, 2.5],
  cmap: Colormap = "Reds",
): void {
  showFigure(heatmapsFigure(matrices, xlabel, ylabel, titles, figsize, cmap));
}
