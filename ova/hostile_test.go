package ova

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/hypersdk/hypersdk/ovf"
)

// The hostile corpus lives in testdata/hostile. Regenerate it with
//
//	go test ./ova -run TestHostileCorpus -update
var update = flag.Bool("update", false, "regenerate testdata/hostile")

// absoluteEscape is where the absolute-path archive tries to write.
const absoluteEscape = "/tmp/hypersdk-ova-absolute-escape"

type tarBuilder struct {
	buf bytes.Buffer
	tw  *tar.Writer
}

func newTar() *tarBuilder {
	b := &tarBuilder{}
	b.tw = tar.NewWriter(&b.buf)
	return b
}

func (b *tarBuilder) header(h *tar.Header, data []byte) *tarBuilder {
	if h.Mode == 0 {
		h.Mode = 0o644
	}
	h.ModTime = fixedTime()
	if err := b.tw.WriteHeader(h); err != nil {
		panic(err)
	}
	if _, err := b.tw.Write(data); err != nil {
		panic(err)
	}
	return b
}

func (b *tarBuilder) file(name string, data []byte) *tarBuilder {
	return b.header(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: int64(len(data))}, data)
}

// zeroFile writes a member of n zero bytes without holding it in memory.
func (b *tarBuilder) zeroFile(name string, n int64, w io.Writer) {
	tw := tar.NewWriter(w)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: n, Mode: 0o644, ModTime: fixedTime()}); err != nil {
		panic(err)
	}
	if _, err := io.Copy(tw, io.LimitReader(zeros{}, n)); err != nil {
		panic(err)
	}
	if err := tw.Close(); err != nil {
		panic(err)
	}
}

func (b *tarBuilder) bytes() []byte {
	if err := b.tw.Close(); err != nil {
		panic(err)
	}
	return b.buf.Bytes()
}

// unterminated returns the archive without its end-of-archive blocks.
func (b *tarBuilder) unterminated() []byte {
	if err := b.tw.Flush(); err != nil {
		panic(err)
	}
	return b.buf.Bytes()
}

// hostileDesc is a descriptor referencing disk.img, the file of a 1 GiB
// disk; size < 0 leaves ovf:size out.
func hostileDesc(size int64) []byte { return hostileDescCap(size, 1<<30) }

func hostileDescCap(size, capacity int64) []byte {
	spec := ovf.VMSpec{Name: "vm", CPUs: 1, MemoryMiB: 256,
		Disks: []ovf.DiskSpec{{File: "disk.img", CapacityBytes: capacity, FileSize: max(size, 0), Format: ovf.FormatRaw}}}
	if size == 0 {
		panic("size 0 cannot be declared with Build")
	}
	d, err := ovf.Build(spec)
	if err != nil {
		panic(err)
	}
	return d.Marshal()
}

func gz(b []byte) []byte {
	var out bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&out, gzip.BestCompression)
	zw.Write(b)
	zw.Close()
	return out.Bytes()
}

func zst(write func(io.Writer)) []byte {
	var out bytes.Buffer
	zw, err := zstd.NewWriter(&out, zstd.WithEncoderLevel(zstd.SpeedBestCompression), zstd.WithEncoderConcurrency(1))
	if err != nil {
		panic(err)
	}
	write(zw)
	if err := zw.Close(); err != nil {
		panic(err)
	}
	return out.Bytes()
}

func manifestFor(entries map[string][]byte, order ...string) []byte {
	m := &ovf.Manifest{}
	for _, n := range order {
		m.Add(ovf.SHA256, n, shaHex(entries[n]))
	}
	return m.Marshal()
}

type hostileCase struct {
	file   string
	gen    func() []byte
	opts   ReadOptions
	want   []ProblemKind // every one must be reported
	detail string        // and the message must say this
}

