package qcow2

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/hypersdk/hypersdk/disk"
	"github.com/hypersdk/hypersdk/disk/disktest"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite testdata/fuzz/FuzzOpen from qemu-img and our writer")

// FuzzOpen opens arbitrary bytes as a qcow2 image and exercises it
// (disktest.Exercise: extents, data — at most 8 MiB read — and Check):
// every refusal must be a *disk.FormatError, and nothing may panic, loop or
// allocate beyond what the input justifies.
func FuzzOpen(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		img, err := Open(disk.BytesFile("fuzz.qcow2", b, nil))
		if err != nil {
			disktest.RequireFormatError(t, "Open", err)
			return
		}
		defer img.Close()
		disktest.Exercise(t, img, disktest.Limits{Read: 8 << 20})
	})
}

// TestFuzzCorpus keeps the committed seeds readable by the rules the fuzz
// target enforces, and with -update-corpus rewrites them: small images
// (512-byte clusters, 16 KiB disks) from qemu-img — v2, v3,
// compressed with zlib and zstd, zero clusters, a snapshot — and from our
// writer, and damaged copies.
func TestFuzzCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzOpen")
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
	if err != nil || len(seeds) < 10 {
		t.Fatalf("fuzz corpus in %s: %d seeds, %v (regenerate with go test -run TestFuzzCorpus -update-corpus)", dir, len(seeds), err)
	}
}

func corpusSeeds(t *testing.T) map[string][]byte {
	tmp := t.TempDir()
	raw := filepath.Join(tmp, "seed.raw")
	data := make([]byte, 16<<10)
	for _, off := range []int{0, 5000, 12000} {
		for i := range 1500 {
			data[off+i] = byte('a' + i%26) // printable: the seeds stay small
		}
	}
	if err := os.WriteFile(raw, data, 0o644); err != nil {
		t.Fatal(err)
	}
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	qemu := func(name string, args ...string) []byte {
		out := filepath.Join(tmp, name)
		run(t, "qemu-img", append(append([]string{"convert", "-S", "512", "-f", "raw", "-O", "qcow2"}, args...), raw, out)...)
		return read(out)
	}
	seeds := map[string][]byte{
		"qemu-v2-512":          qemu("v2", "-o", "compat=0.10,cluster_size=512"),
		"qemu-v3-512":          qemu("v3", "-o", "compat=1.1,cluster_size=512"),
		"qemu-v3-512-refbits1": qemu("r1", "-o", "cluster_size=512,refcount_bits=1"),
		"qemu-zlib-512":        qemu("zlib", "-c", "-o", "cluster_size=512"),
		"qemu-zstd-512":        qemu("zstd", "-c", "-o", "cluster_size=512,compression_type=zstd"),
		"qemu-v2-zlib-512":     qemu("v2zlib", "-c", "-o", "compat=0.10,cluster_size=512"),
	}
	zero := filepath.Join(tmp, "zero.qcow2")
	run(t, "qemu-img", "convert", "-S", "512", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=512", raw, zero)
	run(t, "qemu-io", "-f", "qcow2", "-c", "write -z 0 1k", "-c", "write -z -u 5k 1k", zero)
	seeds["qemu-zero-512"] = read(zero)
	snap := filepath.Join(tmp, "snap.qcow2")
	run(t, "qemu-img", "convert", "-S", "512", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=512", raw, snap)
	run(t, "qemu-img", "snapshot", "-c", "s1", snap)
	run(t, "qemu-io", "-f", "qcow2", "-c", "write -P 7 0 1k", snap)
	seeds["qemu-snapshot-512"] = read(snap)
	ours := filepath.Join(tmp, "ours.qcow2")
	disktest.WriteSource(t, Write, &sliceSource{data: data, extents: []disk.Extent{ext(0, int64(len(data)))}}, ours, disk.WriteOptions{ClusterSize: 512})
	seeds["ours-512"] = read(ours)

	// Damaged copies of our image.
	b := seeds["ours-512"]
	l := layoutOf(t, b)
	entry, host := l.firstData(t, b)
	damage := func(name string, f func(b []byte) []byte) {
		seeds[name] = f(append([]byte(nil), b...))
	}
	damage("bad-truncated", func(b []byte) []byte { return b[:len(b)/2] })
	damage("bad-l1-past-end", func(b []byte) []byte { be.PutUint64(b[l.l1:], 1<<40); return b })
	damage("bad-l1-shared-l2", func(b []byte) []byte { be.PutUint64(b[l.l1+8:], be.Uint64(b[l.l1:])); return b })
	damage("bad-l2-into-l1", func(b []byte) []byte { be.PutUint64(b[entry:], uint64(l.l1)); return b })
	damage("bad-compressed", func(b []byte) []byte { be.PutUint64(b[entry:], flagCompressed|uint64(host)|1<<61); return b })
	damage("bad-refcount", func(b []byte) []byte { l.setRefcount(b, host/l.cs, 0); return b })
	damage("bad-size", func(b []byte) []byte { be.PutUint64(b[24:], 1<<50); return b })
	return seeds
}
