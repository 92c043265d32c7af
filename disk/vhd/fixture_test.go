package vhd

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hypersdk/hypersdk/disk"
	"github.com/hypersdk/hypersdk/disk/disktest"
)

// TestAzureFixedVHD reads a fixed VHD laid out as Azure writes them: a
// sparse page blob of whole MiB with a footer whose Creator Application is
// "wa\0\0" (Windows Azure), version 7.0, host "Wi2k", and the
// specification's geometry for the size.
func TestAzureFixedVHD(t *testing.T) {
	const size = 20 * mib // Azure's smallest disk
	// The specification's CHS algorithm by hand for 40960 sectors: 17
	// sectors per track, 2409 cylinders × heads, 4 heads, 602 cylinders.
	const cyl, heads, spt = 602, 4, 17
	ft := specFooter(specFooterFields{creatorApp: "wa", creatorVersion: 0x00070000, creatorOS: "Wi2k",
		size: size, cylinders: cyl, heads: heads, spt: spt, diskType: 2, dataOffset: ^uint64(0)})

	want := make([]byte, size)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, at := range []int64{0, 3*mib + 4096, 7*mib - 512, size - 4096} {
		for i := range 4096 {
			want[at+int64(i)] = byte(rng.Uint32())
		}
	}
	p := filepath.Join(t.TempDir(), "azure.vhd")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, at := range []int64{0, 3*mib + 4096, 7*mib - 512, size - 4096} {
		if _, err := f.WriteAt(want[at:at+4096], at); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.WriteAt(ft, size); err != nil {
		t.Fatal(err)
	}
	f.Close()

	im := disktest.OpenImage(t, p, Open)
	if got := im.Info(); got.VirtualSize != size || got.Subformat != "fixed" {
		t.Fatalf("Info = %+v, want a fixed disk of %d bytes", got, size)
	}
	if err := im.Check(context.Background()); err != nil {
		t.Fatalf("Check: %v", err)
	}
	assertReadsAs(t, im, want)
	var mapped int64
	for _, e := range disktest.Extents(t, im) {
		mapped += e.Length
	}
	if mapped >= size/2 {
		t.Fatalf("extents map %d of %d bytes: the file's holes are not skipped", mapped, size)
	}

	// qemu-img before 10.0 sizes a "wa\0\0" disk by its geometry (602 × 4
	// × 17 sectors, 16 KiB short); told to use Current Size, as Azure and
	// qemu 10 do, it reads what we read.
	raw := filepath.Join(t.TempDir(), "want.raw")
	if err := os.WriteFile(raw, want, 0o644); err != nil {
		t.Fatal(err)
	}
	asAzure := "driver=vpc,force_size_calc=current_size,file.filename=" + p
	if out := disktest.Run(t, "info", "--image-opts", asAzure); !strings.Contains(out, "(20971520 bytes)") {
		t.Fatalf("qemu-img info: %s, want 20971520 bytes", out)
	}
	disktest.Run(t, "compare", "--image-opts", "driver=raw,file.filename="+raw, asAzure)
}

// TestDynamicPartialBlock reads a dynamic disk built by hand whose blocks'
// sector bitmaps leave sectors absent: they read as zeros even where the
// file holds other bytes, and the extents are exactly the present sectors.
func TestDynamicPartialBlock(t *testing.T) {
	const bs = 16 << 10 // 32 sectors: a 4-byte bitmap, padded to 512
	const size = 4 * bs
	junk := bytes.Repeat([]byte{0xEE}, bs)
	full := make([]byte, bs)
	for i := range full {
		full[i] = byte(i*7 + 1)
	}
	// Block 1: sectors 0-2, 7 and 31 present; block 3: all present.
	partialBitmap := []byte{0xE1, 0x00, 0x00, 0x01}
	file, _ := specDynamic(size, bs, typeDynamic, "", []specBlock{
		{index: 3, bitmap: []byte{0xFF, 0xFF, 0xFF, 0xFF}, data: full},
		{index: 1, bitmap: partialBitmap, data: junk},
	})
	want := make([]byte, size)
	for _, s := range []int{0, 1, 2, 7, 31} {
		copy(want[bs+s*512:bs+(s+1)*512], junk)
	}
	copy(want[3*bs:], full)

	im, err := Open(disk.BytesFile("partial.vhd", file, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := im.Check(context.Background()); err != nil {
		t.Fatalf("Check: %v", err)
	}
	assertReadsAs(t, im, want)
	// Unaligned reads across present and absent sectors and blocks.
	rng := rand.New(rand.NewPCG(3, 4))
	for range 500 {
		off := rng.Int64N(size)
		p := make([]byte, rng.IntN(3*bs))
		n, _ := im.ReadAt(p, off)
		if !bytes.Equal(p[:n], want[off:off+int64(n)]) {
			t.Fatalf("ReadAt(%d bytes at %d) differs", len(p), off)
		}
	}
	wantExtents := []disk.Extent{{Offset: bs, Length: 3 * 512}, {Offset: bs + 7*512, Length: 512}, {Offset: bs + 31*512, Length: 512}, {Offset: 3 * bs, Length: bs}}
	got := disktest.Extents(t, im)
	if len(got) != len(wantExtents) {
		t.Fatalf("extents %v, want %v", got, wantExtents)
	}
	for i := range got {
		if got[i] != wantExtents[i] {
			t.Fatalf("extents %v, want %v", got, wantExtents)
		}
	}
}

// TestFooterCopy opens dynamic disks whose footer copy at 0, or whose footer
// at the end, is damaged: the valid one is used and Check says so.
func TestFooterCopy(t *testing.T) {
	full := bytes.Repeat([]byte{0x5A}, 4096)
	good, l := specDynamic(3*4096, 4096, typeDynamic, "", []specBlock{{index: 1, bitmap: []byte{0xFF}, data: full}})
	want := make([]byte, 3*4096)
	copy(want[4096:], full)

	for _, tc := range []struct {
		name, structure string
		damage          func(b []byte) []byte
	}{
		{"copy checksum", "footer copy", func(b []byte) []byte { b[100]++; return b }},
		{"copy differs", "footer copy", func(b []byte) []byte { b[24]++; specSum(b[:512], 64); return b }},
		{"end checksum", "footer", func(b []byte) []byte { b[l.footerAt+100]++; return b }},
		{"end missing", "footer", func(b []byte) []byte { return b[:l.footerAt] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.damage(bytes.Clone(good))
			im, err := Open(disk.BytesFile("copy.vhd", b, nil))
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			assertReadsAs(t, im, want)
			err = im.Check(context.Background())
			var fe *disk.FormatError
			if !errors.As(err, &fe) || fe.Structure != tc.structure {
				t.Fatalf("Check: %v, want a problem with the %s", err, tc.structure)
			}
		})
	}
}

// TestOldFooter reads a fixed disk whose footer is 511 bytes long, as some
// old tools wrote it.
func TestOldFooter(t *testing.T) {
	data := bytes.Repeat([]byte{1, 2, 3, 4}, 1024)
	c, h, s := geometry(4096)
	ft := specFooter(specFooterFields{creatorApp: "vpc ", size: 4096, cylinders: c, heads: h, spt: s, diskType: 2, dataOffset: ^uint64(0)})
	if ft[511] != 0 {
		t.Fatal("the footer's last byte is not reserved zero")
	}
	im, err := Open(disk.BytesFile("old.vhd", append(bytes.Clone(data), ft[:511]...), nil))
	if err != nil {
		t.Fatal(err)
	}
	assertReadsAs(t, im, data)
}

// TestRefusals opens damaged or unsupported images: each is a
// *disk.FormatError naming the structure and its offset.
func TestRefusals(t *testing.T) {
	const bs = 4096
	blk := func(i int) specBlock {
		return specBlock{index: i, bitmap: []byte{0xFF}, data: bytes.Repeat([]byte{byte(i + 1)}, bs)}
	}
	dyn, l := specDynamic(4*bs, bs, typeDynamic, "", []specBlock{blk(0), blk(2)})
	fixedFooter := specFooter(specFooterFields{creatorApp: "win ", size: 8192, diskType: 2, dataOffset: ^uint64(0)})
	fixed := append(make([]byte, 8192), fixedFooter...)
	diff, dl := specDynamic(4*bs, bs, typeDifferencing, `C:\VMs\base-disk.vhd`, nil)

	patchHeader := func(at int, v uint32) []byte {
		b := bytes.Clone(dyn)
		be.PutUint32(b[l.headerAt+int64(at):], v)
		specSum(b[l.headerAt:l.headerAt+1024], 36)
		return b
	}
	patchBAT := func(i int, v uint32) []byte {
		b := bytes.Clone(dyn)
		be.PutUint32(b[l.tableAt+int64(4*i):], v)
		return b
	}
	patchFixedFooter := func(at int, v uint64) []byte {
		b := bytes.Clone(fixed)
		be.PutUint64(b[8192+at:], v)
		specSum(b[8192:], 64)
		return b
	}

	for _, tc := range []struct {
		name      string
		file      []byte
		structure string
		offset    int64
		says      string
	}{
		{"differencing", diff, "footer Disk Type", dl.footerAt + 60, `parent "C:\\VMs\\base-disk.vhd"`},
		{"fixed footer checksum", func() []byte { b := bytes.Clone(fixed); b[8192+30]++; return b }(), "footer", 8192, "checksum"},
		{"bad cookie", func() []byte { b := bytes.Clone(fixed); b[8192+7] = 'z'; return b }(), "footer", 8192, "no VHD footer"},
		{"tiny file", fixed[:300], "footer", 0, "shorter than"},
		{"truncated fixed", fixed[:len(fixed)-100], "footer", int64(len(fixed) - 100 - 512), "no VHD footer"},
		{"truncated dynamic", dyn[:l.blockAt[1]+1000], "BAT entry 2", l.tableAt + 8, "reaches past"},
		{"BAT entry past EOF", patchBAT(3, 1<<24), "BAT entry 3", l.tableAt + 12, "reaches past"},
		{"BAT entries share a block", patchBAT(3, uint32(l.blockAt[0]/512)), "BAT entry", -2, "overlaps the block of entry"},
		{"BAT entry over the BAT", patchBAT(1, uint32(l.tableAt/512)), "BAT entry 1", l.tableAt + 4, "overlaps the BAT"},
		{"absurd virtual size", patchFixedFooter(48, 1<<62), "footer Current Size", 8192 + 48, "beyond"},
		{"negative virtual size", patchFixedFooter(48, 1<<63), "footer Current Size", 8192 + 48, "beyond"},
		{"fixed size past the data", patchFixedFooter(48, 1<<20), "footer Current Size", 8192 + 48, "only 8192 bytes"},
		{"size not sectors", patchFixedFooter(48, 1000), "footer Current Size", 8192 + 48, "multiple of 512"},
		{"unknown disk type", func() []byte {
			b := bytes.Clone(fixed)
			be.PutUint32(b[8192+60:], 9)
			specSum(b[8192:], 64)
			return b
		}(), "footer", 8192 + 60, "disk type 9"},
		{"block size not a power of two", patchHeader(32, 3000), "dynamic header Block Size", l.headerAt + 32, "power of two"},
		{"block size below a sector", patchHeader(32, 256), "dynamic header Block Size", l.headerAt + 32, "power of two"},
		{"too few table entries", patchHeader(28, 3), "dynamic header Max Table Entries", l.headerAt + 28, "less than the virtual size"},
		{"table past the file", patchHeader(28, 1<<30), "dynamic header Table Offset", l.headerAt + 16, "not inside"},
		{"table over the header", patchHeader(20, 600), "dynamic header Table Offset", l.headerAt + 16, "overlaps the dynamic header"},
		{"header checksum", func() []byte { b := bytes.Clone(dyn); b[l.headerAt+40]++; return b }(), "dynamic header", l.headerAt, "checksum"},
		{"header cookie", func() []byte { b := bytes.Clone(dyn); b[l.headerAt]++; return b }(), "dynamic header", l.headerAt, "cookie"},
		{"header outside the file", func() []byte {
			b := bytes.Clone(dyn)
			for _, at := range []int64{0, l.footerAt} {
				be.PutUint64(b[at+16:], 1<<40)
				specSum(b[at:at+512], 64)
			}
			return b
		}(), "footer Data Offset", l.footerAt + 16, "outside"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(disk.BytesFile("bad.vhd", tc.file, nil))
			if !errors.Is(err, disk.ErrFormat) {
				t.Fatalf("Open: %v, want a format error", err)
			}
			var fe *disk.FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("Open: %T is not a *disk.FormatError", err)
			}
			if fe.File != "bad.vhd" || fe.Format != disk.VHD || !strings.HasPrefix(fe.Structure, tc.structure) ||
				(tc.offset != -2 && fe.Offset != tc.offset) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("Open: %v (structure %q, offset %d); want structure %q at offset %d saying %q",
					err, fe.Structure, fe.Offset, tc.structure, tc.offset, tc.says)
			}
		})
	}
	// The differencing refusal says how to get a disk we can read.
	_, err := Open(disk.BytesFile("bad.vhd", diff, nil))
	if !strings.Contains(err.Error(), "Merge-VHD") || !strings.Contains(err.Error(), "qemu-img convert") {
		t.Fatalf("differencing refusal %q does not say how to merge", err)
	}
}

// TestCheckFindsSpareEntries: BAT entries past the virtual size are never
// read by Open; Check reports one that points at a block, and a header
// version other than 1.0.
func TestCheckFindsSpareEntries(t *testing.T) {
	b, l := specDynamic(4*4096, 4096, typeDynamic, "", nil)
	hdr := b[l.headerAt : l.headerAt+1024]
	be.PutUint32(hdr[28:], 6) // Max Table Entries: two spare
	be.PutUint32(hdr[24:], 0x00020000)
	specSum(hdr, 36)
	be.PutUint32(b[l.tableAt+5*4:], 3)
	im, err := Open(disk.BytesFile("spare.vhd", b, nil))
	if err != nil {
		t.Fatal(err)
	}
	err = im.Check(context.Background())
	for _, want := range []string{"BAT entry 5", "Header Version"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Check: %v, want a problem with %s", err, want)
		}
	}
}
