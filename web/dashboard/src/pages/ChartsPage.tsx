// Charts: throughput, jobs finished per hour, success rate, queue length,
// export durations by provider and their heatmap, over the history the
// daemon keeps (so a reload starts full) and moved on by the event
// stream's stats samples. One time axis for all: zoom, pan, reset; a click
// on a point (or a link in a chart's table) opens the jobs behind it.

import { useEffect, useMemo, useRef, useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useNavigate, useSearchParams } from 'react-router';
import { api, unwrap } from '../api/client';
import { parseData, useLiveConnected, useLiveEvents } from '../api/live';
import { ErrorNote, Loading } from '../components/States';
import { Heatmap } from '../components/charts/Heatmap';
import { TimeChart, type SeriesDef } from '../components/charts/TimeChart';
import { ZoomToolbar, type AxisState } from '../components/charts/ZoomFrame';
import { jobsLink } from '../components/charts/drilldown';
import { buildGrid } from '../components/charts/heatmap';
import { applySample, fromHistory, providerKey, type ChartData, type StatsSample } from '../components/charts/series';
import { clampWindow, isFullWindow, type TimeWindow } from '../components/charts/timeAxis';
import { formatBytes } from '../lib/format';
import css from './Charts.module.css';

const RANGES = { '1h': 3_600_000, '6h': 6 * 3_600_000, '24h': 24 * 3_600_000, '7d': 7 * 24 * 3_600_000 } as const;
type Range = keyof typeof RANGES;

const palette = ['var(--chart-1)', 'var(--chart-2)', 'var(--chart-3)', 'var(--chart-4)', 'var(--chart-5)', 'var(--chart-6)'];

function timeFormatter(span: number) {
  const f = new Intl.DateTimeFormat(undefined, span > 36 * 3_600_000 ? { weekday: 'short', hour: '2-digit', minute: '2-digit' } : { hour: '2-digit', minute: '2-digit' });
  return (t: number) => f.format(new Date(t));
}

const seconds = (s: number) => (s >= 3600 ? `${+(s / 3600).toFixed(1)}h` : s >= 60 ? `${+(s / 60).toFixed(1)}m` : `${Math.round(s)}s`);

