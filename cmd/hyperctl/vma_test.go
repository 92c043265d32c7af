package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/disk/disktest"
	"github.com/hypersdk/hypersdk/vma"
	"github.com/hypersdk/hypersdk/vma/vmatest"
)

const vmaTestConf = `#test VM
bios: ovmf
cores: 2
efidisk0: local-lvm:vm-120-disk-2,efitype=4m,size=528K
memory: 2048
name: db01
net0: virtio=BC:24:11:00:00:01,bridge=vmbr0
ostype: l26
scsi0: local-lvm:vm-120-disk-0,size=12M
scsi1: local-lvm:vm-120-disk-1,size=5M
scsihw: virtio-scsi-single
sockets: 1
#qmdump#map:efidisk0:drive-efidisk0:local-lvm:raw:
#qmdump#map:scsi0:drive-scsi0:local-lvm:raw:
#qmdump#map:scsi1:drive-scsi1:local-lvm:raw:
`

// vmaSources writes the source disks of the test VM as raw files with
// disktest.WriteImage (holes, data, written zeros, text; sizes that are
// sector but not cluster multiples) and returns their paths by device.
func vmaSources(t *testing.T, dir string) map[string]string {
	t.Helper()
	src := map[string]string{}
	for i, d := range []struct {
		name string
		size int64
	}{{"drive-scsi0", 12<<20 + 4608}, {"drive-scsi1", 5<<20 + 512}, {"drive-efidisk0", 540672}} {
		p := filepath.Join(dir, d.name+".src.raw")
		disktest.WriteImage(t, p, d.size, uint64(20+i))
		src[d.name] = p
	}
	return src
}

// writeDump writes the VMA archive of the sources (interleaved, clusters
// out of order, a vmstate) as vzdump would, compressed with tool ("" for
// none) by the real compressor, and returns its path.
func writeDump(t *testing.T, dir string, src map[string]string, tool string) string {
	t.Helper()
	a := vmatest.Archive{UUID: [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, Created: time.Unix(1769860800, 0),
		Order: vmatest.Shuffled, Seed: 5, VMState: bytes.Repeat([]byte("ram!"), 30000),
		Configs: []vma.Config{{Name: "qemu-server.conf", Data: []byte(vmaTestConf)}, {Name: "qemu-server.fw", Data: []byte("[OPTIONS]\nenable: 1\n")}}}
	for _, name := range []string{"drive-efidisk0", "drive-scsi0", "drive-scsi1"} {
		f, err := os.Open(src[name])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		fi, _ := f.Stat()
		a.Disks = append(a.Disks, vmatest.Disk{Name: name, Size: fi.Size(), Data: f})
	}
	var buf bytes.Buffer
	if err := vmatest.Write(&buf, a); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	ext := map[string]string{"": ".vma", "zstd": ".vma.zst", "gzip": ".vma.gz", "lzop": ".vma.lzo"}[tool]
	if tool != "" {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s makes the compressed dump as vzdump does: apt-get install %s (or make test-deps)", tool, tool)
		}
		cmd := exec.Command(tool, "-c")
		cmd.Stdin = bytes.NewReader(data)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v", tool, err)
		}
		data = out
	}
	p := filepath.Join(dir, "vzdump-qemu-120-2026_01_31-12_00_00"+ext)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestVMACommands runs info, verify and extract on the dump in every
