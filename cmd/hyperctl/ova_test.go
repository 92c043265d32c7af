package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/hypersdk/hypersdk/client/clienttest"
	"github.com/hypersdk/hypersdk/ovf"
)

// ovaHarness runs hyperctl with an environment that points at no daemon
// and holds no token: the ova commands must not need either.
func ovaHarness(t *testing.T) *harness {
	t.Helper()
	return &harness{t: t, dataDir: filepath.Join(t.TempDir(), "no-daemon"), vars: map[string]string{
		"HYPERSDK_SERVER": "http://127.0.0.1:1", // nothing listens: any API call would fail
	}}
}

// ovfFolder writes an OVF folder: vm.ovf and two disks whose bytes
// compress like a disk does (zero runs, text, random blocks).
func ovfFolder(t *testing.T) (dir string, files map[string][]byte) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "web01")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	files = map[string][]byte{}
	spec := ovf.VMSpec{Name: "web01", CPUs: 4, MemoryMiB: 8192, Controller: "pvscsi",
		NICs: []ovf.NICSpec{{Network: "VM Network", Type: "VmxNet3"}}}
	for i, n := range []int{3<<20 + 123, 700_001} {
		name := "web01-disk" + string(rune('1'+i)) + ".vmdk"
		rng := rand.New(rand.NewPCG(uint64(i), 42))
		b := make([]byte, n)
		for off := 0; off < n; off += 4096 {
			blk := b[off:min(off+4096, n)]
			switch rng.IntN(3) {
			case 0:
			case 1:
				for j := range blk {
					blk[j] = "lorem ipsum dolor sit amet\n"[j%27]
				}
			default:
				for j := range blk {
					blk[j] = byte(rng.Uint32())
				}
			}
		}
		files[name] = b
		spec.Disks = append(spec.Disks, ovf.DiskSpec{File: name, CapacityBytes: int64(i+1) << 30, FileSize: int64(n)})
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d, err := ovf.Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	files["web01.ovf"] = d.Marshal()
	if err := os.WriteFile(filepath.Join(dir, "web01.ovf"), files["web01.ovf"], 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, files
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256Hex(b)
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func needCmd(t *testing.T, name, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s not found: this test needs it; install the Debian package: apt-get install -y %s (or run make test-deps)", name, pkg)
	}
}

// pack → verify → inspect → extract, plain, gzip and zstd, with no daemon
// and no token; the extracted files are the packed ones byte for byte.
func TestOVAPackVerifyInspectExtract(t *testing.T) {
	needCmd(t, "tar", "tar")
	needCmd(t, "gzip", "gzip")
	needCmd(t, "zstd", "zstd")
	needCmd(t, "sha256sum", "coreutils")
	h := ovaHarness(t)
	src, files := ovfFolder(t)
	out := t.TempDir()
	var plainSHA string
	for _, tc := range []struct {
		name, compress, file, tool string
		args                       []string
	}{
		{name: "plain", file: "web01.ova"},
		{name: "gzip", compress: "gzip", file: "web01.ova.gz", tool: "gzip", args: []string{"--level", "9"}},
		{name: "zstd", compress: "zstd", file: "web01.ova.zst", tool: "zstd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			archive := filepath.Join(out, tc.file)
			args := []string{"ova", "pack", src, "--output", out, "-o", "json"}
			if tc.compress != "" {
				args = append(args, "--compress", tc.compress)
			}
			r := h.run(append(args, tc.args...)...).expect(t, 0)
			var po ovaPackOut
			if err := json.Unmarshal([]byte(r.stdout), &po); err != nil {
				t.Fatalf("pack -o json: %v\n%s", err, r.stdout)
			}
			if po.Path != archive || po.SHA256 != sha256File(t, archive) || po.Manifest != "web01.mf" || po.CleanedUp {
				t.Fatalf("pack result %+v", po)
			}
			wantComp := tc.compress
			if wantComp == "" {
				wantComp = "none"
			}
			if po.Compression != wantComp || (tc.compress == "gzip" && po.Level != 9) {
				t.Errorf("compression %s level %d", po.Compression, po.Level)
			}
			// Members in DSP0243 order with the digests of the source bytes.
			var names []string
			for _, m := range po.Files {
				names = append(names, m.Name)
				if want, ok := files[m.Name]; ok && m.Digests["SHA256"] != sha256Hex(want) {
					t.Errorf("%s: packed digest %s, source %s", m.Name, m.Digests["SHA256"], sha256Hex(want))
				}
			}
			if want := []string{"web01.ovf", "web01-disk1.vmdk", "web01-disk2.vmdk", "web01.mf"}; !slices.Equal(names, want) {
				t.Errorf("members %v, want %v", names, want)
			}
			if tc.compress == "" {
				plainSHA = po.SHA256
				listing := strings.Fields(runTool(t, "", "tar", "-tf", archive))
				if !slices.Equal(listing, names) {
					t.Errorf("tar -tf lists %v", listing)
				}
			} else {
				// The compressed archive is the plain one, compressed.
				dec := runTool(t, "", tc.tool, "-d", "-c", archive)
				if sha256Hex([]byte(dec)) != plainSHA {
					t.Errorf("%s -d does not give the plain archive", tc.tool)
				}
			}

			r = h.run("ova", "verify", archive).expect(t, 0, "OK: "+archive, "every digest in web01.mf matches", "web01-disk1.vmdk")
			if strings.Contains(r.stderr, "warning") {
				t.Errorf("stderr: %s", r.stderr)
			}
			var vr ovaReportOut
			r = h.run("ova", "verify", archive, "-o", "json").expect(t, 0)
			if err := json.Unmarshal([]byte(r.stdout), &vr); err != nil {
				t.Fatal(err)
			}
			if !vr.Valid || !vr.Verified || vr.Compression != wantComp || len(vr.Problems) != 0 || len(vr.Files) != 4 {
				t.Fatalf("verify -o json: %+v", vr)
			}

			// inspect: the VM as the descriptor describes it.
			r = h.run("ova", "inspect", archive).expect(t, 0, "VM:", "web01", "CPUs:", "4", "Memory:", "8.0 GiB",
				"1.0 GiB", "2.0 GiB", "vmdk-streamOptimized", "SCSI VirtualSCSI", "web01-disk2.vmdk", "683.6 KiB",
				"VmxNet3", "VM Network", "SHA256:"+sha256Hex(files["web01-disk1.vmdk"]))
			if tc.compress != "" && !strings.Contains(r.stdout, tc.compress+"-compressed") {
				t.Errorf("inspect does not show the compression:\n%s", r.stdout)
			}
			// -o yaml has the field names of -o json.
			var doc any
			r = h.run("ova", "inspect", archive, "-o", "yaml").expect(t, 0)
			if err := yaml.Unmarshal([]byte(r.stdout), &doc); err != nil {
				t.Fatal(err)
			}
			var ir ovaReportOut
			if b, err := json.Marshal(doc); err != nil {
				t.Fatal(err)
			} else if err := json.Unmarshal(b, &ir); err != nil {
				t.Fatal(err)
			}
			if len(ir.Systems) != 1 {
				t.Fatalf("inspect -o yaml: %s", r.stdout)
			}
			vm := ir.Systems[0]
			if vm.Name != "web01" || vm.CPUs != 4 || vm.MemoryBytes != 8<<30 || len(vm.Disks) != 2 || ir.Verified {
				t.Errorf("inspect: %+v", ir)
			}
			for i, d := range vm.Disks {
				if d.CapacityBytes != int64(i+1)<<30 || d.Format != "vmdk-streamOptimized" || d.FileSize != int64(len(files[d.File])) {
					t.Errorf("disk %d: %+v", i, d)
				}
			}

			// extract into a directory that does not exist yet.
			dest := filepath.Join(t.TempDir(), "x", "web01")
			h.run("ova", "extract", archive, dest).expect(t, 0, "extracted", "every digest in web01.mf matches")
			got := dirNames(t, dest)
			slices.Sort(got)
			if want := []string{"web01-disk1.vmdk", "web01-disk2.vmdk", "web01.mf", "web01.ovf"}; !slices.Equal(got, want) {
				t.Fatalf("extracted %v, want %v", got, want)
			}
			for name, b := range files {
				if sha256File(t, filepath.Join(dest, name)) != sha256Hex(b) {
					t.Errorf("%s differs after the round trip", name)
				}
			}
			if s := runTool(t, dest, "sha256sum", "--strict", "-c", "web01.mf"); strings.Count(s, ": OK") != 3 {
				t.Errorf("sha256sum -c:\n%s", s)
			}
			// A second extract does not replace the files unless told to.
			h.run("ova", "extract", archive, dest).expect(t, 1, "already exists")
			h.run("ova", "extract", archive, dest, "--overwrite").expect(t, 0)
		})
	}
}

