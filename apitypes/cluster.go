package apitypes

import "time"

// ClusterNode is one daemon registered in the shared database.
type ClusterNode struct {
	ID        string    `json:"id" doc:"Node id (stable per data directory)"`
	Advertise string    `json:"advertise" doc:"API base URL the node advertises"`
	Version   string    `json:"version"`
	StartedAt time.Time `json:"started_at"`
	LastSeen  time.Time `json:"last_seen" doc:"Time of the node's last heartbeat"`
	// StoppedAt is set when the node shut down cleanly.
	StoppedAt *time.Time `json:"stopped_at,omitempty" doc:"When the node shut down cleanly; absent while it runs or after a crash"`
	Live      bool       `json:"live" doc:"The node heartbeats and has not stopped"`
	Leader    bool       `json:"leader" doc:"The node holds the leader lease (runs schedules and clean-up sweeps)"`
	Running   int        `json:"running" doc:"Exports running on the node at its last heartbeat"`
	Capacity  int        `json:"capacity" doc:"Exports the node runs at once (its jobs.max_concurrent)"`
}

// Cluster is the membership as one node sees it.
type Cluster struct {
	// Self is the node that answered.
	Self string `json:"self" doc:"Node id of the daemon that answered"`
	// Leader is the live leader's node id, "" while none holds the lease.
	Leader     string        `json:"leader" doc:"Node id of the live leader; empty while the lease is vacant"`
	LeaderTerm int64         `json:"leader_term" doc:"Grows by one every time leadership changes hands"`
	DeadAfter  float64       `json:"dead_after_seconds" doc:"A node without a heartbeat for this long is dead"`
	Nodes      []ClusterNode `json:"nodes" doc:"Live nodes first, then by id"`
}
