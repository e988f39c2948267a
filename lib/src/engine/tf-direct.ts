import * as tf from "@tensorflow/tfjs";

/**
 * tfjs's functions that kernels and engine patches call on every op, read once. Through the
 * namespace import each `tf.util.sizeFromShape` or `tf.engine()` is two getter calls: tsc's
 * `__importStar` wraps @tensorflow/tfjs, which has no `__esModule` flag, in an object of getters
 * over tfjs's own re-export getters, up to ~20% of a small op's CPU (`tf.add` on 256×10). These are
 * plain bindings, read when the lib loads.
 */
export const { arraysEqual, parseAxisParam, sizeFromShape } = tf.util;
export const { assertAndGetBroadcastShape } = tf.backend_util;
export const { getBackend, getKernel, tidy } = tf;
/** `tf.engine`: the engine itself, for runKernel, makeTensorFromTensorInfo and its state. */
export const tfEngine = tf.engine;
/** `tf.backend`: the active backend. */
export const activeBackend = tf.backend;
