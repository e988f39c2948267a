import * as tf from "@tensorflow/tfjs";
import { restoreFusedMatMul, useLazyFusedMatMulGradient } from "./fused-matmul-grad";
import { restoreWasmBuffers, useSharedWasmBuffers } from "./wasm-share";
import { restoreWasmMatMul, useFastWasmMatMul } from "./wasm-matmul";
import { restoreWasmBinary, useFastWasmBinary } from "./wasm-binary";
import { restoreWasmColumnSum, useFastWasmColumnSum } from "./wasm-column-sum";
import { useWasmOneHotFix } from "./wasm-onehot";
import { useWasmConvGradients } from "./wasm-conv-grad";
import { useWasmEmptyReductions } from "./wasm-empty-reductions";
import { restoreSimdConv2d, useSimdConv2d } from "./conv2d-simd";
import { restoreLazyFusedConv2d, useLazyFusedConv2dGradient } from "./fused-conv-grad";
import { restoreWasmAvgPoolGrad, useFastWasmAvgPoolGrad } from "./wasm-avg-pool-grad";
import { useInterruptRecovery } from "./interrupt";
import { useThreads } from "./thread-pool";
import type { WasmBackendLike } from "./wasm-kernels";
import { restoreSequentialCall, useDirectSequential } from "./sequential-call";
import { restoreWasmSigmoidGrad, useFastWasmSigmoidGrad } from "./wasm-sigmoid-grad";
import { restoreLeanClone, useLeanClone } from "./lean-clone";
import { useFusedSoftmaxCrossEntropy } from "./fused-softmax-ce";
import { useFusedAccuracy } from "./fused-accuracy";
import { restoreMeanGrad, useOneKernelMeanGrad } from "./mean-grad";
import { restoreSgd, useOneKernelSgd } from "./sgd-step";
import { useFusedCrossEntropy } from "./fused-cross-entropy";
import { useFusedSoftmax } from "./fused-softmax";
import { restoreWasmExp, useSimdWasmExp } from "./wasm-exp";
import { restoreSplitWasmSigmoid, useSplitWasmSigmoid } from "./wasm-sigmoid";
import { restoreReluGrad, useOneKernelReluGrad } from "./wasm-relu-grad";
import { useLeanScalarOps } from "./lean-scalar-ops";
import { restoreGradients, useLeanGradients } from "./lean-gradients";
import { restoreEndScope, useLeanEndScope } from "./lean-end-scope";

export { recoverFromInterrupt, useInterruptRecovery } from "./interrupt";
export { getThreads, setThreads } from "./thread-pool";

/**
 * Turns d2l's speed-ups of TensorFlow.js on (as {@link initBackend} leaves them) or off, to compare
 * with tfjs's own kernels. On every backend: a dense layer's gradient skips the input gradient
 * nobody asked for (fused-matmul-grad.ts). On wasm only, because the other backends already do
 * these well (and a plain tf.Sequential applies its layers in turn, skipping the graph executor:
 * sequential-call.ts): products with a transpose flag (every matMul gradient) avoid the backend's scalar
 * loop, 7-16x slower than its XNNPACK path, and products run our own SIMD kernels, faster than
 * XNNPACK (wasm-matmul.ts; skinny-matmul.ts and skinny-gradient.ts for at most 16 columns, packed-matmul.ts for more); Identity and same-dtype Cast share the buffer
 * instead of copying it, as cpu does (wasm-share.ts); maximum, minimum and comparisons run a SIMD
 * loop instead of a per-element broadcast, as do arithmetic ops adding a row (wasm-binary.ts), and a sum over axis 0 skips its
 * transpose (wasm-column-sum.ts); convolutions with few channels run SIMD kernels (conv2d-simd.ts), and a
 * convolution layer's gradient skips the input gradient nobody asked for (fused-conv-grad.ts), and the
 * gradient of average pooling over tiling windows is one pass (wasm-avg-pool-grad.ts), as is a large sigmoid's
 * gradient (wasm-sigmoid-grad.ts), and Exp is a SIMD kernel with expf's own floats (wasm-exp.ts), and a large sigmoid splits across threads with XNNPACK's floats (wasm-sigmoid.ts). Large products and convolutions split across threads (thread-pool.ts,
 * see setThreads). Fewer passes through tfjs's engine a training step, same floats: a dense layer's X·W + b is one kernel
 * while recording (fused-matmul-grad.ts); tensors saved for a gradient are
 * shared without a kernel (lean-clone.ts); d2l.softmaxCrossEntropy, d2l.crossEntropy, d2l.softmax and d2l.accuracy, a mean's
 * gradient and tf.train.sgd's step are one kernel each (fused-softmax-ce.ts, fused-cross-entropy.ts,
 * fused-softmax.ts, fused-accuracy.ts, mean-grad.ts, sgd-step.ts), as is a ReLU's gradient (wasm-relu-grad.ts); a sum of one
 * value and a cast to a tensor's own dtype (d2l's Accumulator, every step) share the buffer without a kernel (lean-scalar-ops.ts). Fixes of wrong results stay on either way.
 * Not in d2l.
 */
export function useSpeedups(enabled: boolean): void {
  if (!enabled) {
    restoreFusedMatMul();
    restoreWasmMatMul();
    restoreWasmBuffers();
    restoreWasmBinary();
    restoreWasmColumnSum();
    restoreSimdConv2d();
    restoreLazyFusedConv2d();
    restoreWasmAvgPoolGrad();
    restoreWasmSigmoidGrad();
    restoreSplitWasmSigmoid();
    useThreads(false);
    restoreSequentialCall();
    restoreLeanClone();
    useFusedSoftmaxCrossEntropy(false);
    useFusedAccuracy(false);
    restoreMeanGrad();
    restoreSgd();
    useFusedCrossEntropy(false);
    useFusedSoftmax(false);
    restoreWasmExp();
    restoreReluGrad();
    useLeanScalarOps(false);
    restoreGradients();
    restoreEndScope();
    return;
  }
  useThreads(true, (tf.backend() as unknown as WasmBackendLike).wasm?.asm?.memory);
  useLazyFusedMatMulGradient();
  useLazyFusedConv2dGradient();
  useDirectSequential();
  useLeanGradients();
  useLeanEndScope();
  if (tf.getBackend() === "wasm") {
    useFastWasmMatMul();
    useSharedWasmBuffers();
    useFastWasmBinary();
    useFastWasmColumnSum();
    useSimdConv2d();
    useFastWasmAvgPoolGrad();
    useFastWasmSigmoidGrad();
    useSplitWasmSigmoid();
    useLeanClone();
    useFusedSoftmaxCrossEntropy(true);
    useFusedAccuracy(true);
    useOneKernelMeanGrad();
    useOneKernelSgd();
    useFusedCrossEntropy(true);
    useFusedSoftmax(true);
    useSimdWasmExp();
    useOneKernelReluGrad();
    useLeanScalarOps(true);
  }
}

/**
 * Installs the fixes of wrong results for the active backend, and the repair of the engine after a
 * kernel interrupt (interrupt.ts); they stay on whatever {@link useSpeedups} says.
 */
export function useFixes(): void {
  useInterruptRecovery(true);
  if (tf.getBackend() === "wasm") {
    // Its OneHot writes int32 bits whatever the dtype: a float32 mask (the losses' targets) came out as zeros.
    useWasmOneHotFix();
    // It has no Conv2DBackpropFilter (nor depthwise gradients): every gradient through a convolution threw.
    useWasmConvGradients();
    // Its reductions of empty axes read memory they never wrote: tf.sum of nothing gave 3.6e-41.
    useWasmEmptyReductions();
  }
}
