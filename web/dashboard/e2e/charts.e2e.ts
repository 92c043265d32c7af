// End-to-end: the charts screen renders the daemon's history and a
// drill-down lands on the jobs list filtered to the bucket.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { daemon, openBrowser, type E2EBrowser } from "./harness";

let b: E2EBrowser;
beforeAll(async () => {
  b = await openBrowser();
});
afterAll(async () => {
  await b?.close();
});

async function call(path: string, init: RequestInit = {}): Promise<any> {
  const d = daemon();
  const r = await fetch(d.baseURL + path, { ...init, headers: { Authorization: `Bearer ${d.adminToken}`, "Content-Type": "application/json" } });
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status} ${await r.text()}`);
  return r.json();
}

describe("charts", () => {
  it("renders history and drills down from the heatmap to the jobs behind a cell", async () => {
    // A finished export for the history to show.
    const job = await call("/api/v1/jobs", { method: "POST", body: JSON.stringify({ provider: "demo", vm: "db-01" }) });
    await expect
      .poll(async () => (await call(`/api/v1/jobs/${job.id}`)).state, { timeout: 180_000, interval: 500 })
      .toBe("succeeded");

    const page = await b.page({ role: "admin" });
    await page.getByRole("link", { name: "Charts" }).click();
    for (const h of ["Throughput", "Jobs finished per hour", "Success rate", "Queue", "Export durations"]) {
      await page.getByRole("heading", { name: h, exact: true }).waitFor();
    }
    // Rendered by Recharts from the history, not empty.
    await expect.poll(() => page.locator(".recharts-area-area, .recharts-line-curve").count()).toBeGreaterThan(0);
    const heat = page.getByRole("grid", { name: /Successful exports by duration/ });
    const cell = heat.locator('[role="gridcell"]:not([data-count="0"])').first();
    await cell.waitFor();
    expect(await page.locator("figcaption").first().textContent()).toMatch(/^\d+ exports?; most took/);

    // Keyboard zoom on a chart, then reset.
    const frame = page.getByRole("group", { name: /^Throughput\./ });
    const before = await page.getByTestId("charts-window").textContent();
    await frame.focus();
    await page.keyboard.press("+");
    await expect.poll(() => page.getByTestId("charts-window").textContent()).not.toBe(before);
    await page.getByRole("button", { name: "Reset zoom" }).click();
    await expect.poll(() => page.getByTestId("charts-window").textContent()).toBe(before);

    await b.shot(page, "charts");
    const cellCount = Number(await cell.getAttribute("data-count"));
    await cell.click();
    await page.waitForURL(/\/jobs\?/);
    const url = new URL(page.url());
    const from = Date.parse(url.searchParams.get("finished_after") ?? "");
    const to = Date.parse(url.searchParams.get("finished_before") ?? "");
    // One daemon serves every spec, so the first non-empty cell may hold
    // another spec's export: the window is checked against the jobs the
    // daemon lists for it, which must be that cell's, all inside it.
    const q = new URLSearchParams({ finished_after: url.searchParams.get("finished_after") ?? "", finished_before: url.searchParams.get("finished_before") ?? "" });
    const listed = (await call(`/api/v1/jobs?${q}`)).items as { state: string; finished_at: string }[];
    expect(listed.filter((j) => j.state === "succeeded").length).toBeGreaterThanOrEqual(cellCount);
    for (const j of listed) {
      const finished = Date.parse(j.finished_at);
      expect(from).toBeLessThanOrEqual(finished);
      expect(to).toBeGreaterThan(finished);
    }
    expect(url.searchParams.get("state")).toBe("succeeded");
    await page.getByTestId("finished-filter").waitFor();
    await page.locator(`a[href="/jobs/${job.id}"]`).waitFor();
    await b.done(page);

    const dark = await b.page({ role: "viewer", scheme: "dark" });
    await dark.getByRole("link", { name: "Charts" }).click();
    await dark.getByRole("grid", { name: /Successful exports by duration/ }).waitFor();
    await b.shot(dark, "charts");
    await b.done(dark);
  });
});
