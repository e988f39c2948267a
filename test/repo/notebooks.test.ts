import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { KERNELSPEC, cleanFile, cleanNotebook, formatNotebook, isClean, readNotebook, type Notebook } from "../../scripts/lib/notebook-json";
import { NOTEBOOKS_DIR, ROOT, notebookNames } from "../../scripts/lib/paths";
import { libDeclarations, savedDefinitions } from "../../scripts/lib/save-drift";

/** The chapters' sections, in reading order (../shared/DESIGN.md). */
const CHAPTER = [
  "2.1-ndarray",
  "2.2-pandas",
  "2.3-linear-algebra",
  "2.4-calculus",
  "2.5-autograd",
  "2.6-probability",
  "2.7-lookup-api",
  "3.1-linear-regression",
  "3.2-linear-regression-scratch",
  "3.3-linear-regression-concise",
  "3.4-softmax-regression",
  "3.5-image-classification-dataset",
  "3.6-softmax-regression-scratch",
  "3.7-softmax-regression-concise",
  "4.1-mlp",
  "4.2-mlp-scratch",
  "4.3-mlp-concise",
  "4.4-underfit-overfit",
  "4.5-weight-decay",
  "4.6-dropout",
  "4.7-backprop",
  "4.8-numerical-stability-and-init",
  "4.9-environment",
  "4.10-kaggle-house-price",
  "5.1-model-construction",
  "5.2-parameters",
  "5.3-deferred-init",
  "5.4-custom-layer",
  "5.5-read-write",
  "5.6-use-gpu",
  "6.1-why-conv",
  "6.2-conv-layer",
  "6.3-padding-and-strides",
  "6.4-channels",
  "6.5-pooling",
  "6.6-lenet",
];

describe("notebooks as committed", () => {
  it("are exactly the chapters' sections", () => {
    expect(notebookNames()).toEqual(CHAPTER);
  });

  for (const name of notebookNames()) {
    const path = join(NOTEBOOKS_DIR, `${name}.ipynb`);

    it(`${name} has no outputs, no execution counts and the project's kernelspec (d2l-ts)`, () => {
      const nb = readNotebook(path);
      expect(nb.metadata.kernelspec, `${name} names another kernel: run npm run clean-notebooks`).toEqual(KERNELSPEC);
      for (const cell of nb.cells.filter((c) => c.cell_type === "code")) {
        expect(cell.outputs).toEqual([]);
        expect(cell.execution_count).toBeNull();
      }
      expect(isClean(path), `${name} is not in committed form: run npm run clean-notebooks`).toBe(true);
    });
  }
});

describe("the clean check itself", () => {
  /** A notebook as a helper's branch may bring it: saved with the plain tslab kernel, outputs and all. */
  const saved: Notebook = {
    cells: [{ cell_type: "code", metadata: { scrolled: true }, outputs: [{ output_type: "stream", name: "stdout", text: "1\n" }], execution_count: 3, source: "1" }],
    metadata: { kernelspec: { display_name: "TypeScript", language: "typescript", name: "tslab" }, language_info: { name: "typescript", version: "5" } },
    nbformat: 4,
    nbformat_minor: 5,
  };

  it("fails a notebook that names another kernel, and clean-notebooks gives it the project's", async () => {
    const { mkdtempSync, readFileSync, writeFileSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const clean = cleanNotebook(saved);
    expect(clean.metadata.kernelspec).toEqual(KERNELSPEC);
    expect(KERNELSPEC).toEqual({ display_name: "TypeScript (d2l-ts)", language: "typescript", name: "d2l-ts" });
    // Clean in every other way, but naming the plain tslab kernel.
    const file = join(mkdtempSync(join(tmpdir(), "d2l-clean-")), "x.ipynb");
    writeFileSync(file, formatNotebook({ ...clean, metadata: { ...clean.metadata, kernelspec: saved.metadata.kernelspec } }));
    expect(isClean(file)).toBe(false);
    expect(cleanFile(file)).toBe(true);
    expect(isClean(file)).toBe(true);
    expect(readNotebook(file).metadata.kernelspec).toEqual(KERNELSPEC);
    expect(readFileSync(file, "utf8")).toBe(formatNotebook(clean));
  });
});

describe("// @save definitions", () => {
  const lib = libDeclarations(join(ROOT, "lib", "src"));
  const saved = notebookNames().flatMap((name) => savedDefinitions(join(NOTEBOOKS_DIR, `${name}.ipynb`), lib));

  it("are found in the notebooks", () => {
    expect(saved.length).toBeGreaterThan(0);
  });

  for (const def of saved) {
    const where = `${def.notebook.replace(/^.*[\\/]/, "")} cell ${def.cell}: ${def.name}`;
    it(`${where} is the lib's`, () => {
      expect(def.libText, `${where} is marked // @save but lib/src defines no ${def.name}`).toBeDefined();
      expect(def.notebookText, `${where} differs from lib/src/${def.libFile}`).toBe(def.libText);
    });
  }
});

describe("the drift check itself", () => {
  it("tells a changed definition from an equal one", async () => {
    const { mkdtempSync, writeFileSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const dir = mkdtempSync(join(tmpdir(), "d2l-drift-"));
    writeFileSync(join(dir, "lib.ts"), "/** doc */\nexport function f(x: number): number {\n  return x + 1;\n}\nexport class C { a = 1; }\n");
    const nb = {
      cells: [
        { cell_type: "code", metadata: {}, outputs: [], execution_count: null, source: "// @save\nfunction f(x: number): number { return d2l.id(x) + 1; }" },
        { cell_type: "code", metadata: {}, outputs: [], execution_count: null, source: "// @save\nclass C {\n  a = 2;\n}" },
        { cell_type: "code", metadata: {}, outputs: [], execution_count: null, source: "// @save\nconst g = 1;" },
      ],
      metadata: {},
      nbformat: 4,
      nbformat_minor: 5,
    };
    writeFileSync(join(dir, "x.ipynb"), JSON.stringify(nb));
    const lib = libDeclarations(dir);
    const [f, c, g] = savedDefinitions(join(dir, "x.ipynb"), lib);
    expect(f.notebookText).not.toBe(f.libText); // id(x) + 1 vs x + 1
    expect(c.notebookText).not.toBe(c.libText); // a = 2 vs a = 1
    expect(g.libText).toBeUndefined();
    writeFileSync(join(dir, "lib.ts"), "export function f(x: number): number { return id(x) + 1; }\nexport class C {\n  // why\n  a = 2;\n}\n");
    const [f2, c2] = savedDefinitions(join(dir, "x.ipynb"), libDeclarations(dir));
    expect(f2.notebookText).toBe(f2.libText);
    expect(c2.notebookText).toBe(c2.libText);
  });
});
