import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * Writes the nbconvert template "d2l" under `dir`: JupyterLab's look, with nothing fetched
 * from a CDN, so the exported notes work offline from file://. It drops require.js (no
 * output needs it) and the CDN's MathJax: the page's TeX is typeset ahead of time into SVG by
 * `prerenderMath` (scripts/lib/prerender-math.ts), which the runner and `npm run export` apply
 * to the page nbconvert writes. Its last line says which seed made the outputs (the executed
 * notebook's `d2l.seed` metadata, see execute_notebook.py).
 */
export function writeHtmlTemplate(dir: string): void {
  const templateDir = join(dir, "d2l");
  mkdirSync(templateDir, { recursive: true });
  rmSync(join(templateDir, "mathjax.js.j2"), { force: true }); // what an older template inlined
  writeFileSync(join(templateDir, "conf.json"), JSON.stringify({ base_template: "lab", mimetypes: { "text/html": true } }));
  writeFileSync(
    join(templateDir, "index.html.j2"),
    `{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{% block body_footer %}
{%- set run = nb.metadata.get('d2l', {}) -%}
{%- if 'seed' in run %}
<p id="d2l-run" class="jp-RenderedHTMLCommon" style="margin: 2em auto; max-width: 60em; color: #616161">
{%- if run.seed is none -%}
Executed by <code>npm run notebooks</code> without a seed: another run draws other random numbers.
{%- else -%}
Executed by <code>npm run notebooks</code> with seed {{ run.seed }} (<code>D2L_SEED={{ run.seed }}</code>): the same seed on the same backend gives the same numbers.
{%- endif -%}
</p>
{%- endif %}
</body>
{% endblock body_footer %}
`,
  );
}