func hostileCases() []hostileCase {
	disk := []byte("DISK")
	desc := hostileDesc(int64(len(disk)))
	validPlain := func() []byte {
		big := diskBytes(3, 20_000)
		return newTar().file("vm.ovf", hostileDesc(int64(len(big)))).file("disk.img", big).bytes()
	}
	return []hostileCase{
		{file: "traversal.ova", want: []ProblemKind{ProblemUnsafePath}, detail: `"../evil.txt": unsafe-path`,
			gen: func() []byte {
				return newTar().file("vm.ovf", desc).file("../evil.txt", []byte("pwned")).file("disk.img", disk).bytes()
			}},
		{file: "traversal-deep.ova", want: []ProblemKind{ProblemUnsafePath}, detail: "escapes its directory",
			gen: func() []byte {
				return newTar().file("vm.ovf", desc).file("a/../../../evil.txt", []byte("pwned")).file("disk.img", disk).bytes()
			}},
		{file: "href-traversal.ova", want: []ProblemKind{ProblemDescriptor, ProblemUnsafePath}, detail: "escapes its directory",
			gen: func() []byte {
				bad := bytes.ReplaceAll(desc, []byte(`ovf:href="disk.img"`), []byte(`ovf:href="../evil.img"`))
				return newTar().file("vm.ovf", bad).file("../evil.img", disk).bytes()
			}},
		{file: "absolute.ova", want: []ProblemKind{ProblemUnsafePath}, detail: "absolute path",
			gen: func() []byte {
				return newTar().file("vm.ovf", desc).file(absoluteEscape, []byte("pwned")).file("disk.img", disk).bytes()
			}},
		{file: "symlink-escape.ova", want: []ProblemKind{ProblemLink, ProblemUnreferenced}, detail: "symbolic link to",
			gen: func() []byte {
				return newTar().file("vm.ovf", desc).
					header(&tar.Header{Typeflag: tar.TypeSymlink, Name: "escape", Linkname: "../../../../../tmp"}, nil).
					file("escape/evil.txt", []byte("pwned")).file("disk.img", disk).bytes()
			}},
		{file: "symlink-disk.ova", want: []ProblemKind{ProblemLink, ProblemMissing}, detail: `"disk.img": link: symbolic link to "/etc/shadow"`,
			gen: func() []byte {
				return newTar().file("vm.ovf", desc).
					header(&tar.Header{Typeflag: tar.TypeSymlink, Name: "disk.img", Linkname: "/etc/shadow"}, nil).bytes()
			}},
		{file: "hardlink.ova", want: []ProblemKind{ProblemLink, ProblemMissing}, detail: "hard link to",
			gen: func() []byte {
				return newTar().file("vm.ovf", desc).
					header(&tar.Header{Typeflag: tar.TypeLink, Name: "disk.img", Linkname: "/etc/passwd"}, nil).bytes()
			}},
		{file: "device.ova", want: []ProblemKind{ProblemSpecialFile}, detail: "device node 1,3",
			gen: func() []byte {
				return newTar().file("vm.ovf", desc).
					header(&tar.Header{Typeflag: tar.TypeChar, Name: "null", Devmajor: 1, Devminor: 3}, nil).
					header(&tar.Header{Typeflag: tar.TypeBlock, Name: "sda", Devmajor: 8}, nil).
					header(&tar.Header{Typeflag: tar.TypeFifo, Name: "pipe"}, nil).
					header(&tar.Header{Typeflag: tar.TypeDir, Name: "sub/", Mode: 0o755}, nil).
					file("disk.img", disk).bytes()
			}},
		{file: "bomb.ova.gz", want: []ProblemKind{ProblemSizeMismatch, ProblemTooLarge}, detail: "decompression bomb",
			// 64 MiB of zeros in 64 KiB, declared as 1 MiB.
			gen: func() []byte {
				var plain bytes.Buffer
				b := newTar()
				b.file("vm.ovf", hostileDesc(1<<20))
				b.tw.Flush()
				plain.Write(b.buf.Bytes())
				b.zeroFile("disk.img", 64<<20, &plain)
				return gz(plain.Bytes())
			}},
		{file: "bomb-undeclared.ova.zst", want: []ProblemKind{ProblemTooLarge}, detail: "more than the 16777216 allowed",
			// 1 GiB of zeros in a few KiB, for a file without ovf:size.
			opts: ReadOptions{MaxUndeclaredFileBytes: 16 << 20},
			gen: func() []byte {
				return zst(func(w io.Writer) {
					b := newTar()
					b.file("vm.ovf", hostileDesc(-1))
					b.tw.Flush()
					w.Write(b.buf.Bytes())
					b.zeroFile("disk.img", 1<<30, w)
				})
			}},
		{file: "bomb-capacity.ova.zst", want: []ProblemKind{ProblemTooLarge}, detail: "more than the 84934656 allowed",
			// 1 GiB of zeros for a 16 MiB disk without ovf:size: the
			// default limits, derived from the capacity, refuse it.
			gen: func() []byte {
				return zst(func(w io.Writer) {
					b := newTar()
					b.file("vm.ovf", hostileDescCap(-1, 16<<20))
					b.tw.Flush()
					w.Write(b.buf.Bytes())
					b.zeroFile("disk.img", 1<<30, w)
				})
			}},
		{file: "truncated.ova.gz", want: []ProblemKind{ProblemTruncated}, detail: "ends in the middle",
			gen: func() []byte { z := gz(validPlain()); return z[:len(z)*6/10] }},
		{file: "truncated.ova", want: []ProblemKind{ProblemTruncated}, detail: "ends in the middle",
			gen: func() []byte { p := validPlain(); return p[:len(p)/2] }},
		{file: "no-end-marker.ova", want: []ProblemKind{ProblemTruncated}, detail: "end-of-archive marker",
			gen: func() []byte { return newTar().file("vm.ovf", desc).file("disk.img", disk).unterminated() }},
		{file: "corrupt.ova.gz", want: []ProblemKind{ProblemCorrupt}, detail: "checksum",
			gen: func() []byte {
				z := gz(newTar().file("vm.ovf", desc).file("disk.img", disk).bytes())
				z[len(z)-6] ^= 0xff // CRC-32 in the gzip trailer
				return z
			}},
		{file: "manifest-mismatch.ova", want: []ProblemKind{ProblemDigestMismatch}, detail: `"disk.img": digest-mismatch: SHA256`,
			gen: func() []byte {
				mf := manifestFor(map[string][]byte{"vm.ovf": desc, "disk.img": []byte("DISC")}, "vm.ovf", "disk.img")
				return newTar().file("vm.ovf", desc).file("vm.mf", mf).file("disk.img", disk).bytes()
			}},
		{file: "manifest-mismatch-tail.ova.zst", want: []ProblemKind{ProblemDigestMismatch}, detail: `"vm.ovf": digest-mismatch`,
			gen: func() []byte {
				mf := manifestFor(map[string][]byte{"vm.ovf": []byte("other"), "disk.img": disk}, "vm.ovf", "disk.img")
				return zst(func(w io.Writer) {
					w.Write(newTar().file("vm.ovf", desc).file("disk.img", disk).file("vm.mf", mf).bytes())
				})
			}},
		{file: "manifest-stranger.ova", want: []ProblemKind{ProblemManifest}, detail: `lists "other.iso"`,
			gen: func() []byte {
				mf := manifestFor(map[string][]byte{"vm.ovf": desc, "disk.img": disk, "other.iso": nil}, "vm.ovf", "disk.img", "other.iso")
				return newTar().file("vm.ovf", desc).file("vm.mf", mf).file("disk.img", disk).bytes()
			}},
		{file: "descriptor-not-first.ova", want: []ProblemKind{ProblemDescriptorNotFirst}, detail: "must be the .ovf descriptor",
			gen: func() []byte { return newTar().file("disk.img", disk).file("vm.ovf", desc).bytes() }},
		{file: "empty.ova", want: []ProblemKind{ProblemDescriptorNotFirst}, detail: "empty",
			gen: func() []byte { return newTar().bytes() }},
		{file: "duplicate.ova", want: []ProblemKind{ProblemDuplicate}, detail: `"disk.img": duplicate`,
			gen: func() []byte {
				return newTar().file("vm.ovf", desc).file("disk.img", disk).file("disk.img", []byte("EVIL")).bytes()
			}},
		{file: "duplicate-case.ova", want: []ProblemKind{ProblemDuplicate}, detail: `"DISK.IMG": duplicate`,
			gen: func() []byte {
				return newTar().file("vm.ovf", desc).file("disk.img", disk).file("DISK.IMG", disk).bytes()
			}},
		{file: "unreferenced.ova", want: []ProblemKind{ProblemUnreferenced}, detail: `"payload.sh": unreferenced`,
			gen: func() []byte {
				return newTar().file("vm.ovf", desc).file("disk.img", disk).file("payload.sh", []byte("#!/bin/sh\n")).bytes()
			}},
		{file: "size-mismatch.ova", want: []ProblemKind{ProblemSizeMismatch, ProblemMissing}, detail: "entry has 5 bytes, the descriptor declares 4",
			gen: func() []byte { return newTar().file("vm.ovf", desc).file("disk.img", []byte("DISK!")).bytes() }},
		{file: "bad-descriptor.ova", want: []ProblemKind{ProblemDescriptor}, detail: "DTD",
			gen: func() []byte {
				return newTar().file("vm.ovf", []byte(`<!DOCTYPE x [<!ENTITY a "a">]><Envelope/>`)).file("disk.img", disk).bytes()
			}},
		{file: "not-an-ova.bin", want: []ProblemKind{ProblemFormat}, detail: "not an OVA",
			gen: func() []byte { return append([]byte("PK\x03\x04"), make([]byte, 600)...) }},
		{file: "many-problems.ova", detail: `"/etc/cron.d/x": unsafe-path`,
			want: []ProblemKind{ProblemUnsafePath, ProblemLink, ProblemSpecialFile, ProblemUnreferenced, ProblemSizeMismatch, ProblemDuplicate, ProblemMissing},
			gen: func() []byte {
				return newTar().file("vm.ovf", desc).
					file("../../x", nil).
					file("/etc/cron.d/x", nil).
					header(&tar.Header{Typeflag: tar.TypeSymlink, Name: "l", Linkname: "/"}, nil).
					header(&tar.Header{Typeflag: tar.TypeFifo, Name: "f"}, nil).
					file("extra.bin", []byte("x")).
					file("extra.bin", []byte("y")).
					file("disk.img", []byte("too long")).bytes()
			}},
	}
}

