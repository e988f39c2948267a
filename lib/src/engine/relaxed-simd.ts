import * as v8 from "node:v8";
import { HEADER, V128, section } from "./wasm-asm";

/**
 * Relaxed SIMD (WebAssembly's `f32x4.relaxed_madd`, a fused multiply-add where the machine has
 * one) is on by default from Node 22 (V8 11.4); Node 20 validates it only with the V8 flag
 * `--experimental-wasm-relaxed-simd`, which this module sets in-process the first time it is asked
 * (V8 reads its WebAssembly feature flags at each compilation, so later modules see it). Set
 * `D2L_RELAXED_SIMD=0` to never use it (and never set the flag).
 */

/** (func (result v128) (f32x4.relaxed_madd (v128.const 0) (v128.const 0) (v128.const 0))) */
const PROBE = (() => {
  const zero = [0xfd, 0x0c, ...Array<number>(16).fill(0)];
  const body = [0x00, ...zero, ...zero, ...zero, 0xfd, 0x85, 0x02, 0x0b];
  return new Uint8Array([
    ...HEADER, ...section(1, [0x01, 0x60, 0x00, 0x01, V128]), ...section(3, [0x01, 0x00]),
    ...section(10, [0x01, body.length, ...body]),
  ]);
})();

let available: boolean | undefined;

/** Whether this process compiles relaxed SIMD, enabling it through V8's flag where it must (once). */
export function relaxedSimdAvailable(): boolean {
  if (available !== undefined) return available;
  if (process.env.D2L_RELAXED_SIMD === "0") return (available = false);
  available = WebAssembly.validate(PROBE);
  if (!available) {
    try {
      v8.setFlagsFromString("--experimental-wasm-relaxed-simd");
      available = WebAssembly.validate(PROBE);
    } catch {
      available = false;
    }
  }
  return available;
}
