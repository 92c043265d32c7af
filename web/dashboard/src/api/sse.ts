// Server-sent events over fetch. EventSource cannot send an Authorization
// header, and a token in the URL would end up in logs and history, so the
// stream is read with fetch and parsed here, reconnecting with
// Last-Event-ID as EventSource would.

export interface SSEEvent {
  id: string | null;
  event: string;
  data: string;
}

/**
 * SSEParser implements the event-stream parsing rules of the HTML
 * standard: fields split on the first colon, one optional space after it,
 * comment lines, multi-line data, and CR, LF or CRLF line ends, in chunks
 * split anywhere (even between CR and LF).
 */
export class SSEParser {
  private buf = "";
  private data: string[] = [];
  private event = "";
  private sawCR = false;
  /** The last event ID seen, kept across events as the standard says. */
  lastEventId: string | null = null;
  /** A retry: field, in milliseconds. */
  retry: number | null = null;

  push(chunk: string): SSEEvent[] {
    const out: SSEEvent[] = [];
    let s = chunk;
    if (this.sawCR && s.startsWith("\n")) s = s.slice(1); // the LF of a CRLF split across chunks
    this.sawCR = s.endsWith("\r");
    this.buf += s;
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.buf);
      if (!m) break;
      // A trailing CR may be the first half of a CRLF: wait for more.
      if (m[0] === "\r" && m.index === this.buf.length - 1) {
        const line = this.buf.slice(0, m.index);
        this.buf = "";
        this.line(line, out);
        break;
      }
      const line = this.buf.slice(0, m.index);
      this.buf = this.buf.slice(m.index + m[0].length);
      this.line(line, out);
    }
    return out;
  }

  private line(line: string, out: SSEEvent[]): void {
    if (line === "") {
      if (this.data.length > 0) {
        out.push({ id: this.lastEventId, event: this.event || "message", data: this.data.join("\n") });
      }
      this.data = [];
      this.event = "";
      return;
    }
    if (line.startsWith(":")) return;
    const i = line.indexOf(":");
    const field = i < 0 ? line : line.slice(0, i);
    let value = i < 0 ? "" : line.slice(i + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "data":
        this.data.push(value);
        break;
      case "event":
        this.event = value;
        break;
      case "id":
        if (!value.includes("\0")) {
          this.lastEventId = value;
        }
        break;
      case "retry":
        if (/^\d+$/.test(value)) this.retry = Number(value);
        break;
    }
  }
}

export interface StreamOptions {
  url: string;
  /** Headers for each connection (the bearer token). */
  headers: () => Record<string, string>;
  onEvent: (e: SSEEvent) => void;
  /** Called with the HTTP status when the server refuses the stream. */
  onRefused?: (status: number) => void;
  onStateChange?: (connected: boolean) => void;
  fetchImpl?: typeof fetch;
  /** Delay before reconnecting, ms (the server's retry: overrides it). */
  retryMs?: number;
  /** Upper bound of the backoff after failed connections, ms. */
  maxRetryMs?: number;
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

function defaultSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    });
  });
}

/**
 * streamEvents keeps a server-sent event stream open until the returned
 * function is called: it reconnects after a dropped connection, sending
 * Last-Event-ID so the server can replay what was missed, with a growing
 * delay while connections keep failing. A 4xx answer (401: signed out,
 * 403) stops it: retrying would not help.
 */
export function streamEvents(o: StreamOptions): () => void {
  const ac = new AbortController();
  const doFetch = o.fetchImpl ?? fetch;
  const sleep = o.sleep ?? defaultSleep;
  const base = o.retryMs ?? 1000;
  const max = o.maxRetryMs ?? 30_000;
  let lastEventId: string | null = null;

  (async () => {
    let failures = 0;
    let serverRetry: number | null = null;
    while (!ac.signal.aborted) {
      let received = false;
      try {
        const headers: Record<string, string> = { Accept: "text/event-stream", ...o.headers() };
        if (lastEventId !== null) headers["Last-Event-ID"] = lastEventId;
        const res = await doFetch(o.url, { headers, signal: ac.signal, cache: "no-store" });
        if (res.status >= 400 && res.status < 500) {
          o.onRefused?.(res.status);
          return;
        }
        if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
        o.onStateChange?.(true);
        const parser = new SSEParser();
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          for (const e of parser.push(value)) {
            received = true;
            o.onEvent(e);
          }
          if (parser.lastEventId !== null) lastEventId = parser.lastEventId;
          if (parser.retry !== null) serverRetry = parser.retry;
        }
      } catch {
        // a dropped connection or a failed one: retried below
      }
      if (ac.signal.aborted) return;
      o.onStateChange?.(false);
      failures = received ? 0 : failures + 1;
      const delay = Math.min(max, (serverRetry ?? base) * 2 ** Math.min(failures, 5));
      await sleep(delay, ac.signal);
    }
  })();

  return () => ac.abort();
}
