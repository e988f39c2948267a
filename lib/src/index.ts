/**
 * d2l for TensorFlow.js: the helpers of Dive into Deep Learning, chapter 3 (linear neural
 * networks), as `import * as d2l from "d2l"`, the way the book does `from d2l import torch as d2l`.
 */
export { BACKENDS, initBackend } from "./backend";
export type { BackendChoice, BackendName } from "./backend";
export { Timer } from "./timer";
export { DisplayHandle, displayBundle, inKernel } from "./display";
export type { MimeBundle } from "./display";
export { describeFigure, figureBundle, showFigure } from "./figure";
export type { Axis, Figure, Layout, Trace } from "./figure";
export { DEFAULT_FMTS, layoutFor, lineFigure, parseFmt, plot, scatter } from "./plot";
export type { PlotOptions, Series } from "./plot";
export type { Batch, BatchSource } from "./batches";
export { ArgumentError } from "./validate";