func runTool(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// pack refuses what it cannot do right and follows the output name.
func TestOVAPackOptions(t *testing.T) {
	h := ovaHarness(t)
	src, files := ovfFolder(t)
	out := t.TempDir()

	// The compression follows the name; --level is on gzip's scale.
	gz := filepath.Join(out, "backup.ova.gz")
	h.run("ova", "pack", src, "--output", gz, "--level", "1").expect(t, 0, "packed "+gz, "gzip level 1")
	b, _ := os.ReadFile(gz)
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Fatal("not a gzip stream")
	}
	// An existing archive is not replaced without --force.
	h.run("ova", "pack", src, "--output", gz).expect(t, 1, "exists; pass --force")
	h.run("ova", "pack", src, "--output", gz, "--force", "--compress", "zstd").expect(t, 0, "named like a gzip archive")
	b, _ = os.ReadFile(gz)
	if !bytes.HasPrefix(b, []byte{0x28, 0xb5, 0x2f, 0xfd}) {
		t.Fatal("--compress zstd did not win over the name")
	}
	// Command-line mistakes exit 2; a bad folder exits 1, writing nothing.
	h.run("ova", "pack", src, "--output", filepath.Join(out, "x.ova"), "--level", "3").expect(t, 2, "--level needs a compression")
	h.run("ova", "pack", src, "--compress", "xz").expect(t, 2, "--compress: want gzip, zstd or none")
	h.run("ova", "pack").expect(t, 2, "takes 1 argument(s) (DIR)")
	h.run("ova", "extract", gz).expect(t, 2, "takes 2 argument(s) (FILE DIR)")
	h.run("ova", "verify", gz, "--max-undeclared-size", "lots").expect(t, 2, "--max-undeclared-size: want a size")
	h.run("ova", "unpack").expect(t, 2, `unknown command "unpack"`)
	h.run("ova", "pack", t.TempDir()).expect(t, 1, "no .ovf descriptor in")
	two := t.TempDir()
	for _, n := range []string{"a.ovf", "b.OVF"} {
		if err := os.WriteFile(filepath.Join(two, n), files["web01.ovf"], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h.run("ova", "pack", two).expect(t, 2, "several descriptors", "a.ovf, b.OVF", "--descriptor")
	h.run("ova", "pack", two, "--descriptor", "a.ovf", "--output", out).expect(t, 1, "web01-disk1.vmdk")
	h.run("ova", "pack", two, "--descriptor", "../a.ovf").expect(t, 2, "not a path")
	h.run("ova", "verify", filepath.Join(out, "nonexistent.ova")).expect(t, 1, "no such file")
	h.run("ova", "pack", filepath.Join(src, "web01.ovf")).expect(t, 2, "is not a directory")
	if err := os.WriteFile(filepath.Join(src, "web01-disk2.vmdk"), []byte("short"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(out, "bad.ova")
	h.run("ova", "pack", src, "--output", bad).expect(t, 1, "web01-disk2.vmdk has 5 bytes, the descriptor declares 700001")
	if names := dirNames(t, out); slices.Contains(names, "bad.ova") || len(names) != 1 {
		t.Errorf("a failed pack left %v", names)
	}
	if err := os.WriteFile(filepath.Join(src, "web01-disk2.vmdk"), files["web01-disk2.vmdk"], 0o644); err != nil {
		t.Fatal(err)
	}

	// --cleanup-ovf leaves only the archive; the default name comes from
	// the descriptor, in the current directory.
	cwd, _ := os.Getwd()
	t.Chdir(out)
	h.run("ova", "pack", src, "--cleanup-ovf", "--compress", "zstd").expect(t, 0, "packed web01.ova.zst")
	if names := dirNames(t, src); len(names) != 0 {
		t.Errorf("--cleanup-ovf left %v", names)
	}
	t.Chdir(cwd)
	dest := t.TempDir()
	h.run("ova", "extract", filepath.Join(out, "web01.ova.zst"), dest).expect(t, 0)
	for name, b := range files {
		if sha256File(t, filepath.Join(dest, name)) != sha256Hex(b) {
			t.Errorf("%s differs", name)
		}
	}
}

// Every archive of the hostile corpus is refused by verify and extract with
// exit 1, the problems named, and nothing written: not in the target, not
// next to it, not at the absolute path one of them aims at.
func TestOVAHostileCorpus(t *testing.T) {
	h := ovaHarness(t)
	corpus := filepath.Join("..", "..", "ova", "testdata", "hostile")
	entries, err := os.ReadDir(corpus)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) < 20 {
		t.Fatalf("only %d archives in %s", len(entries), corpus)
	}
	const absoluteEscape = "/tmp/hypersdk-ova-absolute-escape" // see ova/hostile_test.go
	for _, e := range entries {
		t.Run(e.Name(), func(t *testing.T) {
			archive := filepath.Join(corpus, e.Name())
			// The options the corpus was made for (ova/hostile_test.go):
			// with the default limits, 1 GiB for a 1 GiB disk whose file
			// size is not declared is legitimate.
			var limits []string
			if e.Name() == "bomb-undeclared.ova.zst" {
				limits = []string{"--max-undeclared-size", "16MiB"}
			}
			run := func(args ...string) result { return h.run(append(args, limits...)...) }
			parent := t.TempDir()
			dest := filepath.Join(parent, "out")
			r := run("ova", "extract", archive, dest).expect(t, 1, "is not a valid OVA")
			if _, err := os.Lstat(dest); err == nil {
				t.Errorf("extract created %s: %v", dest, dirNames(t, dest))
			}
			if names := dirNames(t, parent); len(names) != 0 {
				t.Errorf("extract wrote %v next to the target", names)
			}
			// Into an existing directory: it stays as it was.
			if err := os.Mkdir(dest, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dest, "keep"), []byte("mine"), 0o644); err != nil {
				t.Fatal(err)
			}
			run("ova", "extract", archive, dest).expect(t, 1)
			if names := dirNames(t, dest); !slices.Equal(names, []string{"keep"}) {
				t.Errorf("extract left %v in an existing directory", names)
			}
			if _, err := os.Lstat(absoluteEscape); err == nil {
				t.Errorf("%s was written", absoluteEscape)
			}

			v := run("ova", "verify", archive).expect(t, 1, "is not a valid OVA")
			if v.stdout != "" {
				t.Errorf("verify printed a report for a bad archive in table mode:\n%s", v.stdout)
			}
			// Same archive, same problems, whichever command reads it
			// (verify also requires a manifest).
			for _, line := range strings.Split(r.stderr, "\n")[1:] {
				if !strings.Contains(v.stderr, line) {
					t.Errorf("extract reports %q, verify does not:\n%s", line, v.stderr)
				}
			}
			// -o json prints the report with every problem, and still fails.
			j := run("ova", "verify", archive, "-o", "json").expect(t, 1)
			var rep ovaReportOut
			if err := json.Unmarshal([]byte(j.stdout), &rep); err != nil {
				t.Fatalf("verify -o json: %v\n%s", err, j.stdout)
			}
			if rep.Valid || rep.Verified || len(rep.Problems) == 0 {
				t.Errorf("report %+v", rep)
			}
			for _, p := range rep.Problems {
				if !strings.Contains(v.stderr, p.Detail) {
					t.Errorf("stderr lacks problem %+v:\n%s", p, v.stderr)
				}
			}
		})
	}
}

// verify lists every problem of an archive, naming each file.
func TestOVAVerifyListsEveryProblem(t *testing.T) {
	h := ovaHarness(t)
	archive := filepath.Join("..", "..", "ova", "testdata", "hostile", "many-problems.ova")
	r := h.run("ova", "verify", archive).expect(t, 1)
	for _, want := range []string{
		`"../../x": unsafe-path`,
		`"/etc/cron.d/x": unsafe-path`,
		`"l": link: symbolic link to "/"`,
		`"f": special-file: FIFO`,
		`"extra.bin": unreferenced`,
		`"extra.bin": duplicate`,
		`"disk.img": size-mismatch`,
		`"disk.img": missing`,
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("verify does not report %s:\n%s", want, r.stderr)
		}
	}
	// The manifest digest mismatch names the file and both digests.
	r = h.run("ova", "verify", filepath.Join("..", "..", "ova", "testdata", "hostile", "manifest-mismatch.ova")).expect(t, 1,
		`"disk.img": digest-mismatch: SHA256 is`, "the manifest says")
	// inspect shows what it can read of a bad archive, then fails.
	h.run("ova", "inspect", archive).expect(t, 1, "Archive:", "vm.ovf", "is not a valid OVA")
}

// An archive without a manifest passes verify only with
// --allow-no-manifest, and extract warns about it.
func TestOVANoManifest(t *testing.T) {
	needCmd(t, "tar", "tar")
	h := ovaHarness(t)
	src, _ := ovfFolder(t)
	archive := filepath.Join(t.TempDir(), "hand.ova")
	runTool(t, src, "tar", "--format=ustar", "-cf", archive, "web01.ovf", "web01-disk1.vmdk", "web01-disk2.vmdk")
	h.run("ova", "verify", archive).expect(t, 1, `"web01.mf": manifest: no manifest in the archive`)
	h.run("ova", "verify", archive, "--allow-no-manifest").expect(t, 0, "NOT verified")
	h.run("ova", "extract", archive, t.TempDir()).expect(t, 0, "warning: the archive has no manifest")
	h.run("ova", "extract", archive, t.TempDir(), "--require-manifest").expect(t, 1, "no manifest in the archive")
}

// The ova commands work with no server, no token and no data directory:
// even with a token file that cannot be read, which would fail any
// command that talks to the daemon.
func TestOVACommandsNeedNoDaemon(t *testing.T) {
	h := newHarness(t, clienttest.Options{})
	h.vars = map[string]string{"HYPERSDK_SERVER": "http://127.0.0.1:1", "HYPERSDK_TOKEN_FILE": "/nonexistent/token"}
	h.run("jobs", "list").expect(t, 1, "no API token")
	src, _ := ovfFolder(t)
	archive := filepath.Join(t.TempDir(), "vm.ova")
	r := h.run("ova", "pack", src, "--output", archive).expect(t, 0)
	h.run("ova", "verify", archive).expect(t, 0)
	if strings.Contains(r.stderr, "token") || strings.Contains(r.stderr, "server") {
		t.Errorf("pack talked about the daemon: %s", r.stderr)
	}
}

// extract into a target below a symbolic link is refused and writes
// nothing where the link points.
func TestOVAExtractRefusesLinkedTarget(t *testing.T) {
	needCmd(t, "tar", "tar")
	h := ovaHarness(t)
	src, _ := ovfFolder(t)
	archive := filepath.Join(t.TempDir(), "hand.ova")
	runTool(t, src, "tar", "--format=ustar", "-cf", archive, "web01.ovf", "web01-disk1.vmdk", "web01-disk2.vmdk")
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "evil")
	if err := os.Symlink(outside, link); err != nil {
		t.Fatal(err)
	}
	for _, dest := range []string{filepath.Join(link, "x"), filepath.Join(link, "x", "y"), link} {
		h.run("ova", "extract", archive, dest).expect(t, 1, link+" is a symbolic link; refusing to extract through it")
		if names := dirNames(t, outside); len(names) != 0 {
			t.Fatalf("extract into %s wrote %v outside", dest, names)
		}
	}
	// The real path works.
	h.run("ova", "extract", archive, filepath.Join(outside, "x")).expect(t, 0, "extracted")
}

