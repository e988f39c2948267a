import * as tf from "@tensorflow/tfjs";
import { describe, expect, it } from "vitest";
import { figureBundle, showFigure } from "../../lib/src/figure";
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
