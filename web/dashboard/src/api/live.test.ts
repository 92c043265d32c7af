import { describe, expect, it } from "vitest";
import { ProgressTracker, type JobEventMessage } from "./live";

const MiB = 2 ** 20;

function msg(at: number, items: JobEventMessage["data"]["items"], done: number, total: number, rate = 0): JobEventMessage {
  return {
    type: "job.progress",
    timestamp: new Date(at).toISOString(),
    data: { job_id: "j1", progress: { phase: "download", bytes_done: done, bytes_total: total, rate_bytes_per_second: rate }, items },
  };
}

describe("ProgressTracker", () => {
  it("measures each disk's rate and ETA when the daemon sends none", () => {
    const t = new ProgressTracker();
    t.add(msg(0, [{ name: "disk-0.vmdk", bytes_done: 0, bytes_total: 100 * MiB }], 0, 100 * MiB), 0);
    const s = t.add(msg(2000, [{ name: "disk-0.vmdk", bytes_done: 20 * MiB, bytes_total: 100 * MiB }], 20 * MiB, 100 * MiB), 0);
    expect(s.disks).toEqual([{ name: "disk-0.vmdk", done: 20 * MiB, total: 100 * MiB, percent: 20, rate: 10 * MiB, eta: 8 }]);
    expect(s.percent).toBe(20);
    expect(s.rate).toBe(10 * MiB);
    expect(s.eta).toBe(8);
  });

  it("prefers the daemon's smoothed rate, and keeps disks it stopped reporting", () => {
    const t = new ProgressTracker();
    t.add(msg(0, [{ name: "a", bytes_done: 50, bytes_total: 100, rate_bytes_per_second: 25 }], 50, 300, 30), 0);
    const s = t.add(msg(1000, [{ name: "b", bytes_done: 10, bytes_total: 200, rate_bytes_per_second: 5 }], 60, 300, 30), 0);
    expect(s.disks.map((d) => [d.name, d.rate, d.eta])).toEqual([
      ["a", 25, 2],
      ["b", 5, 38],
    ]);
    expect(s.rate).toBe(30);
    expect(s.eta).toBe(8);
  });

  it("shows a finished disk as complete", () => {
    const t = new ProgressTracker();
    const s = t.add(msg(0, [{ name: "a", bytes_done: 99, bytes_total: 100, done: true }], 100, 100), 0);
    expect(s.disks[0]).toMatchObject({ percent: 100, done: 100, eta: 0, rate: null });
    expect(s.percent).toBe(100);
  });
});
