import * as tf from "@tensorflow/tfjs";
import type { ColumnTable } from "arquero";
import { Adam } from "./adam";
import { loadArray } from "./data";
import { download } from "./data-hub";
import { getDummies, isNumericColumn, readCsv, tableToTensor } from "./frames";
import { backward } from "./optim";
import { type Net, forward } from "./models";
import { plot } from "./plot";
import { ArgumentError, checkNonNegative, checkPositiveInt, checkTensor } from "./validate";

/** Section 4.10's data, read and preprocessed: what {@link loadHousePrices} returns. */
export interface HousePrices {
  /** The training table as read (1460 houses, 81 columns: Id, 79 features, SalePrice). */
  trainData: ColumnTable;
  /** The test table as read (1459 houses, 80 columns: no SalePrice). */
  testData: ColumnTable;
  /** The preprocessed features of the training houses, [1460, 331]. */
  trainFeatures: tf.Tensor2D;
  /** The preprocessed features of the test houses, [1459, 331]. */
  testFeatures: tf.Tensor2D;
  /** SalePrice, [1460, 1]. */
  trainLabels: tf.Tensor2D;
}

/**
 * Section 4.10.4's preprocessing of the features of train and test together: each numeric column
 * standardized to mean 0 and standard deviation 1 (pandas' sample standard deviation, missing values
 * skipped), then its missing values set to 0; each text column one-hot encoded with a column for
 * "missing" ({@link getDummies}).
 * @see d2l section 4.10.4 (data preprocessing)
 */
export function preprocessHouseFeatures(allFeatures: ColumnTable): ColumnTable {
  const numericFeatures = allFeatures.columnNames().filter((c) => isNumericColumn(allFeatures, c));
  const standardize = (c: string) => {
    const x = `d[${JSON.stringify(c)}]`;
    return `d => ${x} === null ? null : (${x} - op.mean(${x})) / op.stdev(${x})`;
  };
  const standardized = allFeatures
    .derive(Object.fromEntries(numericFeatures.map((c) => [c, standardize(c)])))
    .impute(Object.fromEntries(numericFeatures.map((c) => [c, () => 0])));
  return getDummies(standardized, true);
}

/**
 * Reads the Kaggle house data through the data hub ({@link download}) and preprocesses it as section
 * 4.10 does ({@link preprocessHouseFeatures}); the notebook does the same steps one by one.
 */
export async function loadHousePrices(): Promise<HousePrices> {
  const trainData = readCsv(await download("kaggle_house_train"));
  const testData = readCsv(await download("kaggle_house_test"));
  const trainNames = trainData.columnNames();
  const allFeatures = trainData.select(trainNames.slice(1, -1)).concat(testData.select(testData.columnNames().slice(1)));
  const nTrain = trainData.numRows();
  const features = tableToTensor(preprocessHouseFeatures(allFeatures));
  const [trainFeatures, testFeatures] = tf.split(features, [nTrain, features.shape[0] - nTrain]) as [tf.Tensor2D, tf.Tensor2D];
  features.dispose();
  const trainLabels = tf.tensor2d(Float32Array.from(trainData.array("SalePrice") as ArrayLike<number>), [nTrain, 1]);
  return { trainData, testData, trainFeatures, testFeatures, trainLabels };
}

/**
 * The mean squared error over all entries, PyTorch's `nn.MSELoss()` (no ½, unlike
 * {@link squaredLoss}), as a scalar.
 * @see d2l section 4.10.5 (training): `loss = nn.MSELoss()`
 */
export function mseLoss(yHat: tf.Tensor, y: tf.Tensor): tf.Scalar {
  return tf.tidy(() => tf.squaredDifference(yHat, y).mean());
}

/**
 * The linear model of section 4.10: one dense layer from `inFeatures` inputs to one output,
 * PyTorch's `nn.Sequential(nn.Linear(in_features, 1))`.
 * @see d2l section 4.10.5 (training): `get_net`
 */
export function getNet(inFeatures: number): tf.Sequential {
  return tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [inFeatures] })] });
}

/**
 * The root-mean-squared error between the logarithms of the predicted and the true prices, what
 * Kaggle scores the competition by; predictions below 1 count as 1, so the logarithm is defined.
 * @see d2l section 4.10.5 (training): `log_rmse`
 */
export function logRmse(net: Net, features: tf.Tensor, labels: tf.Tensor): number {
  return tf.tidy(() => {
    // To make the logarithm stable, set predictions below 1 to 1
    const clippedPreds = tf.clipByValue(forward(net, features), 1, Infinity);
    return tf.sqrt(mseLoss(tf.log(clippedPreds), tf.log(labels))).dataSync()[0];
  });
}

