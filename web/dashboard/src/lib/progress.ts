// Progress maths for the live job view: per-disk rate and ETA measured
// from successive byte counts as they arrive on the event stream.

export interface Sample {
  /** Milliseconds on a monotonic clock (performance.now() or the event's time). */
  at: number;
  bytes: number;
}

/**
 * RateMeter measures bytes per second over a sliding window of samples,
 * so one slow or bursty report does not swing the ETA. A sample going
 * backwards (a retried attempt restarting the disk) starts over.
 */
export class RateMeter {
  private samples: Sample[] = [];
  constructor(private readonly windowMs = 10_000) {}

  add(s: Sample): void {
    const last = this.samples[this.samples.length - 1];
    if (last && (s.bytes < last.bytes || s.at < last.at)) this.samples = [];
    if (last && s.at === last.at) this.samples.pop();
    this.samples.push(s);
    // Keep one sample older than the window so the span covers it.
    while (this.samples.length > 2 && s.at - this.samples[1]!.at >= this.windowMs) this.samples.shift();
  }

  /** Bytes per second, or null before two samples span any time. */
  rate(): number | null {
    if (this.samples.length < 2) return null;
    const a = this.samples[0]!;
    const b = this.samples[this.samples.length - 1]!;
    const dt = (b.at - a.at) / 1000;
    return dt > 0 ? (b.bytes - a.bytes) / dt : null;
  }
}

/** etaSeconds: time left at rate; null while total or rate is unknown. */
export function etaSeconds(done: number, total: number, rate: number | null): number | null {
  if (total <= 0) return null;
  if (done >= total) return 0;
  if (rate == null || rate <= 0) return null;
  return (total - done) / rate;
}

/** percent of done in total, clamped to 0..100; 0 while total is unknown. */
export function percent(done: number, total: number): number {
  if (total <= 0) return 0;
  return Math.min(100, Math.max(0, (100 * done) / total));
}
