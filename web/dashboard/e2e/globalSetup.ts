// Starts one real `hypervisord --demo` for the whole e2e run: built from
// this repository with `go build -o` into a temp dir (or taken from
// HYPERSDK_E2E_DAEMON), configured with an admin, an operator and a
// viewer token, a free port and a temp data dir. Tests read its address
// and tokens with inject() (see harness.ts).

import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { TestProject } from "vitest/node";

export interface E2EDaemon {
  baseURL: string;
  adminToken: string;
  operatorToken: string;
  viewerToken: string;
  dataDir: string;
  logPath: string;
}

declare module "vitest" {
  export interface ProvidedContext {
    daemon: E2EDaemon;
  }
}

const repoRoot = resolve(import.meta.dirname, "../../..");

function token(): string {
  return "e2e_" + randomBytes(24).toString("base64url");
}

async function waitFor<T>(what: string, deadlineMs: number, probe: () => Promise<T | undefined> | T | undefined, logPath: string): Promise<T> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) {
      const tail = existsSync(logPath) ? readFileSync(logPath, "utf8").split("\n").slice(-40).join("\n") : "";
      throw new Error(`e2e: timed out waiting for ${what}; daemon log tail:\n${tail}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

export default async function setup(project: TestProject) {
  if (!existsSync("/usr/bin/chromium")) {
    throw new Error("e2e: /usr/bin/chromium is missing: run `make test-deps` (apt-get install chromium)");
  }
  const dir = mkdtempSync(join(tmpdir(), "hypersdk-dash-e2e-"));
  const dataDir = join(dir, "data");
  const logPath = join(dir, "hypervisord.log");
  let bin = process.env.HYPERSDK_E2E_DAEMON;
  if (!bin) {
    bin = join(dir, "hypervisord");
    execFileSync("go", ["build", "-o", bin, "./cmd/hypervisord"], { cwd: repoRoot, stdio: "inherit" });
  }
  const d = { adminToken: token(), operatorToken: token(), viewerToken: token() };
  const configPath = join(dir, "hypervisord.yaml");
  writeFileSync(
    configPath,
    [
      `data_dir: ${JSON.stringify(dataDir)}`,
      "log:",
      "  level: info",
      "api:",
      '  listen: "127.0.0.1:0"',
      "  tokens:",
      `    - { name: e2e-admin, role: admin, token: ${JSON.stringify(d.adminToken)} }`,
      `    - { name: e2e-operator, role: operator, token: ${JSON.stringify(d.operatorToken)} }`,
      `    - { name: e2e-viewer, role: viewer, token: ${JSON.stringify(d.viewerToken)} }`,
      // The webhooks test's receiver listens on loopback, which the SSRF guard refuses by default.
      "webhook_delivery:",
      "  allow_private_targets: true",
      "",
    ].join("\n"),
    { mode: 0o600 },
  );

  const log = createWriteStream(logPath);
  const child: ChildProcess = spawn(bin, ["--demo", "--config", configPath], {
    cwd: dir,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, HYPERSDK_CONFIG: "" },
  });
  child.stdout!.pipe(log);
  child.stderr!.pipe(log);
  let exited: string | null = null;
  child.on("exit", (code, signal) => (exited = `exited (code ${code}, signal ${signal})`));

  // The daemon writes <data_dir>/endpoint last, once it serves.
  const endpointFile = join(dataDir, "endpoint");
  const baseURL = await waitFor(
    "hypervisord to write its endpoint",
    180_000,
    () => {
      if (exited) throw new Error(`e2e: hypervisord ${exited}; log: ${readFileSync(logPath, "utf8")}`);
      return existsSync(endpointFile) ? readFileSync(endpointFile, "utf8").trim() || undefined : undefined;
    },
    logPath,
  );
  await waitFor(
    "hypervisord to be ready",
    120_000,
    async () => {
      try {
        return (await fetch(`${baseURL}/readyz`)).ok ? true : undefined;
      } catch {
        return undefined;
      }
    },
    logPath,
  );

  project.provide("daemon", { baseURL, ...d, dataDir, logPath });

  return async () => {
    if (!exited) {
      child.kill("SIGTERM");
      await waitFor("hypervisord to stop", 60_000, () => (exited ? true : undefined), logPath).catch(() => child.kill("SIGKILL"));
    }
    log.end();
    if (!process.env.HYPERSDK_E2E_KEEP) rmSync(dir, { recursive: true, force: true });
  };
}
