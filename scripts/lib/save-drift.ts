import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import ts from "typescript";
import { readNotebook, sourceText } from "./notebook-json";

/** A `// @save` definition in a notebook and how it compares with the lib's definition of the same name. */
export interface SavedDefinition {
  notebook: string;
  cell: number;
  name: string;
  /** The notebook's text, normalised; undefined fields mean the lib has no such name. */
  notebookText: string;
  libText?: string;
  libFile?: string;
}

const printer = ts.createPrinter({ removeComments: true, newLine: ts.NewLineKind.LineFeed });

/** The names a top-level statement declares (function, class, interface, type, const/let). */
function declaredNames(node: ts.Statement): string[] {
  if (ts.isFunctionDeclaration(node) || ts.isClassDeclaration(node) || ts.isInterfaceDeclaration(node) || ts.isTypeAliasDeclaration(node)) {
    return node.name ? [node.name.text] : [];
  }
  if (ts.isVariableStatement(node)) {
    return node.declarationList.declarations.flatMap((d) => (ts.isIdentifier(d.name) ? [d.name.text] : []));
  }
  return [];
}

/**
 * A declaration's code with comments, formatting and `export` dropped, and `d2l.` stripped
 * from the notebook side: a notebook calls the lib's other helpers as `d2l.x`, the lib as `x`.
 */
function normalise(node: ts.Statement, file: ts.SourceFile, stripD2l: boolean): string {
  const text = printer
    .printNode(ts.EmitHint.Unspecified, node, file)
    .replace(/^export (default )?/, "")
    .replace(/\bexport (?=(async )?function|class|const|let|interface|type)/g, "");
  return stripD2l ? text.replace(/\bd2l\./g, "") : text;
}

function parse(name: string, code: string): ts.SourceFile {
  return ts.createSourceFile(name, code, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
}

/** Every top-level declaration of the lib's sources, by name, normalised. */
export function libDeclarations(srcDir: string): Map<string, { file: string; text: string }> {
  const out = new Map<string, { file: string; text: string }>();
  for (const f of readdirSync(srcDir).filter((f) => f.endsWith(".ts"))) {
    const file = parse(f, readFileSync(join(srcDir, f), "utf8"));
    for (const stmt of file.statements) {
      for (const name of declaredNames(stmt)) out.set(name, { file: f, text: normalise(stmt, file, false) });
    }
  }
  return out;
}

/** The `// @save` definitions of a notebook, each paired with the lib's definition of that name. */
export function savedDefinitions(notebookPath: string, lib: Map<string, { file: string; text: string }>): SavedDefinition[] {
  const nb = readNotebook(notebookPath);
  const found: SavedDefinition[] = [];
  nb.cells.forEach((cell, index) => {
    const code = sourceText(cell);
    if (cell.cell_type !== "code" || !/^\s*\/\/\s*@save\b/m.test(code)) return;
    const file = parse("cell.ts", code);
    for (const stmt of file.statements) {
      for (const name of declaredNames(stmt)) {
        const libDef = lib.get(name);
        found.push({
          notebook: notebookPath,
          cell: index,
          name,
          notebookText: normalise(stmt, file, true),
          libText: libDef?.text,
          libFile: libDef?.file,
        });
      }
    }
  });
  return found;
}
