import { describe, expect, it } from 'vitest';
import { applySample, fromHistory, medianBound, providerKey, type StatsHistory } from './series';

const history: StatsHistory = {
  since: '2026-12-05T10:00:00Z',
  until: '2026-12-05T10:20:00Z',
  step_seconds: 600,
  duration_bounds_seconds: [10, 60, 300],
  buckets: [
    {
      start: '2026-12-05T10:00:00Z',
      bytes_moved: 600,
      throughput_bytes_per_second: 1,
      queued: 2,
      running: 1,
      finished: { succeeded: 3, failed: 1, cancelled: 2 },
      durations: [
        { provider: 'demo', counts: [0, 2, 1, 0] },
        { provider: 'demo-aws', counts: [0, 0, 0, 1] },
      ],
    },
    { start: '2026-12-05T10:10:00Z', bytes_moved: 0, throughput_bytes_per_second: 0, finished: { succeeded: 0, failed: 0, cancelled: 0 }, durations: [] },
  ],
};

describe('fromHistory', () => {
  const d = fromHistory(history);
  it('turns buckets into chart points with rates per hour and the success rate', () => {
    expect(d.step).toBe(600_000);
    expect(d.points[0]).toMatchObject({ t: Date.parse('2026-12-05T10:00:00Z'), throughput: 1, queued: 2, running: 1, succeeded: 18, failed: 6, cancelled: 12, success: 75 });
    // No samples: no queue value rather than a false zero; no finished jobs: no rate.
    expect(d.points[1]).toMatchObject({ queued: null, running: null, success: null });
  });
  it('gives each provider its median duration and the heatmap cells', () => {
    expect(d.providers).toEqual(['demo', 'demo-aws']);
    expect(d.points[0]?.[providerKey('demo')]).toBe(60);
    expect(d.points[0]?.[providerKey('demo-aws')]).toBe(300); // the open bin drawn at the top bound
    expect(d.durations).toEqual([
      { t: d.points[0]?.t, le: 60, count: 2, provider: 'demo' },
      { t: d.points[0]?.t, le: 300, count: 1, provider: 'demo' },
      { t: d.points[0]?.t, le: Infinity, count: 1, provider: 'demo-aws' },
    ]);
  });
});

describe('medianBound', () => {
  it('finds the bin holding the middle job', () => {
    expect(medianBound([1, 1, 1], [10, 20])).toBe(20);
    expect(medianBound([0, 0, 5], [10, 20])).toBe(Infinity);
    expect(medianBound([0, 0, 0], [10, 20])).toBeNull();
  });
});

describe('applySample', () => {
  const d = fromHistory(history);
  it('updates the gauges of the sample bucket', () => {
    const next = applySample(d, { at: '2026-12-05T10:15:00Z', queued: 4, running: 2, throughput_bytes_per_second: 99 });
    expect(next.points).toHaveLength(2);
    expect(next.points[1]).toMatchObject({ queued: 4, running: 2, throughput: 99 });
    expect(d.points[1]?.queued).toBeNull(); // not mutated
  });
  it('opens a new bucket past the last and moves the end', () => {
    const next = applySample(d, { at: '2026-12-05T10:31:00Z', queued: 1, running: 0, throughput_bytes_per_second: 5 });
    expect(next.points.map((p) => new Date(p.t).toISOString())).toEqual(['2026-12-05T10:00:00.000Z', '2026-12-05T10:10:00.000Z', '2026-12-05T10:30:00.000Z']);
    expect(next.until).toBe(Date.parse('2026-12-05T10:40:00Z'));
  });
  it('ignores samples before the history', () => {
    expect(applySample(d, { at: '2026-12-05T09:00:00Z', queued: 1, running: 0, throughput_bytes_per_second: 5 })).toBe(d);
  });
});
