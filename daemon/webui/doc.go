// Package webui serves the dashboard, a built single-page application,
// from an fs.FS (the daemon embeds it; tests use fstest.MapFS).
//
// Every response carries a strict Content-Security-Policy (scripts,
// styles, images and API calls only from the daemon itself; no inline
// scripts; no framing), nosniff and no-referrer. Hashed build output under
// /assets/ is cached for a year as immutable; index.html is revalidated on
// every load, so a daemon upgrade reaches browsers at once. Any other
// path without a file of its own gets index.html, so client-side routes
// survive a reload.
//
// The handler is mounted as the router's fallback, after every route of
// the API: it never answers for /api/, /metrics, /healthz or /readyz,
// which keep their own 401 and 404 problems.
package webui
