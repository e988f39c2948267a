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
