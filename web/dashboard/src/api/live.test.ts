import { describe, expect, it } from "vitest";
import { ProgressTracker, type JobEventMessage } from "./live";

const MiB = 2 ** 20;

type Item = NonNullable<JobEventMessage["data"]["items"]>[number];

function item(name: string, done: number, total: number, rate = 0, finished = false): Item {
  return { name, phase: "download", bytes_done: done, bytes_total: total, rate_bytes_per_second: rate, ...(finished ? { done: true } : {}) };
}

function msg(at: number, items: Item[], done: number, total: number, rate = 0): JobEventMessage {
  return {
    type: "job.progress",
    timestamp: new Date(at).toISOString(),
    data: {
      job_id: "j1",
      provider: "demo",
      vm: "db-01",
      state: "running",
      attempt: 1,
      max_attempts: 3,
      format: "ova",
      output_dir: "/x",
      created_at: new Date(0).toISOString(),
      progress: { phase: "download", bytes_done: done, bytes_total: total, rate_bytes_per_second: rate, percent: 0 },
      items,
    },
  };
}

describe("ProgressTracker", () => {
  it("measures each disk's rate and ETA when the daemon sends none", () => {
    const t = new ProgressTracker();
    t.add(msg(0, [item("disk-0.vmdk", 0, 100 * MiB)], 0, 100 * MiB), 0);
    const s = t.add(msg(2000, [item("disk-0.vmdk", 20 * MiB, 100 * MiB)], 20 * MiB, 100 * MiB), 0);
    expect(s.disks).toEqual([{ name: "disk-0.vmdk", done: 20 * MiB, total: 100 * MiB, percent: 20, rate: 10 * MiB, eta: 8 }]);
    expect(s.percent).toBe(20);
    expect(s.rate).toBe(10 * MiB);
    expect(s.eta).toBe(8);
  });

  it("prefers the daemon's smoothed rate, and keeps disks it stopped reporting", () => {
    const t = new ProgressTracker();
    t.add(msg(0, [item("a", 50, 100, 25)], 50, 300, 30), 0);
    const s = t.add(msg(1000, [item("b", 10, 200, 5)], 60, 300, 30), 0);
    expect(s.disks.map((d) => [d.name, d.rate, d.eta])).toEqual([
      ["a", 25, 2],
      ["b", 5, 38],
    ]);
    expect(s.rate).toBe(30);
    expect(s.eta).toBe(8);
  });

  it("shows a finished disk as complete", () => {
    const t = new ProgressTracker();
    const s = t.add(msg(0, [item("a", 99, 100, 0, true)], 100, 100), 0);
    expect(s.disks[0]).toMatchObject({ percent: 100, done: 100, eta: 0, rate: null });
    expect(s.percent).toBe(100);
  });
});
