package disk

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestFromReaderShortSource(t *testing.T) {
	src := FromReader(bytes.NewReader(make([]byte, 100)), 200)
	if _, err := src.NextExtent(); err != nil {
		t.Fatal(err)
	}
	_, err := io.ReadAll(src)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short source: %v, want unexpected EOF", err)
	}
}

func TestRelatedStaysBeside(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "img")
	os.Mkdir(sub, 0o755)
	os.WriteFile(filepath.Join(dir, "secret"), []byte("x"), 0o600)
	os.WriteFile(filepath.Join(sub, "parent.vhdx"), []byte("p"), 0o600)
	os.WriteFile(filepath.Join(sub, "child"), []byte("c"), 0o600)
	os.Symlink(filepath.Join(dir, "secret"), filepath.Join(sub, "link"))
	f, err := OpenFile(filepath.Join(sub, "child"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, err := f.Open(`C:\Hyper-V\Disks\parent.vhdx`)
	if err != nil {
		t.Fatalf("parent by Windows path: %v", err)
	}
	p.Close()
	for _, bad := range []string{"../secret", "link", "/etc/passwd"} {
		if g, err := f.Open(bad); err == nil {
			g.Close()
			t.Errorf("Open(%q) escaped the image's directory", bad)
		}
	}
}

func TestFormatErrorNamesFileStructureOffset(t *testing.T) {
	err := error(Errorf(&File{Name: "a.qcow2"}, QCOW2, "L1 table", 196608, "entry %d points past the end", 3))
	want := "a.qcow2: qcow2 L1 table at offset 196608: entry 3 points past the end"
	if err.Error() != want || !errors.Is(err, ErrFormat) {
		t.Fatalf("got %q", err)
	}
}