// compression vzdump writes: the header and VM as written, and extracted
// raw images that qemu-img finds identical to the sources, sparse, next to
// the configuration files.
func TestVMACommands(t *testing.T) {
	h := ovaHarness(t)
	dir := t.TempDir()
	src := vmaSources(t, dir)
	for _, tool := range []string{"", "zstd", "gzip", "lzop"} {
		name := tool
		if name == "" {
			name = "plain"
		}
		t.Run(name, func(t *testing.T) {
			dump := writeDump(t, dir, src, tool)
			var info vmaOut
			r := h.run("vma", "info", dump, "-o", "json").expect(t, 0)
			if err := json.Unmarshal([]byte(r.stdout), &info); err != nil {
				t.Fatalf("info -o json: %v\n%s", err, r.stdout)
			}
			wantComp := map[string]vma.Compression{"": vma.CompressionNone, "zstd": vma.CompressionZstd, "gzip": vma.CompressionGzip, "lzop": vma.CompressionLZO}[tool]
			if info.Compression != wantComp || info.UUID != "01020304-0506-0708-090a-0b0c0d0e0f10" || info.Created.Unix() != 1769860800 {
				t.Fatalf("info: %s %s %v", info.Compression, info.UUID, info.Created)
			}
			if info.VM == nil || info.VM.Name != "db01" || info.VM.CPUs() != 2 || info.VM.MemoryMiB != 2048 || !info.VM.UEFI() || len(info.VM.NICs) != 1 {
				t.Fatalf("info VM: %+v (%s)", info.VM, info.VMError)
			}
			if len(info.Devices) != 4 || len(info.Configs) != 2 || info.Verified {
				t.Fatalf("info devices %+v configs %+v", info.Devices, info.Configs)
			}
			for _, d := range info.Devices {
				if d.VMState {
					continue
				}
				fi, _ := os.Stat(src[d.Name])
				if d.Size != fi.Size() || d.Disk != strings.TrimPrefix(d.Name, "drive-") {
					t.Fatalf("device %+v: source %d bytes", d, fi.Size())
				}
			}
			h.run("vma", "info", dump).expect(t, 0, "db01", "UEFI", "drive-scsi0", "scsi0 local-lvm:vm-120-disk-0", "vmstate", "qemu-server.fw")
			h.run("vma", "verify", dump).expect(t, 0, "OK:", "3 disk(s)")

			out := filepath.Join(dir, "out-"+name)
			var ex vmaOut
			r = h.run("vma", "extract", dump, out, "-o", "json").expect(t, 0)
			if err := json.Unmarshal([]byte(r.stdout), &ex); err != nil {
				t.Fatalf("extract -o json: %v\n%s", err, r.stdout)
			}
			if !ex.Verified || len(ex.Files) != 5 {
				t.Fatalf("extract: %+v", ex)
			}
			for dev, p := range src {
				img := filepath.Join(out, "disk-"+dev+".raw")
				if disktest.FileSHA256(t, img) != disktest.FileSHA256(t, p) {
					t.Fatalf("%s differs from its source", img)
				}
				disktest.Compare(t, p, "raw", img, "raw")
				if a, b := disktest.Allocated(t, img), disktest.Allocated(t, p); a > b+64<<10 {
					t.Fatalf("%s allocates %d bytes, its sparse source %d: zero blocks were written", img, a, b)
				}
			}
			conf, err := os.ReadFile(filepath.Join(out, "qemu-server.conf"))
			if err != nil || string(conf) != vmaTestConf {
				t.Fatalf("qemu-server.conf: %v", err)
			}
			leftovers, _ := filepath.Glob(filepath.Join(out, "*.part"))
			if len(leftovers) != 0 {
				t.Fatalf("part files left: %v", leftovers)
			}
			// Again: refused without --force, nothing changed; then forced.
			before := disktest.FileSHA256(t, filepath.Join(out, "disk-drive-scsi0.raw"))
			h.run("vma", "extract", dump, out).expect(t, 1, "already exist", "--force")
			h.run("vma", "extract", dump, out, "--force").expect(t, 0, "extracted", "disk-drive-scsi1.raw")
			if disktest.FileSHA256(t, filepath.Join(out, "disk-drive-scsi0.raw")) != before {
				t.Fatal("forced extract changed the image")
			}
		})
	}
}

// TestVMAExtractRefuses: a damaged or truncated dump, names that would
// leave DIR, a link where DIR should be, and files that are not dumps are
// refused with a message, and leave nothing in DIR.
func TestVMAExtractRefuses(t *testing.T) {
	h := ovaHarness(t)
	dir := t.TempDir()
	src := vmaSources(t, dir)
	dump := writeDump(t, dir, src, "")
	good, err := os.ReadFile(dump)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	empty := func(t *testing.T, d string) {
		t.Helper()
		ents, _ := os.ReadDir(d)
		if len(ents) != 0 {
			t.Fatalf("%s holds %d entries after a refused extract", d, len(ents))
		}
	}
	truncated := write("cut.vma", good[:len(good)-5000])
	h.run("vma", "extract", truncated, filepath.Join(dir, "o1")).expect(t, 1, "truncated")
	empty(t, filepath.Join(dir, "o1"))

	hs := int(binary.BigEndian.Uint32(good[56:60]))
	bad := bytes.Clone(good)
	bad[hs+600] ^= 0xff // extent data: not checksummed by VMA, but...
	bad[hs+40] ^= 1     // ...the first blockinfo is
	h.run("vma", "extract", write("bad.vma", bad), filepath.Join(dir, "o2")).expect(t, 1, "MD5")
	empty(t, filepath.Join(dir, "o2"))
	h.run("vma", "verify", write("bad2.vma", bad)).expect(t, 1, "MD5")

	// A device named to escape DIR.
	var buf bytes.Buffer
	w := vmatest.NewWriter(&buf, [16]byte{9}, time.Now())
	id, _ := w.RegisterStream("../../evil", 4096)
	if err := w.WriteCluster(id, 0, bytes.Repeat([]byte{1}, vma.ClusterSize)); err != nil {
		t.Fatal(err)
	}
	w.CloseStream(id)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	h.run("vma", "extract", write("evil.vma", buf.Bytes()), filepath.Join(dir, "o3")).expect(t, 1, "path separator")
	empty(t, filepath.Join(dir, "o3"))

	// DIR is a link: refused, nothing written through it.
	target := filepath.Join(dir, "elsewhere")
	os.Mkdir(target, 0o755)
	os.Symlink(target, filepath.Join(dir, "link"))
	h.run("vma", "extract", dump, filepath.Join(dir, "link", "sub")).expect(t, 1, "symbolic link")
	empty(t, target)

	h.run("vma", "info", write("x.ova", []byte("not a dump at all"))).expect(t, 1, "not a VMA archive")
	h.run("vma", "info", write("x.xz", []byte{0xfd, '7', 'z', 'X', 'Z', 0, 1, 2, 3})).expect(t, 1, "xz")
	h.run("vma", "info", filepath.Join(dir, "missing.vma")).expect(t, 1, "missing.vma")
	h.run("vma", "extract", dump).expect(t, 2, "takes 2 argument(s)")
}
