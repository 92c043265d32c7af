import { createContext, useContext, useEffect, useMemo, useRef, useState, type ReactNode } from "react";
import { useQueryClient } from "@tanstack/react-query";
import { bearer, sessionExpired, type Schemas } from "./client";
import { streamEvents, type SSEEvent } from "./sse";
import { signOut } from "../auth/session";
import { etaSeconds, percent, RateMeter } from "../lib/progress";

// One event stream per signed-in tab, shared by every screen: screens
// subscribe to it instead of opening their own connection.

type Handler = (e: SSEEvent) => void;

class LiveHub {
  private handlers = new Set<Handler>();
  private stateHandlers = new Set<(c: boolean) => void>();
  connected = false;

  subscribe(h: Handler): () => void {
    this.handlers.add(h);
    return () => this.handlers.delete(h);
  }
  onState(h: (c: boolean) => void): () => void {
    this.stateHandlers.add(h);
    return () => this.stateHandlers.delete(h);
  }
  dispatch(e: SSEEvent): void {
    for (const h of this.handlers) h(e);
  }
  setConnected(c: boolean): void {
    this.connected = c;
    for (const h of this.stateHandlers) h(c);
  }
}

const LiveContext = createContext<LiveHub | null>(null);

/** parseData reads an event's JSON data; null when it is not JSON. */
export function parseData<T>(e: SSEEvent): T | null {
  try {
    return JSON.parse(e.data) as T;
  } catch {
    return null;
  }
}

export function LiveProvider({ token, children }: { token: string; children: ReactNode }) {
  const hub = useMemo(() => new LiveHub(), []);
  const qc = useQueryClient();
  useEffect(() => {
    let pending: ReturnType<typeof setTimeout> | null = null;
    // Job lifecycle events refresh the job lists and counts, at most
    // once a second however many arrive.
    const refresh = () => {
      if (pending) return;
      pending = setTimeout(() => {
        pending = null;
        void qc.invalidateQueries({ queryKey: ["jobs"] });
        void qc.invalidateQueries({ queryKey: ["status"] });
      }, 1000);
    };
    const stop = streamEvents({
      url: "/api/v1/events",
      headers: () => ({ Authorization: bearer(token) }),
      onEvent: (e) => {
        if (e.event.startsWith("job.") && e.event !== "job.progress") {
          refresh();
          const id = parseData<JobEventMessage>(e)?.data?.job_id;
          if (id) void qc.invalidateQueries({ queryKey: ["job", id] });
        }
        hub.dispatch(e);
      },
      onRefused: (status) => {
        if (status === 401) signOut(sessionExpired);
      },
      onStateChange: (c) => hub.setConnected(c),
    });
    return () => {
      stop();
      if (pending) clearTimeout(pending);
    };
  }, [hub, qc, token]);
  return <LiveContext.Provider value={hub}>{children}</LiveContext.Provider>;
}

export function useLiveEvents(h: Handler): void {
  const hub = useContext(LiveContext);
  const ref = useRef(h);
  ref.current = h;
  useEffect(() => hub?.subscribe((e) => ref.current(e)), [hub]);
}

export function useLiveConnected(): boolean {
  const hub = useContext(LiveContext);
  const [c, setC] = useState(hub?.connected ?? false);
  useEffect(() => hub?.onState(setC), [hub]);
  return c;
}

/** The periodic `stats` event's fields the dashboard reads. */
export interface LiveStats {
  throughput: number | null;
  running: number;
  connected: boolean;
}

export function useLiveStats(): LiveStats {
  const connected = useLiveConnected();
  const [s, setS] = useState<{ throughput: number | null; running: number }>({ throughput: null, running: 0 });
  useLiveEvents((e) => {
    if (e.event !== "stats") return;
    const d = parseData<StatsSample>(e);
    if (!d) return;
    setS({ throughput: d.throughput_bytes_per_second, running: d.running });
  });
  return { ...s, connected };
}

