package qcow2

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/hypersdk/hypersdk/disk"
	"github.com/hypersdk/hypersdk/disk/disktest"
)

var be = binary.BigEndian

// openAll opens b, walks its extents and reads them: the first error.
func openAll(b []byte) error {
	img, err := Open(disk.BytesFile("t.qcow2", b, nil))
	if err != nil {
		return err
	}
	defer img.Close()
	buf := make([]byte, 256<<10)
	for e, err := range img.Extents() {
		if err != nil {
			return err
		}
		for off := e.Offset; off < e.End(); off += int64(len(buf)) {
			n := min(int64(len(buf)), e.End()-off)
			if _, err := img.ReadAt(buf[:n], off); err != nil {
				return err
			}
		}
	}
	return nil
}

// layout is where a test image's tables lie.
type layout struct {
	cs, l1, refTable, refBlock int64
	l2                         []int64 // per L1 entry, 0 when none
}

func layoutOf(t *testing.T, b []byte) layout {
	t.Helper()
	l := layout{
		cs:       1 << be.Uint32(b[20:]),
		l1:       int64(be.Uint64(b[40:])),
		refTable: int64(be.Uint64(b[48:])),
	}
	l.refBlock = int64(be.Uint64(b[l.refTable:]) & refOffsetMask)
	for i := range int64(be.Uint32(b[36:])) {
		l.l2 = append(l.l2, int64(be.Uint64(b[l.l1+i*8:])&offsetMask))
	}
	return l
}

// firstData returns the file offset of the L2 entry of the first data
// cluster and the cluster's offset.
func (l layout) firstData(t *testing.T, b []byte) (entry, host int64) {
	t.Helper()
	for _, l2 := range l.l2 {
		if l2 == 0 {
			continue
		}
		for j := int64(0); j < l.cs; j += 8 {
			if e := be.Uint64(b[l2+j:]); e&offsetMask != 0 {
				return l2 + j, int64(e & offsetMask)
			}
		}
	}
	t.Fatal("no data cluster")
	return 0, 0
}

// lastData returns the file offset of the last data cluster.
func (l layout) lastData(b []byte) int64 {
	last := int64(0)
	for _, l2 := range l.l2 {
		for j := int64(0); l2 != 0 && j < l.cs; j += 8 {
			last = max(last, int64(be.Uint64(b[l2+j:])&offsetMask))
		}
	}
	return last
}

