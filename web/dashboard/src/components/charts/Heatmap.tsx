// Heatmap of export durations: time columns × duration rows, the count of
// exports as colour. An ARIA grid with one tab stop (arrow keys move,
// Enter opens the jobs of a cell), each cell named in words, and the same
// numbers as a table for screen readers and for copying.

import { useState, type KeyboardEvent } from 'react';
import { intensity, rowLabel, summary, type HeatGrid } from './heatmap';

export interface HeatmapProps {
  grid: HeatGrid;
  label: string;
  formatTime: (t: number) => string;
  /** Opens the jobs behind a cell (time bucket; the row bounds are not a job filter). */
  onOpen: (from: number, to: number) => void;
}

export function Heatmap({ grid, label, formatTime, onOpen }: HeatmapProps) {
  const rows = grid.bounds.length;
  const cols = grid.times.length;
  const [focus, setFocus] = useState<[number, number]>([Math.max(0, cols - 1), 0]);
  const [fc, fr] = [Math.min(focus[0], cols - 1), Math.min(focus[1], rows - 1)];
  const count = (c: number, r: number) => grid.counts[c]?.[r] ?? 0;
  const time = (c: number) => grid.times[c] ?? 0;
  const cellName = (c: number, r: number) => {
    const n = count(c, r);
    return `${formatTime(time(c))}, ${rowLabel(grid.bounds, r)}: ${n} export${n === 1 ? '' : 's'}`;
  };
  const move = (e: KeyboardEvent) => {
    const d: Partial<Record<string, [number, number]>> = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, 1], ArrowDown: [0, -1] };
    const delta = d[e.key];
    let next: [number, number] | undefined;
    if (delta) next = [fc + delta[0], fr + delta[1]];
    else if (e.key === 'Home') next = [0, fr];
    else if (e.key === 'End') next = [cols - 1, fr];
    else if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      onOpen(time(fc), time(fc) + grid.step);
      return;
    }
    if (!next) return;
    e.preventDefault();
    e.stopPropagation(); // the arrows move the cell here, not the time axis
    const c = Math.max(0, Math.min(cols - 1, next[0]));
    const r = Math.max(0, Math.min(rows - 1, next[1]));
    setFocus([c, r]);
    (e.currentTarget as HTMLElement).querySelector<HTMLElement>(`[data-cell="${c}-${r}"]`)?.focus();
  };
  // Rows top to bottom: the longest durations on top, as on a y axis.
  const order = Array.from({ length: rows }, (_, i) => rows - 1 - i);
  const labelEvery = Math.max(1, Math.ceil(cols / 8));
  return (
    <figure className="heatmap">
      <figcaption className="muted">{summary(grid)}</figcaption>
      <div role="grid" aria-label={label} className="heatmap-grid" style={{ gridTemplateColumns: `5.5rem repeat(${cols}, minmax(0, 1fr))` }} onKeyDown={move}>
        {order.map((r) => (
          <div role="row" key={r} className="heatmap-row">
            <div role="rowheader" className="heatmap-rowhead">
              {rowLabel(grid.bounds, r)}
            </div>
            {grid.times.map((t, c) => {
              const n = count(c, r);
              return (
                <div
                  key={t}
                  role="gridcell"
                  data-cell={`${c}-${r}`}
                  data-count={n}
                  tabIndex={c === fc && r === fr ? 0 : -1}
                  aria-label={cellName(c, r)}
                  title={cellName(c, r)}
                  className="heatmap-cell"
                  style={{ ['--heat' as string]: intensity(n, grid.max) }}
                  onClick={() => onOpen(t, t + grid.step)}
                  onFocus={() => setFocus([c, r])}
                />
              );
            })}
          </div>
        ))}
        <div role="row" className="heatmap-row heatmap-axis" aria-hidden="true">
          <div />
          {grid.times.map((t, c) => (
            <div key={t} className="heatmap-tick">
              {c % labelEvery === 0 ? formatTime(t) : ''}
            </div>
          ))}
        </div>
      </div>
      <details className="chart-table">
        <summary>Show as a table</summary>
        <div className="card table-wrap">
          <table>
            <caption className="sr-only">{label}</caption>
            <thead>
              <tr>
                <th scope="col">From</th>
                {grid.bounds.map((_, r) => (
                  <th scope="col" key={r}>
                    {rowLabel(grid.bounds, r)}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {grid.times.map((t, c) =>
                grid.counts[c]?.some((n) => n > 0) ? (
                  <tr key={t}>
                    <th scope="row">{formatTime(t)}</th>
                    {grid.bounds.map((_, r) => count(c, r)).map((n, r) => (
                      <td key={r}>{n || ''}</td>
                    ))}
                  </tr>
                ) : null,
              )}
            </tbody>
          </table>
        </div>
      </details>
    </figure>
  );
}
