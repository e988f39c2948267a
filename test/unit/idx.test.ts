import { writeFileSync } from "fs";
import { join } from "path";
import { afterAll, describe, expect, it } from "vitest";
import { DataFileError, gunzipFile, parseIdx, readIdxGz } from "../../lib/src/idx";
import { NAMES, gz, idxBytes, realDataDir, tempDir } from "./fashion-mnist-fixtures";

describe("parseIdx", () => {
  it("decodes the header's dimensions and exactly the values it promises", () => {
    const values = Array.from({ length: 2 * 3 * 4 }, (_, i) => i);
    const idx = parseIdx(idxBytes([2, 3, 4], values), "t.idx", 3);
    expect(idx.dims).toEqual([2, 3, 4]);
    expect(Array.from(idx.data)).toEqual(values);
  });

  it("rejects a wrong magic number, naming the file and the bytes found", () => {
    const bytes = idxBytes([3], [1, 2, 3]);
    bytes[0] = 0x1f;
    bytes[1] = 0x8b;
    expect(() => parseIdx(bytes, "x.idx")).toThrow(/^x\.idx: is not an IDX file: its magic number is 1f 8b 08 01/);
  });

  it("rejects value types other than unsigned bytes, naming the type", () => {
    expect(() => parseIdx(idxBytes([1], [0, 0, 0, 0], 0x0c), "f.idx")).toThrow(/IDX value type int32 \(0xc\).*only unsigned bytes/);
    expect(() => parseIdx(idxBytes([1], [0], 0x42), "f.idx")).toThrow(/unknown \(0x42\)/);
  });

  it("rejects an unexpected number of dimensions", () => {
    expect(() => parseIdx(idxBytes([4], [0, 1, 2, 3]), "l.idx", 3)).toThrow(/declares 1 dimension\(s\), expected 3/);
  });

  it("rejects a file shorter than its header promises (truncated, not a smaller dataset)", () => {
    const bytes = idxBytes([10, 2, 2], new Array(40).fill(7)).subarray(0, 16 + 37);
    expect(() => parseIdx(bytes, "t.idx")).toThrow(/is truncated: its header promises 40 values \(dimensions 10x2x2\), the file holds 37/);
    expect(() => parseIdx(idxBytes([10, 2, 2], []).subarray(0, 9), "t.idx")).toThrow(/header needs 16 bytes, the file holds 9/);
    expect(() => parseIdx(new Uint8Array([0, 0]), "t.idx")).toThrow(/only 2 byte/);
  });

  it("rejects bytes beyond what the header promises", () => {
    expect(() => parseIdx(idxBytes([2], [1, 2, 3]), "t.idx")).toThrow(/1 byte\(s\) after the 2 values/);
  });

  it("throws DataFileError carrying the file", () => {
    try {
      parseIdx(new Uint8Array(1), "some/file");
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(DataFileError);
      expect((error as DataFileError).file).toBe("some/file");
    }
  });
});

describe("gzipped IDX files", () => {
  const { dir, cleanup } = tempDir("idx");
  afterAll(cleanup);

  it("reads the real test labels: 10000 labels in 0..9", () => {
    const idx = readIdxGz(join(realDataDir(), NAMES.testLabels), 1);
    expect(idx.dims).toEqual([10000]);
    expect(idx.raw.length).toBe(10008);
    expect(Math.max(...idx.data)).toBe(9);
  });

  it("reports a truncated gzip file as such", () => {
    const whole = gz(idxBytes([1000], new Array(1000).fill(3)));
    const path = join(dir, "cut.gz");
    writeFileSync(path, whole.subarray(0, whole.length >> 1));
    expect(() => gunzipFile(path)).toThrow(new RegExp(`^${path}: is not a complete gzip file \\(unexpected end of file\\)`));
  });

  it("reports a file that is not gzip at all", () => {
    const path = join(dir, "plain.gz");
    writeFileSync(path, idxBytes([3], [1, 2, 3]));
    expect(() => readIdxGz(path)).toThrow(/is not a complete gzip file \(incorrect header check\)/);
  });
});
