package vma_test

import (
	"bytes"
	"context"
	"io"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/hypersdk/hypersdk/vma"
	"github.com/hypersdk/hypersdk/vma/vmatest"
)

// countingSink counts what is written to it.
type countingSink struct{ bytes, writes atomic.Int64 }

func (c *countingSink) WriteAt(p []byte, off int64) (int, error) {
	c.bytes.Add(int64(len(p)))
	c.writes.Add(1)
	return len(p), nil
}

// TestMemoryStaysBounded reads an archive of a 64 GiB disk holding data in
// a few clusters — every other cluster a zero cluster, as vzdump sends
// them (1,048,576 of them) — and measures the heap the reader allocates
// while doing so: it must stay a small fraction of the disk and of the
// cluster count (no per-cluster allocation, no table sized from the
// claimed 64 GiB).
func TestMemoryStaysBounded(t *testing.T) {
	const size = 64 << 30
	clusters := int64(size / vma.ClusterSize)
	var buf bytes.Buffer
	w := vmatest.NewWriter(&buf, testUUID, testTime)
	if err := w.AddConfig("qemu-server.conf", []byte(qemuServerConf)); err != nil {
		t.Fatal(err)
	}
	dev, err := w.RegisterStream("drive-scsi0", size)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, vma.ClusterSize)
	for i := range data {
		data[i] = byte(i | 1)
	}
	dataClusters := map[int64]bool{0: true, 1: true, 4097: true, clusters / 2: true, clusters - 1: true}
	for c := range clusters {
		var b []byte
		if dataClusters[c] {
			b = data
		}
		if err := w.WriteCluster(dev, c, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.CloseStream(dev); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	archive := buf.Bytes()
	t.Logf("archive of a 64 GiB disk with %d data clusters: %d bytes", len(dataClusters), len(archive))

	sink := &countingSink{}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	r, err := vma.NewReader(bytes.NewReader(archive))
	if err != nil {
		t.Fatal(err)
	}
	st, err := r.Extract(context.Background(), vma.ExtractOptions{Open: func(vma.Device) (io.WriterAt, error) { return sink, nil }})
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	allocated := after.TotalAlloc - before.TotalAlloc
	mallocs := after.Mallocs - before.Mallocs
	t.Logf("read %d clusters: %d bytes allocated in %d allocations; %d bytes written in %d writes",
		st.Clusters, allocated, mallocs, sink.bytes.Load(), sink.writes.Load())
	if st.Clusters != clusters || sink.bytes.Load() != int64(len(dataClusters))*vma.ClusterSize {
		t.Fatalf("clusters %d, bytes written %d", st.Clusters, sink.bytes.Load())
	}
	// The duplicate bitmap of 2^20 clusters is 128 KiB in 2048 chunks;
	// the extent buffer at most 59 × 64 KiB; the header 12.5 KiB.
	if allocated > 2<<20 {
		t.Fatalf("reading allocated %d bytes, want under 2 MiB", allocated)
	}
	if mallocs > 8192 {
		t.Fatalf("%d allocations for %d clusters: the reader allocates per cluster", mallocs, clusters)
	}
}

// TestHostileHeaderAllocatesLittle: a header claiming 254 devices of
// 64 TiB each (a bitmap of every cluster would be 32 GiB) with no data
// costs nothing beyond the header.
func TestHostileHeaderAllocatesLittle(t *testing.T) {
	var buf bytes.Buffer
	w := vmatest.NewWriter(&buf, testUUID, testTime)
	for i := range 254 {
		if _, err := w.RegisterStream("d"+string(rune('a'+i%26))+string(rune('a'+i/26)), 64<<40); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.FlushOutput(); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err := readArchive(buf.Bytes())
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatal("an archive without its clusters was accepted")
	}
	if a := after.TotalAlloc - before.TotalAlloc; a > 4<<20 {
		t.Fatalf("allocated %d bytes for a header claiming 16 PiB", a)
	}
}
