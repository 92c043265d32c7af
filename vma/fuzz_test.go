package vma_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/hypersdk/hypersdk/vma"
	"github.com/hypersdk/hypersdk/vma/vmatest"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite testdata/fuzz/FuzzReader from vmatest archives")

// FuzzReader reads arbitrary bytes as a VMA archive to the end, extracting
// into memory sinks of at most 1 MiB (larger devices are only checked),
// and parses its configuration: every refusal must be a *FormatError, and
// nothing may panic. Memory stays bounded by construction: the header is
// at most 512 KiB, an extent under 4 MiB, and the duplicate bitmap grows
// with the clusters the input actually carries.
func FuzzReader(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := vma.NewReader(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, vma.ErrFormat) {
				t.Fatalf("NewReader: %v is not a FormatError", err)
			}
			return
		}
		h := r.Header()
		if _, err := h.VMConfig(); err != nil && !errors.Is(err, vma.ErrFormat) {
			t.Fatalf("VMConfig: %v", err)
		}
		_, err = r.Extract(context.Background(), vma.ExtractOptions{Open: func(d vma.Device) (io.WriterAt, error) {
			if d.Size > 1<<20 {
				return nil, nil
			}
			return newMemSink(d.Size), nil
		}})
		if err != nil && !errors.Is(err, vma.ErrFormat) {
			t.Fatalf("Extract: %v is not a FormatError", err)
		}
	})
}

// TestFuzzCorpus keeps the committed seeds present and, with
// -update-corpus, rewrites them: small archives from vmatest (one disk,
// two interleaved with a vmstate, a device size not a cluster multiple,
// no disks) and damaged copies (checksums fixed so the damage is reached).
func TestFuzzCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzReader")
	if *updateCorpus {
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range corpusSeeds(t) {
			seed := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(b)))
			if err := os.WriteFile(filepath.Join(dir, name), []byte(seed), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	seeds, err := os.ReadDir(dir)
	if err != nil || len(seeds) < 8 {
		t.Fatalf("fuzz corpus in %s: %d seeds, %v (regenerate with go test -run TestFuzzCorpus -update-corpus)", dir, len(seeds), err)
	}
}

func corpusSeeds(t *testing.T) map[string][]byte {
	// Seed disks hold a few blocks of printable bytes (quoted compactly in
	// the corpus files): one per cluster, at a block that varies.
	tiny := func(name string, size int64, seed uint64) disk {
		b := make([]byte, size)
		for c := int64(0); c*vma.ClusterSize < size; c++ {
			off := c*vma.ClusterSize + int64((c+int64(seed))%16)*vma.BlockSize
			if off < size {
				for i := off; i < min(size, off+vma.BlockSize); i++ {
					b[i] = byte('A' + seed)
				}
			}
		}
		b[size-1] = '!'
		return disk{name: name, data: b}
	}
	write := func(disks []disk, state []byte, order vmatest.Order, conf string) []byte {
		a := vmatest.Archive{UUID: testUUID, Created: testTime, VMState: state, Order: order, Seed: 3,
			Configs: []vma.Config{{Name: "qemu-server.conf", Data: []byte(conf)}}}
		for _, d := range disks {
			a.Disks = append(a.Disks, vmatest.Disk{Name: d.name, Size: int64(len(d.data)), Data: bytes.NewReader(d.data)})
		}
		var buf bytes.Buffer
		if err := vmatest.Write(&buf, a); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	seeds := map[string][]byte{
		"one-disk":          write([]disk{tiny("drive-scsi0", 3*vma.ClusterSize, 1)}, nil, vmatest.Sequential, "name: a\nscsi0: local:vm-1-disk-0,size=192K\n#qmdump#map:scsi0:drive-scsi0:local:raw:\n"),
		"two-disks-vmstate": write([]disk{tiny("drive-scsi0", 2*vma.ClusterSize+4608, 2), tiny("drive-virtio1", vma.ClusterSize, 3)}, []byte("ram"), vmatest.Shuffled, qemuServerConf),
		"odd-size":          write([]disk{tiny("drive-efidisk0", 540672, 4)}, nil, vmatest.Interleaved, "bios: ovmf\n"),
		"no-disks":          write(nil, nil, vmatest.Sequential, "name: empty\nmemory: current=1024\n"),
	}
	base := seeds["two-disks-vmstate"]
	ext := splitExtents(base)
	damage := func(name string, f func(b []byte)) {
		b := bytes.Clone(base)
		f(b)
		seeds[name] = b
	}
	damage("dup-cluster", func(b []byte) {
		copy(b[ext[0].off+48:ext[0].off+56], b[ext[0].off+40:ext[0].off+48])
		resumExtent(b, ext[0].off)
	})
	damage("bad-block-count", func(b []byte) {
		binary.BigEndian.PutUint16(b[ext[0].off+6:], 900)
		resumExtent(b, ext[0].off)
	})
	damage("blob-length", func(b []byte) {
		b[12288+1] = 0xff
		resumHeader(b)
	})
	damage("cluster-past-end", func(b []byte) {
		binary.BigEndian.PutUint32(b[ext[0].off+44:], 1000)
		resumExtent(b, ext[0].off)
	})
	seeds["truncated"] = base[:len(base)-100]
	seeds["cut-at-extent"] = base[:ext[len(ext)-1].off]
	return seeds
}
