// Package scheduler runs exports on cron schedules that live in the store:
// nothing about a schedule exists only in memory, so schedules survive
// restarts and SIGKILL. Each schedule has a standard 5-field expression, a
// descriptor or "@every <duration>", an IANA time zone (see Expr for the
// daylight-saving rules), an overlap policy (skip, queue, allow), a
// catch-up policy for due times missed while no daemon ran (once, none),
// and optionally an end date or a run limit.
//
// Firing is exactly-once per due time even with several daemons on one
// PostgreSQL database: a daemon claims a due time by moving the schedule's
// next_run on with a compare-and-set, in the same transaction that submits
// the job through the job engine and records the execution (a unique index
// on schedule and due time backs this up). When the job ends, its
// execution records the final status and duration in the job's own final
// transaction.
package scheduler
