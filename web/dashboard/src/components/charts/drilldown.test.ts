import { describe, expect, it } from 'vitest';
import { jobsLink } from './drilldown';

describe('jobsLink', () => {
  it('filters the jobs list to the bucket', () => {
    const from = Date.UTC(2026, 11, 5, 10, 0);
    const to = Date.UTC(2026, 11, 5, 11, 0);
    expect(jobsLink({ from, to })).toBe('/jobs?finished_after=2026-12-05T10%3A00%3A00.000Z&finished_before=2026-12-05T11%3A00%3A00.000Z');
    const url = new URL(jobsLink({ from, to, provider: 'demo-aws', state: 'failed' }), 'http://x');
    expect(Object.fromEntries(url.searchParams)).toEqual({
      finished_after: '2026-12-05T10:00:00.000Z',
      finished_before: '2026-12-05T11:00:00.000Z',
      provider: 'demo-aws',
      state: 'failed',
    });
  });
});
