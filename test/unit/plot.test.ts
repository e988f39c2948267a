import * as tf from "@tensorflow/tfjs";
import { describe, expect, it } from "vitest";
import { TYPED_ARRAY_MIN_LENGTH, compactFigure, figureBundle, showFigure, type Figure, type TypedArraySpec } from "../../lib/src/figure";
import { lineFigure, parseFmt, plot, scatter, scatterFigure } from "../../lib/src/plot";

describe("parseFmt", () => {
  it("reads matplotlib's color, line style and marker", () => {
    expect(parseFmt("m--", 0)).toEqual({ mode: "lines", line: { color: "#c71585", dash: "dash", width: 2 }, marker: undefined });
    expect(parseFmt("g-.", 0).line).toMatchObject({ color: "#2ca02c", dash: "dashdot" });
    expect(parseFmt("r:", 0).line).toMatchObject({ color: "#d62728", dash: "dot" });
    expect(parseFmt("o", 0)).toMatchObject({ mode: "markers", line: undefined, marker: { symbol: "circle" } });
    expect(parseFmt("b.-", 0)).toMatchObject({ mode: "lines+markers", line: { dash: "solid" } });
    // No color letter: matplotlib's cycle by position.
    expect(parseFmt("-", 1).line?.color).toBe("#ff7f0e");
  });

  it("rejects what is not a format", () => {
    expect(() => parseFmt("zz", 0)).toThrow('plot: fmts entry "zz" is not a matplotlib format');
  });
});

describe("lineFigure (d2l.plot's rules)", () => {
  it("shares one X among several Y, with legend, labels, scales, limits and size", () => {
    const fig = lineFigure([1, 2, 3], [[1, 4, 9], [1, 8, 27]], {
      legend: ["square", "cube"],
      xlabel: "x",
      ylabel: "f(x)",
      yscale: "log",
      xlim: [1, 3],
      ylim: [1, 100],
      figsize: [4, 2],
    });
    expect(fig.data.map((t) => [t.name, t.x, t.y])).toEqual([
      ["square", [1, 2, 3], [1, 4, 9]],
      ["cube", [1, 2, 3], [1, 8, 27]],
    ]);
    // d2l's default formats: solid, then magenta dashed.
    expect(fig.data.map((t) => t.line?.dash)).toEqual(["solid", "dash"]);
    expect(fig.layout).toMatchObject({ width: 600, height: 300, showlegend: true });
    expect(fig.layout.xaxis).toMatchObject({ title: { text: "x" }, type: "linear", range: [1, 3] });
    expect(fig.layout.yaxis).toMatchObject({ title: { text: "f(x)" }, type: "log", range: [0, 2] });
  });

  it("plots Y against its index when only X is given, and reads tensors", () => {
    const fig = lineFigure(tf.tensor1d([5, 6, 7]));
    expect(fig.data[0].x).toEqual([0, 1, 2]);
    expect(fig.data[0].y).toEqual([5, 6, 7]);
    expect(fig.layout.showlegend).toBe(false);
  });

  it("reads a 2-D tensor as one series per row, but a column as one series", () => {
    expect(lineFigure([0, 1], tf.tensor2d([[1, 2], [3, 4], [5, 6]])).data).toHaveLength(3);
    const column = tf.randomNormal([50, 1]);
    const fig = scatterFigure(tf.range(0, 50), column);
    expect(fig.data).toHaveLength(1);
    expect(fig.data[0].y).toHaveLength(50);
    expect(fig.data[0].mode).toBe("markers");
  });

  it("refuses mismatched lengths and counts with a message naming them", () => {
    expect(() => lineFigure([1, 2, 3], [1, 2])).toThrow("plot: X has 3 values but Y[0] has 2");
    expect(() => lineFigure([[1, 2], [1, 2]], [[1, 2], [1, 2], [1, 2]])).toThrow("plot: got 2 X series for 3 Y series");
    expect(() => lineFigure(null as unknown as number[])).toThrow("plot: X must be an array, a typed array or a tensor; got null");
  });
});