/** One disk of a running export, as the live view shows it. */
export interface DiskProgress {
  name: string;
  done: number;
  total: number;
  percent: number;
  rate: number | null;
  eta: number | null;
}

export interface JobLive {
  phase: string;
  done: number;
  total: number;
  percent: number;
  rate: number | null;
  eta: number | null;
  disks: DiskProgress[];
  /** Whether any progress event arrived for the job. */
  seen: boolean;
}

/** A job event's message: the webhook payload (generated from the OpenAPI document). */
export type JobEventMessage = Schemas["JobEventMessage"];
type StatsSample = Schemas["StatsSample"];

/**
 * ProgressTracker folds job.progress events of one job into per-disk and
 * overall progress. The daemon sends a smoothed rate per item; where it
 * has none yet the rate is measured here over a sliding window.
 */
export class ProgressTracker {
  private overall = new RateMeter();
  private meters = new Map<string, RateMeter>();
  private items = new Map<string, DiskProgress>();
  state: JobLive = { phase: "", done: 0, total: 0, percent: 0, rate: null, eta: null, disks: [], seen: false };

  add(m: JobEventMessage, nowMs: number): JobLive {
    const at = m.timestamp ? Date.parse(m.timestamp) : NaN;
    const t = Number.isFinite(at) ? at : nowMs;
    const p = m.data.progress;
    for (const x of m.data.items ?? []) {
      let meter = this.meters.get(x.name);
      if (!meter) this.meters.set(x.name, (meter = new RateMeter()));
      meter.add({ at: t, bytes: x.bytes_done });
      const rate = x.done ? null : x.rate_bytes_per_second && x.rate_bytes_per_second > 0 ? x.rate_bytes_per_second : meter.rate();
      const total = x.bytes_total;
      // An item the daemon reports done is complete whatever its counters say.
      const done = x.done && total > 0 ? total : x.bytes_done;
      this.items.set(x.name, { name: x.name, done, total, percent: x.done ? 100 : percent(done, total), rate, eta: x.done ? 0 : etaSeconds(done, total, rate) });
    }
    const done = p?.bytes_done ?? 0;
    const total = p?.bytes_total ?? 0;
    this.overall.add({ at: t, bytes: done });
    const rate = p && p.rate_bytes_per_second > 0 ? p.rate_bytes_per_second : this.overall.rate();
    this.state = {
      phase: p?.phase ?? this.state.phase,
      done,
      total,
      percent: percent(done, total),
      rate,
      eta: etaSeconds(done, total, rate),
      disks: [...this.items.values()],
      seen: true,
    };
    return this.state;
  }
}

/** useJobProgress follows one job's live progress. */
export function useJobProgress(jobId: string | undefined): JobLive | null {
  const tracker = useMemo(() => new ProgressTracker(), [jobId]); // eslint-disable-line react-hooks/exhaustive-deps
  const [live, setLive] = useState<JobLive | null>(null);
  useEffect(() => setLive(null), [jobId]);
  useLiveEvents((e) => {
    if (e.event !== "job.progress" || !jobId) return;
    const m = parseData<JobEventMessage>(e);
    if (!m?.data || m.data.job_id !== jobId) return;
    setLive({ ...tracker.add(m, Date.now()) });
  });
  return live;
}

/** useAllJobProgress keeps the latest live progress of every job seen. */
export function useAllJobProgress(): Map<string, JobLive> {
  const trackers = useRef(new Map<string, ProgressTracker>());
  const [snap, setSnap] = useState(() => new Map<string, JobLive>());
  useLiveEvents((e) => {
    if (e.event !== "job.progress") return;
    const m = parseData<JobEventMessage>(e);
    const id = m?.data?.job_id;
    if (!id) return;
    let t = trackers.current.get(id);
    if (!t) trackers.current.set(id, (t = new ProgressTracker()));
    const s = t.add(m, Date.now());
    setSnap((prev) => new Map(prev).set(id, { ...s }));
  });
  return snap;
}
