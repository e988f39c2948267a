/**
 * A few helpers to write WebAssembly bytecode by hand (there is no compiler to depend on): LEB128
 * numbers, sections, and the instructions the SIMD kernels of simd-kernels.ts and
 * skinny-matmul.ts use. Opcodes are those of the WebAssembly 2.0 core and fixed-width SIMD
 * specifications.
 */

/** Unsigned LEB128. */
export const leb = (n: number): number[] => (n < 128 ? [n] : [(n & 127) | 128, ...leb(n >>> 7)]);

/** Signed LEB128. */
export function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = n & 127;
    n >>= 7;
    if ((n === 0 && !(byte & 64)) || (n === -1 && byte & 64)) return [...out, byte];
    out.push(byte | 128);
  }
}

/** A module section: id, size, contents. */
export const section = (id: number, bytes: number[]) => [id, ...leb(bytes.length), ...bytes];
/** The magic number and version that start every module. */
export const HEADER = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
/** Value types. */
export const I32 = 0x7f;
export const F32 = 0x7d;
export const V128 = 0x7b;

/** local.get, local.set, local.tee */
export const get = (i: number) => [0x20, ...leb(i)];
export const set = (i: number) => [0x21, ...leb(i)];
export const tee = (i: number) => [0x22, ...leb(i)];
/** i32.const */
export const i32 = (v: number) => [0x41, ...sleb(v)];
export const ADD = 0x6a;
export const SUB = 0x6b;
export const MUL = 0x6c;
export const SHL = 0x74;
export const XOR = 0x73;
export const LT_U = 0x49;
export const GT_S = 0x4a;
export const GT_U = 0x4b;
/** unreachable: traps. */
export const UNREACHABLE = 0x00;
export const LE_U = 0x4d;
/** i32.load of an aligned word at the address on the stack. */
export const LOAD_I32 = [0x28, 0x02, 0x00];
/** f32.load / f32.store at a constant offset from the address on the stack. */
export const loadF32 = (offset = 0) => [0x2a, 0x02, ...leb(offset)];
export const storeF32 = (offset = 0) => [0x38, 0x02, ...leb(offset)];
export const F32_ADD = 0x92;
/** The other scalar f32 operations row-loops.ts uses; i32.eq; f32 from an i32's bits, or its value. */
export const F32_SUB = 0x93;
export const F32_MUL = 0x94;
export const F32_DIV = 0x95;
export const F32_NEG = 0x8c;
export const F32_GT = 0x5e;
export const I32_EQ = 0x46;
export const F32_REINTERPRET_I32 = 0xbe;
export const F32_CONVERT_I32_S = 0xb2;
/** loop, block and if with no result; end; br and br_if to the label `depth` levels out. */
export const LOOP = [0x03, 0x40];
export const BLOCK = [0x02, 0x40];
export const IF = [0x04, 0x40];
export const END = 0x0b;
export const br = (depth: number) => [0x0c, ...leb(depth)];
export const brIf = (depth: number) => [0x0d, ...leb(depth)];
export const BR_IF_0 = brIf(0);
/** v128.load / v128.store at a constant offset, no alignment assumed. */
export const load = (offset = 0) => [0xfd, 0x00, 0x00, ...leb(offset)];
export const store = (offset = 0) => [0xfd, 0x0b, 0x00, ...leb(offset)];
/** v128.load32_splat: one float read into all four lanes. */
export const loadSplat = (offset = 0) => [0xfd, 0x09, 0x02, ...leb(offset)];
/** i8x16.shuffle picking four 32-bit lanes (0-3 from the first vector, 4-7 from the second). */
export const shuffle32 = (lanes: number[]) => [0xfd, 0x0d, ...lanes.flatMap((l) => [4 * l, 4 * l + 1, 4 * l + 2, 4 * l + 3])];
/** f32x4.extract_lane */
export const extractF32 = (lane: number) => [0xfd, 0x1f, lane];
/** f32x4.splat of f32.const value */
export const splatF32 = (value: number) => [0x43, ...new Uint8Array(Float32Array.of(value).buffer), 0xfd, 0x13];
/** f32x4.splat of f32.const 0 */
export const ZERO_F32X4 = splatF32(0);
export const F32X4_ADD = [0xfd, 0xe4, 0x01];
export const F32X4_MUL = [0xfd, 0xe6, 0x01];
export const F32X4_DIV = [0xfd, 0xe7, 0x01];
/** What row-loops.ts's vector passes use besides: splats, i32x4.add and i32x4.eq (a lane's column against the label), a v128.const of four int32s. */
export const I32X4_SPLAT = [0xfd, 0x11];
export const F32X4_SPLAT = [0xfd, 0x13];
export const I32X4_ADD = [0xfd, 0xae, 0x01];
export const I32X4_EQ = [0xfd, 0x37];
export const v128I32 = (lanes: [number, number, number, number]) => [0xfd, 0x0c, ...new Uint8Array(Int32Array.from(lanes).buffer)];

