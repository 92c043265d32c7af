// Drill-down from a chart to the jobs behind a point: the Jobs list URL
// filtered to the point's time bucket (and provider or state where the
// series has one). The query names are the job list API's filters, which
// the Jobs page reads from its URL.

export interface DrillDown {
  /** Bucket start and end, epoch milliseconds; end exclusive. */
  from: number;
  to: number;
  provider?: string;
  state?: string;
}

export function jobsLink(d: DrillDown): string {
  const q = new URLSearchParams();
  q.set('finished_after', new Date(d.from).toISOString());
  q.set('finished_before', new Date(d.to).toISOString());
  if (d.provider) q.set('provider', d.provider);
  if (d.state) q.set('state', d.state);
  return `/jobs?${q.toString()}`;
}
