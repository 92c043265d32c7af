package vma

import (
	"context"
	"fmt"
	"io"
)

// DeviceStats are what Extract wrote for one device.
type DeviceStats struct {
	Device Device `json:"device"`
	// DataBytes are the bytes of stored blocks, written to the sink
	// (stored blocks that hold only zeros are counted but not written).
	DataBytes int64 `json:"data_bytes"`
	// ZeroBytes are the bytes the archive marks as zero blocks: never
	// written, a sparse sink keeps them as holes.
	ZeroBytes int64 `json:"zero_bytes"`
}

// Stats sum up an extraction.
type Stats struct {
	// Devices are the disks extracted (skipped ones and the vmstate are
	// not listed), in header order.
	Devices []DeviceStats `json:"devices"`
	// ArchiveBytes is the length of the (decompressed) archive read.
	ArchiveBytes int64 `json:"archive_bytes"`
	Extents      int64 `json:"extents"`
	Clusters     int64 `json:"clusters"`
}

// ExtractOptions say where Extract writes each device.
type ExtractOptions struct {
	// Open returns where device d's bytes go, called once per disk before
	// the first cluster is read. It should make the sink d.Size bytes
	// long and reading as zeros (a new file truncated to d.Size is
	// sparse): Extract writes only the stored, non-zero blocks, at their
	// offsets, in archive order — which is not ascending (vzdump's
	// copy-before-write sends clusters the guest is about to overwrite
	// first). A nil WriterAt skips the device: its clusters are still
	// checked, not written.
	Open func(d Device) (io.WriterAt, error)
	// Progress, when set, is told after every extent how many bytes of
	// the disks the clusters read so far cover, and their total size.
	Progress func(done, total int64)
}

// Extract reads every remaining cluster of the archive and writes each
// disk's stored blocks into the sink Open returned for it: all disks in
// the one pass over the stream, each byte read once, no temporary copy of
// the archive. It returns once the archive ended complete (every cluster of
// every disk seen exactly once, every checksum right) or with the first
// error — then the sinks hold a partial, unusable copy and the caller
// discards them. ctx is checked between clusters.
//
// This is how a streamed `vzdump --stdout` becomes disks: give each disk a
// sparse raw file (or any io.WriterAt over one) and encode the files once
// Extract returns; a disk cannot be handed on front to back while the
// stream is read, because its clusters do not arrive in order.
func (r *Reader) Extract(ctx context.Context, o ExtractOptions) (*Stats, error) {
	if o.Open == nil {
		return nil, fmt.Errorf("vma: Extract needs ExtractOptions.Open")
	}
	sinks := make(map[uint8]io.WriterAt)
	var total int64
	for _, d := range r.hdr.Devices {
		if d.VMState() {
			continue
		}
		w, err := o.Open(d)
		if err != nil {
			return nil, fmt.Errorf("vma: open the sink of %s: %w", d.Name, err)
		}
		if w != nil {
			sinks[d.ID] = w
		}
		total += d.Size
	}
	var done int64
	lastExtent := r.extents
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if w := sinks[c.Device.ID]; w != nil {
			if _, err := c.WriteTo(w); err != nil {
				return nil, fmt.Errorf("vma: write cluster %d of %s: %w", c.Index, c.Device.Name, err)
			}
		}
		done += int64(c.Length)
		if o.Progress != nil && r.extents != lastExtent {
			lastExtent = r.extents
			o.Progress(done, total)
		}
	}
	if o.Progress != nil {
		o.Progress(done, total)
	}
	return r.Stats(), nil
}

// Stats are the counts of what the reader has read so far; after Next
// returned io.EOF, of the whole archive.
func (r *Reader) Stats() *Stats {
	s := &Stats{ArchiveBytes: r.off, Extents: r.extents, Clusters: r.clusters, Devices: []DeviceStats{}}
	for _, d := range r.hdr.Devices {
		if st := r.devs[d.ID]; st != nil && !st.vmstate {
			s.Devices = append(s.Devices, DeviceStats{Device: d, DataBytes: st.data, ZeroBytes: st.zero})
		}
	}
	return s
}
