import { spawnSync } from "node:child_process";
import { join } from "node:path";

/**
 * Jupyter is Python and is not on npm, so each script looks for a Python that has it: the
 * one named by D2L_PYTHON, an active conda environment's, `python3` and `python` on PATH,
 * then Debian's /usr/bin/python3 (which the apt packages use even when pyenv or a venv
 * puts another python3 first on PATH).
 */
export function pythonCandidates(): string[] {
  const list: string[] = [];
  if (process.env.D2L_PYTHON) list.push(process.env.D2L_PYTHON);
  if (process.env.CONDA_PREFIX) {
    list.push(join(process.env.CONDA_PREFIX, process.platform === "win32" ? "python.exe" : "bin/python"));
  }
  list.push("python3", "python", "/usr/bin/python3");
  return [...new Set(list)];
}

/** The first candidate Python that can import every one of `modules`, or undefined. */
export function findPython(modules: string[]): string | undefined {
  const code = modules.map((m) => `import ${m}`).join("; ");
  return pythonCandidates().find((py) => spawnSync(py, ["-c", code], { stdio: "ignore" }).status === 0);
}

/** What to tell a user whose machine has no Jupyter. */
export const INSTALL_JUPYTER_HINT = [
  "Jupyter was not found in any Python (tried: D2L_PYTHON, $CONDA_PREFIX, python3, python, /usr/bin/python3).",
  "Install it, then run `npm run kernel`:",
  "  conda:          conda env create -f environment.yml && conda activate d2l-ts",
  "  Debian/Ubuntu:  sudo apt-get install jupyter-notebook jupyter-nbconvert python3-nbclient jupyter-client",
  "  or point D2L_PYTHON at a Python that has jupyter_client, nbclient and nbconvert.",
].join("\n");
