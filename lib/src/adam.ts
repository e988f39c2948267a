import * as tf from "@tensorflow/tfjs";
import { gradOf, zeroGrad } from "./optim";
import { ArgumentError, checkNonNegative } from "./validate";

/** Options of {@link Adam}, PyTorch's names and defaults. */
export interface AdamOptions {
  /** β₁ and β₂, the decay rates of the moment estimates. Default [0.9, 0.999]. */
  betas?: [number, number];
  /** Added to the denominator for stability. Default 1e-8. */
  eps?: number;
  /** L2 penalty: weightDecay · w is added to each gradient, as PyTorch's Adam does. Default 0. */
  weightDecay?: number;
}

/**
 * The Adam optimizer as PyTorch's `torch.optim.Adam` computes it (same defaults, same formula,
 * `weight_decay` added to the gradient), for the gradients {@link backward} stores: a training step
 * is `backward(() => loss)`, then `optimizer.step()`.
 *
 * Why not `tf.train.adam`: its update is about fifteen tensor ops per parameter, each a kernel call
 * with its own bookkeeping, which for a small model costs more than the model (section 4.10's linear
 * model: ~0.3 ms of a ~0.5 ms step on the wasm backend). Here the moments live in plain Float32Arrays
 * and one loop per parameter updates them and the weights, which then go back with one `assign`:
 * a fused update, as PyTorch's own `fused=True` Adam is. (tfjs's Adam also differs: epsilon 1e-7 and
 * no weight decay.) Chapter 11 of d2l derives the algorithm.
 * @see torch.optim.Adam, as d2l section 4.10.5 uses it
 */
export class Adam {
  private readonly m: Float32Array[];
  private readonly v: Float32Array[];
  /** Each parameter's values as the last step wrote them, and the buffer the variable then held: while it still does, they need not be read back. */
  private readonly values: (Float32Array | undefined)[];
  private readonly written: (tf.DataId | undefined)[];
  private t = 0;
  private readonly beta1: number;
  private readonly beta2: number;
  private readonly eps: number;
  private readonly weightDecay: number;

  constructor(readonly params: tf.Variable[], readonly lr = 1e-3, options: AdamOptions = {}) {
    if (!Array.isArray(params) || params.some((p) => !(p instanceof tf.Variable) || p.dtype !== "float32")) {
      throw new ArgumentError("Adam", "params", "an array of float32 tf.Variables", params);
    }
    checkNonNegative("Adam", "lr", lr);
    const [beta1, beta2] = options.betas ?? [0.9, 0.999];
    for (const [name, beta] of [["betas[0]", beta1], ["betas[1]", beta2]] as const) {
      if (!(beta >= 0 && beta < 1)) throw new ArgumentError("Adam", name, "a number in [0, 1)", beta);
    }
    this.beta1 = beta1;
    this.beta2 = beta2;
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0;
    checkNonNegative("Adam", "eps", this.eps);
    checkNonNegative("Adam", "weightDecay", this.weightDecay);
    this.m = params.map((p) => new Float32Array(p.size));
    this.v = params.map((p) => new Float32Array(p.size));
    this.values = params.map(() => undefined);
    this.written = params.map(() => undefined);
  }

  /** One update of every parameter from its gradient (see {@link gradOf}), which is then freed. */
  step(): void {
    this.t++;
    const { beta1, beta2, eps, weightDecay, lr } = this;
    const stepSize = lr / (1 - beta1 ** this.t);
    const correction2Sqrt = Math.sqrt(1 - beta2 ** this.t);
    this.params.forEach((param, k) => {
      const grad = gradOf(param);
      const g = grad.dataSync() as Float32Array;
      // The variable's values: ours from the last step unless something else assigned it since.
      const w = this.written[k] === param.dataId && this.values[k] ? this.values[k]! : (param.dataSync() as Float32Array);
      // A new array each step: the cpu backend keeps the array a tensor is made from (and an interrupted
      // step must not leave our copy ahead of the variable).
      const next = new Float32Array(w.length);
      const [m, v] = [this.m[k], this.v[k]];
      for (let i = 0; i < w.length; i++) {
        const gi = weightDecay === 0 ? g[i] : g[i] + weightDecay * w[i];
        m[i] = beta1 * m[i] + (1 - beta1) * gi;
        v[i] = beta2 * v[i] + (1 - beta2) * gi * gi;
        next[i] = w[i] - (stepSize * m[i]) / (Math.sqrt(v[i]) / correction2Sqrt + eps);
      }
      const updated = tf.tensor(next, param.shape, "float32");
      param.assign(updated);
      updated.dispose();
      [this.values[k], this.written[k]] = [next, param.dataId];
      zeroGrad(param);
    });
  }
}
