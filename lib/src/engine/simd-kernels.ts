/**
 * Tiny WebAssembly SIMD kernels, written out as bytecode (there is no compiler to depend on):
 * the pixel conversions of {@link UNIT_FLOATS_WASM} and {@link GATHER_UNIT_WASM}, and the matrix
 * transpose of {@link TRANSPOSE_WASM}. Each is a few hundred bytes; the unit tests check them
 * value by value.
 */

import {
  ADD, BR_IF_0, END, GT_S, HEADER, I32, LOAD_I32, LOOP, LT_U, MUL, SHL, SUB, V128, XOR, get, i32, leb, load, section,
  set, shuffle32, store, tee, splatF32,
} from "./wasm-asm";

/** f32x4.splat(255) into local k. */
const splat255 = (k: number) => [...splatF32(255), ...set(k)];

/**
 * The 16 bytes at local src to 16 floats b / 255 at local dst (IEEE float32 division), then
 * src += 16 and dst += 64. k holds splat(255); bytes and low are scratch v128 locals.
 */
const convert16 = (src: number, dst: number, k: number, bytes: number, low: number) => [
  ...get(src), ...load(), ...tee(bytes),
  0xfd, 0x89, 0x01, ...set(low), // i16x8.extend_low_i8x16_u
  ...get(bytes), 0xfd, 0x8a, 0x01, ...set(bytes), // i16x8.extend_high_i8x16_u
  ...[[low, 0xa9, 0], [low, 0xaa, 16], [bytes, 0xa9, 32], [bytes, 0xaa, 48]].flatMap(([half, extend, offset]) => [
    // dst[offset] = f32x4.div(f32x4.convert_i32x4_u(i32x4.extend_{low,high}_i16x8_u(half)), k)
    ...get(dst), ...get(half), 0xfd, extend, 0x01, 0xfd, 0xfb, 0x01, ...get(k), 0xfd, 0xe7, 0x01, ...store(offset),
  ]),
  ...get(src), ...i32(16), ADD, ...set(src),
  ...get(dst), ...i32(64), ADD, ...set(dst),
];

/**
 * `c(src, dst, n)`: dst[i] = f32(src[i]) / 255 for the n bytes at src (n a multiple of 16), with
 * IEEE float32 division, so the result is exactly `tf.div(x, 255)`'s. Exports its memory as "m".
 */
export const UNIT_FLOATS_WASM: readonly number[] = (() => {
  const [SRC, DST, N, K, BYTES, LOW] = [0, 1, 2, 3, 4, 5]; // K = splat(255); BYTES, then their high half; LOW = their low half
  const body = [
    0x01, 0x03, V128,
    ...get(N), 0x45, 0x04, 0x40, 0x0f, END, // if (n == 0) return
    ...splat255(K),
    ...LOOP,
    ...convert16(SRC, DST, K, BYTES, LOW),
    ...get(N), ...i32(16), SUB, ...tee(N), ...i32(0), GT_S, ...BR_IF_0,
    END, END,
  ];
  return [
    ...HEADER,
    ...section(1, [0x01, 0x60, 0x03, I32, I32, I32, 0x00]),
    ...section(3, [0x01, 0x00]),
    ...section(5, [0x01, 0x00, 0x01]), // a memory of at least one page, growable
    ...section(7, [0x02, 0x01, 0x63, 0x00, 0x00, 0x01, 0x6d, 0x02, 0x00]), // export "c" (function 0), "m" (memory 0)
    ...section(10, [0x01, ...leb(body.length), ...body]),
  ];
})();

/**
 * `g(images, rows, count, pixels, dst)`: for k < count, converts image rows[k] (pixels bytes at
 * images + rows[k] * pixels; rows are u32 at `rows`) to floats b / 255 at dst + 4 * k * pixels.
 * pixels must be a multiple of 16. It first reads one byte of every 64 of each image, so the
 * cache misses of all the rows overlap instead of coming one row at a time (147 µs for 256 random
 * Fashion-MNIST images without that pass, about 90 with it); it returns what it read, XORed, so
 * the reads are not optimised away. Imports its memory as "e"."m".
 */
