import { DisplayHandle, inKernel } from "./display";
import { Figure, showFigure } from "./figure";
import { DEFAULT_FMTS, PlotOptions, layoutFor, lineFigure } from "./plot";

/**
 * Plots data in animation: each `add` appends a point to every line and redraws one chart
 * in place (in a notebook), so a training run shows its curves growing epoch by epoch and
 * leaves a single chart behind. Outside a Jupyter kernel it prints one line per `add`.
 * Options are d2l's: xlabel, ylabel, legend, xlim, ylim, xscale, yscale, fmts, figsize. As in
 * d2l, a loop may add a point only every few epochs, and `xlim` may start anywhere:
 * `new Animator({ yscale: "log", xlim: [5, 100], ylim: [1e-3, 1e2] })` with `add(epoch, ...)` every fifth epoch.
 * @see d2l.Animator (section 3.6.6, training)
 */
export class Animator {
  /** The x values of each line so far. */
  X: number[][] = [];
  /** The y values of each line so far. */
  Y: number[][] = [];
  private readonly options: PlotOptions;
  private readonly handle = new DisplayHandle();

  constructor(options: PlotOptions = {}) {
    this.options = { fmts: DEFAULT_FMTS, ...options, legend: options.legend ?? [] };
    layoutFor(this.options); // a bad option (a log axis starting at 0, say) fails here, not at the first point
  }

  /**
   * Adds one point per line: `add(epoch, [trainLoss, trainAcc, testAcc])`. `x` is shared or
   * one per line; a null or undefined y skips that line for this x.
   */
  add(x: number | (number | null | undefined)[], y: number | (number | null | undefined)[]): void {
    const ys = Array.isArray(y) ? y : [y];
    const n = ys.length;
    const xs = Array.isArray(x) ? x : new Array<number>(n).fill(x);
    if (xs.length !== n) {
      throw new Error(`Animator.add: got ${xs.length} x values for ${n} y values; give one x or one per y`);
    }
    if (this.X.length === 0) {
      this.X = ys.map(() => []);
      this.Y = ys.map(() => []);
    } else if (n !== this.Y.length) {
      throw new Error(`Animator.add: this animator draws ${this.Y.length} line(s); got ${n} y values`);
    }
    ys.forEach((b, i) => {
      const a = xs[i];
      if (a !== null && a !== undefined && b !== null && b !== undefined) {
        this.X[i].push(a);
        this.Y[i].push(b);
      }
    });
    if (inKernel()) {
      showFigure(this.figure(), this.handle);
    } else {
      const legend = this.options.legend ?? [];
      const values = ys.map((b, i) => `${legend[i] ?? `line ${i}`} ${b === null || b === undefined ? "-" : b.toFixed(4)}`);
      console.log(`${this.options.xlabel ?? "x"} ${xs[0]}: ${values.join(", ")}`);
    }
  }

  /** The chart as it stands: one line per series, with the animator's labels, limits and formats. */
  figure(): Figure {
    return lineFigure(this.X, this.Y, this.options);
  }
}

