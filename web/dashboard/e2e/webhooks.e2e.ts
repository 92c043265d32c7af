// End-to-end: the webhooks screen against a real hypervisord --demo and a
// receiver this test runs, which checks the Standard Webhooks signature.
import { createHmac } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openBrowser, type E2EBrowser } from "./harness";

interface Received {
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

let b: E2EBrowser;
let receiver: Server;
let hookURL = "";
const received: Received[] = [];

beforeAll(async () => {
  b = await openBrowser();
  receiver = createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (c: string) => (body += c));
    req.on("end", () => {
      received.push({ headers: req.headers, body });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
  hookURL = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
});
afterAll(async () => {
  await b?.close();
  await new Promise((r) => receiver?.close(r));
});

/** Standard Webhooks: v1,base64(HMAC-SHA256(key, id.timestamp.body)). */
function signature(secret: string, r: Received): string {
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  const signed = `${r.headers["webhook-id"]}.${r.headers["webhook-timestamp"]}.${r.body}`;
  return "v1," + createHmac("sha256", key).update(signed).digest("base64");
}

describe("webhooks", () => {
  it("adds an endpoint, shows its secret once, sends a test and logs the delivery", async () => {
    const page = await b.page({ role: "admin" });
    await page.getByRole("link", { name: "Webhooks" }).click();
    await page.getByRole("heading", { name: "Webhooks" }).waitFor();
    await page.getByRole("button", { name: "Add endpoint" }).click();
    const form = page.getByRole("form", { name: "New webhook endpoint" });
    await form.getByLabel("URL").fill("ftp://example.com/");
    await form.getByRole("button", { name: "Add endpoint" }).click();
    await expect.poll(() => form.getByRole("alert").first().textContent()).toContain("Only http and https");
    await form.getByLabel("URL").fill(hookURL);
    await form.getByLabel("Description").fill("e2e receiver");
    await form.getByRole("checkbox", { name: /schedule\.failed/ }).check();
    await b.shot(page, "webhooks-form");
    await form.getByRole("button", { name: "Add endpoint" }).click();

    const secret = (await page.getByTestId("webhook-secret").textContent()) ?? "";
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/=]{32,}$/);
    await page.getByRole("button", { name: "I have stored it" }).click();
    expect(await page.getByTestId("webhook-secret").count()).toBe(0);

    const row = page.locator(`tr[data-endpoint="${hookURL}"]`);
    await row.waitFor();
    const rowText = (await row.textContent()) ?? "";
    expect(rowText).toContain("job.*");
    expect(rowText).toContain("schedule.failed");
    expect(rowText).not.toContain(secret); // only the prefix is ever shown

    await row.getByRole("button", { name: "Send test" }).click();
    const log = page.getByRole("region", { name: `Deliveries to ${hookURL}` });
    const delivery = log.locator('tr[data-delivery="webhook.test"]');
    await expect.poll(async () => (await delivery.count()) > 0 && ((await delivery.first().textContent()) ?? ""), { timeout: 90_000 }).toContain("delivered");
    expect(await delivery.first().textContent()).toContain("HTTP 204");
    await delivery.first().getByRole("button", { name: "Attempts" }).click();
    await expect.poll(() => log.getByText(/Attempt 1 at .*: HTTP 204/).count()).toBe(1);

    // The receiver got it, signed with the secret the screen showed.
    const test = received.find((r) => r.headers["webhook-id"] && JSON.parse(r.body).type === "webhook.test");
    expect(test, "the receiver got no webhook.test").toBeDefined();
    expect(String(test!.headers["webhook-signature"]).split(" ")).toContain(signature(secret, test!));

    await b.shot(page, "webhooks");
    await b.done(page);
    const dark = await b.page({ role: "admin", scheme: "dark" });
    await dark.getByRole("link", { name: "Webhooks" }).click();
    await dark.locator(`tr[data-endpoint="${hookURL}"]`).waitFor();
    await b.shot(dark, "webhooks");
    await b.done(dark);
  });

  it("shows a viewer the endpoints and their log but no mutating controls", async () => {
    const page = await b.page({ role: "viewer" });
    await page.getByRole("link", { name: "Webhooks" }).click();
    const row = page.locator(`tr[data-endpoint="${hookURL}"]`);
    await row.waitFor();
    expect(await page.getByRole("button", { name: "Add endpoint" }).count()).toBe(0);
    for (const name of ["Send test", "Disable", "Edit", "Rotate secret", "Delete"]) {
      expect(await row.getByRole("button", { name }).count(), name).toBe(0);
    }
    await row.getByRole("button", { name: "Deliveries" }).click();
    const log = page.getByRole("region", { name: `Deliveries to ${hookURL}` });
    await log.locator('tr[data-delivery="webhook.test"]').first().waitFor();
    expect(await log.getByRole("button", { name: "Redeliver" }).count()).toBe(0);
    await b.done(page);
  });
});
