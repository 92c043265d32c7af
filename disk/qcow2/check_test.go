package qcow2

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hypersdk/hypersdk/disk"
	"github.com/hypersdk/hypersdk/disk/disktest"
)

// ourImage writes a 4 MiB disk with a little data through our writer in
// 4 KiB clusters and returns the image's bytes.
func ourImage(t *testing.T) []byte {
	t.Helper()
	b := make([]byte, 4<<20)
	for _, off := range []int{0, 1 << 20, 3<<20 + 8192} {
		for i := range 24 << 10 {
			b[off+i] = byte(i*13 + off>>20 + 1)
		}
	}
	out := filepath.Join(t.TempDir(), "ours.qcow2")
	disktest.WriteSource(t, Write, &sliceSource{data: b, extents: []disk.Extent{ext(0, int64(len(b)))}}, out, disk.WriteOptions{ClusterSize: 4096})
	img, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// setRefcount sets the 16-bit refcount of cluster k (in the first refcount
// block).
func (l layout) setRefcount(b []byte, k int64, v uint16) {
	be.PutUint16(b[l.refBlock+2*k:], v)
}

// qemuCheck runs `qemu-img check` on b and returns its exit code (0 clean,
// 2 corruptions, 3 leaks only) and output.
func qemuCheck(t *testing.T, b []byte) (int, string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "damaged.qcow2")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(disktest.QemuImg(t), "check", "-f", "qcow2", p).CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

func check(t *testing.T, b []byte) error {
	t.Helper()
	img, err := Open(disk.BytesFile("damaged.qcow2", b, nil))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return img.Check(context.Background())
}

func TestCheckFindsDamage(t *testing.T) {
	base := ourImage(t)
	if err := check(t, base); err != nil {
		t.Fatalf("Check on our image: %v", err)
	}
	if code, out := qemuCheck(t, base); code != 0 {
		t.Fatalf("qemu-img check on our image: %d\n%s", code, out)
	}
	l := layoutOf(t, base)
	cs := l.cs
	dataEntry, dataHost := l.firstData(t, base)

	cases := []struct {
		name     string
		damage   func(b []byte) []byte
		qemuExit int // 2: corruption, 3: leaks only (a refcount above the references)
		problems []string
	}{
		{"refcount 2 on the L1 table", func(b []byte) []byte { l.setRefcount(b, l.l1/cs, 2); return b }, 3,
			[]string{"has refcount 2, but 1 references"}},
		{"refcount 0 on a data cluster", func(b []byte) []byte { l.setRefcount(b, dataHost/cs, 0); return b }, 2,
			[]string{"used as a data cluster but its refcount is 0"}},
		{"leaked cluster", func(b []byte) []byte {
			k := int64(len(b)) / cs
			b = append(b, make([]byte, cs)...)
			l.setRefcount(b, k, 1)
			return b
		}, 3, []string{"is leaked"}},
		{"leak and bad refcount, both reported", func(b []byte) []byte {
			k := int64(len(b)) / cs
			b = append(b, make([]byte, cs)...)
			l.setRefcount(b, k, 1)
			l.setRefcount(b, l.refTable/cs, 3)
			return b
		}, 3, []string{"is leaked", "has refcount 3, but 1 references"}},
		{"refcount 1 on a data cluster used twice", func(b []byte) []byte {
			// Two L2 entries name one data cluster: legal only with a
			// refcount of 2 (a snapshot's sharing).
			be.PutUint64(b[dataEntry+8:], uint64(dataHost))
			return b
		}, 2, []string{"has refcount 1, but 2 references", "is leaked"}},
		{"data cluster on the refcount block", func(b []byte) []byte {
			be.PutUint64(b[dataEntry:], uint64(l.refBlock)|flagCopied)
			return b
		}, 2, []string{"overlaps a refcount block", "is leaked"}},
		{"COPIED flag missing", func(b []byte) []byte {
			be.PutUint64(b[dataEntry:], uint64(dataHost))
			return b
		}, 2, []string{"COPIED flag is false, but the cluster at"}},
		{"data cluster past the end", func(b []byte) []byte {
			be.PutUint64(b[dataEntry:], uint64(int64(len(b))+cs)|flagCopied)
			return b
		}, 2, []string{"is not inside the"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := c.damage(append([]byte(nil), base...))
			err := check(t, b)
			if err == nil {
				t.Fatal("Check found nothing")
			}
			for _, p := range c.problems {
				if !strings.Contains(err.Error(), p) {
					t.Errorf("Check: %v\nwant a problem saying %q", err, p)
				}
			}
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				assertFormatError(t, e, "", "")
			}
			if code, out := qemuCheck(t, b); code != c.qemuExit {
				t.Errorf("qemu-img check exits %d, want %d (the oracle disagrees)\n%s", code, c.qemuExit, out)
			}
		})
	}
}
