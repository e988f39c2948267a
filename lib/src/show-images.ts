import * as tf from "@tensorflow/tfjs";
import { Figure, Layout, Trace, showFigure } from "./figure";
import { ArgumentError, checkFinite, checkPositiveInt } from "./validate";

/** Pixels per image for `scale` 1 (d2l's default 1.5 gives 96 px: nine across fit a notebook). */
const PIXELS_PER_SCALE = 64;
/** Height of the title strip above each image, in pixels. */
const TITLE_HEIGHT = 18;
const GAP = 6;

/** Pixel values rounded to 4 decimals: plenty for a picture, and a third of the JSON a notebook stores. */
const round = (v: number): number => Math.round(v * 1e4) / 1e4;

/** Images as rows of pixel values: [n, h, w] or [n, h, w, 1] tensors, or a list of [h, w] / [h, w, 1] tensors. */
function toPixelRows(imgs: tf.Tensor | tf.Tensor[]): number[][][] {
  const fn = "showImages";
  const gray = (t: tf.Tensor, rank: number): boolean =>
    t.rank === rank || (t.rank === rank + 1 && t.shape[rank] === 1);
  if (imgs instanceof tf.Tensor) {
    if (!gray(imgs, 3)) {
      throw new ArgumentError(fn, "imgs", "grayscale images, a tensor of shape [n, h, w] or [n, h, w, 1]", imgs);
    }
    const [n, h, w] = imgs.shape;
    const rows = tf.tidy(() => imgs.reshape([n, h, w]).arraySync() as number[][][]);
    return rows.map((img) => img.map((row) => row.map(round)));
  }
  if (!Array.isArray(imgs)) throw new ArgumentError(fn, "imgs", "a tensor or an array of tensors", imgs);
  return imgs.map((img, i) => {
    if (!(img instanceof tf.Tensor) || !gray(img, 2)) {
      throw new ArgumentError(fn, `imgs[${i}]`, "a grayscale image, a tensor of shape [h, w] or [h, w, 1]", img);
    }
    const [h, w] = img.shape as [number, number];
    const rows = tf.tidy(() => img.reshape([h, w]).arraySync() as number[][]);
    return rows.map((row) => row.map(round));
  });
}

/**
 * Builds the figure of {@link showImages} without showing it: a grid of titled grayscale images.
 */
export function imagesFigure(
  imgs: tf.Tensor | tf.Tensor[],
  numRows: number,
  numCols: number,
  titles?: string[],
  scale = 1.5,
): Figure {
  checkPositiveInt("showImages", "numRows", numRows);
  checkPositiveInt("showImages", "numCols", numCols);
  checkFinite("showImages", "scale", scale);
  if (scale <= 0) throw new ArgumentError("showImages", "scale", "positive", scale);
  if (titles !== undefined && !Array.isArray(titles)) {
    throw new ArgumentError("showImages", "titles", "an array of strings", titles);
  }
  const pixels = toPixelRows(imgs).slice(0, numRows * numCols);
  const cell = Math.round(PIXELS_PER_SCALE * scale);
  const titled = titles !== undefined && titles.length > 0;
  // A title may have several lines ("true\npred" in predictCh3): Plotly breaks lines at <br>.
  const titleLines = Math.max(1, ...(titles ?? []).map((t) => String(t).split("\n").length));
  const titleHeight = titled ? TITLE_HEIGHT * titleLines : 0;
  const rowHeight = cell + titleHeight + GAP;
  const width = numCols * (cell + GAP) - GAP;
  const height = numRows * rowHeight - GAP;
  const layout: Layout = { width, height, margin: { l: 0, r: 0, t: 0, b: 0 }, showlegend: false, annotations: [] };
  const data: Trace[] = pixels.map((z, i) => {
    const row = Math.floor(i / numCols);
    const col = i % numCols;
    const suffix = i === 0 ? "" : String(i + 1);
    const x0 = (col * (cell + GAP)) / width;
    const y1 = 1 - (row * rowHeight + titleHeight) / height;
    const x: [number, number] = [x0, x0 + cell / width];
    const y: [number, number] = [y1 - cell / height, y1];
    const h = z.length;
    const w = z[0]?.length ?? 0;
    layout[`xaxis${suffix}`] = { domain: x, anchor: `y${suffix}`, visible: false, range: [-0.5, w - 0.5] };
    layout[`yaxis${suffix}`] = { domain: y, anchor: `x${suffix}`, visible: false, range: [h - 0.5, -0.5] };
    if (titled && titles[i] !== undefined) {
      layout.annotations!.push({
        text: String(titles[i]).replace(/\n/g, "<br>"),
        xref: "paper",
        yref: "paper",
        x: (x[0] + x[1]) / 2,
        y: y1,
        xanchor: "center",
        yanchor: "bottom",
        showarrow: false,
        font: { size: 12 },
      });
    }
    return {
      type: "heatmap",
      z,
      xaxis: `x${suffix}`,
      yaxis: `y${suffix}`,
      colorscale: [
        [0, "#ffffff"],
        [1, "#000000"],
      ],
      showscale: false,
      hoverinfo: "z",
      name: titles?.[i] ?? `image ${i}`,
    };
  });
  return { data, layout };
}

/**
 * Plots a grid of grayscale images, each titled, as d2l's `show_images`: `numRows` x `numCols`
 * cells filled row by row (extra images are left out), `scale` sets the size (1.5 gives about
 * 96 px per image). Dark is high: a dress shows dark on white. Nothing is returned, so a
 * notebook cell ending with it prints no object (use {@link imagesFigure} for the figure).
 * @see d2l.show_images (section 3.5.1)
 */
export function showImages(
  imgs: tf.Tensor | tf.Tensor[],
  numRows: number,
  numCols: number,
  titles?: string[],
  scale = 1.5,
): void {
  showFigure(imagesFigure(imgs, numRows, numCols, titles, scale));
}
