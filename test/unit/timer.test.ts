import { describe, expect, it } from "vitest";
import { Timer } from "../../lib/src/timer";

describe("Timer", () => {
  it("records each interval in seconds and sums, averages and accumulates them", async () => {
    const timer = new Timer();
    await new Promise((r) => setTimeout(r, 30));
    const first = timer.stop();
    timer.start();
    await new Promise((r) => setTimeout(r, 60));
    timer.stop();
    expect(first).toBeGreaterThanOrEqual(0.025);
    expect(first).toBeLessThan(1);
    expect(timer.times).toHaveLength(2);
    expect(timer.sum()).toBeCloseTo(timer.times[0] + timer.times[1], 10);
    expect(timer.avg()).toBeCloseTo(timer.sum() / 2, 10);
    expect(timer.cumsum()).toEqual([timer.times[0], timer.times[0] + timer.times[1]]);
    expect(timer.times[1]).toBeGreaterThan(timer.times[0]);
  });
});
