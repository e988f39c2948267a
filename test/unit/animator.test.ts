import { afterEach, describe, expect, it, vi } from "vitest";
import { Animator } from "../../lib/src/animator";
import { panelsFigure } from "../../lib/src/panels";
import { inFakeKernel } from "./train-fixtures";

afterEach(() => {
  vi.restoreAllMocks();
});

describe("Animator", () => {
  it("collects one line per series, with d2l's train_ch3 labels, limits and formats", () => {
    vi.spyOn(console, "log").mockImplementation(() => undefined);
    const animator = new Animator({ xlabel: "epoch", xlim: [1, 3], ylim: [0.3, 0.9], legend: ["train loss", "train acc", "test acc"] });
    animator.add(1, [0.8, 0.7, 0.75]);
    animator.add(2, [0.6, 0.8, 0.79]);
    animator.add(3, [0.5, 0.83, 0.81]);
    const fig = animator.figure();
    expect(fig.data).toHaveLength(3);
    expect(fig.data.map((t) => t.name)).toEqual(["train loss", "train acc", "test acc"]);
    expect(fig.data.map((t) => t.x)).toEqual([[1, 2, 3], [1, 2, 3], [1, 2, 3]]);
    expect(fig.data.map((t) => t.y)).toEqual([[0.8, 0.6, 0.5], [0.7, 0.8, 0.83], [0.75, 0.79, 0.81]]);
    // d2l's default formats: solid, magenta dashed, green dash-dot
    expect(fig.data.map((t) => t.line?.dash)).toEqual(["solid", "dash", "dashdot"]);
    expect(fig.data[1].line?.color).toBe("#c71585");
    expect(fig.layout.xaxis?.title?.text).toBe("epoch");
    expect(fig.layout.xaxis?.range).toEqual([1, 3]);
    expect(fig.layout.yaxis?.range).toEqual([0.3, 0.9]);
    expect(fig.layout.showlegend).toBe(true);
    expect(fig.layout.width).toBe(525); // d2l's figsize 3.5 x 2.5 inches
  });

  it("draws chapter 4's curves: a log loss axis, xlim from 5, a point every 5th epoch", () => {
    vi.spyOn(console, "log").mockImplementation(() => undefined);
    // d2l 4.5: Animator(xlabel='epochs', ylabel='loss', yscale='log', xlim=[5, num_epochs], legend=['train', 'test'])
    const animator = new Animator({ xlabel: "epochs", ylabel: "loss", yscale: "log", xlim: [5, 100], ylim: [1e-3, 1e2], legend: ["train", "test"] });
    for (let epoch = 0; epoch < 100; epoch++) {
      if ((epoch + 1) % 5 === 0) animator.add(epoch + 1, [10 / (epoch + 1) ** 2, 1 + 10 / (epoch + 1)]);
    }
    const fig = animator.figure();
    expect(fig.data[0].x).toEqual(Array.from({ length: 20 }, (_, i) => 5 * (i + 1)));
    expect(fig.data[0].y?.[19]).toBeCloseTo(1e-3, 9);
    expect(fig.layout.xaxis?.range).toEqual([5, 100]);
    expect(fig.layout.yaxis?.type).toBe("log");
    expect(fig.layout.yaxis?.range).toEqual([-3, 2]); // Plotly takes a log axis's range in powers of ten
    expect(fig.layout.yaxis?.exponentformat).toBe("power");
    expect(fig.layout.xaxis?.type).toBe("linear");
  });

  it("refuses a log axis whose limits are not positive, when it is made", () => {
    expect(() => new Animator({ yscale: "log", ylim: [0, 10] })).toThrow('plot: ylim must be positive on a log axis (yscale "log"); got "[0, 10]"');
    expect(() => new Animator({ xscale: "log", xlim: [-1, 10] })).toThrow('plot: xlim must be positive on a log axis (xscale "log"); got "[-1, 10]"');
  });

  it("skips a missing value, and takes one x per line", () => {
    vi.spyOn(console, "log").mockImplementation(() => undefined);
    const animator = new Animator({ legend: ["a", "b"] });
    animator.add(1, [1, null]);
    animator.add([2, 2.5], [4, 5]);
    animator.add(3, [9, undefined]);
    expect(animator.X).toEqual([[1, 2, 3], [2.5]]);
    expect(animator.Y).toEqual([[1, 4, 9], [5]]);
    expect(() => animator.add(4, [1, 2, 3])).toThrow(/Animator.add: this animator draws 2 line\(s\); got 3 y values/);
    expect(() => animator.add([1, 2, 3], [1, 2])).toThrow(/Animator.add: got 3 x values for 2 y values/);
  });

  it("prints one line per add outside a kernel", () => {
    const log = vi.spyOn(console, "log").mockImplementation(() => undefined);
    const animator = new Animator({ xlabel: "epoch", legend: ["train loss", "test acc"] });
    animator.add(1, [0.81234, 0.7]);
    animator.add(2, [0.5, null]);
    expect(log.mock.calls.map((c) => c[0])).toEqual([
      "epoch 1: train loss 0.8123, test acc 0.7000",
      "epoch 2: train loss 0.5000, test acc -",
    ]);
  });

  it("in a kernel, draws one chart and redraws it in place: one display id, every later draw an update", () => {
    const log = vi.spyOn(console, "log").mockImplementation(() => undefined);
    let animator!: Animator;
    const sent = inFakeKernel(() => {
      animator = new Animator({ xlabel: "epoch", legend: ["train loss", "train acc", "test acc"] });
      for (let epoch = 1; epoch <= 4; epoch++) animator.add(epoch, [1 / epoch, 0.5 + epoch / 10, 0.5 + epoch / 11]);
    });
    expect(log).not.toHaveBeenCalled();
    const charts = sent.filter((m) => "application/vnd.plotly.v1+json" in m.data);
    expect(charts).toHaveLength(4);
    const ids = new Set(charts.map((m) => m.displayId));
    expect(ids.size).toBe(1);
    expect([...ids][0]).toMatch(/^[0-9a-f]{16}$/);
    expect(charts.map((m) => m.update)).toEqual([false, true, true, true]);
    const last = charts[3].data["application/vnd.plotly.v1+json"] as { data: { x: number[] }[] };
    expect(last.data).toHaveLength(3);
    expect(last.data[0].x).toEqual([1, 2, 3, 4]);
    expect(String(charts[3].data["text/html"])).toContain("Plotly.newPlot");
    // A second animator (a re-run training cell) gets a display of its own.
    const again = inFakeKernel(() => new Animator({ legend: ["a"] }).add(1, 0.5));
    const second = again.filter((m) => "application/vnd.plotly.v1+json" in m.data);
    expect(second).toHaveLength(1);
    expect(second[0].displayId).not.toBe([...ids][0]);
    expect(second[0].update).toBe(false);
  });

  it("sends each update first without its Plotly JSON, so JupyterLab builds a fresh plotly renderer; the last word is the full chart", () => {
    vi.spyOn(console, "log").mockImplementation(() => undefined);
    const sent = inFakeKernel(() => {
      const animator = new Animator({ legend: ["loss"] });
      for (let epoch = 1; epoch <= 3; epoch++) animator.add(epoch, 1 / epoch);
    }).filter((m) => m.displayId !== undefined);
    const kinds = sent.map((m) => `${m.update ? "update" : "display"}:${"application/vnd.plotly.v1+json" in m.data ? "plotly+html" : "html"}`);
    expect(kinds).toEqual(["display:plotly+html", "update:html", "update:plotly+html", "update:html", "update:plotly+html"]);
    // The stand-in already shows the new epoch, so a front end drawing text/html shows no step back.
    expect(sent[3].data["text/html"]).toBe(sent[4].data["text/html"]);
    expect(String(sent[3].data["text/html"])).toContain('"x":[1,2,3]');
  });
});

