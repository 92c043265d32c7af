package pipeline

import (
	"bytes"
	"context"
	"io"
	"iter"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/providers"
)

// The reorder window bounds the block buffers: with a window of 3 blocks
// no more than 3 buffers are ever allocated, however the blocks are
// listed and however slowly the reader reads, and the bytes come out in
// disk order with zeros in the unlisted cells.
func TestBlockStreamWindowBoundsBuffers(t *testing.T) {
	const bs, cells = 4096, 200
	capacity := int64(cells*bs - 100)
	data := make([]byte, capacity)
	var blocks []providers.Block
	for c := int64(0); c < cells; c++ {
		if c%4 == 1 {
			continue // a hole
		}
		b := providers.Block{Offset: c * bs, Length: min(bs, capacity-c*bs)}
		for i := range b.Length {
			data[b.Offset+i] = byte(c*7 + i)
		}
		blocks = append(blocks, b)
	}
	rand.Shuffle(len(blocks), func(i, j int) { blocks[i], blocks[j] = blocks[j], blocks[i] })
	src := &providers.BlockSource{
		BlockSize: bs,
		List: func(context.Context) iter.Seq2[providers.Block, error] {
			return func(yield func(providers.Block, error) bool) {
				for _, b := range blocks {
					if !yield(b, nil) {
						return
					}
				}
			}
		},
		Fetch: func(_ context.Context, b providers.Block, dst []byte) (providers.BlockChecksums, error) {
			time.Sleep(time.Duration(rand.IntN(500)) * time.Microsecond)
			copy(dst, data[b.Offset:])
			return providers.BlockChecksums{}, nil
		},
	}
	e := &blockEngine{src: src, disk: "d", capacity: capacity, timeout: time.Minute, report: func(int64, int64) {}}
	sorted, err := e.listAll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	s := newBlockStream(ctx, cancel, e, sorted, 3)
	var got bytes.Buffer
	buf := make([]byte, 1000)
	for {
		n, err := s.Read(buf)
		got.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		s.mu.Lock()
		held := len(s.unmap)
		s.mu.Unlock()
		if held > 3 {
			t.Fatalf("%d block buffers allocated, window of 3", held)
		}
	}
	cancel(nil)
	s.wait()
	if !bytes.Equal(got.Bytes(), data) {
		t.Errorf("streamed bytes differ from the disk (%d of %d bytes)", got.Len(), len(data))
	}
}
