import { describe, expect, it } from 'vitest';
import { buildGrid, intensity, rowLabel, rowOf, summary } from './heatmap';

const H = 3_600_000;

describe('buildGrid', () => {
  const cells = [
    { t: 0, le: 10, count: 2, provider: 'demo' },
    { t: 0, le: 25, count: 1, provider: 'demo' }, // source bound between display bounds: next row up
    { t: H / 2, le: 10, count: 3, provider: 'demo-aws' },
    { t: H, le: Infinity, count: 4, provider: 'demo' },
    { t: 5 * H, le: 10, count: 9, provider: 'demo' }, // outside the window
  ];
  it('re-bins cells into the window step and display bounds', () => {
    const g = buildGrid(cells, { start: 0, end: 2 * H }, H, undefined, [10, 30, 60]);
    expect(g.times).toEqual([0, H]);
    expect(g.bounds).toEqual([10, 30, 60, Infinity]);
    expect(g.counts).toEqual([
      [5, 1, 0, 0],
      [0, 0, 0, 4],
    ]);
    expect([g.max, g.total]).toEqual([5, 10]);
  });
  it('filters by provider', () => {
    const g = buildGrid(cells, { start: 0, end: 2 * H }, H, 'demo-aws', [10, 30, 60]);
    expect(g.total).toBe(3);
    expect(g.counts[0]?.[0]).toBe(3);
  });
  it('aligns columns to the step', () => {
    const g = buildGrid([], { start: H / 2, end: 3 * H }, H, undefined, [10]);
    expect(g.times).toEqual([0, H, 2 * H]);
  });
});

describe('labels and colours', () => {
  it('labels rows', () => {
    const b = [10, 60, 3600, Infinity];
    expect([0, 1, 2, 3].map((r) => rowLabel(b, r))).toEqual(['≤ 10s', '10s–1m', '1m–1h', '> 1h']);
    expect(rowOf(61, b)).toBe(2);
    expect(rowOf(1e9, b)).toBe(3);
  });
  it('scales intensity with the square root, empty cells clear', () => {
    expect(intensity(0, 10)).toBe(0);
    expect(intensity(10, 10)).toBe(1);
    expect(intensity(1, 100)).toBeCloseTo(0.235);
  });
  it('summarises for screen readers', () => {
    const g = buildGrid([{ t: 0, le: 10, count: 1 }, { t: 0, le: 100, count: 3 }], { start: 0, end: H }, H, undefined, [10, 120]);
    expect(summary(g)).toBe('4 exports; most took 10s–2m (3).');
    expect(summary(buildGrid([], { start: 0, end: H }, H))).toBe('No exports finished in this period.');
  });
});
