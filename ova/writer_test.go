package ova

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hypersdk/hypersdk/ovf"
)

func buildDesc(t testing.TB, files map[string]int64, order ...string) []byte {
	t.Helper()
	spec := ovf.VMSpec{Name: "vm", CPUs: 1, MemoryMiB: 512}
	for _, n := range order {
		spec.Disks = append(spec.Disks, ovf.DiskSpec{File: n, CapacityBytes: 1 << 40, FileSize: files[n]})
	}
	d, err := ovf.Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	return d.Marshal()
}

// TestWriterEnforcesOrder checks every way of misusing the Writer fails,
// poisons it, and removes the temporary file.
func TestWriterEnforcesOrder(t *testing.T) {
	ctx := context.Background()
	desc := buildDesc(t, map[string]int64{"a.vmdk": 10, "b.vmdk": 20}, "a.vmdk", "b.vmdk")
	cases := map[string]struct {
		run  func(w *Writer) error
		want string
	}{
		"out of order": {func(w *Writer) error {
			return w.Add(ctx, "b.vmdk", 20, bytes.NewReader(make([]byte, 20)))
		}, `next is "a.vmdk"`},
		"unknown": {func(w *Writer) error {
			return w.Add(ctx, "c.vmdk", 20, bytes.NewReader(make([]byte, 20)))
		}, "out of order"},
		"wrong size": {func(w *Writer) error {
			return w.Add(ctx, "a.vmdk", 11, bytes.NewReader(make([]byte, 11)))
		}, "size 11, but the descriptor declares 10"},
		"short source": {func(w *Writer) error {
			return w.Add(ctx, "a.vmdk", 10, bytes.NewReader(make([]byte, 9)))
		}, "ended after 9 of 10"},
		"long source": {func(w *Writer) error {
			return w.Add(ctx, "a.vmdk", 10, bytes.NewReader(make([]byte, 11)))
		}, "longer than"},
		"manifest in the middle": {func(w *Writer) error {
			if err := w.Add(ctx, "a.vmdk", 10, bytes.NewReader(make([]byte, 10))); err != nil {
				return err
			}
			return w.AddManifest(&ovf.Manifest{})
		}, "right after the descriptor or after the last file"},
		"certificate first": {func(w *Writer) error { return w.AddCertificate([]byte("x")) }, "directly follow the manifest"},
		"manifest mismatch": {func(w *Writer) error {
			m := &ovf.Manifest{}
			m.Add(ovf.SHA256, "a.vmdk", strings.Repeat("0", 64))
			if err := w.AddManifest(m); err != nil {
				return err
			}
			return w.Add(ctx, "a.vmdk", 10, bytes.NewReader(make([]byte, 10)))
		}, "does not match the manifest"},
		"manifest stranger": {func(w *Writer) error {
			m := &ovf.Manifest{}
			m.Add(ovf.SHA256, "c.vmdk", strings.Repeat("0", 64))
			return w.AddManifest(m)
		}, "does not reference"},
		"tail manifest with uncomputed algorithm": {func(w *Writer) error {
			w.Add(ctx, "a.vmdk", 10, bytes.NewReader(make([]byte, 10)))
			w.Add(ctx, "b.vmdk", 20, bytes.NewReader(make([]byte, 20)))
			m := &ovf.Manifest{}
			m.Add(ovf.SHA512, "a.vmdk", strings.Repeat("0", 128))
			return w.AddManifest(m)
		}, "add the manifest before the files"},
		"missing at close": {func(w *Writer) error {
			w.Add(ctx, "a.vmdk", 10, bytes.NewReader(make([]byte, 10)))
			_, err := w.Close()
			return err
		}, "not added: b.vmdk"},
		"canceled": {func(w *Writer) error {
			c, cancel := context.WithCancel(ctx)
			cancel()
			return w.Add(c, "a.vmdk", 10, bytes.NewReader(make([]byte, 10)))
		}, "context canceled"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			w, err := create(t, filepath.Join(dir, "vm.ova"), "vm.ovf", desc, Options{})
			if err != nil {
				t.Fatal(err)
			}
			err = c.run(w)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
			// The Writer is poisoned: Close reports the first error.
			if _, cerr := w.Close(); cerr == nil || !strings.Contains(cerr.Error(), c.want) {
				t.Errorf("close after failure: %v", cerr)
			}
			w.Abort()
			if left := listDir(t, dir); len(left) != 0 {
				t.Errorf("left behind: %v", left)
			}
		})
	}
}