/** Local declarations: [count, type] runs. */
export const locals = (...runs: [number, number][]) => [...leb(runs.length), ...runs.flatMap(([n, t]) => [...leb(n), t])];

/** A function type with `params` i32 parameters and no result. */
export const voidType = (params: number) => [0x60, ...leb(params), ...Array<number>(params).fill(I32), 0x00];

/** An import of memory "e"."m", with no minimum size. */
export const IMPORT_MEMORY = section(2, [0x01, 0x01, 0x65, 0x01, 0x6d, 0x02, 0x00, 0x00]);

/** A module of one function (`type`, `body` with its locals), exported as `name`, importing its memory. */
export function moduleWithImportedMemory(type: number[], name: string, body: number[]): number[] {
  const exportName = [...name].map((c) => c.charCodeAt(0));
  return [
    ...HEADER,
    ...section(1, [0x01, ...type]),
    ...IMPORT_MEMORY,
    ...section(3, [0x01, 0x00]),
    ...section(7, [0x01, ...leb(exportName.length), ...exportName, 0x00, 0x00]),
    ...section(10, [0x01, ...leb(body.length), ...body]),
  ];
}

export const F32_MAX = 0x97;
/** i32x4.max_s */
export const I32X4_MAX_S = [0xfd, 0xb8, 0x01];
/**
 * The wasm backend's Relu on the f32x4 on the stack: a signed-integer max with 0, as XNNPACK computes it
 * (negatives, -0 and NaNs with the sign bit set become +0; other NaNs pass with their payload). Not
 * f32x4.max with 0, which keeps every NaN: an Inf·0 product is a NaN with the sign bit set on x86.
 */
export const RELU_F32X4 = [...ZERO_F32X4, ...I32X4_MAX_S];
/** {@link RELU_F32X4} on the f32 on the stack (splat, max, lane 0: no local needed). */
export const RELU_F32 = [0xfd, 0x13, ...RELU_F32X4, 0xfd, 0x1f, 0x00];
export const NE = 0x47;
export const F32X4_MAX = [0xfd, 0xe9, 0x01];
/** f32x4.relaxed_madd(a, b, c) = a·b + c, fused or not as the machine does it (relaxed SIMD proposal, opcode 0x105). */
export const F32X4_RELAXED_MADD = [0xfd, 0x85, 0x02];
/** What packed-matmul.ts's zero skipping uses besides: comparisons, bitwise ops, select, the SIMD tests of a vector. */
export const GE_U = 0x4f;
export const OR = 0x72;
export const F32_NE = 0x5c;
/** else, between the arms of an `if`. */
export const ELSE = 0x05;
/** i32.store of an aligned word at the address on the stack. */
export const STORE_I32 = [0x36, 0x02, 0x00];
export const F32X4_SUB = [0xfd, 0xe5, 0x01];
export const F32X4_EQ = [0xfd, 0x41];
export const F32X4_NE = [0xfd, 0x42];
export const F32X4_LT = [0xfd, 0x43];
export const F32X4_GT = [0xfd, 0x44];
export const F32X4_GE = [0xfd, 0x46];
export const V128_AND = [0xfd, 0x4e];
export const V128_ANDNOT = [0xfd, 0x4f];
/** v128.bitselect(a, b, mask): a's bits where mask's are 1, else b's. */
export const V128_BITSELECT = [0xfd, 0x52];
export const V128_ANY_TRUE = [0xfd, 0x53];
export const I32X4_ALL_TRUE = [0xfd, 0xa3, 0x01];
/** v128.const with every bit set. */
export const ALL_ONES = [0xfd, 0x0c, ...Array<number>(16).fill(0xff)];
export const SELECT = 0x1b;
/** What packed-matmul.ts's one-row lists use besides: i32.and, i32.shr_u, and i32x4.bitmask (a bit for each lane's sign). */
export const AND = 0x71;
export const SHR_U = 0x76;
export const I32X4_BITMASK = [0xfd, 0xa4, 0x01];
export const V128_OR = [0xfd, 0x50];
/** i32.load / i32.store at a constant offset from the address on the stack. */
export const loadI32 = (offset = 0) => [0x28, 0x02, ...leb(offset)];
export const storeI32 = (offset = 0) => [0x36, 0x02, ...leb(offset)];
