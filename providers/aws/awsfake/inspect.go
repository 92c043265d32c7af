package awsfake

import "maps"

// SnapshotInfo describes a snapshot that has not been deleted.
type SnapshotInfo struct {
	ID         string
	VolumeID   string
	State      string // pending or completed
	VolumeSize int32
	Tags       map[string]string
}

// AliveSnapshots returns the snapshots not deleted, in creation order.
func (s *Server) AliveSnapshots() []SnapshotInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []SnapshotInfo
	for _, id := range s.snapOrder {
		sn := s.snapshots[id]
		if sn.deleted {
			continue
		}
		out = append(out, SnapshotInfo{
			ID: sn.id, VolumeID: sn.volumeID, State: sn.state(), VolumeSize: sn.volumeSize,
			Tags: maps.Clone(s.tags[id]),
		})
	}
	return out
}

// Stats counts what the server was asked.
type Stats struct {
	// Requests counts signed requests per action (EC2 Action, or
	// ListSnapshotBlocks / GetSnapshotBlock), throttled ones included.
	Requests map[string]int
	// Throttled counts the requests answered with a throttling error.
	Throttled map[string]int
	// Refused counts requests refused for their signature.
	Refused int
	// Corrupted counts block bodies served corrupted.
	Corrupted int
}

// Stats returns a copy of the request counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{
		Requests:  maps.Clone(s.stats.requests),
		Throttled: maps.Clone(s.stats.throttled),
		Refused:   s.stats.refused,
		Corrupted: len(s.stats.corrupted),
	}
}

// BlockFetches returns how often each block of a snapshot was served by
// GetSnapshotBlock (throttled attempts excluded).
func (s *Server) BlockFetches(snapshotID string) map[int64]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.stats.fetches[snapshotID])
}