// TestHostileCorpus feeds every hostile archive to Extract and Validate:
// each is refused with an *Error naming all its problems, and nothing is
// written anywhere: not in the target, not next to it, not at an absolute
// path.
func TestHostileCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "hostile")
	cases := hostileCases()
	if *update {
		os.MkdirAll(dir, 0o755)
		for _, c := range cases {
			if err := os.WriteFile(filepath.Join(dir, c.file), c.gen(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	var names []string
	for _, c := range cases {
		names = append(names, c.file)
	}
	slices.Sort(names)
	if got := listDir(t, dir); !reflect.DeepEqual(got, names) {
		t.Fatalf("testdata/hostile holds %v, the table %v: regenerate with -update", got, names)
	}
	if _, err := os.Lstat(absoluteEscape); err == nil {
		t.Fatalf("%s exists before the test; remove it", absoluteEscape)
	}
	ctx := context.Background()
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			archive := filepath.Join(dir, c.file)
			check := func(err error) {
				t.Helper()
				var oe *Error
				if !errors.As(err, &oe) {
					t.Fatalf("got %v, want *ova.Error", err)
				}
				for _, k := range c.want {
					if !oe.Has(k) {
						t.Errorf("no %s problem in:\n%v", k, err)
					}
				}
				if !strings.Contains(err.Error(), c.detail) {
					t.Errorf("error does not say %q:\n%v", c.detail, err)
				}
			}

			// A fresh target next to a sentinel.
			parent := t.TempDir()
			sentinel := filepath.Join(parent, "sentinel")
			os.WriteFile(sentinel, []byte("untouched"), 0o600)
			_, err := Extract(ctx, archive, filepath.Join(parent, "target"), ExtractOptions{ReadOptions: c.opts})
			check(err)
			if got := listDir(t, parent); !reflect.DeepEqual(got, []string{"sentinel"}) {
				t.Errorf("parent holds %v after a refused extract", got)
			}
			if b, _ := os.ReadFile(sentinel); string(b) != "untouched" {
				t.Error("sentinel modified")
			}

			// An existing target keeps exactly what it had.
			target := filepath.Join(parent, "existing")
			os.Mkdir(target, 0o755)
			os.WriteFile(filepath.Join(target, "keep.txt"), []byte("keep"), 0o644)
			_, err = Extract(ctx, archive, target, ExtractOptions{ReadOptions: c.opts, Overwrite: true})
			check(err)
			if got := listDir(t, target); !reflect.DeepEqual(got, []string{"keep.txt"}) {
				t.Errorf("target holds %v after a refused extract", got)
			}
			if _, err := os.Lstat(absoluteEscape); err == nil {
				os.Remove(absoluteEscape)
				t.Errorf("%s was written", absoluteEscape)
			}

			_, err = Validate(ctx, archive, c.opts)
			check(err)
		})
	}
}