/**
 * Trains `net` with Adam ({@link Adam}, PyTorch's, with its weight decay) on minibatches of the mean
 * squared error; returns the log RMSE on the training data and, if given, on the test data after each epoch.
 * @see d2l section 4.10.5 (training): `train`
 */
export function train(
  net: tf.LayersModel, trainFeatures: tf.Tensor, trainLabels: tf.Tensor, testFeatures: tf.Tensor | null,
  testLabels: tf.Tensor | null, numEpochs: number, learningRate: number, weightDecay: number, batchSize: number,
): [number[], number[]] {
  checkPositiveInt("train", "numEpochs", numEpochs);
  checkNonNegative("train", "learningRate", learningRate);
  checkNonNegative("train", "weightDecay", weightDecay);
  const [trainLs, testLs]: [number[], number[]] = [[], []];
  const trainIter = loadArray([trainFeatures, trainLabels], batchSize);
  const params = net.trainableWeights.map((w) => w.read() as tf.Variable);
  // The Adam optimization algorithm is used here
  const optimizer = new Adam(params, learningRate, { weightDecay });
  for (let epoch = 0; epoch < numEpochs; epoch++) {
    for (const [X, y] of trainIter) {
      backward(() => mseLoss(forward(net, X), y), params);
      optimizer.step();
    }
    trainLs.push(logRmse(net, trainFeatures, trainLabels));
    if (testFeatures !== null && testLabels !== null) testLs.push(logRmse(net, testFeatures, testLabels));
  }
  return [trainLs, testLs];
}

/**
 * Splits [X, y] into k folds of `floor(n / k)` rows (the rest is left out) and returns the i-th
 * fold as validation data and the others, concatenated, as training data: [XTrain, yTrain, XValid, yValid].
 * @see d2l section 4.10.6 (K-fold cross-validation): `get_k_fold_data`
 */
export function getKFoldData(k: number, i: number, X: tf.Tensor, y: tf.Tensor): [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor] {
  if (!Number.isInteger(k) || k < 2) throw new ArgumentError("getKFoldData", "k", "an integer >= 2", k);
  if (!Number.isInteger(i) || i < 0 || i >= k) throw new ArgumentError("getKFoldData", "i", `an integer in [0, ${k - 1}]`, i);
  checkTensor("getKFoldData", "X", X);
  checkTensor("getKFoldData", "y", y);
  return tf.tidy(() => {
    const foldSize = Math.floor(X.shape[0] / k);
    const [XParts, yParts]: [tf.Tensor[], tf.Tensor[]] = [[], []];
    let XValid = X;
    let yValid = y;
    for (let j = 0; j < k; j++) {
      const XPart = X.slice(j * foldSize, foldSize);
      const yPart = y.slice(j * foldSize, foldSize);
      if (j === i) {
        [XValid, yValid] = [XPart, yPart];
      } else {
        XParts.push(XPart);
        yParts.push(yPart);
      }
    }
    return [tf.concat(XParts, 0), tf.concat(yParts, 0), XValid, yValid];
  });
}

/**
 * K-fold cross-validation: trains a fresh `makeNet(features)` k times, each time validating on
 * another fold, prints each fold's last log RMSE, draws the first fold's curves on a log scale,
 * and returns the mean last training and validation log RMSE over the folds.
 * @see d2l section 4.10.6 (K-fold cross-validation): `k_fold`
 */
export function kFold(
  k: number, XTrain: tf.Tensor, yTrain: tf.Tensor, numEpochs: number, learningRate: number, weightDecay: number,
  batchSize: number, makeNet: (inFeatures: number) => tf.LayersModel = getNet,
): [number, number] {
  let [trainLSum, validLSum] = [0, 0];
  for (let i = 0; i < k; i++) {
    const data = getKFoldData(k, i, XTrain, yTrain);
    const net = makeNet(XTrain.shape[1]!);
    try {
      const [trainLs, validLs] = train(net, ...data, numEpochs, learningRate, weightDecay, batchSize);
      trainLSum += trainLs[trainLs.length - 1];
      validLSum += validLs[validLs.length - 1];
      if (i === 0) {
        plot(Array.from({ length: numEpochs }, (_, e) => e + 1), [trainLs, validLs], {
          xlabel: "epoch", ylabel: "rmse", xlim: [1, numEpochs], legend: ["train", "valid"], yscale: "log",
        });
      }
      console.log(`fold ${i + 1}, train log rmse ${trainLs[trainLs.length - 1].toFixed(6)}, valid log rmse ${validLs[validLs.length - 1].toFixed(6)}`);
    } finally {
      net.dispose();
      tf.dispose(data);
    }
  }
  return [trainLSum / k, validLSum / k];
}
