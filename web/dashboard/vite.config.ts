import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// The bundle is committed (web/dashboard/dist, embedded by embed.go) and CI
// checks that rebuilding it from source gives the same bytes, so the build
// must be a pure function of the sources: content-hashed names, no
// timestamps, no absolute paths, no source maps (they would embed them).
export default defineConfig({
  plugins: [react()],
  base: "/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: false,
    assetsInlineLimit: 0, // data: URLs would need a wider CSP (img-src data:)
    modulePreload: { polyfill: false },
    chunkSizeWarningLimit: 1024,
  },
  server: {
    // `npm run dev` proxies the API to a local daemon (hypervisord --demo).
    proxy: { "/api": process.env.HYPERSDK_URL ?? "http://127.0.0.1:8080" },
  },
  test: {
    environment: "jsdom",
    include: ["src/**/*.test.{ts,tsx}"],
    // Generous: CI is a loaded 2-core machine.
    testTimeout: 30_000,
  },
});
