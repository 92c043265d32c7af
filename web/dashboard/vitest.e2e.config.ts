import { defineConfig } from "vitest/config";

// End-to-end tests: a real hypervisord --demo (started once by
// e2e/globalSetup.ts) driven through Debian's Chromium by playwright-core.
// Generous timeouts: CI is a loaded 2-core machine.
export default defineConfig({
  test: {
    include: ["e2e/**/*.e2e.ts"],
    globalSetup: ["e2e/globalSetup.ts"],
    environment: "node",
    testTimeout: 240_000,
    hookTimeout: 600_000,
    // One daemon and one browser at a time: the machine has two cores.
    fileParallelism: false,
    reporters: ["default"],
  },
});
