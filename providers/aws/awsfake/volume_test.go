package awsfake

import (
	"bytes"
	"encoding/hex"
	"path/filepath"
	"slices"
	"testing"

	"github.com/hypersdk/hypersdk/disk/disktest"
)

func TestSampleVolumeLayoutAndRawImage(t *testing.T) {
	v, err := NewSampleVolume("vol-0123456789abcdef0", 1, 5)
	if err != nil {
		t.Fatal(err)
	}
	end := v.Size()
	want := []int64{0, 1, 2, 3, 64, 100, 101, 102, 103, 104, 105, 106, 2045, 2046, 2047}
	if got := v.WrittenBlocks(); !slices.Equal(got, want) {
		t.Fatalf("written blocks %v, want %v", got, want)
	}
	read := func(off, n int64) []byte {
		b := make([]byte, n)
		if _, err := v.ReadAt(b, off); err != nil {
			t.Fatal(err)
		}
		return b
	}
	zero := func(b []byte) bool { return !slices.ContainsFunc(b, func(c byte) bool { return c != 0 }) }
	if !zero(read(64*BlockSize, BlockSize)) || !zero(read(10*BlockSize, BlockSize)) {
		t.Fatal("the zero block or a hole holds data")
	}
	if zero(read(end-4097-64, 64)) || !zero(read(end-4097, 4097)) {
		t.Fatal("the data does not end exactly 4097 bytes before the end")
	}
	if !zero(read(100*BlockSize, BlockSize/2)) || zero(read(100*BlockSize+BlockSize/2, 64)) {
		t.Fatal("the mid-volume region does not start at block 100.5")
	}

	// qemu-img is the oracle: the raw image is the volume, sparse, and a
	// qcow2 conversion of it compares identical.
	dir := t.TempDir()
	raw := filepath.Join(dir, "vol.raw")
	if err := v.WriteRawImage(raw); err != nil {
		t.Fatal(err)
	}
	if info := disktest.QemuInfo(t, raw, "raw"); info.VirtualSize != end {
		t.Fatalf("qemu-img: virtual size %d, want %d", info.VirtualSize, end)
	}
	if alloc := disktest.Allocated(t, raw); alloc >= end/4 {
		t.Fatalf("raw image allocates %d of %d bytes: holes were written", alloc, end)
	}
	sum := v.SHA256()
	if got := disktest.FileSHA256(t, raw); got != hex.EncodeToString(sum[:]) {
		t.Fatalf("raw image SHA-256 %s, volume SHA256 %x", got, sum)
	}
	qcow := filepath.Join(dir, "vol.qcow2")
	disktest.Convert(t, raw, "raw", qcow, "qcow2")
	disktest.Compare(t, raw, "raw", qcow, "qcow2")
}

func TestVolumeRefusesOutOfRange(t *testing.T) {
	v := NewVolume("vol-0123456789abcdef0", 1)
	if _, err := v.WriteAt([]byte{1, 2}, v.Size()-1); err == nil {
		t.Fatal("write across the end accepted")
	}
	if err := v.WriteZeroBlock(v.Blocks()); err == nil {
		t.Fatal("zero block past the end accepted")
	}
	if len(v.WrittenBlocks()) != 0 {
		t.Fatal("a refused write stored a block")
	}
	if _, err := v.WriteAt(bytes.Repeat([]byte{7}, 10), 0); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 20)
	if n, err := v.ReadAt(b, v.Size()-10); n != 10 || err == nil {
		t.Fatalf("read across the end: %d, %v", n, err)
	}
}

func TestGlobMatchesEC2Wildcards(t *testing.T) {
	cases := []struct {
		pattern, s string
		want       bool
	}{
		{"web-*", "web-1", true}, {"web-*", "db-1", false}, {"*", "", true},
		{"w?b", "web", true}, {"w?b", "wb", false}, {"*-1", "web-1", true},
		{`a\*`, "a*", true}, {`a\*`, "ab", false}, {"a*b*c", "axxbyyc", true}, {"a*b*c", "axxbyy", false},
	}
	for _, c := range cases {
		if got := globMatch(c.pattern, c.s); got != c.want {
			t.Errorf("globMatch(%q, %q) = %v", c.pattern, c.s, got)
		}
	}
}

func TestNewRefusesInconsistentSpecs(t *testing.T) {
	v := NewVolume("vol-1", 1)
	bad := []Spec{
		{Volumes: []*Volume{NewVolume("disk-1", 1)}},
		{Volumes: []*Volume{v, v}},
		{Instances: []Instance{{ID: "i-1", Devices: []Device{{"/dev/xvda", "vol-9"}}}}},
		{Volumes: []*Volume{v}, Instances: []Instance{
			{ID: "i-1", Devices: []Device{{"/dev/xvda", "vol-1"}}}, {ID: "i-2", Devices: []Device{{"/dev/xvda", "vol-1"}}}}},
		{Instances: []Instance{{ID: "i-1", State: "asleep"}}},
	}
	for i, spec := range bad {
		if _, err := New(Options{AccessKeyID: "a", SecretAccessKey: "b", Spec: spec}); err == nil {
			t.Errorf("spec %d accepted", i)
		}
	}
	if _, err := New(Options{Spec: Spec{}}); err == nil {
		t.Error("options without credentials accepted")
	}
}
