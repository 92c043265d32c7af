package safepath

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tree builds a root holding the traps of the fuzz target and the unit
// tests, next to an outside directory that must stay untouched: it holds
// one sentinel file whose bytes must never change.
func tree(t testing.TB) (rootDir, outside string) {
	t.Helper()
	base := t.TempDir()
	rootDir, outside = filepath.Join(base, "root"), filepath.Join(base, "outside")
	for _, d := range []string{rootDir, outside, filepath.Join(rootDir, "d", "e")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(outside, "sentinel"), []byte("outside"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootDir, "f"), []byte("file"), 0o644); err != nil {
		t.Fatal(err)
	}
	links := map[string]string{
		"out":        outside,                            // absolute, outside
		"rel-out":    "../outside",                       // relative, outside
		"in":         "d",                                // inside
		"d/up":       "../..",                            // climbs out
		"sent.part":  filepath.Join(outside, "sentinel"), // planted part file
		"dangling":   filepath.Join(outside, "new"),      // would create outside
		"d/e/loop":   "loop",
		"d/sentinel": "../../outside/sentinel",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(rootDir, name)); err != nil {
			t.Fatal(err)
		}
	}
	// A hard link to the sentinel, as a planted part file on one file system.
	if err := os.Link(filepath.Join(outside, "sentinel"), filepath.Join(rootDir, "hard.part")); err != nil {
		t.Fatal(err)
	}
	return rootDir, outside
}

// checkOutside fails unless the outside directory holds exactly its
// sentinel with its original bytes.
func checkOutside(t testing.TB, outside string) {
	t.Helper()
	ents, err := os.ReadDir(outside)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != "sentinel" {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("outside directory changed: %v", names)
	}
	b, err := os.ReadFile(filepath.Join(outside, "sentinel"))
	if err != nil || string(b) != "outside" {
		t.Fatalf("sentinel changed: %q, %v", b, err)
	}
}

