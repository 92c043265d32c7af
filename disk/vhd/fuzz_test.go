package vhd

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/hypersdk/hypersdk/disk"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite testdata/fuzz/FuzzOpen from the seed images")

// FuzzOpen opens arbitrary bytes as a VHD; what opens must walk its extents
// and read all their data with work bounded by the input's size, read zeros
// between extents, and check without panicking. Every refusal is a format
// error.
func FuzzOpen(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		im, err := Open(disk.BytesFile("fuzz.vhd", b, nil))
		if err != nil {
			if !errors.Is(err, disk.ErrFormat) {
				t.Fatalf("Open: %v is not a format error", err)
			}
			return
		}
		size := im.Info().VirtualSize
		buf := make([]byte, 64<<10)
		var mapped, prevEnd int64
		for e, err := range im.Extents() {
			if err != nil {
				if !errors.Is(err, disk.ErrFormat) {
					t.Fatalf("Extents: %v is not a format error", err)
				}
				break
			}
			if e.Offset < prevEnd || e.Length <= 0 || e.End() > size {
				t.Fatalf("extent %+v after %d in a %d-byte disk", e, prevEnd, size)
			}
			// Data lives in the file: more mapped bytes than the file has
			// means blocks overlap or extents are made up.
			if mapped += e.Length; mapped > int64(len(b)) {
				t.Fatalf("extents map %d bytes, more than the %d-byte file holds", mapped, len(b))
			}
			gap := min(e.Offset-prevEnd, int64(len(buf)))
			if n, err := im.ReadAt(buf[:gap], e.Offset-gap); err != nil || !disk.IsZero(buf[:n]) {
				t.Fatalf("the %d bytes before extent %+v: %v, or not zeros", gap, e, err)
			}
			for off := e.Offset; off < e.End(); {
				n, err := im.ReadAt(buf[:min(int64(len(buf)), e.End()-off)], off)
				if err != nil && !(err == io.EOF && off+int64(n) == size) {
					if !errors.Is(err, disk.ErrFormat) {
						t.Fatalf("ReadAt %d: %v is not a format error", off, err)
					}
					break
				}
				off += int64(n)
			}
			prevEnd = e.End()
		}
		if n, err := im.ReadAt(buf[:1], size); n != 0 || err != io.EOF {
			t.Fatalf("ReadAt at the virtual size: %d, %v", n, err)
		}
		if err := im.Check(context.Background()); err != nil && !errors.Is(err, disk.ErrFormat) {
			t.Fatalf("Check: %v is not a format error", err)
		}
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

	var w fileTarget
	src := append(data('W', 3*bs), data(0, bs)...)
	src = append(src, data('X', 512)...)
	if err := Write(context.Background(), &w, disk.FromReader(bytes.NewReader(src), int64(len(src))), disk.WriteOptions{ClusterSize: bs}); err != nil {
		t.Fatal(err)
	}
	seeds["written-dynamic"] = w.b
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
