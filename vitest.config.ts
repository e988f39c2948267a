import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    setupFiles: ["test/setup.ts"],
    pool: "forks",
    testTimeout: 60_000,
    // The e2e suite executes every notebook in one beforeAll: with chapter 4 that takes over 10 minutes on a busy 2-core machine.
    hookTimeout: 1_800_000,
    // it.concurrent tests (the exported pages in Chromium) run two at a time: the machines have two cores.
    maxConcurrency: 2,
    reporters: ["default", "./test/summary-reporter.ts"],
  },
});
