import * as tf from "@tensorflow/tfjs";
import type { Batch, BatchSource } from "./batches";
import { ArgumentError, checkFinite, checkPositiveInt, checkSameLength, checkTensor } from "./validate";

/**
 * Generates a linear-regression data set y = Xw + b + noise: X ~ N(0, 1) of shape
 * [numExamples, len(w)], noise ~ N(0, 0.01²), y of shape [numExamples, 1].
 * @see d2l.synthetic_data (section 3.2.1, generating the dataset)
 */
export function syntheticData(w: tf.Tensor, b: number, numExamples: number): [tf.Tensor2D, tf.Tensor2D] {
  checkTensor("syntheticData", "w", w, 1);
  checkFinite("syntheticData", "b", b);
  checkPositiveInt("syntheticData", "numExamples", numExamples);
  return tf.tidy(() => {
    const X = tf.randomNormal([numExamples, w.shape[0]]);
    const y = tf.matMul(X, w.reshape([-1, 1])).add(b);
    return [X, y.add(tf.randomNormal(y.shape, 0, 0.01))] as [tf.Tensor2D, tf.Tensor2D];
  });
}

/**
 * Reads a tensor's values once and returns a function that copies the rows it is given into
 * a new tensor: what d2l writes `features[batch_indices]`. Copying rows of a typed array is
 * much cheaper than `tf.gather` on the wasm backend, and the source tensor may be disposed
 * afterwards.
 * @see d2l.data_iter (section 3.2.2), which indexes the features with a tensor of indices
 */
export function rowTaker(t: tf.Tensor): (indices: ArrayLike<number>) => tf.Tensor {
  checkTensor("rowTaker", "t", t);
  if (t.dtype === "string" || t.rank < 1) {
    throw new ArgumentError("rowTaker", "t", "a numeric tensor with one row per example", t);
  }
  const values = t.dataSync() as Float32Array | Int32Array | Uint8Array;
  const rowShape = t.shape.slice(1);
  const rowSize = tf.util.sizeFromShape(rowShape);
  const TypedArray = values.constructor as new (length: number) => typeof values;
  // The wasm backend (and tfjs-node) copy a new tensor's values into their own memory, so one
  // scratch array serves every batch there, sparing the garbage collector a batch-sized array a step;
  // the cpu backend keeps the array it is given, so it gets a new one each time.
  let scratch: typeof values | undefined;
  return (indices) => {
    const size = indices.length * rowSize;
    const reuse = tf.getBackend() === "wasm";
    if (!reuse || scratch?.length !== size) scratch = new TypedArray(size);
    const rows = scratch;
    for (let k = 0; k < indices.length; k++) {
      const start = indices[k] * rowSize;
      rows.set(values.subarray(start, start + rowSize), k * rowSize);
    }
    return tf.tensor(rows, [indices.length, ...rowShape], t.dtype);
  };
}

/**
 * Yields shuffled minibatches [X, y] of `batchSize` examples (the last one smaller when
 * `batchSize` does not divide the number of examples), each example once. As for any
 * {@link BatchSource}, a batch's tensors are disposed when the loop moves on, ends or breaks.
 * @see d2l.data_iter (section 3.2.2, reading the dataset)
 */
export function* dataIter(batchSize: number, features: tf.Tensor, labels: tf.Tensor): Generator<Batch, void, undefined> {
  checkPositiveInt("dataIter", "batchSize", batchSize);
  checkSameLength("dataIter", "features", features, "labels", labels);
  const numExamples = features.shape[0];
  // The examples are read at random, in no particular order
  const indices = tf.util.createShuffledIndices(numExamples);
  const [takeX, takeY] = [rowTaker(features), rowTaker(labels)];
  for (let i = 0; i < numExamples; i += batchSize) {
    const batchIndices = indices.subarray(i, Math.min(i + batchSize, numExamples));
    const batch: Batch = [takeX(batchIndices), takeY(batchIndices)];
    try {
      yield batch;
    } finally {
      tf.dispose(batch);
    }
  }
}

/**
 * Wraps [features, labels] as a re-iterable {@link BatchSource}: each `for` loop over it is
 * one epoch, shuffled anew when `isTrain`, in input order otherwise. The equivalent of
 * PyTorch's `DataLoader(TensorDataset(*data_arrays), batch_size, shuffle=is_train)`.
 * The tensors are read once, here; they may be disposed afterwards.
 * @see d2l.load_array (section 3.3.2, reading the dataset)
 */
export function loadArray(dataArrays: [tf.Tensor, tf.Tensor], batchSize: number, isTrain = true): BatchSource {
  if (!Array.isArray(dataArrays) || dataArrays.length !== 2) {
    throw new ArgumentError("loadArray", "dataArrays", "[features, labels]", dataArrays);
  }
  checkPositiveInt("loadArray", "batchSize", batchSize);
  checkSameLength("loadArray", "dataArrays[0]", dataArrays[0], "dataArrays[1]", dataArrays[1]);
  const numExamples = dataArrays[0].shape[0];
  const [takeX, takeY] = dataArrays.map(rowTaker);
  return {
    numExamples,
    batchSize,
    *[Symbol.iterator]() {
      const indices = isTrain
        ? tf.util.createShuffledIndices(numExamples)
        : Uint32Array.from({ length: numExamples }, (_, i) => i);
      for (let i = 0; i < numExamples; i += batchSize) {
        const batchIndices = indices.subarray(i, Math.min(i + batchSize, numExamples));
        const batch: Batch = [takeX(batchIndices), takeY(batchIndices)];
        try {
          yield batch;
        } finally {
          tf.dispose(batch);
        }
      }
    },
  };
}
