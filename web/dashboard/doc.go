// Package dashboard holds the web dashboard of hypervisord: a React and
// TypeScript application built by Vite from src/ into dist/, which is
// committed (the one build output in the repository) so that a plain
// `go build ./cmd/hypervisord` yields a daemon serving it. FS exposes
// dist/ for the daemon's web UI handler; `make dashboard` rebuilds it and
// `make test-dashboard` checks that the rebuild gives the committed bytes.
package dashboard
