import * as tf from "@tensorflow/tfjs";
import { readFileSync, writeFileSync } from "fs";
import { join } from "path";
import { describe, expect, it } from "vitest";
import { Adam } from "../../lib/src/adam";
import { SHIPPED_DATA_DIR } from "../../lib/src/data-hub";
import { getDummies, isNumericColumn, readCsv, tableToTensor } from "../../lib/src/frames";
import { getKFoldData, getNet, kFold, loadHousePrices, logRmse, mseLoss, train } from "../../lib/src/house-prices";
import { backward } from "../../lib/src/optim";
import { tempDir } from "./fashion-mnist-fixtures";

const work = tempDir("house-prices");

describe("readCsv, as pandas' read_csv", () => {
  it("reads pandas' missing-value texts as null and all-number columns as numbers; None stays text", () => {
    const path = join(work.dir, "t.csv");
    writeFileSync(path, "a,b,c,d\n1,NA,x,None\n2.5,,NA,Gd\nNA,3,y,NaN\n");
    const t = readCsv(path);
    expect(t.array("a")).toEqual([1, 2.5, null]);
    expect(t.array("b")).toEqual([null, null, 3]);
    expect(t.array("c")).toEqual(["x", null, "y"]);
    expect(t.array("d")).toEqual(["None", "Gd", null]);
    expect(["a", "b", "c", "d"].map((c) => isNumericColumn(t, c))).toEqual([true, true, false, false]);
  });

  it("reads the Kaggle training file as pandas 1.5 does: 1460 x 81, 38 numeric columns (36 features, Id, SalePrice)", () => {
    const t = readCsv(join(SHIPPED_DATA_DIR, "kaggle-house", "kaggle_house_pred_train.csv"));
    expect([t.numRows(), t.numCols()]).toEqual([1460, 81]);
    expect(t.columnNames().filter((c) => isNumericColumn(t, c)).length).toBe(38);
    expect(t.array("LotFrontage").filter((v) => v === null).length).toBe(259); // pandas: train_data.LotFrontage.isna().sum()
    expect(t.array("MasVnrType").filter((v) => v === "None").length).toBe(864);
  });
});

describe("getDummies", () => {
  it("keeps numeric columns first and adds a 0/1 column per sorted category and one for missing", () => {
    const path = join(work.dir, "d.csv");
    writeFileSync(path, "n,c,m\n1,b,x\n2,a,NA\n3,b,y\n");
    const t = getDummies(readCsv(path), true);
    expect(t.columnNames()).toEqual(["n", "c_a", "c_b", "c_nan", "m_x", "m_y", "m_nan"]);
    expect(Array.from(t.array("c_b") as Uint8Array)).toEqual([1, 0, 1]);
    expect(Array.from(t.array("m_nan") as Uint8Array)).toEqual([0, 1, 0]);
    expect(Array.from(t.array("c_nan") as Uint8Array)).toEqual([0, 0, 0]);
    expect(getDummies(readCsv(path), false).columnNames()).toEqual(["n", "c_a", "c_b", "m_x", "m_y"]);
    expect(Array.from(tableToTensor(t).dataSync())).toEqual([1, 0, 1, 0, 1, 0, 0, 2, 1, 0, 0, 0, 0, 1, 3, 0, 1, 0, 0, 1, 0]);
  });

  it("refuses to make a tensor of a table with gaps or text, naming the column", () => {
    const path = join(work.dir, "g.csv");
    writeFileSync(path, "n,c\n1,a\nNA,b\n");
    expect(() => tableToTensor(readCsv(path))).toThrow("tableToTensor: column n must be numbers without gaps; got null");
  });
});

describe("loadHousePrices", () => {
  it("gives d2l's 331 features, standardized, with pandas' column order", async () => {
    const { trainFeatures, testFeatures, trainLabels } = await loadHousePrices();
    expect(trainFeatures.shape).toEqual([1460, 331]);
    expect(testFeatures.shape).toEqual([1459, 331]);
    expect(trainLabels.shape).toEqual([1460, 1]);
    // LotArea (column 2) over train and test together: mean 0, sample standard deviation 1
    const lot = tf.tidy(() => tf.concat([trainFeatures, testFeatures]).slice([0, 2], [-1, 1]));
    const values = Array.from(lot.dataSync());
    const mean = values.reduce((a, b) => a + b) / values.length;
    const sd = Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (values.length - 1));
    expect(Math.abs(mean)).toBeLessThan(1e-6);
    expect(Math.abs(sd - 1)).toBeLessThan(1e-5);
    expect(trainLabels.dataSync()[0]).toBe(208500);
    tf.dispose([trainFeatures, testFeatures, trainLabels, lot]);
  });
});

