/** Records multiple running times. @see d2l.Timer (section 3.1.2, vectorization for speed) */
export class Timer {
  times: number[] = [];
  private tik = 0;

  constructor() {
    this.start();
  }

  /** Starts the timer. */
  start(): void {
    this.tik = performance.now();
  }

  /** Stops the timer and records the time in seconds. */
  stop(): number {
    this.times.push((performance.now() - this.tik) / 1000);
    return this.times[this.times.length - 1];
  }

  /** Returns the average time. */
  avg(): number {
    return this.sum() / this.times.length;
  }

  /** Returns the sum of time. */
  sum(): number {
    return this.times.reduce((a, b) => a + b, 0);
  }

  /** Returns the accumulated time. */
  cumsum(): number[] {
    let total = 0;
    return this.times.map((t) => (total += t));
  }
}
