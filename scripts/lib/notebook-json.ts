import { readFileSync, writeFileSync } from "node:fs";
import { KERNEL_DISPLAY_NAME, KERNEL_NAME } from "./kernelspec";

/** The parts of an .ipynb file (nbformat 4) that the hygiene tools read and write. */
export interface NotebookCell {
  cell_type: "code" | "markdown" | "raw";
  source: string | string[];
  metadata: Record<string, unknown>;
  outputs?: unknown[];
  execution_count?: number | null;
  id?: string;
  attachments?: unknown;
}

/** An nbformat 4 notebook. */
export interface Notebook {
  cells: NotebookCell[];
  metadata: Record<string, unknown>;
  nbformat: number;
  nbformat_minor: number;
}

/** The one kernelspec every notebook names: the project's own kernel (scripts/lib/kernelspec.ts). */
export const KERNELSPEC = { display_name: KERNEL_DISPLAY_NAME, language: "typescript", name: KERNEL_NAME };

/** Source split into lines that keep their "\n", as Jupyter itself writes .ipynb files. */
function sourceLines(text: string): string[] {
  return text.match(/[^\n]*\n|[^\n]+$/g) ?? [];
}

/** A cell's source as one string. */
export function sourceText(cell: NotebookCell): string {
  return Array.isArray(cell.source) ? cell.source.join("") : cell.source;
}

/** Reads an .ipynb file. */
export function readNotebook(path: string): Notebook {
  return JSON.parse(readFileSync(path, "utf8")) as Notebook;
}

/** Jupyter's own formatting (one-space indent, sorted keys, final newline), so diffs stay small. */
export function formatNotebook(nb: Notebook): string {
  const sortKeys = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(sortKeys);
    if (value && typeof value === "object") {
      return Object.fromEntries(
        Object.keys(value).sort().map((k) => [k, sortKeys((value as Record<string, unknown>)[k])]),
      );
    }
    return value;
  };
  return `${JSON.stringify(sortKeys(nb), null, 1)}\n`;
}

/**
 * The committed form of a notebook: no outputs, no execution counts, no per-cell run
 * metadata, and the project's kernelspec, so a diff shows prose and code only.
 */
export function cleanNotebook(nb: Notebook): Notebook {
  const cells = nb.cells.map((cell): NotebookCell => {
    const { outputs: _o, execution_count: _e, metadata, ...rest } = cell;
    const keep = metadata.tags ? { tags: metadata.tags } : {};
    const clean: NotebookCell = { ...rest, metadata: keep, source: sourceLines(sourceText(cell)) };
    return cell.cell_type === "code" ? { ...clean, outputs: [], execution_count: null } : clean;
  });
  return {
    ...nb,
    cells,
    metadata: {
      kernelspec: KERNELSPEC,
      language_info: { name: "typescript" },
      ...(nb.metadata.title ? { title: nb.metadata.title } : {}),
    },
  };
}

/** True when the file on disk is byte-for-byte its committed form. */
export function isClean(path: string): boolean {
  const text = readFileSync(path, "utf8");
  return text === formatNotebook(cleanNotebook(JSON.parse(text) as Notebook));
}

/** Rewrites the file in its committed form; returns true when that changed it. */
export function cleanFile(path: string): boolean {
  const text = readFileSync(path, "utf8");
  const clean = formatNotebook(cleanNotebook(JSON.parse(text) as Notebook));
  if (clean === text) return false;
  writeFileSync(path, clean);
  return true;
}