describe("Adam", () => {
  it("computes PyTorch's update: matches tf.train.adam with the same epsilon, and adds weightDecay * w to the gradient", () => {
    const X = tf.randomNormal([32, 5]);
    const y = tf.randomNormal([32, 1]);
    const start = tf.randomNormal([5, 1]);
    const [w1, w2, w3] = [tf.variable(start.clone()), tf.variable(start.clone()), tf.variable(start.clone())];
    const ours = new Adam([w1], 0.1, { eps: 1e-8 });
    const theirs = tf.train.adam(0.1, 0.9, 0.999, 1e-8);
    for (let i = 0; i < 20; i++) {
      backward(() => mseLoss(tf.matMul(X, w1), y), [w1]);
      ours.step();
      theirs.minimize(() => mseLoss(tf.matMul(X, w2), y), false, [w2]);
    }
    const [a, b] = [Array.from(w1.dataSync()), Array.from(w2.dataSync())];
    a.forEach((v, i) => expect(v).toBeCloseTo(b[i], 4)); // float32 arithmetic in tfjs, float64 in ours: 20 steps differ by ~5e-6
    // weight decay: a step from a zero gradient moves w against weightDecay * w, by lr in the first step (Adam's steps are ~lr)
    const decayed = new Adam([w3], 0.1, { weightDecay: 0.5 });
    backward(() => tf.mul(tf.matMul(X, w3), 0).sum() as tf.Scalar, [w3]);
    const before = Array.from(w3.dataSync());
    decayed.step();
    Array.from(w3.dataSync()).forEach((v, i) => expect(v).toBeCloseTo(before[i] - 0.1 * Math.sign(before[i]), 5));
    theirs.dispose();
    tf.dispose([X, y, start, w1, w2, w3]);
  });

  it("refuses bad arguments, naming them", () => {
    const w = tf.variable(tf.zeros([2]));
    expect(() => new Adam([w], -1)).toThrow("Adam: lr must be a finite number >= 0; got -1");
    expect(() => new Adam([w], 0.1, { betas: [1, 0.999] })).toThrow("Adam: betas[0] must be a number in [0, 1); got 1");
    expect(() => new Adam([w], 0.1, { weightDecay: -0.1 })).toThrow("Adam: weightDecay must be a finite number >= 0; got -0.1");
    expect(() => new Adam([tf.zeros([2]) as unknown as tf.Variable])).toThrow(/Adam: params must be an array of float32 tf.Variables/);
    w.dispose();
  });
});

describe("section 4.10's helpers", () => {
  it("getKFoldData splits into k folds of floor(n / k) rows, fold i for validation", () => {
    const X = tf.range(0, 11).reshape([11, 1]);
    const y = tf.range(100, 111);
    const [Xt, yt, Xv, yv] = getKFoldData(3, 1, X, y);
    expect(Array.from(Xv.dataSync())).toEqual([3, 4, 5]);
    expect(Array.from(yv.dataSync())).toEqual([103, 104, 105]);
    expect(Array.from(Xt.dataSync())).toEqual([0, 1, 2, 6, 7, 8]); // row 9 and 10 are left over
    expect(Array.from(yt.dataSync())).toEqual([100, 101, 102, 106, 107, 108]);
    expect(() => getKFoldData(1, 0, X, y)).toThrow("getKFoldData: k must be an integer >= 2; got 1");
    expect(() => getKFoldData(3, 3, X, y)).toThrow("getKFoldData: i must be an integer in [0, 2]; got 3");
    tf.dispose([X, y, Xt, yt, Xv, yv]);
  });

  it("logRmse clips predictions below 1 to 1", () => {
    const net = (X: tf.Tensor) => X;
    const features = tf.tensor2d([[-5], [0.5], [Math.E]]);
    const labels = tf.tensor2d([[1], [1], [1]]);
    // log of the clipped predictions: 0, 0, 1; of the labels 0: rmse sqrt(1 / 3)
    expect(logRmse(net, features, labels)).toBeCloseTo(Math.sqrt(1 / 3), 6);
    tf.dispose([features, labels]);
  });

  it("train fits a linear model with Adam and kFold averages the folds, leaving no tensor behind", () => {
    const X = tf.randomNormal([200, 4]);
    const y = tf.tidy(() => tf.matMul(X, tf.tensor2d([[10], [-20], [30], [5]])).add(1000));
    const before = tf.memory().numTensors;
    const net = getNet(4);
    const [trainLs, testLs] = train(net, X, y, X, y, 60, 5, 0, 16);
    net.dispose();
    expect(trainLs.length).toBe(60);
    expect(testLs).toEqual(trainLs);
    expect(trainLs[59]).toBeLessThan(trainLs[0] / 5);
    const log = console.log;
    const lines: string[] = [];
    console.log = (line: string) => void lines.push(line);
    let means: [number, number];
    try {
      means = kFold(4, X, y, 60, 5, 0, 16);
    } finally {
      console.log = log;
    }
    expect(lines.length).toBe(4);
    expect(lines[0]).toMatch(/^fold 1, train log rmse \d\.\d{6}, valid log rmse \d\.\d{6}$/);
    expect(means[0]).toBeLessThan(0.01);
    expect(means[1]).toBeLessThan(0.01);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([X, y]);
  });
});

it("the shipped CSV is the one d2l registers (sanity check of the fixture)", () => {
  const bytes = readFileSync(join(SHIPPED_DATA_DIR, "kaggle-house", "kaggle_house_pred_train.csv"));
  expect(bytes.length).toBe(460676);
});
