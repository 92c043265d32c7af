package ovf

import (
	"context"
	"crypto/sha1" //nolint:gosec // test vectors for SHA1 manifests
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func hexOf(sum []byte) string { return hex.EncodeToString(sum) }

func TestParseManifest(t *testing.T) {
	a := sha256.Sum256([]byte("a"))
	b := sha1.Sum([]byte("b")) //nolint:gosec
	c := sha512.Sum512([]byte("c"))
	in := "SHA256(vm.ovf)= " + strings.ToUpper(hexOf(a[:])) + "\r\n" +
		"\n" +
		"SHA1 (disk 1.vmdk) = " + hexOf(b[:]) + "\n" +
		"sha512(dir/x(1).iso)=" + hexOf(c[:]) + "\n" +
		"SHA256(vm.ovf)= " + hexOf(a[:]) + "\n" // identical duplicate: ignored
	m, err := ParseManifest([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []ManifestEntry{
		{SHA256, "vm.ovf", hexOf(a[:])},
		{SHA1, "disk 1.vmdk", hexOf(b[:])},
		{SHA512, "dir/x(1).iso", hexOf(c[:])},
	}
	if !reflect.DeepEqual(m.Entries, want) {
		t.Errorf("entries:\n got %+v\nwant %+v", m.Entries, want)
	}
	if got := m.Names(); !reflect.DeepEqual(got, []string{"vm.ovf", "disk 1.vmdk", "dir/x(1).iso"}) {
		t.Errorf("names %v", got)
	}
	wantOut := "SHA256(vm.ovf)= " + hexOf(a[:]) + "\nSHA1(disk 1.vmdk)= " + hexOf(b[:]) + "\nSHA512(dir/x(1).iso)= " + hexOf(c[:]) + "\n"
	if got := string(m.Marshal()); got != wantOut {
		t.Errorf("marshal:\n%s\nwant\n%s", got, wantOut)
	}
}

func TestParseManifestErrors(t *testing.T) {
	good := strings.Repeat("ab", 32)
	for name, c := range map[string]struct{ in, want string }{
		"md5":         {"MD5(a)= " + strings.Repeat("ab", 16), "unsupported digest algorithm"},
		"short":       {"SHA256(a)= abcd", "64"},
		"not hex":     {"SHA256(a)= " + strings.Repeat("zz", 32), "not hex"},
		"traversal":   {"SHA256(../../etc/passwd)= " + good, "escapes"},
		"absolute":    {"SHA256(/etc/passwd)= " + good, "absolute"},
		"gnu format":  {good + "  a.vmdk", "not of the form"},
		"no paren":    {"SHA256 a = " + good, "not of the form"},
		"empty name":  {"SHA256()= " + good, "empty name"},
		"conflicting": {"SHA256(a)= " + good + "\nSHA256(a)= " + strings.Repeat("cd", 32), "different digests"},
		"too large":   {strings.Repeat("\n", MaxManifestSize+1), "larger than"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseManifest([]byte(c.in))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want %q", err, c.want)
			}
		})
	}
}

// writePackage writes a small OVF folder and returns its manifest.
func writePackage(t *testing.T, dir string) *Manifest {
	t.Helper()
	files := map[string]string{"vm.ovf": "<Envelope/>", "vm-disk1.vmdk": strings.Repeat("disk", 1000), "vm disk2.vmdk": "second"}
	m := &Manifest{}
	for _, name := range []string{"vm.ovf", "vm-disk1.vmdk", "vm disk2.vmdk"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(files[name]), 0o644); err != nil {
			t.Fatal(err)
		}
		s := sha256.Sum256([]byte(files[name]))
		if err := m.Add(SHA256, name, hexOf(s[:])); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

func needTool(t *testing.T, name, install string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s not found: this test needs it; install it with: %s", name, install)
	}
}

// TestManifestStandardTools checks the claim in the Manifest doc: GNU
// coreutils verify our manifests as they are.
func TestManifestStandardTools(t *testing.T) {
	needTool(t, "sha256sum", "apt-get install -y coreutils")
	needTool(t, "sha1sum", "apt-get install -y coreutils")
	needTool(t, "cksum", "apt-get install -y coreutils")
	dir := t.TempDir()
	m := writePackage(t, dir)
	if err := os.WriteFile(filepath.Join(dir, "vm.mf"), m.Marshal(), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(name string, args ...string) (string, error) {
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run("sha256sum", "--strict", "-c", "vm.mf"); err != nil {
		t.Fatalf("sha256sum -c rejected our manifest: %v\n%s", err, out)
	}

	// A SHA1 manifest of an OVF 1.x package checks with sha1sum, and a mixed
	// manifest with cksum.
	m1, err := hashFiles(dir, []string{"vm.ovf", "vm-disk1.vmdk"}, SHA1)
	if err != nil {
		t.Fatal(err)
	}
	mixed := append(m1.Marshal(), m.Marshal()...)
	os.WriteFile(filepath.Join(dir, "sha1.mf"), m1.Marshal(), 0o644)
	os.WriteFile(filepath.Join(dir, "mixed.mf"), mixed, 0o644)
	if out, err := run("sha1sum", "--strict", "-c", "sha1.mf"); err != nil {
		t.Fatalf("sha1sum -c: %v\n%s", err, out)
	}
	if out, err := run("cksum", "-c", "mixed.mf"); err != nil {
		t.Fatalf("cksum -c: %v\n%s", err, out)
	}

	// And the tools notice tampering, naming the file.
	if err := os.WriteFile(filepath.Join(dir, "vm-disk1.vmdk"), []byte("tampered"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := run("sha256sum", "-c", "vm.mf")
	if err == nil || !strings.Contains(out, "vm-disk1.vmdk: FAILED") {
		t.Fatalf("sha256sum -c missed tampering: %v\n%s", err, out)
	}
}

func TestVerifyDir(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	m := writePackage(t, dir)
	if err := VerifyDir(ctx, dir, m); err != nil {
		t.Fatalf("clean package: %v", err)
	}
	// Add SHA1 and SHA512 lines for the same file: all are checked in one read.
	for _, a := range []Algorithm{SHA1, SHA512} {
		sums, err := hashRootFile(ctx, mustRoot(t, dir), "vm-disk1.vmdk", []Algorithm{a})
		if err != nil {
			t.Fatal(err)
		}
		m.Add(a, "vm-disk1.vmdk", sums[a])
	}
	if err := VerifyDir(ctx, dir, m); err != nil {
		t.Fatalf("multi-algorithm: %v", err)
	}

	// Break it in every way at once.
	os.WriteFile(filepath.Join(dir, "vm-disk1.vmdk"), []byte("tampered"), 0o644)
	os.Remove(filepath.Join(dir, "vm disk2.vmdk"))
	os.Mkdir(filepath.Join(dir, "adir"), 0o755)
	outside := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(outside, []byte("secret"), 0o600)
	os.Symlink(outside, filepath.Join(dir, "escape"))
	good := strings.Repeat("ab", 32)
	m.Entries = append(m.Entries,
		ManifestEntry{SHA256, "adir", good},
		ManifestEntry{SHA256, "escape", good},
		ManifestEntry{SHA256, "../outside", good}, // only reachable by building a Manifest by hand
	)
	err := VerifyDir(ctx, dir, m)
	var ve *VerifyError
	if !errors.As(err, &ve) {
		t.Fatalf("got %v", err)
	}
	got := map[string][]VerifyKind{}
	for _, p := range ve.Problems {
		got[p.Name] = append(got[p.Name], p.Kind)
	}
	want := map[string][]VerifyKind{
		"vm-disk1.vmdk": {VerifyMismatch, VerifyMismatch, VerifyMismatch}, // SHA256, SHA1, SHA512
		"vm disk2.vmdk": {VerifyMissing},
		"adir":          {VerifyUnreadable},
		"escape":        {VerifyUnreadable},
		"../outside":    {VerifyUnreadable},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("problems %v, want %v\n%v", got, want, err)
	}
	for _, s := range []string{"vm-disk1.vmdk: SHA256 mismatch", "vm disk2.vmdk: missing", "escape: unreadable"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error does not say %q:\n%v", s, err)
		}
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := VerifyDir(cctx, dir, m); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: %v", err)
	}
}

func mustRoot(t *testing.T, dir string) *os.Root {
	t.Helper()
	r, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestDigester(t *testing.T) {
	data := []byte(strings.Repeat("0123456789abcdef", 1<<14)) // 256 KiB: parallel path
	d := NewDigester(SHA256, SHA1, SHA512, SHA256)
	d.Write(data[:100]) // serial path
	d.Write(data[100:])
	s256, s1, s512 := sha256.Sum256(data), sha1.Sum(data), sha512.Sum512(data) //nolint:gosec
	want := map[Algorithm]string{SHA256: hexOf(s256[:]), SHA1: hexOf(s1[:]), SHA512: hexOf(s512[:])}
	if got := d.Sums(); !reflect.DeepEqual(got, want) {
		t.Errorf("sums %v", got)
	}
	if !reflect.DeepEqual(d.Algorithms(), []Algorithm{SHA256, SHA1, SHA512}) || d.Sum("MD5") != "" {
		t.Error("algorithms")
	}
}

func TestManifestNames(t *testing.T) {
	if ManifestName("web01.ovf") != "web01.mf" || CertificateName("web01.ovf") != "web01.cert" || ManifestName("a.b.OVF") != "a.b.mf" {
		t.Error("names")
	}
}

// hashFiles is a manifest of the named files of dir, hashed with alg.
func hashFiles(dir string, names []string, alg Algorithm) (*Manifest, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	m := &Manifest{}
	for _, name := range names {
		sums, err := hashRootFile(context.Background(), root, name, []Algorithm{alg})
		if err != nil {
			return nil, err
		}
		if err := m.Add(alg, name, sums[alg]); err != nil {
			return nil, err
		}
	}
	return m, nil
}