func openRoot(t testing.TB, dir string) *os.Root {
	t.Helper()
	r, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestMkdirAllRefusesLinks(t *testing.T) {
	rootDir, outside := tree(t)
	root := openRoot(t, rootDir)
	for _, rel := range []string{"out/x", "rel-out/x", "in/x", "d/up/x", "dangling", "dangling/x", "f/x", "d/e/loop/x", "../outside/x"} {
		err := MkdirAll(root, rel, 0o755)
		if !errors.Is(err, ErrUnsafe) {
			t.Errorf("MkdirAll(%q) = %v, want ErrUnsafe", rel, err)
		}
	}
	err := MkdirAll(root, "out/x", 0o755)
	want := filepath.Join(rootDir, "out/x") + ": " + filepath.Join(rootDir, "out") + " is a symbolic link; refusing to write outside " + rootDir
	if err == nil || err.Error() != want {
		t.Errorf("error = %v\nwant    %s", err, want)
	}
	if err := MkdirAll(root, "d/new/deeper", 0o755); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(filepath.Join(rootDir, "d/new/deeper")); err != nil || !fi.IsDir() {
		t.Fatalf("not created: %v", err)
	}
	checkOutside(t, outside)
}

func TestOpenFileRefusesPlantedParts(t *testing.T) {
	rootDir, outside := tree(t)
	root := openRoot(t, rootDir)
	for _, name := range []string{"sent.part", "hard.part", "d/sentinel", "dangling", "out/sentinel", "d/up/outside/sentinel", "d"} {
		for _, flag := range []int{os.O_WRONLY | os.O_CREATE | os.O_TRUNC, os.O_RDWR | os.O_CREATE, os.O_WRONLY} {
			f, err := OpenFile(root, name, flag, 0o640)
			if err == nil {
				f.Write([]byte("evil"))
				f.Close()
				t.Errorf("OpenFile(%q, %#x) succeeded", name, flag)
				continue
			}
			if !errors.Is(err, ErrUnsafe) {
				t.Errorf("OpenFile(%q) = %v, want ErrUnsafe", name, err)
			}
		}
	}
	checkOutside(t, outside)
	if _, err := OpenFile(root, "sent.part", os.O_WRONLY|os.O_CREATE, 0o640); err == nil ||
		!strings.Contains(err.Error(), "sent.part is a symbolic link") {
		t.Errorf("error does not name the link: %v", err)
	}

	// Ordinary files are created, truncated and reused.
	f, err := OpenFile(root, "d/new/disk.part", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("data"))
	f.Close()
	f, err = OpenFile(root, "d/new/disk.part", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if fi, err := os.Stat(filepath.Join(rootDir, "d/new/disk.part")); err != nil || fi.Size() != 0 {
		t.Fatalf("not truncated: %v %v", fi, err)
	}
}

func TestOpenPathAndRel(t *testing.T) {
	rootDir, outside := tree(t)
	if _, err := OpenPath(rootDir, "out/job", 0o750); !errors.Is(err, ErrUnsafe) {
		t.Fatalf("OpenPath through a link = %v", err)
	}
	r, err := OpenPath(filepath.Join(rootDir, "fresh"), "a/b", 0o750)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	checkOutside(t, outside)
	for _, c := range []struct {
		root, path, rel string
		ok              bool
	}{
		{"/srv/x", "/srv/x/a/b", "a/b", true},
		{"/srv/x/", "/srv/x", ".", true},
		{"/srv/x", "/srv/xy", "", false},
		{"/srv/x", "/srv/x/../y", "", false},
		{"/srv/x", "/srv", "", false},
	} {
		rel, ok := Rel(c.root, c.path)
		if rel != c.rel || ok != c.ok {
			t.Errorf("Rel(%q, %q) = %q, %v", c.root, c.path, rel, ok)
		}
	}
}

// FuzzCreateBeneath creates directories and files at fuzzed relative paths
// in a root full of links pointing inside and outside it: whatever is
// created must lie beneath the root, reached through real directories only,
// and the outside directory must stay exactly as it was.
func FuzzCreateBeneath(f *testing.F) {
	for _, s := range []string{"a", "a/b/c", "out/x", "rel-out/x", "in/x", "d/up/outside/x", "sent.part",
		"hard.part", "dangling", "d/e/loop", "../outside/x", "/abs", "d/./e/../e/new", "f/x", "d/sentinel", ""} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, rel string, file bool) {
		rootDir, outside := tree(t)
		root := openRoot(t, rootDir)
		var err error
		if file {
			var fh *os.File
			if fh, err = OpenFile(root, rel, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o640); err == nil {
				_, err = fh.Write([]byte("written"))
				fh.Close()
			}
		} else {
			var r *os.Root
			if r, err = OpenDir(root, rel, 0o755); err == nil {
				err = r.Mkdir("child", 0o755)
				r.Close()
			}
		}
		checkOutside(t, outside)
		if err != nil {
			return
		}
		// It exists beneath rootDir through real directories only.
		clean := filepath.Clean(rel)
		p := rootDir
		for _, c := range strings.Split(clean, string(filepath.Separator)) {
			if c == "." {
				continue
			}
			p = filepath.Join(p, c)
			fi, lerr := os.Lstat(p)
			if lerr != nil {
				t.Fatalf("%q created but %s: %v", rel, p, lerr)
			}
			if fi.Mode()&fs.ModeSymlink != 0 {
				t.Fatalf("%q created through the link %s", rel, p)
			}
		}
		if _, ok := Rel(rootDir, p); !ok {
			t.Fatalf("%s is not beneath %s", p, rootDir)
		}
	})
}

// The data directory's small files: a link planted at the temporary name
// is refused, one at the final name replaced by the file, never followed.
func TestWriteFileNeverFollowsLinks(t *testing.T) {
	rootDir, outside := tree(t)
	if err := os.Symlink(filepath.Join(outside, "sentinel"), filepath.Join(rootDir, "endpoint.tmp")); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(rootDir, "endpoint", []byte("url\n"), 0o600); !errors.Is(err, ErrUnsafe) {
		t.Fatalf("WriteFile through a planted tmp link = %v", err)
	}
	if err := os.Symlink(filepath.Join(outside, "sentinel"), filepath.Join(rootDir, "node-id")); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(rootDir, "node-id", []byte("id\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(filepath.Join(rootDir, "node-id")); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("node-id: %v %v", fi, err)
	}
	checkOutside(t, outside)
}
