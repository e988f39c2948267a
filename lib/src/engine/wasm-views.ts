/**
 * Repairs the wasm backend's views of its memory after an interrupt cut a memory grow in two
 * (used by ./interrupt.ts). Not in tfjs: its Emscripten glue assumes a grow always finishes.
 */
/** The parts of tfjs's Emscripten module (the wasm backend's `wasm`) that hold its memory. */
export interface EmscriptenHeap {
  asm?: { memory?: unknown };
  _malloc?: (bytes: number) => number;
  _free?: (pointer: number) => void;
  [view: string]: unknown;
}

/** The typed-array views Emscripten keeps of the module's memory, with their constructors. */
const HEAP_VIEWS = {
  HEAP8: Int8Array,
  HEAP16: Int16Array,
  HEAP32: Int32Array,
  HEAPU8: Uint8Array,
  HEAPU16: Uint16Array,
  HEAPU32: Uint32Array,
  HEAPF32: Float32Array,
  HEAPF64: Float64Array,
} as const;

/** Whether one of the module's views is of a buffer the memory no longer has (detached by a grow). */
export function staleViews(wasm: EmscriptenHeap | undefined): boolean {
  const memory = wasm?.asm?.memory;
  if (!(memory instanceof WebAssembly.Memory)) return false;
  return Object.keys(HEAP_VIEWS).some((name) => {
    const view = wasm![name];
    return ArrayBuffer.isView(view) && view.buffer !== memory.buffer;
  });
}

/**
 * Emscripten grows the memory, then makes its views anew (emscripten_realloc_buffer); an interrupt
 * between the two (likely: the grow is slow, and the next function entry is where V8 delivers it)
 * leaves every view on the old, detached buffer, and the next tensor write throws "Cannot perform
 * %TypedArray%.prototype.set on a detached ArrayBuffer". Emscripten also keeps private copies of
 * the views (its ccall writes through them), which only its own grow makes anew, so a grow is
 * forced: allocations of doubling size until one does not fit (untouched pages cost address space,
 * not RAM), all freed after. Returns false if the views stay stale (the memory is at its maximum);
 * the module's public views are then made anew, which the backend's own writes use.
 */
export function refreshViews(wasm: EmscriptenHeap): boolean {
  const memory = wasm.asm!.memory as WebAssembly.Memory;
  const held: number[] = [];
  for (let bytes = 1 << 16; staleViews(wasm) && bytes <= memory.buffer.byteLength; bytes *= 2) {
    const p = wasm._malloc?.(bytes) ?? 0;
    if (!p) break;
    held.push(p);
  }
  for (const p of held) wasm._free?.(p);
  if (!staleViews(wasm)) return true;
  for (const [name, View] of Object.entries(HEAP_VIEWS)) wasm[name] = new View(memory.buffer);
  return false;
}
