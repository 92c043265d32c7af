package ova

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hypersdk/hypersdk/ovf"
)

// validArchive builds a small valid OVA in memory.
func validArchive(t testing.TB, c Compression, headManifest bool) []byte {
	t.Helper()
	a, b := diskBytes(11, 3000), []byte("second disk")
	desc := buildDesc(t, map[string]int64{"a.vmdk": int64(len(a)), "dir/b.vmdk": int64(len(b))}, "a.vmdk", "dir/b.vmdk")
	var buf bytes.Buffer
	w, err := newWriter(&buf, "vm.ovf", desc, Options{Compression: c, ModTime: fixedTime(), Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	if headManifest {
		m := &ovf.Manifest{}
		m.Add(ovf.SHA1, "vm.ovf", w.members[0].Digests[ovf.SHA1])
		d := ovf.NewDigester(ovf.SHA512)
		d.Write(a)
		m.Add(ovf.SHA512, "a.vmdk", d.Sum(ovf.SHA512))
		if err := w.AddManifest(m); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	if err := w.Add(ctx, "a.vmdk", int64(len(a)), bytes.NewReader(a)); err != nil {
		t.Fatal(err)
	}
	if err := w.Add(ctx, "dir/b.vmdk", int64(len(b)), bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// FuzzExtract feeds arbitrary bytes to Extract. Whatever the input: no
// panic; a refused archive leaves nothing behind and is an *Error; an
// accepted one produced exactly its members, as regular files with the
// sizes and digests reported, inside the target; nothing is written
// anywhere else. Seeds: the hostile corpus and valid archives.
func FuzzExtract(f *testing.F) {
	entries, err := os.ReadDir(filepath.Join("testdata", "hostile"))
	if err != nil || len(entries) == 0 {
		f.Fatalf("hostile corpus missing: %v", err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("testdata", "hostile", e.Name()))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, c := range []Compression{CompressionNone, CompressionGzip, CompressionZstd} {
		f.Add(validArchive(f, c, false))
		f.Add(validArchive(f, c, true))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		parent := t.TempDir()
		archive := filepath.Join(parent, "in.ova")
		if err := os.WriteFile(archive, data, 0o644); err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(parent, "target")
		opts := ExtractOptions{noSync: true, ReadOptions: ReadOptions{MaxTotalBytes: 8 << 20, MaxUndeclaredFileBytes: 1 << 20}}
		rep, err := Extract(context.Background(), archive, target, opts)
		if _, serr := os.Lstat(absoluteEscape); serr == nil {
			os.Remove(absoluteEscape)
			t.Fatalf("%s written", absoluteEscape)
		}
		if err != nil {
			var oe *Error
			if !errors.As(err, &oe) {
				t.Fatalf("not an *ova.Error: %v", err)
			}
			if got := listDir(t, parent); !reflect.DeepEqual(got, []string{"in.ova"}) {
				t.Fatalf("refused archive left %v", got)
			}
			return
		}
		if got := listDir(t, parent); !reflect.DeepEqual(got, []string{"in.ova", "target"}) {
			t.Fatalf("extract touched %v", got)
		}
		want := map[string]Member{}
		for _, m := range rep.Members {
			want[m.Name] = m
		}
		found := map[string]bool{}
		filepath.WalkDir(target, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				t.Fatal(err)
			}
			if d.IsDir() {
				return nil
			}
			rel, _ := filepath.Rel(target, p)
			m, ok := want[filepath.ToSlash(rel)]
			if !ok || !d.Type().IsRegular() || strings.HasPrefix(rel, ".ova-extract-") {
				t.Fatalf("unexpected %s (%v) in target", rel, d.Type())
			}
			b, _ := os.ReadFile(p)
			if int64(len(b)) != m.Size || shaHex(b) != m.Digests[ovf.SHA256] {
				t.Fatalf("%s: %d bytes, digest %s; report says %d, %s", rel, len(b), shaHex(b), m.Size, m.Digests[ovf.SHA256])
			}
			found[m.Name] = true
			return nil
		})
		if len(found) != len(want) {
			t.Fatalf("extracted %v, report lists %v", found, rep.Members)
		}
	})
}