export const GATHER_UNIT_WASM: readonly number[] = (() => {
  const [IMAGES, ROWS, COUNT, PIXELS, DST, SRC, LEFT, END_ROWS, ACC, ROW] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  const [K, BYTES, LOW] = [10, 11, 12];
  /** SRC = images + (u32 at ROW) * pixels; LEFT = pixels */
  const startRow = [...get(IMAGES), ...get(ROW), ...LOAD_I32, ...get(PIXELS), MUL, ADD, ...set(SRC), ...get(PIXELS), ...set(LEFT)];
  /** ROW += 4; loop while ROW < END_ROWS */
  const nextRow = [...get(ROW), ...i32(4), ADD, ...tee(ROW), ...get(END_ROWS), LT_U, ...BR_IF_0];
  const body = [
    0x02, 0x05, I32, 0x03, V128,
    ...get(COUNT), 0x45, 0x04, 0x40, ...i32(0), 0x0f, END, // if (count == 0) return 0
    ...splat255(K),
    ...get(ROWS), ...get(COUNT), ...i32(2), SHL, ADD, ...set(END_ROWS),
    ...get(ROWS), ...set(ROW),
    ...LOOP, // touch every row
    ...startRow,
    ...LOOP,
    ...get(ACC), ...get(SRC), 0x2d, 0x00, 0x00, XOR, ...set(ACC), // ACC ^= i32.load8_u(SRC)
    ...get(SRC), ...i32(64), ADD, ...set(SRC),
    ...get(LEFT), ...i32(64), SUB, ...tee(LEFT), ...i32(0), GT_S, ...BR_IF_0,
    END,
    ...nextRow,
    END,
    ...get(ROWS), ...set(ROW),
    ...LOOP, // convert every row
    ...startRow,
    ...LOOP, // 16 bytes at a time
    ...convert16(SRC, DST, K, BYTES, LOW),
    ...get(LEFT), ...i32(16), SUB, ...tee(LEFT), ...i32(0), GT_S, ...BR_IF_0,
    END,
    ...nextRow,
    END,
    ...get(ACC),
    END,
  ];
  return [
    ...HEADER,
    ...section(1, [0x01, 0x60, 0x05, I32, I32, I32, I32, I32, 0x01, I32]),
    ...section(2, [0x01, 0x01, 0x65, 0x01, 0x6d, 0x02, 0x00, 0x00]), // import "e" "m": a memory, no minimum
    ...section(3, [0x01, 0x00]),
    ...section(7, [0x01, 0x01, 0x67, 0x00, 0x00]), // export "g" (function 0)
    ...section(10, [0x01, ...leb(body.length), ...body]),
  ];
})();

/**
 * `t(src, dst, m, n)`: writes the transpose of the m×n float32 matrix at src to dst (n×m), 4×4
 * blocks at a time, walking down the source's rows so the output is written in order. m and n
 * must be multiples of 4. Imports its memory as "e"."m" (the memory of the data it works on).
 */
export const TRANSPOSE_WASM: readonly number[] = (() => {
  const [SRC, DST, M, N, I, J, RS, OS, P, Q] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  const [A, B, C, D, T0, T1, T2, T3] = [10, 11, 12, 13, 14, 15, 16, 17];
  /** base + k * stride */
  const at = (base: number, stride: number, k: number) =>
    k === 0 ? get(base) : [...get(base), ...get(stride), ...(k > 1 ? [...i32(k), MUL] : []), ADD];
  const body = [
    0x02, 0x06, I32, 0x08, V128,
    ...get(N), ...i32(2), SHL, ...set(RS), // source row stride in bytes
    ...get(M), ...i32(2), SHL, ...set(OS), // output row stride in bytes
    ...i32(0), ...set(J),
    ...LOOP, // for each block of 4 source columns j (= 4 output rows)
    ...i32(0), ...set(I),
    ...get(SRC), ...get(J), ...i32(2), SHL, ADD, ...set(P),
    ...get(DST), ...get(J), ...get(OS), MUL, ADD, ...set(Q),
    ...LOOP, // for each block of 4 source rows i
    ...[A, B, C, D].flatMap((v, k) => [...at(P, RS, k), ...load(), ...set(v)]),
    ...get(A), ...get(B), ...shuffle32([0, 4, 1, 5]), ...set(T0), // a0 b0 a1 b1
    ...get(A), ...get(B), ...shuffle32([2, 6, 3, 7]), ...set(T1), // a2 b2 a3 b3
    ...get(C), ...get(D), ...shuffle32([0, 4, 1, 5]), ...set(T2), // c0 d0 c1 d1
    ...get(C), ...get(D), ...shuffle32([2, 6, 3, 7]), ...set(T3), // c2 d2 c3 d3
    ...([[T0, T2, [0, 1, 4, 5]], [T0, T2, [2, 3, 6, 7]], [T1, T3, [0, 1, 4, 5]], [T1, T3, [2, 3, 6, 7]]] as const).flatMap(
      ([x, y, lanes], k) => [...at(Q, OS, k), ...get(x), ...get(y), ...shuffle32([...lanes]), ...store()],
    ),
    ...get(P), ...get(RS), ...i32(4), MUL, ADD, ...set(P),
    ...get(Q), ...i32(16), ADD, ...set(Q),
    ...get(I), ...i32(4), ADD, ...tee(I), ...get(M), LT_U, ...BR_IF_0,
    END,
    ...get(J), ...i32(4), ADD, ...tee(J), ...get(N), LT_U, ...BR_IF_0,
    END, END,
  ];
  return [
    ...HEADER,
    ...section(1, [0x01, 0x60, 0x04, I32, I32, I32, I32, 0x00]),
    ...section(2, [0x01, 0x01, 0x65, 0x01, 0x6d, 0x02, 0x00, 0x00]), // import "e" "m": a memory, no minimum
    ...section(3, [0x01, 0x00]),
    ...section(7, [0x01, 0x01, 0x74, 0x00, 0x00]), // export "t" (function 0)
    ...section(10, [0x01, ...leb(body.length), ...body]),
  ];
})();
