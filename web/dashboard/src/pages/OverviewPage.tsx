import { useQuery } from "@tanstack/react-query";
import { Link } from "react-router";
import { api, unwrap } from "../api/client";
import { useLiveStats } from "../api/live";
import { useProviders } from "../api/queries";
import { ErrorNote, Loading } from "../components/States";
import { JobStateBadge } from "../components/JobStateBadge";
import { formatRate, formatTime } from "../lib/format";

const states = ["queued", "running", "succeeded", "failed", "cancelled"] as const;

export default function OverviewPage() {
  const status = useQuery({
    queryKey: ["status"],
    queryFn: async () => unwrap(await api.GET("/api/v1/status")),
    refetchInterval: 10_000,
  });
  const providers = useProviders();
  const failures = useQuery({
    queryKey: ["jobs", { state: "failed", limit: 5 }],
    queryFn: async () => unwrap(await api.GET("/api/v1/jobs", { params: { query: { state: ["failed"], limit: 5 } } })).items ?? [],
    refetchInterval: 15_000,
  });
  const schedules = useQuery({
    queryKey: ["schedules"],
    queryFn: async () => unwrap(await api.GET("/api/v1/schedules")).items ?? [],
    refetchInterval: 60_000,
  });
  const live = useLiveStats();

  const next = (schedules.data ?? [])
    .filter((s) => s.enabled && s.next_run)
    .sort((a, b) => (a.next_run! < b.next_run! ? -1 : 1))
    .slice(0, 5);

  return (
    <section>
      <h1>Overview</h1>
      <div className="grid">
        <div className="card" aria-labelledby="ov-jobs">
          <h2 id="ov-jobs">Jobs</h2>
          {status.isPending ? (
            <Loading what="job counts" />
          ) : status.isError ? (
            <ErrorNote error={status.error} />
          ) : (
            <dl className="row" data-testid="job-counts">
              {states.map((s) => (
                <div key={s}>
                  <dt className="muted small">
                    <Link to={`/jobs?state=${s}`}>{s}</Link>
                  </dt>
                  <dd className="stat">
                    {status.data.jobs[s] ?? 0}
                  </dd>
                </div>
              ))}
            </dl>
          )}
        </div>
        <div className="card" aria-labelledby="ov-tput">
          <h2 id="ov-tput">Throughput now</h2>
          <div className="stat" data-testid="throughput">
            {formatRate(live.throughput)}
          </div>
          <p className="muted small">
            {live.running} running export{live.running === 1 ? "" : "s"}
            {live.connected ? "" : " · live updates reconnecting…"}
          </p>
        </div>
      </div>

      <div className="card">
        <h2>Providers</h2>
        {providers.isPending ? (
          <Loading what="providers" />
        ) : providers.isError ? (
          <ErrorNote error={providers.error} />
        ) : (
          <div className="table-wrap">
            <table>
              <thead>
                <tr>
                  <th>Name</th>
                  <th>Type</th>
                  <th>Health</th>
                  <th>Formats</th>
                  <th>Checked</th>
                </tr>
              </thead>
              <tbody>
                {providers.data.map((p) => (
                  <tr key={p.name}>
                    <td>
                      <Link to={`/vms/${encodeURIComponent(p.name)}`}>{p.name}</Link>
                    </td>
                    <td>{p.type}</td>
                    <td>
                      {p.health.healthy ? (
                        <span className="badge badge-ok">healthy</span>
                      ) : (
                        <span className="badge badge-bad" title={p.health.error}>
                          unhealthy
                        </span>
                      )}
                      {!p.health.healthy && p.health.error && <div className="small muted">{p.health.error}</div>}
                    </td>
                    <td className="small">{(p.capabilities.formats ?? []).join(", ")}</td>
                    <td className="small">{formatTime(p.health.checked_at)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </div>

      <div className="grid">
        <div className="card">
          <h2>Recent failures</h2>
          {failures.isPending ? (
            <Loading what="failures" />
          ) : failures.isError ? (
            <ErrorNote error={failures.error} />
          ) : failures.data.length === 0 ? (
            <p className="muted">No failed jobs.</p>
          ) : (
            <ul className="plain-list">
              {failures.data.map((j) => (
                <li key={j.id}>
                  <Link to={`/jobs/${j.id}`}>
                    {j.provider} · {j.vm}
                  </Link>{" "}
                  <JobStateBadge state={j.state} />
                  <div className="small muted">
                    {formatTime(j.finished_at ?? j.updated_at)} — {j.error}
                  </div>
                </li>
              ))}
            </ul>
          )}
        </div>
        <div className="card">
          <h2>Next scheduled runs</h2>
          {schedules.isPending ? (
            <Loading what="schedules" />
          ) : schedules.isError ? (
            <ErrorNote error={schedules.error} />
          ) : next.length === 0 ? (
            <p className="muted">Nothing scheduled.</p>
          ) : (
            <ul className="plain-list">
              {next.map((s) => (
                <li key={s.id}>
                  <strong>{formatTime(s.next_run)}</strong> — {s.name}{" "}
                  <span className="muted small">
                    ({s.job.provider} · {s.job.vm})
                  </span>
                </li>
              ))}
            </ul>
          )}
        </div>
      </div>
    </section>
  );
}