describe("panelsFigure", () => {
  it("lays panels side by side, each on its own axes with its labels and title", () => {
    const x = [-2, -1, 0, 1, 2];
    const fig = panelsFigure(
      [
        { X: x, Y: x.map((v) => v * v / 2), options: { title: "loss", xlabel: "y - y'" } },
        { X: x, Y: x.map((v) => Math.exp(-v * v / 2)), options: { title: "likelihood" } },
        { X: x, Y: [x, x.map(() => 0)], options: { title: "gradient", legend: ["grad", "zero"] } },
      ],
      { figsize: [9, 2.5] },
    );
    expect(fig.data).toHaveLength(4);
    expect(fig.data.map((t) => [t.xaxis, t.yaxis])).toEqual([["x", "y"], ["x2", "y2"], ["x3", "y3"], ["x3", "y3"]]);
    expect(fig.data[0].y).toEqual([2, 0.5, 0, 0.5, 2]);
    expect(fig.data.map((t) => t.showlegend)).toEqual([false, false, true, true]);
    expect(fig.layout.width).toBe(1350);
    const domains = [fig.layout.xaxis, fig.layout.xaxis2, fig.layout.xaxis3].map((a) => a?.domain as [number, number]);
    expect(domains[0][0]).toBe(0);
    expect(domains[2][1]).toBeCloseTo(1, 10);
    for (let i = 1; i < 3; i++) expect(domains[i][0]).toBeGreaterThan(domains[i - 1][1]);
    expect(fig.layout.yaxis2?.anchor).toBe("x2");
    expect(fig.layout.xaxis?.title?.text).toBe("y - y'");
    expect(fig.layout.annotations?.map((a) => a.text)).toEqual(["loss", "likelihood", "gradient"]);
    expect(() => panelsFigure([])).toThrow(/plotPanels: panels must hold at least one panel/);
  });
});
