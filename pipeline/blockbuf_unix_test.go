//go:build linux || darwin

package pipeline_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/providers"
)

// The block engine's buffers (64 × 512 KiB for EBS) live outside the Go
// heap, where the collector's pacing would let the heap grow to twice
// them: an export of 512 KiB blocks by 64 workers allocates far less on
// the heap than those buffers, and its bytes are right.
func TestBlockSourceBuffersAreOffHeap(t *testing.T) {
	const blockSize = 512 << 10
	capacity := int64(160 << 20)
	data, listed := sparseDisk(11, capacity, blockSize)
	p := newBlockPlatform("snap-11", data, listed, blockSize)
	// Slow enough that every worker holds a block (and its buffer) at once.
	p.latency = 5 * time.Millisecond
	dir := t.TempDir()
	var before, after runtimeMem
	before.read()
	res, _, err := exportBlocks(context.Background(), dir, providers.DiskRaw, nil, p.disk("disk-0"))
	if err != nil {
		t.Fatal(err)
	}
	after.read()
	allocated := after.total - before.total
	if got := p.maxFlight.Load(); got < 32 {
		t.Fatalf("at most %d fetches ran at once; the test needs many workers holding buffers", got)
	}
	buffers := uint64(64 * blockSize)
	if allocated > buffers/2 {
		t.Errorf("exporting %d MiB of 512 KiB blocks allocated %d MiB on the heap; the 64 block buffers alone are %d MiB",
			listedBytes(listed)>>20, allocated>>20, buffers>>20)
	}
	t.Logf("exporting %d MiB of 512 KiB blocks allocated %.1f MiB on the heap", listedBytes(listed)>>20, float64(allocated)/(1<<20))
	got, err := os.ReadFile(filepath.Join(dir, diskFile(res).Path))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("the exported disk differs from its source")
	}
}
