import { chromium, type Browser } from "playwright-core";

/** Debian's Chromium; tests never download a browser. */
export const CHROMIUM = process.env.D2L_CHROMIUM ?? "/usr/bin/chromium";

/** Launches headless Chromium with no network chatter of its own. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
  });
}

/**
 * Whether this run drives the Jupyter front ends in Chromium (classic notebook and JupyterLab):
 * yes unless `D2L_TEST_FRONTENDS=0`, which .ci/run sets for its second Node version. The front
 * ends' code runs in Chromium and Jupyter's Python server, the same whatever Node runs the kernel,
 * and every notebook still runs in that Node's kernel; the first run drives them.
 */
export const DRIVE_FRONTENDS = (() => {
  const value = process.env.D2L_TEST_FRONTENDS?.trim() || "1";
  if (value !== "0" && value !== "1") throw new Error(`D2L_TEST_FRONTENDS must be 0 or 1; got "${value}"`);
  if (value === "0") console.warn("D2L_TEST_FRONTENDS=0: the classic notebook and JupyterLab are not driven in this run");
  return value === "1";
})();
