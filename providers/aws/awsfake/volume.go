package awsfake

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
)

// BlockSize is the EBS direct APIs' block size: 512 KiB.
const BlockSize = 512 << 10

const gib = 1 << 30

// A Volume is an EBS volume's content: SizeGiB of virtual size, of which only
// the blocks ever written are stored (a sparse map of block index → BlockSize
// bytes), so a multi-GiB volume costs what it holds. Stored blocks are
// immutable — a write replaces the block — which makes a snapshot a copy of
// the map, not of the data. Each keeps its SHA-256, computed when it is
// stored (EBS keeps a block's checksum with it): serving a block costs the
// server no hashing, so that on a machine the server shares with the client
// under test, CPU goes to the client.
//
// A Volume is safe for concurrent use: tests write to it while the server
// serves snapshots of it.
type Volume struct {
	ID      string
	SizeGiB int32
	// Type is the EBS volume type (gp3, gp2, io2, …); "gp3" when empty.
	Type string
	// Tags are the volume's tags (DescribeVolumes tagSet, CopyTagsFromSource).
	Tags map[string]string
	// Encrypted reports the volume as encrypted (KMS). Its content is
	// served as it is: the fake has no keys.
	Encrypted bool

	mu     sync.RWMutex
	blocks map[int64]*block
}

// block is a stored block: BlockSize bytes and their SHA-256. Never
// modified once stored.
type block struct {
	data []byte
	sum  [sha256.Size]byte
}

func newBlock(data []byte) *block {
	return &block{data: data, sum: sha256.Sum256(data)}
}

// NewVolume returns an empty (all-hole) volume of sizeGiB GiB.
func NewVolume(id string, sizeGiB int32) *Volume {
	return &Volume{ID: id, SizeGiB: sizeGiB, Type: "gp3", blocks: make(map[int64]*block)}
}

// Size is the volume's virtual size in bytes.
func (v *Volume) Size() int64 { return int64(v.SizeGiB) * gib }

// Blocks is the number of BlockSize blocks the virtual size spans.
func (v *Volume) Blocks() int64 { return v.Size() / BlockSize }

// WriteAt writes p at off, storing every block it touches (a block written
// with zeros is stored, as EBS records a written block whatever it holds).
// It refuses writes past the virtual size.
func (v *Volume) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off > v.Size() || int64(len(p)) > v.Size()-off {
		return 0, fmt.Errorf("awsfake: volume %s: write of %d bytes at %d past its size %d", v.ID, len(p), off, v.Size())
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.init()
	written := 0
	for written < len(p) {
		pos := off + int64(written)
		idx, within := pos/BlockSize, pos%BlockSize
		data := make([]byte, BlockSize)
		if b := v.blocks[idx]; b != nil {
			copy(data, b.data) // a missing block stays zeros
		}
		n := copy(data[within:], p[written:])
		v.blocks[idx] = newBlock(data)
		written += n
	}
	return written, nil
}

// WriteRandom writes n pseudo-random bytes at off, derived from seed, so the
// same call always writes the same bytes.
func (v *Volume) WriteRandom(off, n int64, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, uint64(off)))
	buf := make([]byte, min(n, BlockSize))
	for done := int64(0); done < n; {
		chunk := buf[:min(n-done, int64(len(buf)))]
		for i := range chunk {
			chunk[i] = byte(rng.Uint32())
		}
		if _, err := v.WriteAt(chunk, off+done); err != nil {
			return err
		}
		done += int64(len(chunk))
	}
	return nil
}