// qemuImage makes a small qcow2 image with qemu-img: a 4 MiB disk in
// 4 KiB clusters, so that the L1 table has two entries, with 24 KiB of
// data in each half.
func qemuImage(t *testing.T, options ...string) []byte {
	t.Helper()
	dir := t.TempDir()
	raw := filepath.Join(dir, "small.raw")
	b := make([]byte, 4<<20)
	for _, off := range []int{0, 1 << 20, 3<<20 + 8192} {
		for i := range 24 << 10 {
			b[off+i] = byte(i*31 + i>>8 + off>>20 + 1)
		}
	}
	if err := os.WriteFile(raw, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "base.qcow2")
	disktest.Convert(t, raw, "raw", out, "qcow2", append([]string{"cluster_size=4096"}, options...)...)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRefusals(t *testing.T) {
	base := qemuImage(t)
	if err := openAll(base); err != nil {
		t.Fatalf("base image: %v", err)
	}
	l := layoutOf(t, base)
	if len(l.l2) != 2 || l.l2[0] == 0 || l.l2[1] == 0 {
		t.Fatalf("base image layout %+v: want two L2 tables", l)
	}
	dataEntry, dataHost := l.firstData(t, base)

	cases := []struct {
		name      string
		damage    func(b []byte) []byte
		structure string
		problem   string
	}{
		{"bad magic", func(b []byte) []byte { b[3] = 0xfa; return b }, "header", "magic"},
		{"version 4", func(b []byte) []byte { be.PutUint32(b[4:], 4); return b }, "header", "version 4"},
		{"cluster bits 22", func(b []byte) []byte { be.PutUint32(b[20:], 22); return b }, "header", "cluster_bits 22"},
		{"cluster bits 8", func(b []byte) []byte { be.PutUint32(b[20:], 8); return b }, "header", "cluster_bits 8"},
		{"absurd virtual size", func(b []byte) []byte { be.PutUint64(b[24:], 1<<62); return b }, "header", "virtual size"},
		{"zero virtual size", func(b []byte) []byte { be.PutUint64(b[24:], 0); return b }, "header", "not positive"},
		{"L1 smaller than the disk", func(b []byte) []byte { be.PutUint64(b[24:], 1<<30); return b }, "header", "L1 table has 2 entries"},
		{"L1 beyond the limit", func(b []byte) []byte { be.PutUint32(b[36:], 1<<23); return b }, "header", "limit"},
		{"L1 past the end", func(b []byte) []byte { be.PutUint64(b[40:], uint64(len(b))); return b }, "header", "L1 table"},
		{"L1 unaligned", func(b []byte) []byte { be.PutUint64(b[40:], uint64(l.l1+8)); return b }, "header", "not aligned"},
		{"L1 in the header", func(b []byte) []byte { be.PutUint64(b[40:], 0); return b }, "header", "header cluster"},
		{"refcount table past the end", func(b []byte) []byte { be.PutUint32(b[56:], 100); return b }, "header", "refcount table"},
		{"refcount table on the L1 table", func(b []byte) []byte { be.PutUint64(b[48:], uint64(l.l1)); return b }, "header", "overlaps"},
		{"truncated in the header", func(b []byte) []byte { return b[:60] }, "header", "shorter than"},
		{"truncated in the v3 header", func(b []byte) []byte { return b[:90] }, "header", "version 3 header"},
		{"truncated before the L1 table", func(b []byte) []byte { return b[:l.l1] }, "header", "past the end"},
		{"truncated in the data", func(b []byte) []byte { return b[:l.lastData(b)+100] }, "L2 entry", "not a cluster inside"},
		{"L1 entry past the end", func(b []byte) []byte { be.PutUint64(b[l.l1:], 1<<40); return b }, "L1 entry 0", "not a cluster inside"},
		{"L1 entry unaligned", func(b []byte) []byte { be.PutUint64(b[l.l1:], uint64(l.l2[0]+512)); return b }, "L1 entry 0", "not a cluster"},
		{"L1 entry on the L1 table", func(b []byte) []byte { be.PutUint64(b[l.l1:], uint64(l.l1)); return b }, "L2 table", "overlaps the L1 table"},
		{"L1 entry on the refcount table", func(b []byte) []byte { be.PutUint64(b[l.l1+8:], uint64(l.refTable)); return b }, "L2 table", "overlaps the refcount table"},
		{"two L1 entries, one L2 table", func(b []byte) []byte { be.PutUint64(b[l.l1+8:], uint64(l.l2[0])); return b }, "L2 table", "overlaps the L2 table"},
		{"L2 entry into the header", func(b []byte) []byte { be.PutUint64(b[dataEntry:], flagCompressed|512); return b }, "L2 entry", "header cluster"},
		{"L2 entry on the L1 table", func(b []byte) []byte { be.PutUint64(b[dataEntry:], uint64(l.l1)); return b }, "L2 entry", "lies in the L1 table"},
		{"L2 entry on its own table (loop)", func(b []byte) []byte { be.PutUint64(b[dataEntry:], uint64(l.l2[0])); return b }, "L2 entry", "lies in the L2 table"},
		{"L2 entry on a refcount block", func(b []byte) []byte { be.PutUint64(b[dataEntry:], uint64(l.refBlock)); return b }, "L2 entry", "lies in the refcount block"},
		{"L2 entry unaligned", func(b []byte) []byte { be.PutUint64(b[dataEntry:], uint64(dataHost+512)); return b }, "L2 entry", "not a cluster"},
		{"garbage compressed cluster", func(b []byte) []byte {
			be.PutUint64(b[dataEntry:], flagCompressed|uint64(dataHost)|3<<(62-(12-8)))
			return b
		}, "compressed cluster", "does not decompress"},
		{"encrypted with LUKS", func(b []byte) []byte { be.PutUint32(b[32:], 2); return b }, "header", "encrypted (crypt_method 2)"},
		{"unknown incompatible feature", func(b []byte) []byte { be.PutUint64(b[72:], 1<<10); return b }, "header", "unknown incompatible features bit 10"},
		{"external data file bit", func(b []byte) []byte { be.PutUint64(b[72:], incompatDataFile); return b }, "header", "external data file"},
		{"compression type 2", func(b []byte) []byte { be.PutUint64(b[72:], incompatCompression); b[104] = 2; return b }, "header", "compression type 2"},
		{"header length", func(b []byte) []byte { be.PutUint32(b[100:], 101); return b }, "header", "header_length"},
		{"refcount order 7", func(b []byte) []byte { be.PutUint32(b[96:], 7); return b }, "header", "refcount_order 7"},
		{"snapshots past the end", func(b []byte) []byte {
			be.PutUint32(b[60:], 1)
			be.PutUint64(b[64:], uint64(len(b)+4096))
			return b
		}, "header", "snapshot table"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := c.damage(append([]byte(nil), base...))
			assertFormatError(t, openAll(b), c.structure, c.problem)
		})
	}
}

// TestRefusesQemuFeatures refuses images qemu-img made with what this
// reader does not read: a backing file, encryption, an external data file,
// subclusters. (A LUKS image is refused by its crypt_method in
// TestRefusals: making one here takes qemu-img seconds of key stretching,
// and its CPU-time probe fails in some sandboxes.)
func TestRefusesQemuFeatures(t *testing.T) {
	dir := t.TempDir()
	at := func(name string) string { return filepath.Join(dir, name) }
	secret := []string{"--object", "secret,id=sec0,data=correct-horse"}
	run(t, "qemu-img", "create", "-f", "qcow2", at("base.qcow2"), "1M")
	run(t, "qemu-img", "create", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", at("top.qcow2"))
	run(t, "qemu-img", append(append([]string{"create", "-f", "qcow2"}, secret...),
		"-o", "encrypt.format=aes,encrypt.key-secret=sec0", at("aes.qcow2"), "1M")...)
	run(t, "qemu-img", "create", "-f", "qcow2", "-o", "data_file="+at("data.raw"), at("external.qcow2"), "1M")
	run(t, "qemu-img", "create", "-f", "qcow2", "-o", "extended_l2=on", at("subclusters.qcow2"), "1M")

	for _, c := range []struct{ file, problem string }{
		{"top.qcow2", `backing file "base.qcow2"`},
		{"top.qcow2", "qemu-img convert"},
		{"aes.qcow2", "encrypted (crypt_method 1)"},
		{"external.qcow2", "external data file"},
		{"subclusters.qcow2", "extended L2 entries"},
	} {
		f, err := disk.OpenFile(at(c.file))
		if err != nil {
			t.Fatal(err)
		}
		_, err = Open(f)
		f.Close()
		assertFormatError(t, err, "header", c.problem)
	}
}

// TestTruncatedEverywhere cuts a valid image at many lengths: every
// result is read fully or refused with a FormatError, never a panic.
func TestTruncatedEverywhere(t *testing.T) {
	base := qemuImage(t, "compat=0.10")
	for n := 0; n < len(base); n += 97 {
		if err := openAll(base[:n]); err != nil {
			assertFormatError(t, err, "", "")
		}
	}
}
