// Bucketing of export durations for the heatmap: time bucket × duration
// bucket, the count of exports in each cell. The history endpoint gives
// counts per (time bucket, duration upper bound[, provider]); the chart
// re-bins them to the visible window's step and a fixed set of duration
// bounds, so zooming out merges cells instead of drawing thousands.

export interface DurationCount {
  /** Time bucket start, epoch ms. */
  t: number;
  /** Upper bound of the duration bucket in seconds (Infinity: no bound). */
  le: number;
  count: number;
  provider?: string;
}

/** Duration bucket upper bounds, seconds; the last bucket is unbounded. */
export const DURATION_BOUNDS = [10, 30, 60, 120, 300, 600, 1800, 3600, 7200] as const;

export interface HeatGrid {
  /** Start of each time column, epoch ms. */
  times: number[];
  step: number;
  /** Upper bound of each duration row, seconds; the last is Infinity. */
  bounds: number[];
  /** counts[column][row]. */
  counts: number[][];
  max: number;
  total: number;
}

/** The row of a duration bucket's upper bound: the first display bound at
 * or above it (a source bucket never straddles two rows when the display
 * bounds are a subset of the source's). */
export function rowOf(le: number, bounds: readonly number[]): number {
  const i = bounds.findIndex((b) => le <= b);
  return i < 0 ? bounds.length - 1 : i;
}

export function buildGrid(
  cells: readonly DurationCount[],
  window: { start: number; end: number },
  step: number,
  provider?: string,
  displayBounds: readonly number[] = DURATION_BOUNDS,
): HeatGrid {
  const bounds = [...displayBounds, Infinity];
  const start = Math.floor(window.start / step) * step;
  const columns = Math.max(1, Math.ceil((window.end - start) / step));
  const times = Array.from({ length: columns }, (_, i) => start + i * step);
  const counts = times.map(() => bounds.map(() => 0));
  let max = 0;
  let total = 0;
  for (const c of cells) {
    if (c.count <= 0 || c.t < start || c.t >= start + columns * step) continue;
    if (provider && c.provider !== provider) continue;
    const column = counts[Math.floor((c.t - start) / step)]!; // in range: checked above
    const row = rowOf(c.le, bounds);
    column[row] = (column[row] ?? 0) + c.count;
    max = Math.max(max, column[row]);
    total += c.count;
  }
  return { times, step, bounds, counts, max, total };
}

/** Colour intensity of a cell, 0 for empty, else 0.15–1 on a square-root
 * scale so that single exports stay visible next to busy cells. */
export function intensity(count: number, max: number): number {
  if (count <= 0 || max <= 0) return 0;
  return 0.15 + 0.85 * Math.sqrt(count / max);
}

export function formatSeconds(s: number): string {
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${s / 60}m`;
  return `${s / 3600}h`;
}

/** The label of a duration row: "≤ 10s", "10s–30s", "> 2h". */
export function rowLabel(bounds: readonly number[], row: number): string {
  const hi = bounds[row] ?? Infinity;
  const lo = bounds[row - 1] ?? 0;
  if (hi === Infinity) return `> ${formatSeconds(lo)}`;
  return row === 0 ? `≤ ${formatSeconds(hi)}` : `${formatSeconds(lo)}–${formatSeconds(hi)}`;
}

/** One-sentence summary for screen readers: total and the busiest row. */
export function summary(grid: HeatGrid): string {
  if (grid.total === 0) return 'No exports finished in this period.';
  const perRow = grid.bounds.map((_, r) => grid.counts.reduce((n, col) => n + (col[r] ?? 0), 0));
  const top = perRow.indexOf(Math.max(...perRow));
  return `${grid.total} export${grid.total === 1 ? '' : 's'}; most took ${rowLabel(grid.bounds, top)} (${perRow[top]}).`;
}
