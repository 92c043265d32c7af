// Package store opens the daemon's database — SQLite (default, pure Go,
// one file in the data directory) or PostgreSQL (when several daemons share
// the work) — and brings its schema up to date at start: River's queue tables
// through River's own migrator, then HyperSDK's versioned migrations.
//
// Queries are written once with $1-style placeholders, which both SQLite and
// PostgreSQL accept; timestamps are stored as integer microseconds since the
// Unix epoch (UTC) so that ordering and arithmetic are identical on both.
// The few places that differ by dialect (DDL, advisory locks) branch on
// DB.Dialect.
package store
