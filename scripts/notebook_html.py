"""Export a notebook (nbformat node) to the project's offline HTML: template "d2l".

Shared by execute_notebook.py (npm run notebooks) and export_notebook.py (npm run export).
"""
import os

from nbconvert import HTMLExporter


def write_html(nb, path, template_dir, name):
    """Writes `nb` as HTML to `path` with the "d2l" template found under `template_dir`."""
    exporter = HTMLExporter(template_name="d2l", extra_template_basedirs=[template_dir])
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": nb.metadata.get("title") or name}})
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(body)
