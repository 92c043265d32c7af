// Package jobs is the durable job engine: it accepts export requests,
// queues them on River (in the same transaction as the job row, so an
// accepted job is never lost), runs them on provider instances with
// concurrency limits, persists progress and logs, retries transient failures
// with backoff, cancels on request, and recovers jobs whose daemon died.
//
// The jobs table is the product's truth; River supplies durable queueing,
// locking between daemons and scheduling of retries. Each running job holds
// a lease (node_id, attempt) renewed by a heartbeat about once a second; a
// lease that stops being renewed is taken over by any daemon's reaper, which
// queues a fresh River job for it. Every write a worker makes is conditional
// on still holding its lease, so at most one attempt's outcome is recorded.
package jobs
