import { describe, expect, it } from "vitest";
import { SSEParser, streamEvents, type SSEEvent } from "./sse";

describe("SSEParser", () => {
  it("parses events, ids, comments and multi-line data", () => {
    const p = new SSEParser();
    const got = p.push(": keep-alive\n\nid: 7\nevent: job.progress\ndata: {\"a\":1}\n\ndata: line1\ndata:line2\n\n");
    expect(got).toEqual([
      { id: "7", event: "job.progress", data: '{"a":1}' },
      { id: "7", event: "message", data: "line1\nline2" },
    ]);
    expect(p.lastEventId).toBe("7");
  });

  it("joins events split across chunks anywhere, including inside CRLF", () => {
    const text = "id: 1\r\nevent: stats\r\ndata: {\"x\":2}\r\n\r\nid: 2\rdata: y\r\r";
    const whole = new SSEParser().push(text);
    for (let cut = 1; cut < text.length; cut++) {
      const p = new SSEParser();
      const got = [...p.push(text.slice(0, cut)), ...p.push(text.slice(cut))];
      expect(got, `cut at ${cut}`).toEqual(whole);
    }
    expect(whole).toEqual([
      { id: "1", event: "stats", data: '{"x":2}' },
      { id: "2", event: "message", data: "y" },
    ]);
  });

  it("reads retry and ignores an event without data", () => {
    const p = new SSEParser();
    expect(p.push("retry: 2500\nevent: nothing\n\n")).toEqual([]);
    expect(p.retry).toBe(2500);
  });
});

/** A fetch answering each call from a script: a status and body chunks. */
function scriptedFetch(script: { status: number; chunks: string[] }[]) {
  const calls: Record<string, string>[] = [];
  const f = (async (_url: string, init?: RequestInit) => {
    calls.push({ ...(init?.headers as Record<string, string>) });
    const step = script.shift();
    if (!step) return new Promise<Response>(() => {}); // hang: the test is over
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        for (const ch of step.chunks) c.enqueue(new TextEncoder().encode(ch));
        c.close();
      },
    });
    return new Response(body, { status: step.status });
  }) as unknown as typeof fetch;
  return { f, calls };
}

async function until(cond: () => boolean) {
  for (let i = 0; i < 1000 && !cond(); i++) await new Promise((r) => setTimeout(r, 1));
  expect(cond()).toBe(true);
}

describe("streamEvents", () => {
  it("sends the token, and Last-Event-ID when it reconnects", async () => {
    const { f, calls } = scriptedFetch([
      { status: 200, chunks: ["id: 41\nevent: job.progress\ndata: {}\n\n", "id: 42\ndata: x\n\n"] },
      { status: 200, chunks: ["id: 43\ndata: y\n\n"] },
    ]);
    const events: SSEEvent[] = [];
    const sleeps: number[] = [];
    const stop = streamEvents({
      url: "/api/v1/events",
      headers: () => ({ Authorization: "Bearer t" }),
      onEvent: (e) => events.push(e),
      fetchImpl: f,
      sleep: async (ms) => {
        sleeps.push(ms);
      },
    });
    await until(() => events.length === 3);
    stop();
    expect(events.map((e) => e.id)).toEqual(["41", "42", "43"]);
    expect(calls[0]).toMatchObject({ Authorization: "Bearer t", Accept: "text/event-stream" });
    expect(calls[0]!["Last-Event-ID"]).toBeUndefined();
    expect(calls[1]!["Last-Event-ID"]).toBe("42");
    expect(calls[2]!["Last-Event-ID"]).toBe("43");
  });

  it("backs off while connections fail, and stops on 401", async () => {
    const { f, calls } = scriptedFetch([
      { status: 503, chunks: [] },
      { status: 502, chunks: [] },
      { status: 401, chunks: [] },
    ]);
    const sleeps: number[] = [];
    let refused = 0;
    streamEvents({
      url: "/e",
      headers: () => ({}),
      onEvent: () => {},
      onRefused: (s) => (refused = s),
      fetchImpl: f,
      retryMs: 100,
      sleep: async (ms) => {
        sleeps.push(ms);
      },
    });
    await until(() => refused === 401);
    expect(sleeps).toEqual([200, 400]);
    expect(calls).toHaveLength(3);
  });
});
