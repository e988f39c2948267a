import { readFileSync } from "fs";
import { gunzipSync } from "zlib";

/**
 * The IDX format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/): two zero
 * bytes, a type code, the number of dimensions, each dimension as a big-endian uint32, then
 * the values in row-major order.
 */

/** An error in a data file: its message names the file and what is wrong with it. */
export class DataFileError extends Error {
  constructor(
    /** The file at fault. */
    readonly file: string,
    message: string,
  ) {
    super(message);
    this.name = "DataFileError";
  }
}

/** A decoded IDX file of unsigned bytes (type 0x08), the only type the MNIST files use. */
export interface IdxArray {
  /** The dimensions the header declares, e.g. [60000, 28, 28]. */
  dims: number[];
  /** The values, row-major; a view into the decompressed file. */
  data: Uint8Array;
}

const IDX_TYPES: Record<number, string> = {
  0x08: "unsigned byte",
  0x09: "signed byte",
  0x0b: "int16",
  0x0c: "int32",
  0x0d: "float32",
  0x0e: "float64",
};

/**
 * Parses IDX bytes, checking the magic number, the type, the header's length and that the
 * file holds exactly the number of values its dimensions promise (a truncated file is an
 * error, not a shorter dataset). `file` names the source in error messages; `rank`, when
 * given, is the number of dimensions expected.
 */
export function parseIdx(bytes: Uint8Array, file: string, rank?: number): IdxArray {
  const fail = (what: string) => new DataFileError(file, `${file}: ${what}`);
  if (bytes.length < 4) throw fail(`is not an IDX file: only ${bytes.length} byte(s)`);
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    const magic = Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, "0")).join(" ");
    throw fail(`is not an IDX file: its magic number is ${magic}, expected 00 00 08 <rank>`);
  }
  const type = bytes[2];
  if (type !== 0x08) {
    const name = IDX_TYPES[type] ? `${IDX_TYPES[type]} (0x${type.toString(16)})` : `unknown (0x${type.toString(16)})`;
    throw fail(`has IDX value type ${name}; only unsigned bytes (0x08) are supported`);
  }
  const ndims = bytes[3];
  if (ndims === 0) throw fail("declares 0 dimensions");
  if (rank !== undefined && ndims !== rank) throw fail(`declares ${ndims} dimension(s), expected ${rank}`);
  const headerLength = 4 + 4 * ndims;
  if (bytes.length < headerLength) {
    throw fail(`is truncated: its header needs ${headerLength} bytes, the file holds ${bytes.length}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  for (let i = 0; i < ndims; i++) dims.push(view.getUint32(4 + 4 * i, false));
  const promised = dims.reduce((a, b) => a * b, 1);
  const present = bytes.length - headerLength;
  if (present < promised) {
    throw fail(
      `is truncated: its header promises ${promised} values (dimensions ${dims.join("x")}), ` +
        `the file holds ${present}`,
    );
  }
  if (present > promised) {
    throw fail(`has ${present - promised} byte(s) after the ${promised} values its header (${dims.join("x")}) promises`);
  }
  return { dims, data: bytes.subarray(headerLength) };
}

/** Decompresses a gzip file, turning zlib's terse errors into one that names the file. */
export function gunzipFile(path: string): Uint8Array {
  const compressed = readFileSync(path);
  try {
    const raw = gunzipSync(compressed);
    return new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new DataFileError(path, `${path}: is not a complete gzip file (${reason}); it may be truncated or corrupt`);
  }
}

/** Reads a gzipped IDX file (`*-ubyte.gz`): {@link gunzipFile} then {@link parseIdx}. */
export function readIdxGz(path: string, rank?: number): IdxArray & { raw: Uint8Array } {
  const raw = gunzipFile(path);
  return { ...parseIdx(raw, path, rank), raw };
}
