/**
 * d2l for TensorFlow.js: the helpers of Dive into Deep Learning, chapters 2 (preliminaries), 3
 * (linear neural networks), 4 (multilayer perceptrons), 5 (deep-learning computation) and 6
 * (convolutional neural networks), as `import * as d2l from "d2l"`, the way the book
 * does `from d2l import torch as d2l`.
 */

// Set-up: the backend, seeding, timing, argument checks, freeing what a re-run cell made.
export { BACKENDS, initBackend } from "./backend";
export { getThreads, recoverFromInterrupt, setThreads, useInterruptRecovery, useSpeedups } from "./engine";
export { useIopubQueue } from "./engine/iopub-queue";
export { useFileIO } from "./engine/file-io";
export type { BackendChoice, BackendName } from "./backend";
export { Device, numGpus, tryAllGpus, tryGpu } from "./device";
export { Timer } from "./timer";
export { ArgumentError, checkFinite, checkInRange, checkNonNegative, checkPositiveInt, checkSameLength, checkTensor } from "./validate";
export { LeakCheck, disposeOnRerun } from "./rerun";
export { getSeed, setSeed } from "./seed";
export type { Disposable } from "./rerun";

// Charts and notebook output.
export { DisplayHandle, displayBundle, inKernel } from "./display";
export { PROJECT_KERNEL, kernelAdvice } from "./kernel";
export type { MimeBundle } from "./display";
export { describeFigure, figureBundle, showFigure } from "./figure";
export type { Axis, Figure, Layout, Trace } from "./figure";
export { DEFAULT_FMTS, layoutFor, lineFigure, parseFmt, plot, scatter, scatterFigure } from "./plot";
export type { PlotOptions, Series } from "./plot";
export { panelsFigure, plotPanels } from "./panels";
export type { Panel, PanelsOptions } from "./panels";
export { Animator } from "./animator";

// Data: synthetic regression data, minibatches, Fashion-MNIST.
export type { Batch, BatchSource } from "./batches";
export { dataIter, loadArray, rowTaker, syntheticData } from "./data";
export { DataFileError, parseIdx, readIdxGz } from "./idx";
export type { IdxArray } from "./idx";
export { DownloadError, downloadFile } from "./download";
export type { DownloadOptions } from "./download";
export {
  DATA_HUB, DATA_URL, SHIPPED_DATA_DIR, copyFileAtomic, dataCacheDir, download, downloadAll, downloadExtract, expectSha1,
  extractArchive, sha1File, shippedCopy,
} from "./data-hub";
export { PANDAS_NA_VALUES, getDummies, isNumericColumn, readCsv, tableToTensor } from "./frames";
export { ImageDataset } from "./image-data";
export type { ImageBatchOptions } from "./image-data";
export {
  FASHION_MNIST_FILES, FASHION_MNIST_SYSTEM_DIR, FASHION_MNIST_URL,
  fashionMnist, getFashionMnistLabels, loadDataFashionMnist, projectRoot, readFashionMnistSplit,
} from "./fashion-mnist";
export type { FashionMnistOptions } from "./fashion-mnist";
export { imagesFigure, showImages } from "./show-images";

// Models, losses, optimization, training.
export { forward, isTraining, linreg, setTraining } from "./models";
export { softmax } from "./engine/fused-softmax";
export type { FunctionNet, Net } from "./models";
export { squaredLoss } from "./losses";
// the book's helpers of losses.ts and metrics.ts, computed by one wasm kernel where one applies (engine/fused-*.ts)
export { softmaxCrossEntropy } from "./engine/fused-softmax-ce";
export { crossEntropy } from "./engine/fused-cross-entropy";
export type { Loss } from "./losses";
export { backward, gradOf, sgd, zeroGrad } from "./optim";
export { Accumulator, evaluateAccuracy, evaluateLoss } from "./metrics";
export { accuracy } from "./engine/fused-accuracy";
export { dropoutLayer, l2Penalty } from "./regularization";
export { Adam } from "./adam";
export type { AdamOptions } from "./adam";
export { getKFoldData, getNet, kFold, loadHousePrices, logRmse, mseLoss, preprocessHouseFeatures, train } from "./house-prices";
export type { HousePrices } from "./house-prices";
export { divergenceError, predictCh3, trainCh3, trainEpochCh3 } from "./train";
export type { TrainMetrics, Updater } from "./train";

// Importing d2l makes model.save("file://dir") and tf.loadLayersModel("file://dir/model.json") work on
// every backend, not only with tfjs-node (engine/file-io.ts).
import { useFileIO } from "./engine/file-io";
useFileIO(true);

// Chapter 6, convolutional networks: cross-correlation, heatmaps, LeNet's training loop.
export { corr2d } from "./conv";
export { heatmapsFigure, showHeatmaps } from "./heatmaps";
export type { Colormap } from "./heatmaps";
export { evaluateAccuracyGpu, trainCh6 } from "./train-ch6";
export type { TrainCh6Metrics } from "./train-ch6";
