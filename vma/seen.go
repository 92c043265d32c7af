package vma

// clusterSet records which clusters of a device have arrived, to refuse
// duplicates and find missing ones. It holds one bit per cluster, in
// chunks of 512 clusters (32 MiB of disk) allocated as the first cluster
// of each arrives: memory follows the clusters the archive actually
// carries, never the size a header claims. A complete archive of a 1 TiB
// disk costs about 3 MiB; a hostile archive can make it allocate at most
// about 100 bytes per 8-byte cluster entry it sends.
type clusterSet struct {
	chunks map[int64]*[chunkWords]uint64
}

const (
	chunkWords    = 8
	chunkClusters = chunkWords * 64
)

// add records cluster n and reports whether it was new.
func (s *clusterSet) add(n int64) bool {
	if s.chunks == nil {
		s.chunks = map[int64]*[chunkWords]uint64{}
	}
	c := s.chunks[n/chunkClusters]
	if c == nil {
		c = new([chunkWords]uint64)
		s.chunks[n/chunkClusters] = c
	}
	i := n % chunkClusters
	bit := uint64(1) << (i % 64)
	if c[i/64]&bit != 0 {
		return false
	}
	c[i/64] |= bit
	return true
}

// firstMissing is the lowest cluster below total not recorded (total when
// all are).
func (s *clusterSet) firstMissing(total int64) int64 {
	for base := int64(0); base < total; base += chunkClusters {
		c := s.chunks[base/chunkClusters]
		if c == nil {
			return base
		}
		for i := int64(0); i < chunkClusters && base+i < total; i++ {
			if c[i/64]&(1<<(i%64)) == 0 {
				return base + i
			}
		}
	}
	return total
}