func TestWriterRejectsBadDescriptors(t *testing.T) {
	good := buildDesc(t, map[string]int64{"a.vmdk": 1}, "a.vmdk")
	for name, c := range map[string]struct {
		descName string
		desc     []byte
	}{
		"not xml":       {"vm.ovf", []byte("nope")},
		"name":          {"dir/vm.ovf", good},
		"extension":     {"vm.xml", good},
		"reserved name": {"a.ovf", []byte(strings.Replace(string(good), `ovf:href="a.vmdk"`, `ovf:href="a.mf"`, 1))},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := create(t, filepath.Join(dir, "x.ova"), c.descName, c.desc, Options{}); err == nil {
				t.Error("accepted")
			}
			if left := listDir(t, dir); len(left) != 0 {
				t.Errorf("left behind: %v", left)
			}
		})
	}
	if _, err := newWriter(io.Discard, "vm.ovf", good, Options{Compression: CompressionGzip, Level: 10}); err == nil {
		t.Error("gzip level 10 accepted")
	}
	if _, err := newWriter(io.Discard, "vm.ovf", good, Options{Compression: "lz4"}); err == nil {
		t.Error("lz4 accepted")
	}
}

// failingWriter fails once more than budget bytes have been written.
type failingWriter struct{ budget int64 }

func (f *failingWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > f.budget {
		n := f.budget
		f.budget = 0
		return int(n), errors.New("disk full")
	}
	f.budget -= int64(len(p))
	return len(p), nil
}

// TestWriterReportsEveryWriteError makes the destination fail at every
// point of a small archive, including the very last bytes (the tar
// trailer, the compressor's footer): Close must never report success.
func TestWriterReportsEveryWriteError(t *testing.T) {
	ctx := context.Background()
	data := diskBytes(7, 300_000)
	desc := buildDesc(t, map[string]int64{"a.vmdk": int64(len(data))}, "a.vmdk")
	for _, c := range []Compression{CompressionNone, CompressionGzip, CompressionZstd} {
		t.Run(string(c), func(t *testing.T) {
			write := func(dst io.Writer) (*Result, error) {
				w, err := newWriter(dst, "vm.ovf", desc, Options{Compression: c, ModTime: fixedTime()})
				if err != nil {
					return nil, err
				}
				defer w.Abort()
				if err := w.Add(ctx, "a.vmdk", int64(len(data)), bytes.NewReader(data)); err != nil {
					return nil, err
				}
				return w.Close()
			}
			var full bytes.Buffer
			res, err := write(&full)
			if err != nil {
				t.Fatal(err)
			}
			if res.Size != int64(full.Len()) || res.SHA256 != shaHex(full.Bytes()) {
				t.Fatalf("result %d %s does not describe the %d bytes written", res.Size, res.SHA256, full.Len())
			}
			for _, budget := range []int64{0, 1, 511, 4096, res.Size / 2, res.Size - 8, res.Size - 1} {
				if _, err := write(&failingWriter{budget: budget}); err == nil || !strings.Contains(err.Error(), "disk full") {
					t.Errorf("budget %d of %d: got %v", budget, res.Size, err)
				}
			}
		})
	}
}

// TestCreateCommitsAtomically checks the temp+rename protocol: nothing at
// the destination until Close succeeds, and a failed Close leaves nothing.
func TestCreateCommitsAtomically(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "vm.ova")
	desc := buildDesc(t, map[string]int64{"a.vmdk": 3}, "a.vmdk")
	w, err := create(t, path, "vm.ovf", desc, Options{FileMode: 0o600})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Add(context.Background(), "a.vmdk", 3, strings.NewReader("abc")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("archive visible before Close: %v", err)
	}
	if left := listDir(t, dir); len(left) != 1 || !strings.HasSuffix(left[0], ".partial") || !strings.HasPrefix(left[0], ".vm.ova.") {
		t.Errorf("temp file %v", left)
	}
	res, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 || res.SHA256 != fileSHA(t, path) {
		t.Errorf("committed file %v %v", fi, err)
	}
	w.Abort() // after Close: no-op
	if _, err := os.Stat(path); err != nil {
		t.Errorf("Abort after Close removed the archive: %v", err)
	}
	if _, err := w.Close(); err == nil {
		t.Error("second Close succeeded")
	}
	if left := listDir(t, dir); len(left) != 1 {
		t.Errorf("dir %v", left)
	}
}

