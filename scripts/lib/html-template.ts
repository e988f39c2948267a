import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

const require = createRequire(import.meta.url);

/**
 * Writes the nbconvert template "d2l" under `dir`: JupyterLab's look, with nothing fetched
 * from a CDN, so the exported notes work offline from file://. It drops require.js (no
 * output needs it) and inlines MathJax 3's self-contained TeX-to-SVG build (no font
 * files, no extensions loaded later) in place of the CDN's MathJax 2. Its last line says which
 * seed made the outputs (the executed notebook's `d2l.seed` metadata, see execute_notebook.py).
 */
export function writeHtmlTemplate(dir: string): void {
  const templateDir = join(dir, "d2l");
  mkdirSync(templateDir, { recursive: true });
  const mathjax = readFileSync(require.resolve("mathjax/es5/tex-svg-full.js"), "utf8").replace(/<\/script/gi, "<\\/script");
  if (mathjax.includes("{% endraw %}")) throw new Error("mathjax bundle cannot be wrapped in a Jinja raw block");
  writeFileSync(join(templateDir, "mathjax.js.j2"), `{% raw %}${mathjax}{% endraw %}`);
  writeFileSync(join(templateDir, "conf.json"), JSON.stringify({ base_template: "lab", mimetypes: { "text/html": true } }));
  writeFileSync(
    join(templateDir, "index.html.j2"),
    `{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}
<script>
window.MathJax = {
  tex: { inlineMath: [['$', '$'], ['\\\\(', '\\\\)']], displayMath: [['$$', '$$'], ['\\\\[', '\\\\]']], processEscapes: true, processEnvironments: true, tags: 'ams' },
  svg: { fontCache: 'global' }
};
</script>
<script>{% include 'mathjax.js.j2' %}</script>
{%- endblock html_head_js_mathjax -%}
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
