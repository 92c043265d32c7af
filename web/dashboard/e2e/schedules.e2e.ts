// End-to-end: the schedules screen against a real hypervisord --demo.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openBrowser, type E2EBrowser } from "./harness";

let b: E2EBrowser;
beforeAll(async () => {
  b = await openBrowser();
});
afterAll(async () => {
  await b?.close();
});

describe("schedules", () => {
  it("creates a schedule with its reading and next runs, runs it, disables it", async () => {
    const page = await b.page({ role: "admin" });
    await page.getByRole("link", { name: "Schedules" }).click();
    await page.getByRole("heading", { name: "Schedules" }).waitFor();
    await page.getByRole("button", { name: "New schedule" }).click();
    const form = page.getByRole("form", { name: "New schedule" });

    // A mistake is named on its field before anything is sent.
    await form.getByLabel("Name", { exact: true }).fill("e2e-weekdays");
    await form.getByLabel("Cron expression").fill("61 2 * * 1-5");
    await form.getByRole("button", { name: "Create schedule" }).click();
    await expect.poll(() => form.getByRole("alert").first().textContent()).toContain("minute field: 61 is above the maximum 59");

    await form.getByLabel("Cron expression").fill("30 2 * * 1-5");
    await expect.poll(() => form.getByTestId("cron-reading").textContent()).toBe("At 02:30, on Monday through Friday");
    // The next runs come from the daemon's preview: five weekdays at 02:30 UTC.
    // The form's default expression (0 2 * * *) has five runs on show too,
    // until the preview of the typed one replaces them: wait for that.
    const runs = form.getByRole("list", { name: "Next runs" }).getByRole("listitem");
    const slots = async () =>
      (await runs.locator("time").evaluateAll((els) => els.map((e) => e.getAttribute("datetime") ?? ""))).map((t) => {
        const d = new Date(t);
        return `${d.getUTCDay()} ${d.getUTCHours()}:${d.getUTCMinutes()}`;
      });
    await expect.poll(async () => (await slots()).filter((s) => /^[1-5] 2:30$/.test(s)).length, { timeout: 30_000 }).toBe(5);
    expect(await runs.count()).toBe(5);
    await form.getByLabel("Provider", { exact: true }).selectOption("demo");
    await form.getByLabel("VM", { exact: true }).fill("db-01");
    await b.shot(page, "schedules-form");
    await form.getByRole("button", { name: "Create schedule" }).click();

    const row = page.locator('tr[data-schedule="e2e-weekdays"]');
    await row.waitFor();
    expect(await row.textContent()).toContain("At 02:30, on Monday through Friday");
    expect(await row.getByText("enabled").count()).toBe(1);

    // Run now: a manual run appears in the history with its job.
    await row.getByRole("button", { name: "Run now e2e-weekdays" }).click();
    const history = page.getByRole("region", { name: "Runs of e2e-weekdays" });
    await expect.poll(() => history.locator("tbody tr").count(), { timeout: 60_000 }).toBeGreaterThanOrEqual(1);
    expect(await history.locator("tbody tr").first().textContent()).toContain("manual");

    await row.getByRole("button", { name: "Disable e2e-weekdays" }).click();
    await expect.poll(() => row.getByText("paused").count()).toBe(1);
    await row.getByRole("button", { name: "Enable e2e-weekdays" }).waitFor();
    await b.shot(page, "schedules");
    await b.done(page);

    for (const o of [{ scheme: "dark" as const }, { device: "phone" as const }]) {
      const p = await b.page({ role: "admin", ...o });
      await p.getByRole("link", { name: "Schedules" }).click();
      await p.locator('tr[data-schedule="e2e-weekdays"]').waitFor();
      await b.shot(p, "schedules");
      await b.done(p);
    }
  });

  it("shows a viewer no mutating controls", async () => {
    const page = await b.page({ role: "viewer" });
    await page.getByRole("link", { name: "Schedules" }).click();
    const row = page.locator('tr[data-schedule="e2e-weekdays"]');
    await row.waitFor();
    expect(await page.getByRole("button", { name: "New schedule" }).count()).toBe(0);
    for (const name of [/^Run now/, /^Disable/, /^Enable/, /^Edit/, /^Delete/]) {
      expect(await row.getByRole("button", { name }).count(), String(name)).toBe(0);
    }
    // Reading the history is allowed.
    await row.getByRole("button", { name: /^History/ }).click();
    await page.getByRole("region", { name: "Runs of e2e-weekdays" }).waitFor();
    await b.done(page);
  });

  it("lets an admin delete a schedule after confirming", async () => {
    const page = await b.page({ role: "admin" });
    await page.getByRole("link", { name: "Schedules" }).click();
    const row = page.locator('tr[data-schedule="e2e-weekdays"]');
    await row.getByRole("button", { name: "Delete e2e-weekdays" }).click();
    const dialog = page.getByRole("dialog", { name: "Delete e2e-weekdays?" });
    await dialog.waitFor();
    await dialog.getByRole("button", { name: "Delete schedule" }).click();
    await expect.poll(() => row.count()).toBe(0);
    await b.done(page);
  });
});
