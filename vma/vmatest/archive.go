package vmatest

import (
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/hypersdk/hypersdk/vma"
)

// Disk is one device of an archive to write: Size bytes read from Data.
type Disk struct {
	Name string // "drive-scsi0"
	Size int64
	Data io.ReaderAt
}

// Order is the order clusters are written in.
type Order int

const (
	// Sequential writes each device's clusters in order, device after
	// device (a stop-mode backup of one disk at a time).
	Sequential Order = iota
	// Interleaved writes one cluster of each device in turn, as vzdump's
	// concurrent per-disk jobs do.
	Interleaved
	// Shuffled interleaves the devices randomly and, within each device,
	// moves clusters out of order (as copy-before-write does in snapshot
	// mode); vmstate stays in sequence. Seed makes it reproducible.
	Shuffled
)

// Archive describes a whole archive for Write.
type Archive struct {
	UUID    [16]byte
	Created time.Time
	// Configs are added in order ("qemu-server.conf" first, as vzdump).
	Configs []vma.Config
	// Disks are registered in order, IDs from 1.
	Disks []Disk
	// VMState, when not nil, is registered after the disks as "vmstate"
	// and written in sequence.
	VMState []byte
	Order   Order
	Seed    uint64
	// TailGarbage fills the bytes past a device's end in its last
	// cluster's buffer with non-zero bytes, as a read past the end of a
	// block device may return: the writer must keep them out.
	TailGarbage bool
}

type job struct {
	dev uint8
	num int64
}

// Write writes a as vzdump would: configs, devices registered, clusters in
// a.Order, every stream closed, the writer closed.
func Write(out io.Writer, a Archive) error {
	w := NewWriter(out, a.UUID, a.Created)
	for _, c := range a.Configs {
		if err := w.AddConfig(c.Name, c.Data); err != nil {
			return err
		}
	}
	type dev struct {
		id   uint8
		size int64
		data io.ReaderAt
		jobs []job
	}
	var devs []*dev
	for _, d := range a.Disks {
		id, err := w.RegisterStream(d.Name, d.Size)
		if err != nil {
			return err
		}
		devs = append(devs, &dev{id: id, size: d.Size, data: d.Data})
	}
	if a.VMState != nil {
		id, err := w.RegisterStream(vma.VMStateDevice, int64(len(a.VMState)))
		if err != nil {
			return err
		}
		devs = append(devs, &dev{id: id, size: int64(len(a.VMState)), data: byteReaderAt(a.VMState)})
	}
	rng := rand.New(rand.NewPCG(a.Seed, 0x766d61))
	for i, d := range devs {
		n := (d.size + vma.ClusterSize - 1) / vma.ClusterSize
		for c := range n {
			d.jobs = append(d.jobs, job{dev: d.id, num: c})
		}
		if a.Order == Shuffled && !(a.VMState != nil && i == len(devs)-1) {
			// Copy-before-write: some clusters jump ahead of their turn.
			for k := range d.jobs {
				if rng.IntN(8) == 0 {
					j := k + rng.IntN(len(d.jobs)-k)
					d.jobs[k], d.jobs[j] = d.jobs[j], d.jobs[k]
				}
			}
		}
	}
	var order []job
	switch a.Order {
	case Sequential:
		for _, d := range devs {
			order = append(order, d.jobs...)
		}
	case Interleaved, Shuffled:
		for left := true; left; {
			left = false
			for _, d := range devs {
				if len(d.jobs) == 0 {
					continue
				}
				take := 1
				if a.Order == Shuffled {
					take = 1 + rng.IntN(min(len(d.jobs), 5))
				}
				order = append(order, d.jobs[:take]...)
				d.jobs = d.jobs[take:]
				left = true
			}
		}
	default:
		return fmt.Errorf("vmatest: unknown order %d", a.Order)
	}
	byID := map[uint8]*dev{}
	remaining := map[uint8]int64{}
	for _, d := range devs {
		byID[d.id] = d
		remaining[d.id] = (d.size + vma.ClusterSize - 1) / vma.ClusterSize
	}
	buf := make([]byte, vma.ClusterSize)
	for _, j := range order {
		d := byID[j.dev]
		off := j.num * vma.ClusterSize
		n := min(vma.ClusterSize, d.size-off)
		if k, err := d.data.ReadAt(buf[:n], off); int64(k) < n {
			return fmt.Errorf("vmatest: read device %d at %d: %d of %d bytes: %w", j.dev, off, k, n, err)
		}
		tail := buf[n:]
		for i := range tail {
			tail[i] = 0
			if a.TailGarbage {
				tail[i] = 0xa5
			}
		}
		if err := w.WriteCluster(j.dev, j.num, buf); err != nil {
			return err
		}
		if remaining[j.dev]--; remaining[j.dev] == 0 {
			if err := w.CloseStream(j.dev); err != nil {
				return err
			}
		}
	}
	if len(devs) == 0 {
		if err := w.FlushOutput(); err != nil {
			return err
		}
	}
	return w.Close()
}

type byteReaderAt []byte

func (b byteReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(b)) {
		return 0, io.EOF
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
