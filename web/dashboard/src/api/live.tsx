import { createContext, useContext, useEffect, useMemo, useRef, useState, type ReactNode } from "react";
import { useQueryClient } from "@tanstack/react-query";
import { bearer, sessionExpired } from "./client";
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
          const d = parseData<{ job_id?: string; id?: string; job?: { id?: string } }>(e);
          const id = d?.job_id ?? d?.job?.id ?? d?.id;
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
    const d = parseData<{ throughput_bytes_per_second?: number; jobs?: Record<string, number>; running?: number }>(e);
    if (!d) return;
    setS({ throughput: d.throughput_bytes_per_second ?? null, running: d.running ?? d.jobs?.running ?? 0 });
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

/** Wire shape of a job.progress event (see the daemon's OpenAPI document). */
export interface ProgressEventData {
  job_id: string;
  phase?: string;
  bytes_done?: number;
  bytes_total?: number;
  disks?: { name?: string; label?: string; path?: string; bytes_done: number; bytes_total: number }[];
  at?: string;
}

/**
 * ProgressTracker folds job.progress events of one job into per-disk and
 * overall progress with rates and ETAs measured over a sliding window.
 */
export class ProgressTracker {
  private overall = new RateMeter();
  private meters = new Map<string, RateMeter>();
  state: JobLive = { phase: "", done: 0, total: 0, percent: 0, rate: null, eta: null, disks: [], seen: false };

  add(d: ProgressEventData, nowMs: number): JobLive {
    const at = d.at ? Date.parse(d.at) : nowMs;
    const t = Number.isFinite(at) ? at : nowMs;
    const done = d.bytes_done ?? (d.disks ?? []).reduce((n, x) => n + x.bytes_done, 0);
    const total = d.bytes_total ?? (d.disks ?? []).reduce((n, x) => n + x.bytes_total, 0);
    this.overall.add({ at: t, bytes: done });
    const disks = (d.disks ?? []).map((x, i) => {
      const name = x.name ?? x.label ?? x.path ?? `disk ${i + 1}`;
      let m = this.meters.get(name);
      if (!m) this.meters.set(name, (m = new RateMeter()));
      m.add({ at: t, bytes: x.bytes_done });
      const rate = m.rate();
      return { name, done: x.bytes_done, total: x.bytes_total, percent: percent(x.bytes_done, x.bytes_total), rate, eta: etaSeconds(x.bytes_done, x.bytes_total, rate) };
    });
    const rate = this.overall.rate();
    this.state = { phase: d.phase ?? this.state.phase, done, total, percent: percent(done, total), rate, eta: etaSeconds(done, total, rate), disks, seen: true };
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
    const d = parseData<ProgressEventData>(e);
    if (!d || d.job_id !== jobId) return;
    setLive({ ...tracker.add(d, Date.now()) });
  });
  return live;
}

/** useAllJobProgress keeps the latest live progress of every job seen. */
export function useAllJobProgress(): Map<string, JobLive> {
  const trackers = useRef(new Map<string, ProgressTracker>());
  const [snap, setSnap] = useState(() => new Map<string, JobLive>());
  useLiveEvents((e) => {
    if (e.event !== "job.progress") return;
    const d = parseData<ProgressEventData>(e);
    if (!d?.job_id) return;
    let t = trackers.current.get(d.job_id);
    if (!t) trackers.current.set(d.job_id, (t = new ProgressTracker()));
    const s = t.add(d, Date.now());
    setSnap((prev) => new Map(prev).set(d.job_id, { ...s }));
  });
  return snap;
}
