import { useId, useState } from "react";
import { useQuery } from "@tanstack/react-query";
import { Link, useSearchParams } from "react-router";
import { api, unwrap } from "../api/client";
import { useAllJobProgress, useLiveConnected } from "../api/live";
import { useProviders } from "../api/queries";
import { ErrorNote, Loading } from "../components/States";
import { JobStateBadge } from "../components/JobStateBadge";
import { ProgressBar } from "../components/ProgressView";
import { formatDuration, formatPercent, formatRate, formatTime } from "../lib/format";

const allStates = ["queued", "running", "succeeded", "failed", "cancelled"] as const;
type State = (typeof allStates)[number];

export default function JobsPage() {
  const [params, setParams] = useSearchParams();
  const state = params.get("state") ?? "";
  const provider = params.get("provider") ?? "";
  const vm = params.get("vm") ?? "";
  // A chart's drill-down: the jobs that finished in one time bucket.
  const finishedAfter = params.get("finished_after") ?? "";
  const finishedBefore = params.get("finished_before") ?? "";
  const [vmText, setVmText] = useState(vm);
  const id = useId();
  const live = useAllJobProgress();
  const connected = useLiveConnected();

  const providers = useProviders();
  const jobs = useQuery({
    queryKey: ["jobs", { state, provider, vm, finishedAfter, finishedBefore }],
    queryFn: async () => {
      const query: { state?: State[]; provider?: string; vm?: string; finished_after?: string; finished_before?: string; limit: number } = { limit: 100 };
      if (state) query.state = state.split(",") as State[];
      if (provider) query.provider = provider;
      if (vm) query.vm = vm;
      if (finishedAfter) query.finished_after = finishedAfter;
      if (finishedBefore) query.finished_before = finishedBefore;
      return unwrap(await api.GET("/api/v1/jobs", { params: { query } })).items ?? [];
    },
    // The event stream refreshes the list on job events; the interval
    // only covers a stream that is down.
    refetchInterval: connected ? 30_000 : 5_000,
  });

  function set(key: string, value: string) {
    const next = new URLSearchParams(params);
    if (value) next.set(key, value);
    else next.delete(key);
    setParams(next, { replace: true });
  }

  return (
    <section>
      <div className="row">
        <h1>Jobs</h1>
        <span className="spacer" />
        <span className="small muted" role="status">
          {connected ? "Live" : "Live updates reconnecting…"}
        </span>
      </div>
      <form
        className="row"
        aria-label="Filter jobs"
        onSubmit={(e) => {
          e.preventDefault();
          set("vm", vmText.trim());
        }}
      >
        <div className="field">
          <label htmlFor={`${id}-state`}>State</label>
          <select id={`${id}-state`} value={state} onChange={(e) => set("state", e.target.value)}>
            <option value="">Any</option>
            <option value="queued,running">Active</option>
            {allStates.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor={`${id}-prov`}>Provider</label>
          <select id={`${id}-prov`} value={provider} onChange={(e) => set("provider", e.target.value)}>
            <option value="">Any</option>
            {(providers.data ?? []).map((p) => (
              <option key={p.name} value={p.name}>
                {p.name}
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor={`${id}-vm`}>VM</label>
          <input id={`${id}-vm`} value={vmText} onChange={(e) => setVmText(e.target.value)} placeholder="as submitted" />
        </div>
        <button type="submit" className="btn">
          Apply
        </button>
      </form>
      {(finishedAfter || finishedBefore) && (
        <p className="row small" data-testid="finished-filter">
          <span>
            Finished {finishedAfter ? `from ${formatTime(finishedAfter)}` : ""} {finishedBefore ? `until ${formatTime(finishedBefore)}` : ""}
          </span>
          <button
            type="button"
            className="btn"
            onClick={() => {
              const next = new URLSearchParams(params);
              next.delete("finished_after");
              next.delete("finished_before");
              setParams(next, { replace: true });
            }}
          >
            Any time
          </button>
        </p>
      )}
      {jobs.isPending ? (
        <Loading what="jobs" />
      ) : jobs.isError ? (
        <ErrorNote error={jobs.error} />
      ) : (
        <div className="card table-wrap">
          <table aria-label="Jobs">
            <thead>
              <tr>
                <th>Job</th>
                <th>State</th>
                <th>Progress</th>
                <th className="num">Rate</th>
                <th className="num">ETA</th>
                <th>Created</th>
              </tr>
            </thead>
            <tbody>
              {jobs.data.map((j) => {
                const l = j.state === "running" ? live.get(j.id) : undefined;
                const pct = l ? l.percent : j.progress.percent;
                const rate = l ? l.rate : j.progress.rate_bytes_per_second;
                const eta = l ? l.eta : (j.progress.eta_seconds ?? null);
                return (
                  <tr key={j.id}>
                    <td>
                      <Link to={`/jobs/${j.id}`}>{j.vm}</Link>
                      <div className="small muted">
                        {j.provider} · <span className="mono">{j.id}</span>
                      </div>
                    </td>
                    <td>
                      <JobStateBadge state={j.state} />
                    </td>
                    <td className="progress-cell">
                      <ProgressBar percent={pct} label={`${j.vm} ${formatPercent(pct)}`} />
                      <span className="small">
                        {formatPercent(pct)} {l?.phase || j.progress.phase}
                      </span>
                    </td>
                    <td className="num small">{j.state === "running" ? formatRate(rate) : "—"}</td>
                    <td className="num small">{j.state === "running" ? formatDuration(eta) : "—"}</td>
                    <td className="small">{formatTime(j.created_at)}</td>
                  </tr>
                );
              })}
              {jobs.data.length === 0 && (
                <tr>
                  <td colSpan={6} className="muted">
                    No jobs match.
                  </td>
                </tr>
              )}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
