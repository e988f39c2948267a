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
export { DEFAULT_FMTS, layoutFor, lineFigure, parseFmt, plot, scatter, scatterFigure } from "./plot";
export type { PlotOptions, Series } from "./plot";
export type { Batch, BatchSource } from "./batches";
export { ArgumentError } from "./validate";
export { checkFinite, checkPositiveInt, checkSameLength, checkTensor } from "./validate";
export { dataIter, loadArray, rowTaker, syntheticData } from "./data";
export { linreg } from "./models";
export { squaredLoss } from "./losses";
export { backward, gradOf, sgd, zeroGrad } from "./optim";
export { disposeOnRerun } from "./rerun";
export type { Disposable } from "./rerun";
export { DataFileError, parseIdx, readIdxGz } from "./idx";
export type { IdxArray } from "./idx";
export { DownloadError, downloadFile } from "./download";
export type { DownloadOptions } from "./download";
export { ImageDataset } from "./image-data";
export type { ImageBatchOptions } from "./image-data";
export {
  FASHION_MNIST_FILES, FASHION_MNIST_SYSTEM_DIR, FASHION_MNIST_URL,
  fashionMnist, getFashionMnistLabels, loadDataFashionMnist, projectRoot, readFashionMnistSplit,
} from "./fashion-mnist";
export type { FashionMnistOptions } from "./fashion-mnist";
export { imagesFigure, showImages } from "./show-images";
export { forward, softmax } from "./models";
export type { Net } from "./models";
export { crossEntropy, softmaxCrossEntropy } from "./losses";
export type { Loss } from "./losses";
export { Accumulator, accuracy, evaluateAccuracy } from "./metrics";
export { divergenceError, predictCh3, trainCh3, trainEpochCh3 } from "./train";
export type { TrainMetrics, Updater } from "./train";
export { Animator } from "./animator";
export { panelsFigure, plotPanels } from "./panels";
export type { Panel, PanelsOptions } from "./panels";