// WriteZeroBlock stores block index as written zeros: a block that
// ListSnapshotBlocks lists although it holds no data.
func (v *Volume) WriteZeroBlock(index int64) error {
	if index < 0 || index >= v.Blocks() {
		return fmt.Errorf("awsfake: volume %s: block %d out of range [0,%d)", v.ID, index, v.Blocks())
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.init()
	v.blocks[index] = newBlock(make([]byte, BlockSize))
	return nil
}

// ReadAt reads the volume's raw content; holes read as zeros.
func (v *Volume) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("awsfake: negative offset")
	}
	if off >= v.Size() {
		return 0, io.EOF
	}
	v.mu.RLock()
	defer v.mu.RUnlock()
	n := 0
	for n < len(p) && off+int64(n) < v.Size() {
		pos := off + int64(n)
		idx, within := pos/BlockSize, pos%BlockSize
		want := min(int64(len(p)-n), BlockSize-within, v.Size()-pos)
		if b, ok := v.blocks[idx]; ok {
			copy(p[n:int64(n)+want], b.data[within:])
		} else {
			clear(p[n : int64(n)+want])
		}
		n += int(want)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// WrittenBlocks returns the indexes of the stored blocks, ascending: exactly
// what ListSnapshotBlocks lists for a snapshot taken now.
func (v *Volume) WrittenBlocks() []int64 {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return sortedKeys(v.blocks)
}

// SHA256 is the SHA-256 of the volume's whole raw content (Size bytes, holes
// as zeros). Its cost is proportional to the virtual size.
func (v *Volume) SHA256() [32]byte {
	h := sha256.New()
	zero := make([]byte, BlockSize)
	v.mu.RLock()
	defer v.mu.RUnlock()
	for i := range v.Blocks() {
		if b, ok := v.blocks[i]; ok {
			h.Write(b.data)
		} else {
			h.Write(zero)
		}
	}
	return [32]byte(h.Sum(nil))
}

// WriteRawImage writes the volume's raw content to path as a sparse file of
// exactly Size bytes (holes are not written), for qemu-img compare.
func (v *Volume) WriteRawImage(path string) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	if err := f.Truncate(v.Size()); err != nil {
		return err
	}
	v.mu.RLock()
	defer v.mu.RUnlock()
	for _, idx := range sortedKeys(v.blocks) {
		if _, err := f.WriteAt(v.blocks[idx].data, idx*BlockSize); err != nil {
			return err
		}
	}
	return f.Sync()
}

// snapshotBlocks returns a point-in-time copy of the block map. The blocks
// themselves are shared: writes replace blocks, never modify them.
func (v *Volume) snapshotBlocks() map[int64]*block {
	v.mu.RLock()
	defer v.mu.RUnlock()
	m := make(map[int64]*block, len(v.blocks))
	for k, b := range v.blocks {
		m[k] = b
	}
	return m
}

// init makes the zero Volume{} usable.
func (v *Volume) init() {
	if v.blocks == nil {
		v.blocks = make(map[int64]*block)
	}
}

func sortedKeys[V any](m map[int64]V) []int64 {
	keys := make([]int64, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// NewSampleVolume returns a volume of sizeGiB GiB (at least 1) laid out like
// the disks the AWS provider must export faithfully, derived from seed:
//
//   - blocks 0–3: random data (a boot area);
//   - blocks 4–63: a hole;
//   - block 64: explicitly written zeros (listed, holds nothing);
//   - a random region starting mid-block at 100.5 blocks and 3 MiB + 123
//     bytes long (unaligned at both ends);
//   - a hole up to the last MiB, then random data from 1 MiB + 1000 bytes
//     before the end that stops 4097 bytes before the end: data ending at an
//     unaligned offset, the volume's tail a hole.
func NewSampleVolume(id string, sizeGiB int32, seed uint64) (*Volume, error) {
	if sizeGiB < 1 {
		return nil, fmt.Errorf("awsfake: sample volume %s needs at least 1 GiB, got %d", id, sizeGiB)
	}
	v := NewVolume(id, sizeGiB)
	end := v.Size()
	steps := []func() error{
		func() error { return v.WriteRandom(0, 4*BlockSize, seed) },
		func() error { return v.WriteZeroBlock(64) },
		func() error { return v.WriteRandom(100*BlockSize+BlockSize/2, 3<<20+123, seed+1) },
		func() error { return v.WriteRandom(end-(1<<20)-1000, (1<<20)+1000-4097, seed+2) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	return v, nil
}
