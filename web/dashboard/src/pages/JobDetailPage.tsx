import { useEffect, useRef, useState } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { Link, useNavigate, useParams } from "react-router";
import { api, unwrap, type Schemas } from "../api/client";
import { useJobProgress } from "../api/live";
import { useCan } from "../auth/principal";
import { ErrorNote, Loading } from "../components/States";
import { JobStateBadge } from "../components/JobStateBadge";
import { DiskProgressTable, ProgressBar } from "../components/ProgressView";
import { formatBytes, formatDuration, formatPercent, formatRate, formatTime } from "../lib/format";
import { parseNDJSON } from "../lib/ndjson";

type Job = Schemas["Job"];
type LogLine = Schemas["LogLine"];

const terminal = new Set(["succeeded", "failed", "cancelled"]);

export default function JobDetailPage() {
  const { id = "" } = useParams();
  const qc = useQueryClient();
  const canOperate = useCan("operator");
  const navigate = useNavigate();
  const job = useQuery({
    queryKey: ["job", id],
    queryFn: async () => unwrap(await api.GET("/api/v1/jobs/{id}", { params: { path: { id } } })),
    refetchInterval: (q) => (q.state.data && terminal.has(q.state.data.state) ? false : 3000),
  });
  const live = useJobProgress(id);
  const retry = useMutation({
    mutationFn: async () => unwrap(await api.POST("/api/v1/jobs/{id}/retry", { params: { path: { id } } })),
    onSuccess: (j) => navigate(`/jobs/${j.id}`),
  });
  const cancel = useMutation({
    mutationFn: async () => unwrap(await api.POST("/api/v1/jobs/{id}/cancel", { params: { path: { id } } })),
    onSuccess: (j) => qc.setQueryData(["job", id], j),
  });

  if (job.isPending) return <Loading what="the job" />;
  if (job.isError) return <ErrorNote error={job.error} />;
  const j = job.data;
  const running = j.state === "running";
  const pct = running && live ? live.percent : j.progress.percent;
  const rate = running && live ? live.rate : j.progress.rate_bytes_per_second;
  const eta = running && live ? live.eta : (j.progress.eta_seconds ?? null);
  const total = running && live ? live.total : j.progress.bytes_total;
  const known = total > 0 || j.state === "succeeded";

  return (
    <section>
      <div className="row">
        <h1>
          {j.vm} <span className="muted small">on {j.provider}</span>
        </h1>
        <JobStateBadge state={j.state} />
        <span className="spacer" />
        <Link to="/jobs" className="btn">
          All jobs
        </Link>
        {canOperate && !terminal.has(j.state) && (
          <button type="button" className="btn btn-danger" disabled={cancel.isPending || j.cancel_requested} onClick={() => cancel.mutate()}>
            {j.cancel_requested ? "Cancelling…" : "Cancel"}
          </button>
        )}
        {canOperate && (j.state === "failed" || j.state === "cancelled") && (
          <button type="button" className="btn" disabled={retry.isPending} onClick={() => retry.mutate()}>
            Retry
          </button>
        )}
      </div>
      <ErrorNote error={cancel.error ?? retry.error} />
      {j.error && (
        <div className="alert" role="alert">
          {j.error_kind && <strong>{j.error_kind}: </strong>}
          {j.error}
        </div>
      )}

      <div className="card" aria-labelledby="progress-title">
        <h2 id="progress-title">Progress</h2>
        <ProgressBar percent={pct} known={known || !running} label={`Job progress ${known ? formatPercent(pct) : "size not known yet"}`} />
        <p className="row small" data-testid="job-progress">
          <span data-testid="job-percent">{known || !running ? formatPercent(pct) : "—"}</span>
          <span>{(running && live?.phase) || j.progress.phase}</span>
          <span>
            {formatBytes(running && live ? live.done : j.progress.bytes_done)} of {total > 0 ? formatBytes(total) : "?"}
          </span>
          {running && <span>{formatRate(rate)}</span>}
          {running && <span>ETA {formatDuration(eta)}</span>}
        </p>
        {running && live && <DiskProgressTable live={live} />}
      </div>

      <div className="card">
        <h2>Details</h2>
        <JobFacts job={j} />
      </div>

      {j.result && <ResultFiles job={j} />}
      <Logs id={id} finished={terminal.has(j.state)} />
    </section>
  );
}

