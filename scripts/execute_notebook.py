"""Execute one notebook in a Jupyter kernel, then export it to HTML.

Used by scripts/run-notebooks.ts (npm run notebooks). nbclient is Python-only, hence this
small driver. It runs the code cells in order and stops at the first failing one, as a
reader's "Run All" does; the executed notebook and its HTML are written either way, and
the last line of stdout is a JSON summary: per-cell seconds and the failure, if any.

With --passes 2 it then runs all the code cells again in the same kernel, as a reader's second
Run All does (no restart), and reports tf.memory().numTensors after each pass: a notebook must
pass both times and leave the same count. The exported notebook is the first pass.
"""
import copy
import argparse
import json
import os
import sys
import time

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from notebook_html import write_html


def stream_text(cell, name):
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("name") == name)


def num_tensors(client):
    """tf.memory().numTensors in the kernel, read by a cell that is not part of the notebook."""
    probe = nbformat.v4.new_code_cell('console.log(`numTensors=${require("@tensorflow/tfjs").memory().numTensors}`);')
    client.execute_cell(probe, 0)
    text = stream_text(probe, "stdout")
    return int(text.split("numTensors=")[1].split()[0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("notebook")
    ap.add_argument("--executed", required=True)
    ap.add_argument("--html", required=True)
    ap.add_argument("--kernel", default="d2l-ts")  # the project's kernel (scripts/lib/kernelspec.ts)
    ap.add_argument("--template-dir", required=True)
    ap.add_argument("--timeout", type=int, default=600)
    ap.add_argument("--seed", default="random", help='the D2L_SEED the kernel runs with, or "random" for none')
    ap.add_argument("--passes", type=int, default=1)
    args = ap.parse_args()

    nb = nbformat.read(args.notebook, as_version=4)
    # Which seed made these outputs, for the executed notebook and its HTML (the d2l template shows it).
    nb.metadata["d2l"] = {"seed": None if args.seed == "random" else int(args.seed)}
    client = NotebookClient(
        nb,
        kernel_name=args.kernel,
        timeout=args.timeout,
        record_timing=True,
        resources={"metadata": {"path": os.path.dirname(os.path.abspath(args.notebook))}},
    )
    cells, failure, passes, exported = [], None, [], None
    with client.setup_kernel():
        for run in range(1, args.passes + 1):
            # The first pass is the one exported; nbclient stores each executed cell back into nb.cells,
            # so later passes (and the probe) run on copies and the first pass is put back at the end.
            notebook_cells = nb.cells if run == 1 else copy.deepcopy(exported)
            for index, cell in enumerate(notebook_cells):
                if cell.cell_type != "code":
                    continue
                start = time.monotonic()
                try:
                    # tslab sends no execute_input, so nbclient would leave the prompt
                    # numbers empty; number the cells as a front end's Run All does.
                    client.execute_cell(cell, index, execution_count=len(cells) + 1)
                except (CellExecutionError, CellTimeoutError, DeadKernelError) as error:
                    stderr = stream_text(cell, "stderr").strip()
                    failure = {
                        "cell": index,
                        "pass": run,
                        "source": cell.source,
                        "error": stderr or str(error).strip().splitlines()[-1],
                    }
                if run == 1:
                    cells.append({"cell": index, "seconds": round(time.monotonic() - start, 3)})
                if failure:
                    break
            if run == 1:
                exported = copy.deepcopy(nb.cells)
            if failure:
                break
            if args.passes > 1:
                passes.append({"numTensors": num_tensors(client)})
    if exported is not None:
        nb.cells = exported
    os.makedirs(os.path.dirname(args.executed), exist_ok=True)
    nbformat.write(nb, args.executed)
    write_html(nb, args.html, args.template_dir, os.path.splitext(os.path.basename(args.notebook))[0])
    print(json.dumps({"cells": cells, "failure": failure, "passes": passes}))
    return 1 if failure else 0


if __name__ == "__main__":
    sys.exit(main())
