// End-to-end: the core screens against a real hypervisord --demo.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { daemon, openBrowser, tokenFor, type E2EBrowser } from "./harness";

let b: E2EBrowser;
beforeAll(async () => {
  b = await openBrowser();
});
afterAll(async () => {
  await b?.close();
});

const sixTypes = ["vsphere", "aws", "azure", "gcp", "hyperv", "proxmox"];

describe("sign-in", () => {
  it("shows a clear error for a bad token and stays signed out", async () => {
    // The refused request is logged by Chromium as a failed resource load.
    const page = await b.page({ allowErrors: [/status of 401/] });
    await b.shot(page, "signin");
    await page.getByLabel("API token").fill("not-a-real-token-0000");
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect.poll(() => page.getByRole("alert").textContent()).toMatch(/refused this token \(401\)/);
    expect(await page.getByRole("navigation", { name: "Main" }).count()).toBe(0);
    expect(await page.evaluate(() => [sessionStorage.length, localStorage.length, location.search])).toEqual([0, 0, ""]);
    await b.shot(page, "signin-error");
    await b.done(page);
  });
});

describe("an admin", () => {
  it("sees every platform's provider on the overview", async () => {
    const page = await b.page({ role: "admin" });
    await page.getByRole("heading", { name: "Overview" }).waitFor();
    const providers = page.getByRole("table").first();
    await expect.poll(async () => (await providers.locator("tbody tr").count()) >= 6).toBe(true);
    const text = (await providers.textContent()) ?? "";
    for (const t of sixTypes) expect(text).toContain(t);
    await expect.poll(() => page.getByTestId("throughput").isVisible()).toBe(true);
    await b.shot(page, "overview");
    await b.done(page);
  });

  it("browses a provider's VMs, exports one and watches it to 100% with files and checksums", async () => {
    const page = await b.page({ role: "admin" });
    await page.getByRole("link", { name: "VMs", exact: true }).click();
    // The simulated AWS account: its EBS volumes' sizes are known up front,
    // so the export has a percentage all along (vSphere learns a streamed
    // disk's size only at its end).
    await page.getByLabel("Provider", { exact: true }).selectOption("demo-aws");
    const table = page.getByRole("table", { name: "VMs of demo-aws" });
    await expect.poll(() => table.locator("tbody tr").count()).toBeGreaterThanOrEqual(3);
    await page.getByLabel("Power state").selectOption("poweredOn");
    await expect.poll(() => table.locator("tbody tr").count()).toBe(1);
    await page.getByLabel("Power state").selectOption("");
    // Search narrows the list.
    await page.getByLabel("Search").fill("db-1");
    await page.getByRole("button", { name: "Search" }).click();
    await expect.poll(() => table.locator("tbody tr").count()).toBe(1);
    await b.shot(page, "vms");
    await table.getByRole("link", { name: "db-1" }).click();
    await page.getByRole("heading", { name: "db-1" }).waitFor();
    await b.shot(page, "vm-detail");
    await page.getByRole("link", { name: "Export this VM" }).click();

    await page.getByRole("heading", { name: "Export a VM" }).waitFor();
    expect(await page.getByLabel("Provider", { exact: true }).inputValue()).toBe("demo-aws");
    const vm = await page.getByLabel("VM", { exact: true }).inputValue();
    expect(vm).not.toBe("");
    // A mistake is caught before anything is sent, on its field.
    await page.getByLabel("Format", { exact: true }).selectOption("ova");
    await page.getByLabel("Disk format").selectOption("qcow2");
    await page.getByRole("button", { name: "Start export" }).click();
    await expect.poll(() => page.locator('[data-field="disk_format"] .error').textContent()).toMatch(/only as plain disks/);
    await page.getByLabel("Disk format").selectOption("vmdk");
    // Slow the export down so the live progress is seen moving.
    await page.getByLabel("Bandwidth limit").fill("1MiB");
    expect(await page.getByTestId("hyperctl-command").textContent()).toBe(
      `hyperctl export --provider demo-aws --vm ${vm} --format ova --disk-format vmdk --bandwidth-limit 1MiB --wait`,
    );
    await b.shot(page, "export");
    await page.getByRole("button", { name: "Start export" }).click();

    // The job page: live progress to 100%, then the files with their SHA-256.
    await page.waitForURL(/\/jobs\/[^/]+$/);
    await page.getByRole("heading", { name: "Progress" }).waitFor();
    const percents = new Set<string>();
    let sawDisks = false;
    await expect
      .poll(
        async () => {
          percents.add((await page.getByTestId("job-percent").textContent()) ?? "");
          sawDisks ||= (await page.getByTestId("disk-progress").count()) > 0;
          return page.locator(".badge.state-succeeded").count();
        },
        { timeout: 180_000, interval: 200 },
      )
      .toBe(1);
    expect(await page.getByTestId("job-percent").textContent()).toBe("100%");
    expect([...percents].some((p) => p !== "0%" && p !== "100%" && p !== "—"), `saw ${[...percents].join(", ")}`).toBe(true);
    expect(sawDisks, "the per-disk progress table").toBe(true);
    const files = page.getByRole("table", { name: "Exported files" });
    await files.waitFor();
    const sums = await files.locator("td.checksum").allTextContents();
    expect(sums.length).toBeGreaterThan(0);
    for (const s of sums) expect(s).toMatch(/^[0-9a-f]{64}$/);
    expect(await files.textContent()).toContain(".ova");
    await b.shot(page, "job-detail");

    await page.getByRole("link", { name: "All jobs" }).click();
    await page.getByRole("table", { name: "Jobs" }).waitFor();
    await b.shot(page, "jobs");
    await b.done(page);
  });
});

