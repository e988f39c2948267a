import type { RunnerTask, RunnerTestFile } from "vitest";
import type { Reporter } from "vitest/reporters";

function count(tasks: RunnerTask[], counts: { passed: number; failed: number; skipped: number }): void {
  for (const task of tasks) {
    if (task.type === "suite") count(task.tasks, counts);
    else if (task.result?.state === "pass") counts.passed++;
    else if (task.result?.state === "fail") counts.failed++;
    else counts.skipped++;
  }
}

/**
 * Ends the run with one plain line, `tests: N passed, N failed, N skipped`, that any CI log
 * reader understands, after vitest's own summary. (onFinished: with the default reporter
 * alongside, vitest 3 does not call a second reporter's onTestRunEnd.)
 */
export default class SummaryReporter implements Reporter {
  onFinished(files: RunnerTestFile[] = []): void {
    const counts = { passed: 0, failed: 0, skipped: 0 };
    for (const file of files) {
      count(file.tasks, counts);
      if (file.result?.state === "fail" && file.tasks.length === 0) counts.failed++; // failed to load
    }
    process.stdout.write(`\ntests: ${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped\n`);
  }
}
