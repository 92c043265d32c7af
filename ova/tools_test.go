package ova

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hypersdk/hypersdk/ovf"
)

func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestStandardToolsReadOurOVA is the interoperability contract: GNU tar
// lists the descriptor first and the files in References order, unpacks
// the archive, and `sha256sum -c` accepts the manifest, both when it was
// generated at the end and when the folder brought its own.
func TestStandardToolsReadOurOVA(t *testing.T) {
	needTool(t, "tar", "apt-get install -y tar")
	needTool(t, "sha256sum", "apt-get install -y coreutils")
	for _, headManifest := range []bool{false, true} {
		t.Run(map[bool]string{false: "generated manifest", true: "folder manifest"}[headManifest], func(t *testing.T) {
			p := makePackage(t, t.TempDir(), 200_000, 3000, 70_000)
			want := []string{"vm.ovf", "vm-disk1.vmdk", "vm-disk2.vmdk", "vm-disk3.vmdk", "vm.mf"}
			if headManifest {
				p.writeManifest(t, ovf.SHA256)
				want = []string{"vm.ovf", "vm.mf", "vm-disk1.vmdk", "vm-disk2.vmdk", "vm-disk3.vmdk"}
			}
			out := filepath.Join(t.TempDir(), "vm.ova")
			if _, err := Pack(context.Background(), p.dir, "", out, Options{}); err != nil {
				t.Fatal(err)
			}
			listing := strings.Fields(run(t, "", "tar", "-tf", out))
			if !reflect.DeepEqual(listing, want) {
				t.Fatalf("tar -tf: %v, want %v", listing, want)
			}
			dest := t.TempDir()
			run(t, dest, "tar", "-xf", out)
			got := run(t, dest, "sha256sum", "--strict", "-c", "vm.mf")
			for _, name := range want[:len(want)-1] {
				if name != "vm.mf" && !strings.Contains(got, name+": OK") {
					t.Errorf("sha256sum -c did not check %s:\n%s", name, got)
				}
			}
		})
	}
}

// TestCompressedDecompressToSameOVA packs the same folder plain, gzip and
// zstd: `gzip -d` and `zstd -d` must give back the plain archive byte for
// byte, and Extract must handle all three, recognizing them by content.
func TestCompressedDecompressToSameOVA(t *testing.T) {
	needTool(t, "gzip", "apt-get install -y gzip")
	needTool(t, "zstd", "apt-get install -y zstd")
	ctx := context.Background()
	p := makePackage(t, t.TempDir(), 3<<20+77, 100_000)
	outDir := t.TempDir()
	plain, err := Pack(ctx, p.dir, "", filepath.Join(outDir, "vm.ova"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		comp  Compression
		level int
		tool  string
	}{
		{CompressionGzip, 0, "gzip"}, {CompressionGzip, 1, "gzip"}, {CompressionGzip, 9, "gzip"},
		{CompressionZstd, 0, "zstd"}, {CompressionZstd, 19, "zstd"},
	} {
		t.Run(fmt.Sprintf("%s-%d", c.comp, c.level), func(t *testing.T) {
			out := filepath.Join(outDir, "vm"+c.comp.Extension())
			res, err := Pack(ctx, p.dir, "", out, Options{Compression: c.comp, Level: c.level})
			if err != nil {
				t.Fatal(err)
			}
			if res.TarSize != plain.Size || res.Size >= plain.Size || res.Ratio <= 1 || res.SHA256 != fileSHA(t, out) {
				t.Errorf("result %+v", res)
			}
			wantLevel := map[Compression]int{CompressionGzip: 6, CompressionZstd: 3}[c.comp]
			if c.level != 0 {
				wantLevel = c.level
			}
			if res.Level != wantLevel {
				t.Errorf("level %d, want %d", res.Level, wantLevel)
			}
			dec := filepath.Join(t.TempDir(), "dec.ova")
			cmd := exec.Command(c.tool, "-d", "-c", out)
			f, err := os.Create(dec)
			if err != nil {
				t.Fatal(err)
			}
			var stderr strings.Builder
			cmd.Stdout, cmd.Stderr = f, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("%s -d: %v %s", c.tool, err, stderr.String())
			}
			f.Close()
			if got := fileSHA(t, dec); got != plain.SHA256 {
				t.Errorf("%s -d gives %s, the plain pack is %s", c.tool, got, plain.SHA256)
			}
			// Named .bin: detection must not rely on the extension.
			disguised := filepath.Join(t.TempDir(), "archive.bin")
			os.Link(out, disguised)
			rep, err := Extract(ctx, disguised, filepath.Join(t.TempDir(), "x"), ExtractOptions{})
			if err != nil || rep.Compression != c.comp || !rep.Verified {
				t.Fatalf("extract: %v %+v", err, rep)
			}
			for name, data := range p.files {
				if got := fileSHA(t, filepath.Join(rep.Dir, name)); got != shaHex(data) {
					t.Errorf("%s differs after extract", name)
				}
			}
		})
	}
}

// TestExtractGNUTarArchive reads an OVA made by GNU tar in USTAR format
// (manifest at the end, padded to tar's 10 KiB records), as a user would
// make one by hand.
func TestExtractGNUTarArchive(t *testing.T) {
	needTool(t, "tar", "apt-get install -y tar")
	p := makePackage(t, t.TempDir(), 12_345, 6789)
	p.writeManifest(t, ovf.SHA1)
	out := filepath.Join(t.TempDir(), "hand.ova")
	run(t, p.dir, "tar", "--format=ustar", "-cf", out, "vm.ovf", "vm-disk1.vmdk", "vm-disk2.vmdk", "vm.mf")
	rep, err := Extract(context.Background(), out, t.TempDir(), ExtractOptions{})
	if err != nil || !rep.Verified || !rep.ManifestAtEnd {
		t.Fatalf("%v %+v", err, rep)
	}
	// The pre-scan found the SHA1 manifest at the end: only what it needs
	// was computed.
	for _, m := range rep.Members {
		if m.Kind == KindFile && len(m.Digests) != 2 {
			t.Errorf("%s: computed %v", m.Name, m.Digests)
		}
	}
}
