package winrmfake

import (
	"context"
	"io"
	"math/rand/v2"
	"os"
	"slices"

	"github.com/hypersdk/hypersdk/disk"
	"github.com/hypersdk/hypersdk/disk/vhdx"
)

// Blocks is disk content: data at offsets, holes elsewhere.
type Blocks map[int64][]byte

// RandomBlocks is count blocks of n pseudo-random bytes (from seed),
// every stride bytes from first.
func RandomBlocks(seed uint64, first, stride int64, count, n int) Blocks {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := Blocks{}
	for i := range count {
		d := make([]byte, n)
		for j := range d {
			d[j] = byte(r.Uint32())
		}
		b[first+int64(i)*stride] = d
	}
	return b
}

// WriteDynamic writes a dynamic VHDX of size bytes holding blocks at path
// with the disk package's VHDX writer.
func WriteDynamic(ctx context.Context, path string, size int64, blocks Blocks) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if err := vhdx.Write(ctx, f, newBlockSource(size, blocks), disk.WriteOptions{ClusterSize: 1 << 20}); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// blockSource is a disk.Source over Blocks (non-overlapping).
type blockSource struct {
	size int64
	offs []int64
	b    Blocks
	i    int
	cur  []byte
}

func newBlockSource(size int64, b Blocks) *blockSource {
	offs := make([]int64, 0, len(b))
	for o := range b {
		offs = append(offs, o)
	}
	slices.Sort(offs)
	return &blockSource{size: size, offs: offs, b: b, i: -1}
}

func (s *blockSource) Size() int64 { return s.size }

func (s *blockSource) NextExtent() (disk.Extent, error) {
	s.i++
	if s.i >= len(s.offs) {
		return disk.Extent{}, io.EOF
	}
	o := s.offs[s.i]
	s.cur = s.b[o]
	return disk.Extent{Offset: o, Length: int64(len(s.cur))}, nil
}

func (s *blockSource) Read(p []byte) (int, error) {
	if len(s.cur) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.cur)
	s.cur = s.cur[n:]
	return n, nil
}
