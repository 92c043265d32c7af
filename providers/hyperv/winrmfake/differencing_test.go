package winrmfake

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"testing"

	"github.com/hypersdk/hypersdk/disk"
	"github.com/hypersdk/hypersdk/disk/vhdx"
)

// The differencing writer (from MS-VHDX) and the disk package's reader
// agree: the child reads as the parent with the child's blocks laid over.
func TestWriteDifferencingReadsAsMergedChain(t *testing.T) {
	dir := t.TempDir()
	const size = 8 << 20
	parent := RandomBlocks(1, 0, 2<<20, 4, 1<<20)    // blocks 0, 2, 4, 6
	child := RandomBlocks(2, 2<<20, 3<<20, 2, 1<<20) // blocks 2, 5
	if err := WriteDynamic(context.Background(), filepath.Join(dir, "base.vhdx"), size, parent); err != nil {
		t.Fatal(err)
	}
	if err := WriteDifferencing(filepath.Join(dir, "base_1.avhdx"), filepath.Join(dir, "base.vhdx"), child); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, size)
	for o, b := range parent {
		copy(want[o:], b)
	}
	for o, b := range child {
		copy(want[o:], b)
	}
	f, err := disk.OpenFile(filepath.Join(dir, "base_1.avhdx"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := vhdx.Open(f)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if info := img.Info(); info.Subformat != "differencing" || info.VirtualSize != size {
		t.Fatalf("info %+v", info)
	}
	if err := img.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, size)
	if _, err := img.ReadAt(got, 0); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the chain does not read as the parent with the child's blocks over it")
	}
}
