/**
 * Makes the wasm backend's memory a shared WebAssembly.Memory (its buffer a SharedArrayBuffer), so
 * that worker threads can run d2l's kernels on the tensors in place (thread-pool.ts). Not in tfjs:
 * its Node build instantiates the single-threaded binary, whose memory section declares an
 * ordinary memory of 256 pages growing up to 65536 (4 GiB). A memory of the threads proposal
 * differs from it by one bit (limits flag 0x01 → 0x03: "has a maximum" → "has a maximum, shared"),
 * and the module's code is valid either way, so this flips that bit while the backend instantiates.
 * Everything else behaves as before: Emscripten's glue grows the memory with `memory.grow` and makes
 * its views anew from `memory.buffer` (a grown shared memory gives a new, longer SharedArrayBuffer;
 * old views are not detached but stay at the old length), Node's TextDecoder and typed-array copies
 * accept shared views, and tfjs copies data out with `slice` (an ordinary ArrayBuffer). The memory
 * is shared whatever the thread count, so `setThreads` can raise it later. Used by backend.ts's
 * initBackend; a backend set with `tf.setBackend("wasm")` alone keeps tfjs's memory and one thread.
 */

/** Wasm section ids and the limits flags of a memory type. */
const MEMORY_SECTION = 5;
const HAS_MAXIMUM = 0x01;
const SHARED = 0x02;

function readLeb(bytes: Uint8Array, at: number): [value: number, next: number] {
  let value = 0;
  let shift = 0;
  let byte: number;
  do {
    byte = bytes[at++];
    value += (byte & 0x7f) * 2 ** shift;
    shift += 7;
  } while (byte & 0x80);
  return [value, at];
}

/**
 * The offset of the limits flag of the one memory a wasm binary defines, when that memory is
 * ordinary and has a maximum (a shared memory must have one); else undefined.
 */
export function memoryFlagOffset(bytes: Uint8Array): number | undefined {
  if (bytes.length < 8 || bytes[0] !== 0 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) return undefined;
  let at = 8;
  while (at < bytes.length) {
    const id = bytes[at++];
    const [size, body] = readLeb(bytes, at);
    if (id === MEMORY_SECTION) {
      const [count, flag] = readLeb(bytes, body);
      return count === 1 && bytes[flag] === HAS_MAXIMUM ? flag : undefined;
    }
    at = body + size;
  }
  return undefined;
}

/** A copy of `bytes` whose memory is shared, or undefined when its memory is not one this can share. */
export function withSharedMemory(bytes: Uint8Array): Uint8Array | undefined {
  const flag = memoryFlagOffset(bytes);
  if (flag === undefined) return undefined;
  const copy = new Uint8Array(bytes);
  copy[flag] = HAS_MAXIMUM | SHARED;
  return copy;
}

type Instantiate = typeof WebAssembly.instantiate;

/**
 * Runs `init` (the wasm backend's initialisation) with `WebAssembly.instantiate` giving any binary
 * that defines an ordinary, bounded memory a shared one instead; puts `WebAssembly.instantiate`
 * back after. Emscripten's Node glue instantiates from the binary's bytes, which is what is caught.
 */
export async function withSharedWasmMemory<T>(init: () => Promise<T>): Promise<T> {
  const original: Instantiate = WebAssembly.instantiate;
  const patched = ((source: unknown, imports?: WebAssembly.Imports) => {
    const bytes = source instanceof ArrayBuffer ? new Uint8Array(source) : ArrayBuffer.isView(source) ? new Uint8Array(source.buffer, source.byteOffset, source.byteLength) : undefined;
    const shared = bytes === undefined ? undefined : withSharedMemory(bytes);
    return (original as (s: unknown, i?: WebAssembly.Imports) => Promise<unknown>)(shared ?? source, imports);
  }) as Instantiate;
  WebAssembly.instantiate = patched;
  try {
    return await init();
  } finally {
    if (WebAssembly.instantiate === patched) WebAssembly.instantiate = original;
  }
}

/** The import section of d2l's kernels (wasm-asm.ts's IMPORT_MEMORY): memory "e"."m", ordinary, no minimum. */
const ORDINARY_IMPORT = [0x02, 0x08, 0x01, 0x01, 0x65, 0x01, 0x6d, 0x02, 0x00, 0x00];
/** The same import of a shared memory: flags "has a maximum, shared", minimum 0, maximum 65536 pages (the backend's). */
const SHARED_IMPORT = [0x02, 0x0b, 0x01, 0x01, 0x65, 0x01, 0x6d, 0x02, HAS_MAXIMUM | SHARED, 0x00, 0x80, 0x80, 0x04];

/**
 * A kernel module of wasm-asm.ts (importing an ordinary memory "e"."m") rewritten to import a
 * shared one, which a module must declare to link with it; the code is unchanged.
 */
export function importingSharedMemory(bytes: readonly number[]): number[] {
  let at = 8;
  while (at < bytes.length) {
    if (bytes[at] === 2) {
      const matches = ORDINARY_IMPORT.every((b, j) => bytes[at + j] === b);
      if (!matches) throw new Error("importingSharedMemory: not a module of wasm-asm.ts");
      return [...bytes.slice(0, at), ...SHARED_IMPORT, ...bytes.slice(at + ORDINARY_IMPORT.length)];
    }
    const [size, body] = readLeb(Uint8Array.from(bytes.slice(at + 1, at + 6)), 0);
    at += 1 + body + size;
  }
  throw new Error("importingSharedMemory: the module imports no memory");
}
