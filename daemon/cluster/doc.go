// Package cluster makes the daemons that share one database a visible
// cluster with one leader.
//
// Every daemon registers in cluster_nodes (id, advertised API address,
// version, start, running exports, capacity) and renews the row every
// heartbeat interval; a member whose row was not renewed within dead_after
// is shown dead, one that shut down cleanly is shown stopped. The leader is
// whoever holds the single cluster_leader row's unexpired lease: followers
// try to take it every heartbeat, the holder renews it, and a clean
// shutdown gives it up at once, so leadership moves within one heartbeat
// on shutdown and within dead_after when the leader dies. The lease is a
// conditional UPDATE on a row, so it works the same on SQLite and
// PostgreSQL. Lease times are written by each daemon's clock, like job
// leases: the daemons' clocks must agree to well within dead_after (NTP).
//
// The leader runs the duties that must happen once per cluster (the
// schedules, clean-up sweeps): Options.Lead runs while this node leads and
// is cancelled, and waited for, before the lease can lapse. Duties
// themselves stay safe if two nodes ever overlap (a schedule's due time is
// claimed by a compare-and-set), leadership only keeps the work on one node.
//
// Rescue of a dead node's exports is not the leader's: every daemon's job
// engine takes over jobs whose lease lapsed (see daemon/jobs).
package cluster
