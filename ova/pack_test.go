package ova

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hypersdk/hypersdk/ovf"
	"github.com/hypersdk/hypersdk/progress"
)

func memberNames(ms []Member) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Name)
	}
	return out
}

// TestPackRoundTrip packs a folder without a manifest (one is generated at
// the end), then extracts and validates it, comparing every byte.
func TestPackRoundTrip(t *testing.T) {
	ctx := context.Background()
	p := makePackage(t, t.TempDir(), 3<<20+123, 700_000)
	out := filepath.Join(t.TempDir(), "vm.ova")
	res, err := Pack(ctx, p.dir, "", out, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := memberNames(res.Members), []string{"vm.ovf", "vm-disk1.vmdk", "vm-disk2.vmdk", "vm.mf"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("members %v, want %v", got, want)
	}
	fi, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if res.Path != out || res.Size != fi.Size() || res.TarSize != fi.Size() || res.SHA256 != fileSHA(t, out) || res.Ratio != 1 {
		t.Errorf("result %+v does not describe the file (size %d)", res, fi.Size())
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", fi.Mode())
	}
	if !res.ManifestAtEnd || res.Manifest == nil || len(res.Manifest.Entries) != 3 {
		t.Errorf("manifest %+v at end %v", res.Manifest, res.ManifestAtEnd)
	}
	for _, m := range res.Members[1:3] {
		if want := shaHex(p.files[m.Name]); m.Digests[ovf.SHA256] != want {
			t.Errorf("%s: digest %s, want %s", m.Name, m.Digests[ovf.SHA256], want)
		}
	}
	if res.Members[0].Digests[ovf.SHA256] != shaHex(p.desc) {
		t.Error("descriptor digest")
	}
	// The descriptor is archived byte for byte; Offset points at each member.
	raw, _ := os.ReadFile(out)
	for _, m := range res.Members {
		if m.Kind == KindFile && !bytes.Equal(raw[m.Offset:m.Offset+m.Size], p.files[m.Name]) {
			t.Errorf("%s: bytes at offset %d differ", m.Name, m.Offset)
		}
	}
	if !bytes.Equal(raw[res.Members[0].Offset:res.Members[0].Offset+res.Members[0].Size], p.desc) {
		t.Error("descriptor bytes changed")
	}
	if left := listDir(t, filepath.Dir(out)); !reflect.DeepEqual(left, []string{"vm.ova"}) {
		t.Errorf("output dir holds %v", left)
	}

	dest := filepath.Join(t.TempDir(), "x")
	rep, err := Extract(ctx, out, dest, ExtractOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Verified || rep.Compression != CompressionNone || rep.DescriptorName != "vm.ovf" || len(rep.Warnings) != 0 {
		t.Errorf("report %+v", rep)
	}
	for name, data := range p.files {
		got, err := os.ReadFile(filepath.Join(dest, name))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s: extracted bytes differ (%v)", name, err)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(dest, "vm.ovf")); !bytes.Equal(got, p.desc) {
		t.Error("descriptor differs")
	}
	if got := listDir(t, dest); !reflect.DeepEqual(got, []string{"vm-disk1.vmdk", "vm-disk2.vmdk", "vm.mf", "vm.ovf"}) {
		t.Errorf("extracted %v", got)
	}
	m, err := ovf.ParseManifest(mustReadFile(t, filepath.Join(dest, "vm.mf")))
	if err != nil {
		t.Fatal(err)
	}
	if err := ovf.VerifyDir(ctx, dest, m); err != nil {
		t.Error(err)
	}
	// Extracting again over existing files is refused unless asked for.
	if _, err := Extract(ctx, out, dest, ExtractOptions{}); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("second extract: %v", err)
	}
	if _, err := Extract(ctx, out, dest, ExtractOptions{Overwrite: true}); err != nil {
		t.Errorf("overwrite: %v", err)
	}
	if got := listDir(t, dest); len(got) != 4 {
		t.Errorf("staging left behind: %v", got)
	}

	vrep, err := Validate(ctx, out, ReadOptions{RequireManifest: true})
	if err != nil || !vrep.Verified || !vrep.ManifestAtEnd {
		t.Errorf("validate: %v %+v", err, vrep)
	}
	irep, err := Inspect(ctx, out, ReadOptions{})
	if err != nil || irep.Verified || len(irep.Members) != 4 || irep.Members[1].Digests != nil || irep.Manifest == nil {
		t.Errorf("inspect: %v %+v", err, irep)
	}
	if s := irep.Descriptor.Summary(); s.Name() != "vm" || s.Systems[0].CPUs != 2 {
		t.Errorf("inspect summary %+v", s)
	}
}

func mustReadFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPackGolden pins the bytes of a plain archive: same folder, same
// options, same SHA-256, run after run.
func TestPackGolden(t *testing.T) {
	p := makePackage(t, t.TempDir(), 100_000, 5000)
	out := filepath.Join(t.TempDir(), "vm.ova")
	res, err := Pack(context.Background(), p.dir, "vm.ovf", out, Options{})
	if err != nil {
		t.Fatal(err)
	}
	const want = "7836c47dee4604595cc17092939f2345beef55824edc444239b4ad1de23c3667"
	if res.SHA256 != want {
		t.Errorf("archive sha256 %s, want %s", res.SHA256, want)
	}
	out2 := filepath.Join(t.TempDir(), "again.ova")
	res2, err := Pack(context.Background(), p.dir, "vm.ovf", out2, Options{})
	if err != nil || res2.SHA256 != res.SHA256 {
		t.Errorf("second pack differs: %v", err)
	}
}

// TestPackManifestAtHead packs a folder that has a manifest: it goes right
// after the descriptor, unchanged, and every file is checked against it.
func TestPackManifestAtHead(t *testing.T) {
	for _, alg := range []ovf.Algorithm{ovf.SHA256, ovf.SHA1, ovf.SHA512} {
		t.Run(string(alg), func(t *testing.T) {
			p := makePackage(t, t.TempDir(), 50_000, 60_000)
			m := p.writeManifest(t, alg)
			os.WriteFile(filepath.Join(p.dir, "vm.cert"), []byte("-----BEGIN CERTIFICATE-----\n"), 0o644)
			out := filepath.Join(t.TempDir(), "vm.ova")
			res, err := Pack(context.Background(), p.dir, "", out, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := memberNames(res.Members), []string{"vm.ovf", "vm.mf", "vm.cert", "vm-disk1.vmdk", "vm-disk2.vmdk"}; !reflect.DeepEqual(got, want) {
				t.Fatalf("members %v, want %v", got, want)
			}
			if res.ManifestAtEnd || string(res.Manifest.Marshal()) != string(m.Marshal()) {
				t.Error("manifest not kept as is")
			}
			rep, err := Validate(context.Background(), out, ReadOptions{})
			if err != nil || !rep.Verified || !rep.Certificate || rep.ManifestAtEnd {
				t.Errorf("validate: %v %+v", err, rep)
			}
		})
	}
}

func TestPackRefusesBadFolders(t *testing.T) {
	ctx := context.Background()
	cases := map[string]struct {
		mutate func(t *testing.T, p *testPackage)
		want   string
	}{
		"manifest mismatch": {func(t *testing.T, p *testPackage) {
			p.writeManifest(t, ovf.SHA256)
			os.WriteFile(filepath.Join(p.dir, "vm-disk2.vmdk"), bytes.Repeat([]byte{1}, 60_000), 0o644)
		}, "vm-disk2.vmdk: SHA256"},
		"missing file": {func(t *testing.T, p *testPackage) { os.Remove(filepath.Join(p.dir, "vm-disk1.vmdk")) }, "vm-disk1.vmdk"},
		"wrong size": {func(t *testing.T, p *testPackage) {
			os.WriteFile(filepath.Join(p.dir, "vm-disk1.vmdk"), []byte("short"), 0o644)
		}, "has 5 bytes, the descriptor declares 50000"},
		"symlink escape": {func(t *testing.T, p *testPackage) {
			outside := filepath.Join(t.TempDir(), "secret")
			os.WriteFile(outside, make([]byte, 50_000), 0o644)
			os.Remove(filepath.Join(p.dir, "vm-disk1.vmdk"))
			os.Symlink(outside, filepath.Join(p.dir, "vm-disk1.vmdk"))
		}, "vm-disk1.vmdk"},
		"cert without manifest": {func(t *testing.T, p *testPackage) {
			os.WriteFile(filepath.Join(p.dir, "vm.cert"), []byte("x"), 0o644)
		}, "without vm.mf"},
		"bad manifest": {func(t *testing.T, p *testPackage) {
			os.WriteFile(filepath.Join(p.dir, "vm.mf"), []byte("MD5(vm.ovf)= 00"), 0o644)
		}, "vm.mf"},
		"manifest lists stranger": {func(t *testing.T, p *testPackage) {
			m := p.writeManifest(t, ovf.SHA256)
			m.Add(ovf.SHA256, "other.iso", strings.Repeat("0", 64))
			os.WriteFile(filepath.Join(p.dir, "vm.mf"), m.Marshal(), 0o644)
		}, `lists "other.iso"`},
		"two descriptors": {func(t *testing.T, p *testPackage) {
			os.WriteFile(filepath.Join(p.dir, "b.ovf"), p.desc, 0o644)
		}, "several descriptors"},
		"bad href": {func(t *testing.T, p *testPackage) {
			d, _ := ovf.Parse(p.desc)
			// RenameFile refuses unsafe names; write the XML directly.
			bad := strings.Replace(string(d.Marshal()), `ovf:href="vm-disk1.vmdk"`, `ovf:href="../vm-disk1.vmdk"`, 1)
			os.WriteFile(filepath.Join(p.dir, "vm.ovf"), []byte(bad), 0o644)
		}, "escapes"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			p := makePackage(t, t.TempDir(), 50_000, 60_000)
			c.mutate(t, p)
			outDir := t.TempDir()
			_, err := Pack(ctx, p.dir, "", filepath.Join(outDir, "vm.ova"), Options{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want error containing %q", err, c.want)
			}
			if left := listDir(t, outDir); len(left) != 0 {
				t.Errorf("left behind: %v", left)
			}
		})
	}
}

func TestPackCleanupOVF(t *testing.T) {
	p := makePackage(t, t.TempDir(), 40_000, 30_000)
	p.writeManifest(t, ovf.SHA256)
	out := filepath.Join(t.TempDir(), "vm.ova")
	var seen []string
	opts := Options{CleanupOVF: true, Progress: func(pr progress.Report) {
		// When a file starts streaming, the previous one must already be gone.
		if pr.Final {
			if pr.ItemBytes != pr.ItemSize || pr.Phase != progress.PhasePackaging {
				t.Errorf("final report %+v", pr)
			}
			seen = append(seen, pr.Item)
		}
		if len(seen) == 2 {
			if _, err := os.Stat(filepath.Join(p.dir, seen[0])); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s still present while %s streams", seen[0], pr.Item)
			}
		}
	}}
	if _, err := Pack(context.Background(), p.dir, "", out, opts); err != nil {
		t.Fatal(err)
	}
	if left := listDir(t, p.dir); len(left) != 0 {
		t.Errorf("not cleaned: %v", left)
	}
	if _, err := Validate(context.Background(), out, ReadOptions{}); err != nil {
		t.Error(err)
	}
}

func TestPackCanceled(t *testing.T) {
	p := makePackage(t, t.TempDir(), 3<<20)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	outDir := t.TempDir()
	_, err := Pack(ctx, p.dir, "", filepath.Join(outDir, "vm.ova"), Options{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v", err)
	}
	if left := listDir(t, outDir); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}
