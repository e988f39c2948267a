import { spawn } from "node:child_process";

/**
 * Runs a Python driver script (`python -c code args...`) and parses the JSON object it prints last;
 * a non-zero exit or no JSON is an error carrying what it wrote to stderr.
 */
export async function runPythonDriver<T>(python: string, code: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<T> {
  const child = spawn(python, ["-c", code, ...args], { cwd: options.cwd, env: options.env ?? process.env });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  const status = await new Promise<number | null>((resolve) => child.on("close", resolve));
  const last = stdout.trim().split("\n").pop() ?? "";
  if (status !== 0 || !last.startsWith("{")) throw new Error(`the Python driver failed (exit ${status}):\n${stderr}`);
  return JSON.parse(last) as T;
}
