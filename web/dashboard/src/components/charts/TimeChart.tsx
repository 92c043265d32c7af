// One time-series chart on the shared time axis (Recharts): areas or
// lines, drag across to zoom into a range, click a point to open the jobs
// behind its bucket, and the same numbers as a table with the same links
// (the keyboard and screen-reader way to drill down).

import { useState } from 'react';
import { Link } from 'react-router';
import { Area, CartesianGrid, ComposedChart, Legend, Line, ReferenceArea, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';
import type { MouseHandlerDataParam } from 'recharts';
import { jobsLink, type DrillDown } from './drilldown';
import { visiblePoints } from './timeAxis';
import { ZoomFrame, type AxisState } from './ZoomFrame';

/** One time bucket: its start and a value per series key. */
export type ChartPoint = { t: number } & Record<string, number | null>;

export interface SeriesDef {
  key: string;
  label: string;
  /** A CSS colour, normally a theme variable: var(--chart-1). */
  color: string;
  kind: 'area' | 'line';
  /** Stacked areas share a stack id. */
  stack?: string;
  /** What a click on this series filters the jobs by, besides the time. */
  drill?: Omit<DrillDown, 'from' | 'to'>;
}

export interface TimeChartProps {
  title: string;
  points: readonly ChartPoint[];
  series: SeriesDef[];
  axis: AxisState;
  step: number;
  formatValue: (v: number) => string;
  formatTime: (t: number) => string;
  /** Navigates to a drill-down URL. */
  onDrill: (url: string) => void;
  /** No drill-down for gauges that are not about finished jobs. */
  drillable?: boolean;
  height?: number;
  unit?: string;
}

export function TimeChart(props: TimeChartProps) {
  const { title, points, series, axis, step, formatValue, formatTime, onDrill, drillable = true, height = 220 } = props;
  const [drag, setDrag] = useState<{ a: number; b: number } | null>(null);
  const shown = visiblePoints(points, axis.window);
  // A lone point has no line to show it: dots until there are few gaps.
  const sparse = shown.filter((p) => series.some((s) => typeof p[s.key] === 'number')).length < 40;
  const label = (s: MouseHandlerDataParam) => (typeof s.activeLabel === 'number' ? s.activeLabel : Number(s.activeLabel));
  const drillUrl = (t: number, key?: string) => {
    const d = series.find((s) => s.key === key)?.drill ?? {};
    return jobsLink({ from: t, to: t + step, ...d });
  };

  return (
    <section className="chart-card" aria-labelledby={`chart-${title}`}>
      <h2 id={`chart-${title}`}>{title}</h2>
      <ZoomFrame axis={axis} title={title}>
        <ResponsiveContainer width="100%" height={height}>
          <ComposedChart
            data={shown}
            margin={{ top: 8, right: 16, bottom: 0, left: 0 }}
            accessibilityLayer={false}
            onMouseDown={(s) => {
              const t = label(s);
              if (Number.isFinite(t)) setDrag({ a: t, b: t });
            }}
            onMouseMove={(s) => {
              const t = label(s);
              if (drag && Number.isFinite(t)) setDrag({ ...drag, b: t });
            }}
            onMouseUp={(s) => {
              if (!drag) return;
              const [lo, hi] = [Math.min(drag.a, drag.b), Math.max(drag.a, drag.b)];
              setDrag(null);
              if (hi - lo >= step) {
                axis.setWindow({ start: lo, end: hi + step });
              } else if (drillable && Number.isFinite(label(s))) {
                onDrill(drillUrl(label(s), s.activeDataKey as string | undefined));
              }
            }}
            onMouseLeave={() => setDrag(null)}
            style={{ cursor: drillable ? 'pointer' : 'crosshair' }}
          >
            <CartesianGrid stroke="var(--chart-grid)" strokeDasharray="3 3" />
            <XAxis
              dataKey="t"
              type="number"
              scale="time"
              domain={[axis.window.start, axis.window.end]}
              allowDataOverflow
              tickFormatter={formatTime}
              stroke="var(--chart-axis)"
              minTickGap={40}
            />
            <YAxis width={76} tickFormatter={formatValue} stroke="var(--chart-axis)" allowDecimals={false} />
            <Tooltip
              labelFormatter={(t) => formatTime(Number(t))}
              formatter={(v) => formatValue(Number(v))}
              contentStyle={{ background: 'var(--surface)', border: '1px solid var(--border)', color: 'var(--text)' }}
            />
            {series.length > 1 && <Legend />}
            {series.map((s) =>
              s.kind === 'area' ? (
                <Area
                  key={s.key}
                  dataKey={s.key}
                  name={s.label}
                  type="stepAfter"
                  stackId={s.stack}
                  stroke={s.color}
                  fill={s.color}
                  fillOpacity={0.35}
                  isAnimationActive={false}
                  connectNulls
                />
              ) : (
                <Line key={s.key} dataKey={s.key} name={s.label} type="monotone" stroke={s.color} strokeWidth={2} dot={sparse ? { r: 3 } : false} isAnimationActive={false} connectNulls />
              ),
            )}
            {drag && drag.a !== drag.b && <ReferenceArea x1={drag.a} x2={drag.b} fill="var(--accent)" fillOpacity={0.15} />}
          </ComposedChart>
        </ResponsiveContainer>
      </ZoomFrame>
      <details className="chart-table">
        <summary>Show as a table</summary>
        <div className="card table-wrap">
          <table>
            <caption className="sr-only">{title}</caption>
            <thead>
              <tr>
                <th scope="col">From</th>
                {series.map((s) => (
                  <th scope="col" key={s.key}>
                    {s.label}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {shown.map((p) => (
                <tr key={p.t}>
                  <th scope="row">{drillable ? <Link to={drillUrl(p.t)}>{formatTime(p.t)}</Link> : formatTime(p.t)}</th>
                  {series.map((s) => {
                    const v = p[s.key];
                    const text = typeof v === 'number' ? formatValue(v) : '—';
                    return <td key={s.key}>{drillable && s.drill && typeof v === 'number' && v > 0 ? <Link to={drillUrl(p.t, s.key)}>{text}</Link> : text}</td>;
                  })}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </details>
    </section>
  );
}
