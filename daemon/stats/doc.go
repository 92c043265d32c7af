// Package stats keeps the recent history the dashboard's charts start
// from. What the jobs table records (when jobs finished, in which state,
// how long they took, for which provider) is derived from it; what it
// cannot tell afterwards (the queue length, running jobs, bytes moved per
// moment) a Sampler records every interval in table stats_samples, one row
// per daemon, pruned after a retention. History aggregates both into
// buckets in SQL, so responses stay small whatever the window.
//
// With several daemons on one PostgreSQL database each samples: bytes are
// each daemon's own and add up; queue and running counts are cluster-wide
// and are averaged.
package stats
