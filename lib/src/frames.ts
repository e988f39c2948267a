import * as tf from "@tensorflow/tfjs";
import * as aq from "arquero";
import type { ColumnTable } from "arquero";
import { readFileSync } from "fs";
import { ArgumentError } from "./validate";

/**
 * The texts pandas 1.x's `read_csv` reads as missing (its default `na_values`). pandas 2 adds
 * "None", which turns the Kaggle house data's `MasVnrType` value "None" into a gap and gives 330
 * features instead of d2l's 331; we keep pandas 1's list, as d2l's numbers were made with it.
 */
export const PANDAS_NA_VALUES: ReadonlySet<string> = new Set([
  "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
  "<NA>", "N/A", "NA", "NULL", "NaN", "n/a", "nan", "null",
]);

/**
 * Reads a CSV file into an Arquero table the way pandas' `read_csv` does: the texts in
 * {@link PANDAS_NA_VALUES} become `null` (missing), and a column whose other values are all numbers
 * becomes a column of numbers; any other column stays text (pandas' `object` columns).
 * @see pandas.read_csv, as d2l uses it in section 4.10.3
 */
export function readCsv(path: string): ColumnTable {
  const raw = aq.fromCSV(readFileSync(path, "utf8"), { autoType: false });
  const columns: Record<string, (string | number | null)[]> = {};
  for (const name of raw.columnNames()) {
    const texts = raw.array(name) as ArrayLike<string | null>;
    const values = Array.from(texts, (t) => (t === null || PANDAS_NA_VALUES.has(t.trim()) ? null : t));
    const numeric = values.every((v) => v === null || (v.trim() !== "" && Number.isFinite(Number(v))));
    columns[name] = numeric ? values.map((v) => (v === null ? null : Number(v))) : values;
  }
  return aq.table(columns);
}

/** Whether a column holds numbers (or nothing but gaps), as pandas' non-`object` dtypes. */
export function isNumericColumn(table: ColumnTable, name: string): boolean {
  return Array.from(table.array(name) as ArrayLike<unknown>).every((v) => v === null || v === undefined || typeof v === "number");
}

/**
 * pandas' `get_dummies(table, dummy_na=true)`: every text column is replaced by one 0/1 column per
 * value (`${column}_${value}`, values in sorted order) and one for "missing" (`${column}_nan`),
 * placed after the numeric columns, which keep their order.
 * @see pandas.get_dummies, as d2l uses it in section 4.10.4
 */
export function getDummies(table: ColumnTable, dummyNa = true): ColumnTable {
  const columns: Record<string, ArrayLike<unknown>> = {};
  const categorical: string[] = [];
  for (const name of table.columnNames()) {
    if (isNumericColumn(table, name)) columns[name] = table.array(name) as ArrayLike<unknown>;
    else categorical.push(name);
  }
  const n = table.numRows();
  for (const name of categorical) {
    const values = Array.from(table.array(name) as ArrayLike<string | null>);
    const levels = [...new Set(values.filter((v): v is string => v !== null && v !== undefined))].sort();
    const indicators = levels.map((level) => {
      const indicator = new Uint8Array(n);
      columns[`${name}_${level}`] = indicator;
      return indicator;
    });
    const missing = new Uint8Array(n);
    if (dummyNa) columns[`${name}_nan`] = missing;
    const levelOf = new Map(levels.map((level, k) => [level, indicators[k]]));
    values.forEach((v, i) => {
      (v === null || v === undefined ? missing : levelOf.get(v)!)[i] = 1;
    });
  }
  return aq.table(columns);
}

/**
 * A table of numbers as a float32 tensor of shape [rows, columns], one row per example; `null`
 * (missing) is refused with the column's name, as is text.
 */
export function tableToTensor(table: ColumnTable): tf.Tensor2D {
  const names = table.columnNames();
  const [rows, cols] = [table.numRows(), names.length];
  const values = new Float32Array(rows * cols);
  names.forEach((name, j) => {
    const column = table.array(name) as ArrayLike<unknown>;
    for (let i = 0; i < rows; i++) {
      const v = column[i];
      if (typeof v !== "number") {
        throw new ArgumentError("tableToTensor", `column ${name}`, "numbers without gaps", v);
      }
      values[i * cols + j] = v;
    }
  });
  return tf.tensor2d(values, [rows, cols]);
}
