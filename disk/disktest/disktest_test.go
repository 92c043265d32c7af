package disktest

import (
	"path/filepath"
	"testing"
)

func TestWriteImageIsSparseAndQemuReadsIt(t *testing.T) {
	p := filepath.Join(t.TempDir(), "d.raw")
	size := int64(16<<20 + 4608)
	WriteImage(t, p, size, 7)
	info := QemuInfo(t, p, "raw")
	if info.VirtualSize != size {
		t.Fatalf("qemu-img sees %d bytes, want %d", info.VirtualSize, size)
	}
	if a := Allocated(t, p); a >= size-3<<20 {
		t.Fatalf("allocated %d of %d: the holes are missing", a, size)
	}
	q := filepath.Join(t.TempDir(), "d.qcow2")
	Convert(t, p, "raw", q, "qcow2")
	Check(t, q, "qcow2")
	Compare(t, p, "raw", q, "qcow2")
}
