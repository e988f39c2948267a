import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

/** The TeX delimiters and options the notebooks' markdown is written for (JupyterLab's). */
const TEX = {
  inlineMath: [["$", "$"], ["\\(", "\\)"]],
  displayMath: [["$$", "$$"], ["\\[", "\\]"]],
  processEscapes: true,
  processEnvironments: true,
  tags: "ams",
};

/** The parts of MathJax 3's components (the `mathjax` package's es5 build) this module uses. */
interface MathJaxNode {
  startup: {
    adaptor: {
      head(doc: unknown): unknown;
      append(parent: unknown, child: unknown): unknown;
      doctype(doc: unknown): string;
      root(doc: unknown): unknown;
      outerHTML(node: unknown): string;
    };
    output: { styleSheet(doc: unknown): unknown; clearFontCache(): void };
    getDocument(html: string): { document: unknown; math: Iterable<unknown>; render(): void };
  };
  texReset(): void;
}

let loaded: Promise<MathJaxNode> | undefined;

/** MathJax in Node: TeX in (every extension, nothing loaded later), SVG out, on its own light DOM. */
function mathJax(): Promise<MathJaxNode> {
  loaded ??= (require("mathjax") as { init(config: object): Promise<MathJaxNode> }).init({
    loader: { load: ["input/tex-full", "output/svg", "adaptors/liteDOM"], versionWarnings: false },
    tex: TEX,
    // One copy of each glyph per page, shared by every formula on it.
    svg: { fontCache: "global" },
    startup: { typeset: false },
  });
  return loaded;
}

/**
 * Typesets the TeX of an exported page ahead of time, as MathJax would in the reader's browser
 * (same delimiters, same skipped elements: code, pre, script...), and returns the page with each
 * formula as SVG, the glyphs it uses once each, and MathJax's small stylesheet. The page then needs
 * no MathJax at all (about 2.3 MB less); a page without math comes back as it was. Scripts and
 * styles are set aside while the page goes through MathJax's HTML parser, so they come back byte
 * for byte.
 */
export async function prerenderMath(html: string): Promise<{ html: string; formulas: number }> {
  const kept: string[] = [];
  const keep = (match: string) => `<!--d2l-kept-${kept.push(match) - 1}-->`;
  const light = html.replace(/<script\b[^>]*>[\s\S]*?<\/script>/gi, keep).replace(/<style\b[^>]*>[\s\S]*?<\/style>/gi, keep);
  // Quick way out: no delimiter at all.
  if (!/\$|\\\(|\\\[|\\begin\{/.test(light)) return { html, formulas: 0 };
  const MathJax = await mathJax();
  // Each page numbers its equations from 1 and carries the glyphs it uses, none of another page's.
  MathJax.texReset();
  MathJax.startup.output.clearFontCache();
  const { adaptor } = MathJax.startup;
  const doc = MathJax.startup.getDocument(light);
  doc.render();
  const formulas = [...doc.math].length;
  if (formulas === 0) return { html, formulas: 0 };
  adaptor.append(adaptor.head(doc.document), MathJax.startup.output.styleSheet(doc));
  const out = `${adaptor.doctype(doc.document)}\n${adaptor.outerHTML(adaptor.root(doc.document))}`;
  let restored = 0;
  const page = out.replace(/<!--d2l-kept-(\d+)-->/g, (_, i: string) => (restored++, kept[Number(i)]));
  if (restored !== kept.length) throw new Error(`prerenderMath: ${kept.length - restored} of the page's ${kept.length} scripts and styles were lost in MathJax's parser`);
  return { html: page, formulas };
}

/** {@link prerenderMath} on an HTML file, in place; returns how many formulas it typeset. */
export async function prerenderMathFile(path: string): Promise<number> {
  const { html, formulas } = await prerenderMath(readFileSync(path, "utf8"));
  if (formulas > 0) writeFileSync(path, html);
  return formulas;
}