// zeros is a size-only source: it produces zeros without allocating.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// headSink keeps the first bytes of a stream and counts the rest.
type headSink struct {
	head []byte
	n    int64
}

func (h *headSink) Write(p []byte) (int, error) {
	if room := 64<<10 - len(h.head); room > 0 {
		h.head = append(h.head, p[:min(room, len(p))]...)
	}
	h.n += int64(len(p))
	return len(p), nil
}

// TestPAXForHugeMember streams an 8 GiB member, one byte past what a USTAR
// size field holds, without touching the disk: the member gets a PAX size
// record and every other header stays USTAR; GNU tar lists the stream with
// the right size.
func TestPAXForHugeMember(t *testing.T) {
	needTool(t, "tar", "apt-get install -y tar")
	const size = 1 << 33 // USTAR's 11 octal digits stop at 1<<33 - 1
	desc := buildDesc(t, map[string]int64{"big.vmdk": size, "small.vmdk": 5}, "big.vmdk", "small.vmdk")

	cmd := exec.Command("tar", "-tvf", "-")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var listing bytes.Buffer
	cmd.Stdout, cmd.Stderr = &listing, &listing
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	head := &headSink{}
	w, err := newWriter(io.MultiWriter(head, stdin), "vm.ovf", desc, Options{ModTime: fixedTime(), NoManifest: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	if err := w.Add(context.Background(), "big.vmdk", size, io.LimitReader(zeros{}, size)); err != nil {
		t.Fatal(err)
	}
	if err := w.Add(context.Background(), "small.vmdk", 5, strings.NewReader("hello")); err != nil {
		t.Fatal(err)
	}
	res, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("GNU tar: %v\n%s", err, listing.String())
	}
	// sha256 of 8 GiB of zeros, computed once with sha256sum.
	const zerosSHA = "ebfb4ef19ae410f190327b5ebd312711263bc7579970e87d9c1e2d84e06b3c25"
	if got := res.Members[1].Digests[ovf.SHA256]; got != zerosSHA {
		t.Errorf("member digest %s", got)
	}
	lines := strings.Split(strings.TrimSpace(listing.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[1], fmt.Sprint(int64(size))) || !strings.HasSuffix(lines[1], "big.vmdk") {
		t.Errorf("GNU tar listing:\n%s", listing.String())
	}

	// Header types, from the first blocks: USTAR descriptor, then a PAX
	// extended header carrying size=8589934592 for big.vmdk.
	tr := tar.NewReader(bytes.NewReader(head.head))
	hdr, err := tr.Next()
	if err != nil || hdr.Name != "vm.ovf" || hdr.Format != tar.FormatUSTAR {
		t.Fatalf("first header %+v %v", hdr, err)
	}
	hdr, err = tr.Next()
	if err != nil || hdr.Name != "big.vmdk" || hdr.Size != size || hdr.Format != tar.FormatPAX || hdr.PAXRecords["size"] != "8589934592" {
		t.Fatalf("big header %+v %v", hdr, err)
	}
	if head.n != res.Size || res.Size < size {
		t.Errorf("sizes %d %d", head.n, res.Size)
	}
}

// TestSmallMembersAreUSTAR checks no PAX header is written when none is
// needed (old importers choke on PAX).
func TestSmallMembersAreUSTAR(t *testing.T) {
	desc := buildDesc(t, map[string]int64{"a.vmdk": 3}, "a.vmdk")
	var buf bytes.Buffer
	w, err := newWriter(&buf, "vm.ovf", desc, Options{ModTime: fixedTime().Add(123456789)}) // sub-second: truncated
	if err != nil {
		t.Fatal(err)
	}
	w.Add(context.Background(), "a.vmdk", 3, strings.NewReader("abc"))
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&buf)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Format != tar.FormatUSTAR || hdr.Typeflag != tar.TypeReg || hdr.Mode != 0o644 || !hdr.ModTime.Equal(fixedTime()) {
			t.Errorf("%s: format %v type %c mode %o time %v", hdr.Name, hdr.Format, hdr.Typeflag, hdr.Mode, hdr.ModTime)
		}
	}
}
