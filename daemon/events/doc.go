// Package events reads the daemon's one event log, the webhook outbox
// (table webhook_events), in order, for live subscribers such as the API's
// Server-Sent Events stream. Every job event is written there in the
// transaction of the change that caused it (daemon/jobs, daemon/webhooks),
// so a subscriber sees exactly the committed changes, from any daemon
// sharing the database, and nothing a webhook receiver would not.
//
// Events are numbered (column seq, migration 0004). A Cursor reads the
// events after a number in batches, so a client resumes where it left off
// (SSE's Last-Event-ID) for as long as the outbox retention keeps them.
// On SQLite a number is taken by the single writer and follows commit
// order. On PostgreSQL numbers are taken at insert, so a transaction that
// commits after a later-numbered one leaves a gap for a moment; a Cursor
// waits up to Options.Grace for a gap to fill before passing it (a
// rolled-back transaction leaves a gap that never fills).
//
// Subscribers wake on this daemon's job changes and poll as a fallback,
// which is also how they see other daemons' events.
package events