// Without a manifest nothing vouches for the bytes: a member whose tar
// header declares more than the descriptor's ovf:size, or members that
// cannot fit the free space of the target, are refused before a byte of
// them is written, and nothing is left behind.
func TestOVAExtractCapsMemberSizes(t *testing.T) {
	h := ovaHarness(t)
	build := func(declared, header int64, body []byte) string {
		spec := ovf.VMSpec{Name: "vm", CPUs: 1, MemoryMiB: 512,
			Disks: []ovf.DiskSpec{{File: "vm-disk1.vmdk", CapacityBytes: max(declared, 1<<30), FileSize: declared}}}
		d, err := ovf.Build(spec)
		if err != nil {
			t.Fatal(err)
		}
		desc := d.Marshal()
		path := filepath.Join(t.TempDir(), "vm.ova")
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		tw := tar.NewWriter(f)
		tw.WriteHeader(&tar.Header{Name: "vm.ovf", Mode: 0o644, Size: int64(len(desc)), Format: tar.FormatUSTAR})
		tw.Write(desc)
		tw.WriteHeader(&tar.Header{Name: "vm-disk1.vmdk", Mode: 0o644, Size: header, Format: tar.FormatPAX})
		tw.Write(body)
		if int64(len(body)) == header {
			tw.Close()
		} else {
			tw.Flush() // a stream that ends inside the member: never read that far
		}
		return path
	}
	body := bytes.Repeat([]byte("disk"), 4096)
	cases := []struct {
		name, archive string
		want          string
	}{
		{"header larger than ovf:size", build(int64(len(body))-4096, int64(len(body)), body), "entry has 16384 bytes, the descriptor declares 12288"},
		{"more than the free space", build(1<<60, 1<<60, body[:4096]), "not enough free space: the archive needs at least 1152921504606846976 bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			parent := t.TempDir()
			dest := filepath.Join(parent, "out")
			h.run("ova", "extract", c.archive, dest).expect(t, 1, c.want)
			if names := dirNames(t, parent); len(names) != 0 {
				t.Fatalf("extract left %v", names)
			}
		})
	}
}