export default function ChartsPage() {
  const [params, setParams] = useSearchParams();
  const range: Range = (params.get('range') as Range) in RANGES ? (params.get('range') as Range) : '6h';
  const navigate = useNavigate();
  const qc = useQueryClient();
  const connected = useLiveConnected();

  const history = useQuery({
    queryKey: ['stats-history', range],
    queryFn: async () => {
      const since = new Date(Date.now() - RANGES[range]).toISOString();
      return fromHistory(unwrap(await api.GET('/api/v1/stats/history', { params: { query: { since } } })));
    },
  });

  // Live: stats samples move the gauges; finished jobs re-read the history
  // (their counts and durations are the daemon's to bucket), at most every 5 s.
  const [live, setLive] = useState<ChartData | null>(null);
  useEffect(() => setLive(history.data ?? null), [history.data]);
  const refetchTimer = useRef<ReturnType<typeof setTimeout> | null>(null);
  useEffect(() => () => void (refetchTimer.current && clearTimeout(refetchTimer.current)), []);
  useLiveEvents((e) => {
    if (e.event === 'stats') {
      const s = parseData<StatsSample>(e);
      if (s) setLive((d) => (d ? applySample(d, s) : d));
    } else if (e.event === 'job.completed' || e.event === 'job.failed' || e.event === 'job.cancelled') {
      if (refetchTimer.current) return;
      refetchTimer.current = setTimeout(() => {
        refetchTimer.current = null;
        void qc.invalidateQueries({ queryKey: ['stats-history', range] });
      }, 5000);
    }
  });

  const data = live ?? history.data;
  const bounds: TimeWindow = data ? { start: data.since, end: data.until } : { start: 0, end: 1 };
  const minSpan = data ? Math.min(bounds.end - bounds.start, data.step * 4) : 1;
  // null: the whole history, following new samples.
  const [zoom, setZoom] = useState<TimeWindow | null>(null);
  useEffect(() => setZoom(null), [range]);
  const window = zoom ? clampWindow(zoom, bounds, minSpan) : bounds;
  const axis: AxisState = {
    window,
    bounds,
    minSpan,
    setWindow: (w) => setZoom(isFullWindow(w, bounds) ? null : w),
  };
  const fmtTime = useMemo(() => timeFormatter(window.end - window.start), [window.end, window.start]);

  const [provider, setProvider] = useState('');
  const grid = useMemo(() => {
    if (!data) return null;
    const span = window.end - window.start;
    const step = data.step * Math.max(1, Math.ceil(span / data.step / 48));
    return buildGrid(data.durations, window, step, provider || undefined, data.bounds);
  }, [data, window, provider]);

  if (history.isPending) return <Loading what="history" />;
  if (history.isError || !data) return <ErrorNote error={history.error} />;

  const common = { points: data.points, axis, step: data.step, formatTime: fmtTime, onDrill: (url: string) => navigate(url) };
  const jobsSeries: SeriesDef[] = [
    { key: 'succeeded', label: 'Succeeded', color: 'var(--ok)', kind: 'area', stack: 'jobs', drill: { state: 'succeeded' } },
    { key: 'failed', label: 'Failed', color: 'var(--danger)', kind: 'area', stack: 'jobs', drill: { state: 'failed' } },
    { key: 'cancelled', label: 'Cancelled', color: 'var(--text-muted)', kind: 'area', stack: 'jobs', drill: { state: 'cancelled' } },
  ];
  const durationSeries: SeriesDef[] = data.providers.map((p, i) => ({
    key: providerKey(p),
    label: p,
    color: palette[i % palette.length] ?? 'var(--accent)',
    kind: 'line',
    drill: { provider: p, state: 'succeeded' },
  }));

  return (
    <section className={css.page}>
      <div className="row">
        <h1>Charts</h1>
        <span className="spacer" />
        <span className="small muted" role="status">
          {connected ? 'Live' : 'Live updates reconnecting…'}
        </span>
      </div>
      <div className={`row ${css.controls}`}>
        <div className="field">
          <label htmlFor="charts-range">History</label>
          <select id="charts-range" value={range} onChange={(e) => setParams({ range: e.target.value }, { replace: true })}>
            <option value="1h">Last hour</option>
            <option value="6h">Last 6 hours</option>
            <option value="24h">Last 24 hours</option>
            <option value="7d">Last 7 days</option>
          </select>
        </div>
        <ZoomToolbar axis={axis} />
        <span className="small muted" data-testid="charts-window">
          {fmtTime(window.start)} – {fmtTime(window.end)}, buckets of {seconds(data.step / 1000)}
        </span>
      </div>
      <div className={css.grid}>
        <TimeChart
          {...common}
          title="Throughput"
          series={[{ key: 'throughput', label: 'Bytes per second', color: 'var(--chart-1)', kind: 'area' }]}
          formatValue={(v) => `${formatBytes(v)}/s`}
          drillable={false}
        />
        <TimeChart {...common} title="Jobs finished per hour" series={jobsSeries} formatValue={(v) => `${+v.toFixed(1)}`} />
        <TimeChart
          {...common}
          title="Success rate"
          series={[{ key: 'success', label: 'Succeeded of succeeded + failed', color: 'var(--ok)', kind: 'line' }]}
          formatValue={(v) => `${Math.round(v)}%`}
        />
        <TimeChart
          {...common}
          title="Queue"
          series={[
            { key: 'queued', label: 'Queued', color: 'var(--chart-5)', kind: 'line' },
            { key: 'running', label: 'Running', color: 'var(--chart-1)', kind: 'line' },
          ]}
          formatValue={(v) => `${+v.toFixed(1)}`}
          drillable={false}
        />
        {durationSeries.length > 0 && (
          <TimeChart {...common} title="Median export duration by provider" series={durationSeries} formatValue={(v) => `≤ ${seconds(v)}`} />
        )}
      </div>
      {grid && (
        <section className="card" aria-labelledby="heatmap-title">
          <div className="row">
            <h2 id="heatmap-title">Export durations</h2>
            <span className="spacer" />
            <div className="field">
              <label htmlFor="heatmap-provider">Provider</label>
              <select id="heatmap-provider" value={provider} onChange={(e) => setProvider(e.target.value)}>
                <option value="">All</option>
                {data.providers.map((p) => (
                  <option key={p}>{p}</option>
                ))}
              </select>
            </div>
          </div>
          <Heatmap
            grid={grid}
            label={`Successful exports by duration and time${provider ? ` for ${provider}` : ''}`}
            formatTime={fmtTime}
            onOpen={(from, to) => navigate(jobsLink({ from, to, state: 'succeeded', ...(provider ? { provider } : {}) }))}
          />
        </section>
      )}
    </section>
  );
}