describe("figure output", () => {
  it("bundles Plotly JSON, HTML that draws it, and a text summary", () => {
    const fig = lineFigure([1, 2], [3, 4], { legend: ["</script><b>"] });
    const bundle = figureBundle(fig);
    expect(bundle["application/vnd.plotly.v1+json"]).toMatchObject({ data: fig.data, layout: fig.layout });
    const html = bundle["text/html"] as string;
    expect(html).toContain('class="d2l-plot"');
    expect(html).toContain("Plotly.newPlot");
    // A legend that says </script> must not end the inline script early.
    expect(html.match(/<\/script>/g)).toHaveLength(1);
    expect(bundle["text/plain"]).toBe("<Figure 525x375: 1 trace(s): </script><b>>");
  });

  it("does nothing outside a Jupyter kernel, without throwing", () => {
    expect(() => plot([1, 2, 3])).not.toThrow();
    expect(() => scatter([1, 2], [3, 4])).not.toThrow();
    expect(showFigure(lineFigure([1]))).toBeUndefined();
  });
});

describe("compactFigure", () => {
  /** Plotly's decoding of a typed array spec (little-endian, as in the browser). */
  function decode(spec: TypedArraySpec): number[] {
    const bytes = Buffer.from(spec.bdata, "base64");
    const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    const Type = { u1: Uint8Array, i2: Int16Array, i4: Int32Array, f4: Float32Array, f8: Float64Array }[spec.dtype];
    return Array.from(new Type(buffer));
  }

  it("sends long data arrays as Plotly typed arrays, in the smallest type that holds them, and keeps short ones and other attributes", () => {
    const n = 1401;
    const xs = Array.from({ length: n }, (_, i) => -7 + i * 0.01);
    const ys = xs.map((x) => Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI));
    const pixels = Array.from({ length: 28 }, (_, r) => Array.from({ length: 28 }, (_, c) => ((r * 28 + c) % 256) / 255));
    const fig: Figure = {
      data: [
        { type: "scatter", x: xs, y: ys, name: "pdf", line: { color: "#1f77b4" } },
        { type: "scatter", x: [1, 2, 3], y: [0.5, 0.25, 0.125] },
        { type: "bar", x: Array.from({ length: 100 }, (_, i) => i), y: Array.from({ length: 100 }, (_, i) => 5 - 1000 * i) },
        { type: "heatmap", z: pixels },
      ],
      layout: { width: 300, height: 200 },
    };
    const [curve, short, bars, image] = compactFigure(fig).data as unknown as Record<string, TypedArraySpec & unknown[]>[];
    expect(curve.x.dtype).toBe("f4");
    const x = decode(curve.x);
    expect(x).toHaveLength(n);
    x.forEach((v, i) => expect(v).toBe(Math.fround(xs[i])));
    decode(curve.y).forEach((v, i) => expect(Math.abs(v - ys[i])).toBeLessThanOrEqual(1e-7 * ys[i]));
    expect(curve.name).toBe("pdf");
    expect(curve.line).toEqual({ color: "#1f77b4" });
    expect(short.x).toEqual([1, 2, 3]); // under TYPED_ARRAY_MIN_LENGTH: plain JSON
    expect(bars.x.dtype).toBe("u1");
    expect(decode(bars.x)).toEqual(fig.data[2].x);
    expect(bars.y.dtype).toBe("i4");
    expect(decode(bars.y)).toEqual(fig.data[2].y);
    expect(image.z.shape).toBe("28,28");
    expect(decode(image.z)).toEqual(pixels.flat().map(Math.fround));
    // The original figure is untouched; the whole thing is smaller than a third of its plain JSON.
    expect(fig.data[0].x).toBe(xs);
    expect(JSON.stringify(compactFigure(fig)).length).toBeLessThan(JSON.stringify(fig).length / 3);
    expect(TYPED_ARRAY_MIN_LENGTH).toBeGreaterThan(30); // d2l's curves (epochs, 30 points of 2.4) stay plain
  });

  it("both forms of a chart in the bundle carry the compact data", () => {
    const ys = Array.from({ length: 200 }, (_, i) => Math.sin(i / 10));
    const bundle = figureBundle({ data: [{ type: "scatter", y: ys }], layout: { width: 300, height: 200 } });
    const json = bundle["application/vnd.plotly.v1+json"] as { data: { y: TypedArraySpec }[] };
    expect(json.data[0].y.dtype).toBe("f4");
    expect(String(bundle["text/html"])).toContain(json.data[0].y.bdata);
  });
});