describe("a viewer", () => {
  it("sees no mutating controls", async () => {
    // A job of its own to look at, submitted through the API as an operator.
    const res = await fetch(`${daemon().baseURL}/api/v1/jobs`, {
      method: "POST",
      headers: { Authorization: `Bearer ${tokenFor("operator")}`, "Content-Type": "application/json" },
      body: JSON.stringify({ provider: "demo-hyperv", vm: "db-1", format: "disks", disk_format: "qcow2" }),
    });
    expect(res.status).toBe(201);
    const job = (await res.json()) as { id: string };
    const page = await b.page({ role: "viewer" });
    await page.getByRole("link", { name: "Export", exact: true }).click();
    await page.getByRole("heading", { name: "Export a VM" }).waitFor();
    expect(await page.getByRole("button", { name: "Start export" }).count()).toBe(0);
    await page.goto("/vms/demo");
    await page.getByRole("table", { name: "VMs of demo" }).getByRole("link").first().click();
    await page.getByRole("heading", { level: 2 }).first().waitFor();
    expect(await page.getByRole("link", { name: "Export this VM" }).count()).toBe(0);
    await page.goto(`/jobs/${job.id}`);
    await page.getByRole("heading", { name: "Progress" }).waitFor();
    for (const name of ["Cancel", "Retry"]) expect(await page.getByRole("button", { name }).count()).toBe(0);
    await b.done(page);
  });
});

describe("layouts", () => {
  for (const scheme of ["light", "dark"] as const) {
    for (const device of ["desktop", "phone"] as const) {
      it(`renders the main screens in ${scheme} on a ${device}`, async () => {
        const page = await b.page({ role: "admin", scheme, device });
        for (const [path, name] of [
          ["/overview", "overview"],
          ["/vms/demo", "vms"],
          ["/export", "export"],
          ["/jobs", "jobs"],
        ] as const) {
          await page.goto(path);
          await page.locator("main h1").first().waitFor();
          // (Not "networkidle": the event stream stays open.)
          await expect.poll(() => page.getByText(/^Loading /).count()).toBe(0);
          // Nothing wider than the viewport: the page itself never scrolls sideways.
          const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
          expect(overflow, `${path} overflows by ${overflow}px`).toBeLessThanOrEqual(0);
          await b.shot(page, name);
        }
        // Keyboard: the skip link comes first and focus is visible.
        await page.keyboard.press("Tab");
        expect(await page.evaluate(() => document.activeElement?.textContent)).toBe("Skip to content");
        await b.done(page);
      });
    }
  }
});
