"""Export a notebook as it is, outputs and all, to the offline HTML of `npm run notebooks`.

Used by scripts/export.ts (npm run export). Nothing is executed. A notebook whose charts
lost the output that carries plotly.js (say its first chart cell was cleared and a later
one re-run in the same kernel) gets it back in front of its first chart: export.ts works out
which build is missing and passes it as --plotly-output.
"""
import argparse
import sys

import nbformat

from notebook_html import write_html


def html_of(output):
    html = output.get("data", {}).get("text/html", "")
    return "".join(html) if isinstance(html, list) else html


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("notebook")
    ap.add_argument("--html", required=True)
    ap.add_argument("--template-dir", required=True)
    ap.add_argument("--plotly-output", help="file holding the text/html output that carries the plotly.js the charts miss")
    ap.add_argument("--name", required=True)
    args = ap.parse_args()

    nb = nbformat.read(args.notebook, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    if not any(c.get("outputs") for c in code):
        print(f"{args.notebook} has no outputs: run it in Jupyter and save it first, or use `npm run notebooks`", file=sys.stderr)
        return 3
    outputs = [(c, o) for c in code for o in c.get("outputs", [])]
    first_chart = next((c for c, o in outputs if 'class="d2l-plot"' in html_of(o)), None)
    if first_chart is not None and args.plotly_output:
        with open(args.plotly_output, encoding="utf-8") as f:
            carrier = nbformat.v4.new_output("display_data", data={"text/html": f.read(), "text/plain": ""})
        first_chart.outputs.insert(0, carrier)
    write_html(nb, args.html, args.template_dir, args.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
