// The e2e harness: a Chromium per test file, pages that fail the test on
// any console error or CSP violation, sign-in, and screenshots.
//
//   import { afterAll, beforeAll, expect, it } from "vitest";
//   import { openBrowser, daemon } from "./harness";
//   const b = await openBrowser();            // in beforeAll; b.close() in afterAll
//   const page = await b.page({ role: "admin" });  // signed in, checked for errors
//   ...
//   await b.shot(page, "schedules");          // e2e/screenshots/schedules-light-desktop.png
//   await b.done(page);                       // fails on collected console errors / CSP violations

import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { expect, inject } from "vitest";
import type { E2EDaemon } from "./globalSetup";

export const screenshotDir = resolve(import.meta.dirname, "screenshots");

export function daemon(): E2EDaemon {
  return inject("daemon");
}

export type Role = "admin" | "operator" | "viewer";
export type Scheme = "light" | "dark";
export type Device = "desktop" | "phone";

const viewports: Record<Device, { width: number; height: number }> = {
  desktop: { width: 1280, height: 860 },
  phone: { width: 390, height: 844 },
};

export interface PageOptions {
  /** Sign in with this role's token; omit to stay on the sign-in screen. */
  role?: Role;
  scheme?: Scheme;
  device?: Device;
  /** Console errors that this test provokes on purpose (a refused token's 401). */
  allowErrors?: RegExp[];
}

interface Tracked {
  context: BrowserContext;
  problems: string[];
  allow: RegExp[];
  scheme: Scheme;
  device: Device;
}

export interface E2EBrowser {
  browser: Browser;
  page(o?: PageOptions): Promise<Page>;
  signIn(page: Page, role: Role): Promise<void>;
  /** Saves e2e/screenshots/<name>-<scheme>-<device>.png. */
  shot(page: Page, name: string): Promise<string>;
  /** Fails the test on console errors or CSP violations seen by page, and closes it. */
  done(page: Page): Promise<void>;
  close(): Promise<void>;
}

export function tokenFor(role: Role): string {
  const d = daemon();
  return role === "admin" ? d.adminToken : role === "operator" ? d.operatorToken : d.viewerToken;
}

/**
 * openBrowser launches Debian's Chromium (never a downloaded one). Each
 * launch gets a fresh profile: Playwright passes its own new temporary
 * --user-data-dir and removes it on close.
 */
export async function openBrowser(): Promise<E2EBrowser> {
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    timeout: 120_000,
  });
  const tracked = new Map<Page, Tracked>();
  mkdirSync(screenshotDir, { recursive: true });

  const self: E2EBrowser = {
    browser,
    async page(o = {}) {
      const scheme = o.scheme ?? "light";
      const device = o.device ?? "desktop";
      const context = await browser.newContext({
        baseURL: daemon().baseURL,
        viewport: viewports[device],
        colorScheme: scheme,
        isMobile: device === "phone",
        hasTouch: device === "phone",
        deviceScaleFactor: 1,
      });
      context.setDefaultTimeout(60_000);
      const page = await context.newPage();
      const t: Tracked = { context, problems: [], allow: o.allowErrors ?? [], scheme, device };
      tracked.set(page, t);
      // Injected through the DevTools protocol, not the page: CSP does not apply to it.
      await page.addInitScript(() => {
        document.addEventListener("securitypolicyviolation", (e) => {
          console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || "inline"} (${e.sourceFile}:${e.lineNumber})`);
        });
      });
      page.on("console", (m) => {
        if (m.type() === "error") t.problems.push(`console error: ${m.text()} (${m.location().url})`);
      });
      page.on("pageerror", (e) => t.problems.push(`page error: ${e.message}`));
      await page.goto("/");
      if (o.role) await self.signIn(page, o.role);
      return page;
    },
    async signIn(page, role) {
      await page.getByLabel("API token").fill(tokenFor(role));
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.getByRole("navigation", { name: "Main" }).waitFor();
      await expect.poll(() => page.getByTestId("principal").textContent()).toContain(role);
    },
    async shot(page, name) {
      const t = tracked.get(page);
      const file = join(screenshotDir, `${name}-${t?.scheme ?? "light"}-${t?.device ?? "desktop"}.png`);
      // Let the last render reach the screen.
      await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r(null))));
      await page.screenshot({ path: file, fullPage: true, animations: "disabled" });
      return file;
    },
    async done(page) {
      const t = tracked.get(page);
      if (!t) return;
      tracked.delete(page);
      await t.context.close();
      const bad = t.problems.filter((p) => !t.allow.some((re) => re.test(p)));
      expect(bad, "console errors or CSP violations").toEqual([]);
    },
    async close() {
      for (const t of tracked.values()) await t.context.close().catch(() => {});
      await browser.close();
    },
  };
  return self;
}
