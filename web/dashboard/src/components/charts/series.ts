// From the daemon's stats history (GET /api/v1/stats/history) to the
// charts' points, and the live `stats` events folded into them, so a reload
// starts from the stored history and the stream keeps it moving.

import type { Schemas } from '../../api/client';
import type { DurationCount } from './heatmap';
import type { ChartPoint } from './TimeChart';

export type StatsHistory = Schemas['StatsHistory'];
export type StatsSample = Schemas['StatsSample'];

export const FINAL_STATES = ['succeeded', 'failed', 'cancelled'] as const;

export interface ChartData {
  step: number; // ms
  since: number;
  until: number;
  points: ChartPoint[];
  durations: DurationCount[];
  /** Upper bounds of the duration bins, seconds (the last bin, longer, has none). */
  bounds: number[];
  providers: string[];
}

/** The median bin's upper bound (Infinity for the open last bin), or null without jobs. */
export function medianBound(counts: readonly number[], bounds: readonly number[]): number | null {
  const total = counts.reduce((a, b) => a + b, 0);
  if (total === 0) return null;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    seen += counts[i] ?? 0;
    if (seen * 2 >= total) return bounds[i] ?? Infinity;
  }
  return Infinity;
}

export const providerKey = (provider: string) => `dur:${provider}`;

export function fromHistory(h: StatsHistory): ChartData {
  const step = h.step_seconds * 1000;
  const bounds = h.duration_bounds_seconds ?? [];
  const providers = [...new Set((h.buckets ?? []).flatMap((b) => (b.durations ?? []).map((d) => d.provider)))].sort();
  const durations: DurationCount[] = [];
  const points = (h.buckets ?? []).map((b) => {
    const t = Date.parse(b.start);
    const finished = b.finished ?? {};
    const n = (s: string) => finished[s] ?? 0;
    const decided = n('succeeded') + n('failed');
    const p: ChartPoint = {
      t,
      throughput: b.throughput_bytes_per_second,
      queued: b.queued ?? null,
      running: b.running ?? null,
      // Per hour, so that the numbers mean the same at every step.
      ...Object.fromEntries(FINAL_STATES.map((s) => [s, (n(s) * 3_600_000) / step])),
      success: decided ? (100 * n('succeeded')) / decided : null,
    };
    for (const d of b.durations ?? []) {
      const counts = d.counts ?? [];
      const m = medianBound(counts, bounds);
      // The open bin has no number to draw: it shows at the top bound.
      p[providerKey(d.provider)] = m === null ? null : Math.min(m, bounds[bounds.length - 1] ?? m);
      counts.forEach((count, i) => count && durations.push({ t, le: bounds[i] ?? Infinity, count, provider: d.provider }));
    }
    return p;
  });
  return { step, since: Date.parse(h.since), until: Date.parse(h.until), points, durations, bounds, providers };
}

/**
 * Folds a live stats sample into the data: its bucket's gauges take the
 * sample's values (a new bucket is opened past the last one), and the
 * window's end follows the clock. Finished-job counts are not in samples;
 * the page re-reads the history when jobs finish.
 */
export function applySample(d: ChartData, s: StatsSample): ChartData {
  const at = Date.parse(s.at);
  if (!Number.isFinite(at) || at < d.since) return d;
  const t = d.since + Math.floor((at - d.since) / d.step) * d.step;
  const points = d.points.slice();
  let i = points.length - 1;
  while (i >= 0 && (points[i]?.t ?? 0) > t) i--;
  const gauges = { throughput: s.throughput_bytes_per_second, queued: s.queued, running: s.running };
  const existing = i >= 0 && points[i]?.t === t ? points[i] : undefined;
  if (existing) points[i] = { ...existing, ...gauges };
  else points.splice(i + 1, 0, { t, ...gauges, succeeded: 0, failed: 0, cancelled: 0, success: null });
  return { ...d, points, until: Math.max(d.until, t + d.step) };
}
