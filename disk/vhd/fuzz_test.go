package vhd

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/hypersdk/hypersdk/disk"
	"github.com/hypersdk/hypersdk/disk/disktest"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite testdata/fuzz/FuzzOpen from the seed images")

// FuzzOpen opens arbitrary bytes as a VHD; what opens must walk its extents
// and read all their data, read zeros between extents, and check without
// panicking (disktest.Exercise). Every data byte lives in the file, so the
// extents never map more than the file holds, and that bounds the work.
// Every refusal is a format error.
func FuzzOpen(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		im, err := Open(disk.BytesFile("fuzz.vhd", b, nil))
		if err != nil {
			disktest.RequireFormatError(t, "Open", err)
			return
		}
		defer im.Close()
		disktest.Exercise(t, im, disktest.Limits{Read: math.MaxInt64, Mapped: int64(len(b))})
	})
}

// seedImages are small valid and damaged images: the committed corpus.
func seedImages(t *testing.T) map[string][]byte {
	const bs = 4096
	data := func(c byte, n int) []byte { return bytes.Repeat([]byte{c}, n) }
	seeds := map[string][]byte{}

	fixedFooter := specFooter(specFooterFields{creatorApp: "wa", creatorVersion: 0x00070000, creatorOS: "Wi2k",
		size: 2048, cylinders: 1, heads: 4, spt: 1, diskType: 2, dataOffset: ^uint64(0)})
	seeds["fixed"] = append(data('F', 2048), fixedFooter...)
	seeds["fixed-511"] = append(data('O', 2048), fixedFooter[:511]...)
	bad := bytes.Clone(seeds["fixed"])
	bad[2048+70]++
	seeds["fixed-bad-checksum"] = bad

	dyn, l := specDynamic(4*bs, bs, typeDynamic, "", []specBlock{
		{index: 2, bitmap: []byte{0xFF}, data: data('B', bs)},
		{index: 0, bitmap: []byte{0x81}, data: data('A', bs)},
	})
	seeds["dynamic"] = dyn
	tiny, _ := specDynamic(2048, 512, typeDynamic, "", []specBlock{
		{index: 1, bitmap: []byte{0x80}, data: data('t', 512)},
		{index: 3, bitmap: []byte{0x00}, data: data('u', 512)},
	})
	seeds["dynamic-512-byte-blocks"] = tiny
	diff, _ := specDynamic(2*bs, bs, typeDifferencing, "parent.vhd", nil)
	seeds["differencing"] = diff

	patch := func(name string, at int64, v uint32) {
		b := bytes.Clone(dyn)
		be.PutUint32(b[at:], v)
		seeds[name] = b
	}
	patch("dynamic-bat-past-eof", l.tableAt+4, 1<<20)
	patch("dynamic-bat-shared", l.tableAt+4, uint32(l.blockAt[0]/512))
	seeds["dynamic-no-end-footer"] = dyn[:l.footerAt]
	seeds["dynamic-truncated"] = dyn[:l.blockAt[1]+100]

	var w disktest.MemTarget
	src := append(data('W', 3*bs), data(0, bs)...)
	src = append(src, data('X', 512)...)
	if err := Write(context.Background(), &w, disk.FromReader(bytes.NewReader(src), int64(len(src))), disk.WriteOptions{ClusterSize: bs}); err != nil {
		t.Fatal(err)
	}
	seeds["written-dynamic"] = w.Bytes()
	return seeds
}

// TestFuzzCorpus keeps testdata/fuzz/FuzzOpen in step with seedImages
// (go test -run TestFuzzCorpus -update-corpus rewrites it) and checks the
// valid seeds open.
func TestFuzzCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzOpen")
	for name, b := range seedImages(t) {
		path := filepath.Join(dir, name)
		enc := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		if *updateCorpus {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(enc), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if name == "written-dynamic" {
			// Time stamp and Unique Id change with every write.
			if err != nil {
				t.Fatalf("%s: %v (run with -update-corpus)", path, err)
			}
			continue
		}
		if err != nil || string(got) != enc {
			t.Fatalf("%s is missing or stale: run go test -run TestFuzzCorpus -update-corpus (%v)", path, err)
		}
	}
}
