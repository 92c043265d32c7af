package aws

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/providers/aws/awsfake"
)

// Every block of a sample volume, listed over many pages and fetched by
// 64 workers while 20% of EBS requests are throttled and 30% of blocks are
// served corrupted once, arrives with bytes equal to the volume's and a
// checksum that verifies (a corrupted body is caught and fetched again).
func TestBlocksListedAndFetchedUnderThrottling(t *testing.T) {
	spec := testSpec(t)
	f := newFixture(t, spec, awsfake.Faults{ThrottleEBS: 0.2, CorruptBlocks: 0.3, Seed: 7}, 3)
	p := f.connected(t)
	ctx := context.Background()
	set, err := p.createSnapshotSet(ctx, "i-0000000000000000a", "job-blocks")
	if err != nil {
		t.Fatal(err)
	}
	defer p.deleteSnapshotSet(set)
	vol := spec.Volumes[1] // vol-…b, 2 GiB
	snap, ok := set.byVolume(vol.ID)
	if !ok {
		t.Fatal("no snapshot of", vol.ID)
	}

	list, err := p.listSnapshotBlocks(ctx, snap.id)
	if err != nil {
		t.Fatal(err)
	}
	var indexes []int64
	for _, b := range list.blocks {
		indexes = append(indexes, int64(b.index))
	}
	if want := vol.WrittenBlocks(); !slices.Equal(indexes, want) {
		t.Fatalf("listed blocks %v, want %v", indexes, want)
	}
	if list.blockSize != awsfake.BlockSize || list.volumeSize != vol.Size() {
		t.Errorf("block size %d, volume size %d", list.blockSize, list.volumeSize)
	}
	if st := f.srv.Stats(); st.Requests["ListSnapshotBlocks"] < len(indexes)/3 {
		t.Errorf("%d blocks in pages of 3 took %d ListSnapshotBlocks requests", len(indexes), st.Requests["ListSnapshotBlocks"])
	}

	work := make(chan snapshotBlock)
	var mu sync.Mutex
	got := map[int32][]byte{}
	refetched := 0
	var wg sync.WaitGroup
	errc := make(chan error, 64)
	for range 64 {
		wg.Go(func() {
			buf := make([]byte, list.blockSize)
			for b := range work {
				for attempt := 1; ; attempt++ {
					data, sum, err := p.fetchBlock(ctx, snap.id, list.blockSize, b, buf)
					if err == nil {
						err = verifyBlock(data, sum)
					}
					if err != nil {
						if retryable(err) && !providers.IsPermanent(err) && attempt < 5 {
							mu.Lock()
							refetched++
							mu.Unlock()
							continue
						}
						errc <- err
						break
					}
					mu.Lock()
					got[b.index] = bytes.Clone(data)
					mu.Unlock()
					break
				}
			}
		})
	}
	for _, b := range list.blocks {
		work <- b
	}
	close(work)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	want := make([]byte, list.blockSize)
	for _, b := range list.blocks {
		if _, err := vol.ReadAt(want, int64(b.index)*int64(list.blockSize)); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got[b.index], want) {
			t.Fatalf("block %d differs from the volume", b.index)
		}
	}
	st := f.srv.Stats()
	if st.Throttled["GetSnapshotBlock"] == 0 || st.Corrupted == 0 || refetched < st.Corrupted {
		t.Errorf("faults not exercised: throttled %v, corrupted %d, refetched %d", st.Throttled, st.Corrupted, refetched)
	}
}

// Requests the service refuses for what they are are permanent.
func TestBlockErrorsClassified(t *testing.T) {
	f := newFixture(t, testSpec(t), awsfake.Faults{}, 0)
	p := f.connected(t)
	ctx := context.Background()
	set, err := p.createSnapshotSet(ctx, "i-10000000000000001", "job-errors")
	if err != nil {
		t.Fatal(err)
	}
	defer p.deleteSnapshotSet(set)
	snap := set.snapshots[0]
	buf := make([]byte, awsfake.BlockSize)
	_, _, err = p.fetchBlock(ctx, snap.id, awsfake.BlockSize, snapshotBlock{index: 0, token: "forged-token"}, buf)
	if err == nil || !providers.IsPermanent(err) || retryable(err) {
		t.Errorf("forged block token: %v, want a permanent error", err)
	}
	if _, err := p.listSnapshotBlocks(ctx, "snap-00000000000000fff"); err == nil || !providers.IsPermanent(err) {
		t.Errorf("missing snapshot: %v, want a permanent error", err)
	}
	if _, _, err := p.fetchBlock(ctx, snap.id, awsfake.BlockSize, snapshotBlock{token: "x"}, buf[:10]); err == nil {
		t.Error("a short buffer was accepted")
	}
	if !retryable(errChecksum) || retryable(context.Canceled) || !retryable(errors.New("connection reset")) {
		t.Error("retryable misclassifies local errors")
	}
}
