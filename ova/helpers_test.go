package ova

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/ovf"
)

// fixedTime makes archives byte-for-byte reproducible.
func fixedTime() time.Time { return time.Date(2025, 11, 2, 10, 14, 8, 0, time.UTC) }

func shaHex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func fileSHA(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// diskBytes returns n deterministic bytes that compress like a real disk:
// runs of zeros (unallocated blocks), repetitive text and random data.
func diskBytes(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for off := 0; off < n; off += 4096 {
		blk := b[off:min(off+4096, n)]
		switch rng.IntN(4) {
		case 0: // zeros
		case 1:
			for i := range blk {
				blk[i] = "the quick brown fox jumps over the lazy dog\n"[i%44]
			}
		default:
			for i := range blk {
				blk[i] = byte(rng.Uint32())
			}
		}
	}
	return b
}

type testPackage struct {
	dir      string
	descName string
	desc     []byte
	files    map[string][]byte
	order    []string // References order
}

// makePackage writes an OVF folder with one disk per size.
func makePackage(t testing.TB, dir string, sizes ...int) *testPackage {
	t.Helper()
	p := &testPackage{dir: dir, descName: "vm.ovf", files: map[string][]byte{}}
	spec := ovf.VMSpec{Name: "vm", CPUs: 2, MemoryMiB: 2048, NICs: []ovf.NICSpec{{Network: "VM Network"}}}
	for i, n := range sizes {
		name := "vm-disk" + string(rune('1'+i)) + ".vmdk"
		data := diskBytes(uint64(i+1), n)
		p.files[name] = data
		p.order = append(p.order, name)
		spec.Disks = append(spec.Disks, ovf.DiskSpec{File: name, CapacityBytes: 1 << 30, FileSize: int64(n)})
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d, err := ovf.Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	p.desc = d.Marshal()
	path := filepath.Join(dir, p.descName)
	if err := os.WriteFile(path, p.desc, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, fixedTime(), fixedTime()); err != nil {
		t.Fatal(err)
	}
	return p
}

// writeManifest writes vm.mf for the package with alg.
func (p *testPackage) writeManifest(t testing.TB, alg ovf.Algorithm) *ovf.Manifest {
	t.Helper()
	m := &ovf.Manifest{}
	for _, name := range append([]string{p.descName}, p.order...) {
		data, err := os.ReadFile(filepath.Join(p.dir, name))
		if err != nil {
			t.Fatal(err)
		}
		d := ovf.NewDigester(alg)
		d.Write(data)
		if err := m.Add(alg, name, d.Sum(alg)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(p.dir, "vm.mf"), m.Marshal(), 0o644); err != nil {
		t.Fatal(err)
	}
	return m
}

func needTool(t testing.TB, name, install string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s not found: this test needs it; install it with: %s", name, install)
	}
}

func listDir(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}

// newWriter starts an OVA on dst, a stream with no file behind it, for tests
// that look at the archive's bytes or pipe them to a tool as they come.
func newWriter(dst io.Writer, descriptorName string, descriptor []byte, opts Options) (*Writer, error) {
	w := &Writer{opts: opts, start: time.Now(), descName: descriptorName}
	if err := w.init(dst, descriptor); err != nil {
		w.abortPipeline()
		return nil, err
	}
	return w, nil
}

// create is CreateIn for a path: its directory is opened for the test.
func create(t testing.TB, path, descriptorName string, descriptor []byte, opts Options) (*Writer, error) {
	t.Helper()
	root, err := os.OpenRoot(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	return CreateIn(root, filepath.Base(path), descriptorName, descriptor, opts)
}
