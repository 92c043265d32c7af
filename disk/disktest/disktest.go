package disktest

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/hypersdk/hypersdk/vmdk"
)

// QemuImg returns the path of qemu-img, failing the test when it is missing.
func QemuImg(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("qemu-img")
	if err != nil {
		t.Fatalf("qemu-img not found (%v): install it with `apt-get install qemu-utils` (Debian/Ubuntu) or `dnf install qemu-img` (Fedora), or run `make test-deps`; the disk format tests use it as the oracle", err)
	}
	return p
}

// Run runs qemu-img with args and returns its output, failing the test on
// a non-zero exit.
func Run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(QemuImg(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Info is the part of `qemu-img info --output json` the tests look at.
type Info struct {
	Format      string `json:"format"`
	VirtualSize int64  `json:"virtual-size"`
	ActualSize  int64  `json:"actual-size"`
	ClusterSize int64  `json:"cluster-size"`
	BackingFile string `json:"backing-filename"`
	Specific    struct {
		Type string `json:"type"`
		Data struct {
			CreateType string `json:"create-type"` // vmdk
			Compat     string `json:"compat"`      // qcow2
		} `json:"data"`
	} `json:"format-specific"`
}

// QemuInfo runs `qemu-img info` on path; format "" lets qemu-img probe
// (a fixed VHD must be named "vpc": it has no header to probe).
func QemuInfo(t testing.TB, path, format string) Info {
	t.Helper()
	args := []string{"info", "--output", "json"}
	if format != "" {
		args = append(args, "-f", format)
	}
	out := Run(t, append(args, path)...)
	var info Info
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("qemu-img info %s: %v\n%s", path, err, out)
	}
	return info
}

// Check runs `qemu-img check` on path and fails the test unless it is clean.
// Formats qemu-img cannot check (raw, vpc) are not passed here.
func Check(t testing.TB, path, format string) {
	t.Helper()
	out, err := exec.Command(QemuImg(t), "check", "-f", format, path).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img check -f %s %s: %v\n%s", format, path, err, out)
	}
}

// Compare fails the test unless `qemu-img compare` finds the two images'
// contents identical (formats as qemu-img names them: raw, qcow2, vmdk,
// vpc, vhdx).
func Compare(t testing.TB, a, aFormat, b, bFormat string) {
	t.Helper()
	out, err := exec.Command(QemuImg(t), "compare", "-f", aFormat, "-F", bFormat, a, b).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img compare -f %s -F %s %s %s: %v\n%s", aFormat, bFormat, a, b, err, out)
	}
}

// Convert runs `qemu-img convert -O outFormat` (with extra -o options such
// as "subformat=streamOptimized") from src to dst.
func Convert(t testing.TB, src, srcFormat, dst, outFormat string, options ...string) {
	t.Helper()
	args := []string{"convert", "-f", srcFormat, "-O", outFormat}
	for _, o := range options {
		args = append(args, "-o", o)
	}
	Run(t, append(args, src, dst)...)
}

// Allocated is the bytes the file system holds for path (st_blocks × 512).
func Allocated(t testing.TB, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return allocated(fi)
}

// Region kinds of a test disk, repeating in this order, one per MiB.
const (
	regionHole = iota
	regionData // vmdk.GenerateRaw content: noise, text, records, zeros
	regionZeros
	regionText
	regions
)

// WriteImage writes a raw test disk of size bytes at path: per MiB, in
// turn, a hole, generated data (noise, text, records — some of it empty),
// written zeros and text; the last region is cut short by size, which
// callers make a multiple of 512 (disks are sectors; qemu-img rounds a raw
// file up to one) but not of 64 KiB, so every writer's tail is exercised.
// The content depends only on seed and size.
func WriteImage(t testing.TB, path string, size int64, seed uint64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gen := vmdk.GenerateRaw(seed, size)
	const mib = 1 << 20
	buf := make([]byte, mib)
	line := []byte("hypersdk test disk: the quick brown fox jumps over the lazy dog 0123456789\n")
	for off := int64(0); off < size; off += mib {
		n := min(mib, size-off)
		b := buf[:n]
		switch (off / mib) % regions {
		case regionHole:
			continue
		case regionData:
			if _, err := gen.ReadAt(b, off); err != nil {
				t.Fatal(err)
			}
		case regionZeros:
			clear(b)
		case regionText:
			for i := range b {
				b[i] = line[(int64(i)+off/mib)%int64(len(line))]
			}
		}
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