function JobFacts({ job: j }: { job: Job }) {
  const o = j.spec.options as Record<string, unknown>;
  return (
    <dl className="facts">
      <dt>ID</dt>
      <dd className="mono">{j.id}</dd>
      <dt>Format</dt>
      <dd>
        {String(o.format ?? "")} {o.disk_format ? `· ${String(o.disk_format)} disks` : ""}
      </dd>
      <dt>Output</dt>
      <dd className="mono">{j.result?.output_dir ?? String(o.output_dir ?? "")}</dd>
      <dt>Attempt</dt>
      <dd>
        {j.attempt} of {j.max_attempts}
      </dd>
      <dt>Submitted</dt>
      <dd>
        {formatTime(j.created_at)}
        {j.submitted_by ? ` by ${j.submitted_by}` : ""}
      </dd>
      <dt>Started · finished</dt>
      <dd>
        {formatTime(j.started_at)} · {formatTime(j.finished_at)}
      </dd>
      {j.node && (
        <>
          <dt>Node</dt>
          <dd>{j.node}</dd>
        </>
      )}
    </dl>
  );
}

function ResultFiles({ job }: { job: Job }) {
  const r = job.result!;
  const files = [...(r.files ?? []), ...(r.members ?? []).map((m) => ({ ...m, path: `${r.ova_path ?? "ova"} › ${m.path}` }))];
  return (
    <div className="card">
      <h2>Files</h2>
      <p className="small muted">
        {formatBytes(r.bytes)} in {formatDuration(r.duration_ns / 1e9)} ({formatRate(r.throughput_bytes_per_second)}) · manifest <span className="mono">{r.manifest || "—"}</span>
      </p>
      <div className="table-wrap">
        <table aria-label="Exported files" data-testid="result-files">
          <thead>
            <tr>
              <th>File</th>
              <th>Kind</th>
              <th className="num">Size</th>
              <th>SHA-256</th>
            </tr>
          </thead>
          <tbody>
            {files.map((f) => (
              <tr key={f.path}>
                <td className="mono small">{f.path}</td>
                <td>{f.kind}</td>
                <td className="num small">{formatBytes(f.size)}</td>
                <td className="mono small checksum">{f.sha256}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </div>
  );
}

/** Logs: the job's log lines, polled for new ones while it runs. */
function Logs({ id, finished }: { id: string; finished: boolean }) {
  const [lines, setLines] = useState<LogLine[]>([]);
  const [error, setError] = useState<unknown>(null);
  const after = useRef(0);
  useEffect(() => {
    setLines([]);
    after.current = 0;
  }, [id]);
  useEffect(() => {
    let stop = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const load = async () => {
      try {
        const r = await api.GET("/api/v1/jobs/{id}/logs", { params: { path: { id }, query: { after: after.current } }, parseAs: "text" });
        // No new lines is an empty body, which openapi-fetch gives as undefined.
        const got = parseNDJSON<LogLine>(unwrap(r) ?? "");
        if (!stop && got.length > 0) {
          after.current = got[got.length - 1]!.id;
          setLines((old) => [...old, ...got]);
        }
        setError(null);
      } catch (e) {
        if (!stop) setError(e);
      }
      if (!stop && !finished) timer = setTimeout(load, 2000);
    };
    void load();
    return () => {
      stop = true;
      clearTimeout(timer);
    };
  }, [id, finished]);
  return (
    <div className="card">
      <h2>Logs</h2>
      <ErrorNote error={error} />
      <div className="logs codeblock" tabIndex={0} role="log" aria-label="Job log">
        {lines.length === 0 ? (
          <span className="muted">No log lines yet.</span>
        ) : (
          lines.map((l) => (
            <div key={l.id} className={`log-${l.level}`}>
              <span className="muted">{new Date(l.at).toLocaleTimeString()}</span> {l.level.toUpperCase()} {l.message}
              {l.attrs && Object.keys(l.attrs).length > 0 && (
                <span className="muted">
                  {" "}
                  {Object.entries(l.attrs)
                    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
                    .join(" ")}
                </span>
              )}
            </div>
          ))
        )}
      </div>
    </div>
  );
}
