import type { JobLive } from "../api/live";
import { formatBytes, formatDuration, formatPercent, formatRate } from "../lib/format";

/**
 * ProgressBar: a native progress element; indeterminate while the total
 * is unknown (a vSphere disk's size is known only once it has streamed).
 */
export function ProgressBar({ percent, label, known = true }: { percent: number; label: string; known?: boolean }) {
  return known ? <progress max={100} value={Math.round(percent * 10) / 10} aria-label={label} /> : <progress aria-label={label} />;
}

/** DiskProgressTable: bytes, rate and ETA per disk of a running export. */
export function DiskProgressTable({ live }: { live: JobLive }) {
  if (live.disks.length === 0) return null;
  return (
    <div className="table-wrap">
      <table aria-label="Progress per disk" data-testid="disk-progress">
        <thead>
          <tr>
            <th>Disk</th>
            <th>Progress</th>
            <th className="num">Bytes</th>
            <th className="num">Rate</th>
            <th className="num">ETA</th>
          </tr>
        </thead>
        <tbody>
          {live.disks.map((d) => (
            <tr key={d.name}>
              <td className="mono small">{d.name}</td>
              <td>
                <ProgressBar percent={d.percent} known={d.total > 0} label={`${d.name} ${d.total > 0 ? formatPercent(d.percent) : "size not known yet"}`} />
                <span className="small">{d.total > 0 ? formatPercent(d.percent) : "—"}</span>
              </td>
              <td className="num small">
                {formatBytes(d.done)} / {d.total > 0 ? formatBytes(d.total) : "?"}
              </td>
              <td className="num small">{formatRate(d.rate)}</td>
              <td className="num small">{d.done >= d.total && d.total > 0 ? "done" : formatDuration(d.eta)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
