package ovf

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseDescriptor checks that Parse never panics, that everything it
// accepts serializes to a document it accepts again, that Marshal is then a
// fixed point, and that the accessors cope with whatever was accepted.
// Seeds: the sample descriptors in testdata plus testdata/fuzz/FuzzParseDescriptor.
func FuzzParseDescriptor(f *testing.F) {
	samples, err := filepath.Glob(filepath.Join("testdata", "*.ovf"))
	if err != nil || len(samples) == 0 {
		f.Fatalf("no seed descriptors in testdata: %v", err)
	}
	for _, p := range samples {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Parse(data)
		if err != nil {
			return
		}
		out := d.Marshal()
		d2, err := Parse(out)
		if err != nil {
			t.Fatalf("Marshal output does not parse: %v\n%s", err, out)
		}
		if out2 := d2.Marshal(); string(out2) != string(out) {
			t.Fatalf("Marshal not a fixed point:\n%s\n---\n%s", out, out2)
		}
		_ = d.Summary()
		_, _ = d.PackageFiles()
		for _, f := range d.Files() {
			if d.SetFileSize(f.Href, 1) != nil {
				t.Fatalf("SetFileSize(%q) failed on a listed file", f.Href)
			}
		}
		if _, err := Parse(d.Marshal()); err != nil {
			t.Fatalf("descriptor with sizes set does not parse: %v", err)
		}
	})
}
