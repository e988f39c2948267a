import * as tf from "@tensorflow/tfjs";
import { describe, expect, it } from "vitest";
import { figureBundle } from "../../lib/src/figure";
import { imagesFigure, showImages } from "../../lib/src/show-images";

/** n images of h x w whose pixel (r, c) of image i is (i + r + c) / 100. */
function images(n: number, h: number, w: number): tf.Tensor4D {
  return tf.tidy(() => {
    const i = tf.range(0, n).reshape([n, 1, 1, 1]);
    const r = tf.range(0, h).reshape([1, h, 1, 1]);
    const c = tf.range(0, w).reshape([1, 1, w, 1]);
    return i.add(r).add(c).div(100) as tf.Tensor4D;
  });
}

describe("imagesFigure / showImages", () => {
  it("lays out a 2x9 grid: one heatmap per image in its own square cell, titles above", () => {
    const X = images(18, 28, 28);
    const titles = Array.from({ length: 18 }, (_, i) => `image ${i}`);
    const before = tf.memory().numTensors;
    const fig = imagesFigure(X, 2, 9, titles);
    expect(tf.memory().numTensors).toBe(before);
    expect(fig.data).toHaveLength(18);
    expect(fig.layout.width).toBe(9 * 96 + 8 * 6);
    expect(fig.data.every((t) => t.type === "heatmap" && t.showscale === false)).toBe(true);
    expect(fig.data[0].xaxis).toBe("x");
    expect(fig.data[17].yaxis).toBe("y18");
    // Pixel (r, c) of image i is at z[r][c]; row 0 is drawn at the top (reversed y range).
    expect(fig.data[3].z![5][7]).toBeCloseTo((3 + 5 + 7) / 100, 4);
    expect(fig.layout.yaxis10?.range).toEqual([27.5, -0.5]);
    // Cells are square in pixels, inside the paper, and do not overlap.
    for (let k = 1; k <= 18; k++) {
      const suffix = k === 1 ? "" : String(k);
      const [x0, x1] = fig.layout[`xaxis${suffix}`]!.domain!;
      const [y0, y1] = fig.layout[`yaxis${suffix}`]!.domain!;
      expect((x1 - x0) * fig.layout.width).toBeCloseTo(96, 6);
      expect((y1 - y0) * fig.layout.height).toBeCloseTo(96, 6);
      expect(Math.min(x0, y0)).toBeGreaterThanOrEqual(-1e-9);
      expect(Math.max(x1, y1)).toBeLessThanOrEqual(1 + 1e-9);
    }
    const [a, b] = [fig.layout.xaxis!.domain!, fig.layout.xaxis2!.domain!];
    expect(b[0]).toBeGreaterThan(a[1]);
    const notes = fig.layout.annotations!;
    expect(notes.map((n) => n.text)).toEqual(titles);
    expect(notes[9]).toMatchObject({ xref: "paper", yref: "paper", yanchor: "bottom", showarrow: false });
    // The bundle embeds the titles for the HTML export.
    expect(String(figureBundle(fig)["text/html"])).toContain("image 17");
    X.dispose();
  });

  it("accepts [n, h, w] tensors and lists of images, draws at most rows x cols, and untitled grids", () => {
    const X = images(5, 4, 6);
    const X3 = X.reshape([5, 4, 6]);
    const fig = imagesFigure(X3, 1, 3, undefined, 1);
    expect(fig.data).toHaveLength(3);
    expect(fig.layout.annotations).toEqual([]);
    expect(fig.data[2].z).toHaveLength(4);
    expect(fig.data[2].z![0]).toHaveLength(6);
    const list = tf.unstack(X3);
    expect(imagesFigure(list, 2, 3).data).toHaveLength(5);
    expect(showImages(list, 2, 3)).toBeUndefined(); // outside a kernel: builds, shows nothing
    tf.dispose([X, X3, ...list]);
  });

  it("rejects colour images and bad grid arguments, naming them", () => {
    const rgb = tf.zeros([2, 4, 4, 3]);
    expect(() => imagesFigure(rgb, 1, 2)).toThrow(/showImages: imgs must be grayscale images, a tensor of shape \[n, h, w\] or \[n, h, w, 1\]; got a float32 tensor of shape \[2, 4, 4, 3\]/);
    expect(() => imagesFigure(rgb, 0, 2)).toThrow(/showImages: numRows must be a positive integer; got 0/);
    expect(() => imagesFigure(rgb, 1, 2, undefined, -1)).toThrow(/showImages: scale must be positive; got -1/);
    expect(() => imagesFigure([rgb], 1, 1)).toThrow(/showImages: imgs\[0\] must be a grayscale image/);
    rgb.dispose();
  });
});
