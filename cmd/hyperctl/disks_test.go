package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/client/clienttest"
	"github.com/hypersdk/hypersdk/pipeline"
)

// `export --format disks --disk-format raw` of a demo VM writes the raw
// disks (and the VM's NVRAM as it is), a manifest GNU sha256sum verifies and a JSON description of the
// VM, and no OVF descriptor; each raw disk is sparse, capacity bytes long
// and holds the same content (qemu-img compare) as the streamOptimized
// VMDK an OVF export of the same VM writes in the same run.
func TestExportDisksRawMatchesOVFExport(t *testing.T) {
	needCmd(t, "sha256sum", "coreutils")
	needCmd(t, "qemu-img", "qemu-utils")
	h := newHarness(t, clienttest.Options{})
	h.timeout = 5 * time.Minute // two demo vCenters' worth of disk content, slow under -race
	dir := t.TempDir()
	ovfDir, rawDir := filepath.Join(dir, "ovf"), filepath.Join(dir, "raw")
	const vm = "dev-ubuntu-01"

	h.run("export", "--local", "--demo", "--vm", vm, "--output", ovfDir, "--format", "ovf").expect(t, 0, "exported /DC0/vm/dev/"+vm)
	h.run("export", "--local", "--demo", "--vm", vm, "--output", rawDir, "--format", "disks", "--disk-format", "raw").
		expect(t, 0, "exported /DC0/vm/dev/"+vm, vm+".sha256")

	entries, err := os.ReadDir(rawDir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{vm + "-disk-0.raw", vm + "-disk-1.nvram", vm + ".json", vm + ".sha256"}; strings.Join(names, " ") != strings.Join(want, " ") {
		t.Fatalf("disks export wrote %v, want %v (and no .ovf)", names, want)
	}
	check := exec.Command("sha256sum", "--strict", "-c", vm+".sha256")
	check.Dir = rawDir
	if out, err := check.CombinedOutput(); err != nil || strings.Count(string(out), ": OK") != 3 {
		t.Fatalf("sha256sum -c: %v\n%s", err, out)
	}

	var md pipeline.Metadata
	b, err := os.ReadFile(filepath.Join(rawDir, vm+".json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &md); err != nil {
		t.Fatal(err)
	}
	if md.Name != vm || md.CPUs != 1 || md.MemoryMiB != 2048 || md.GuestOS != "ubuntu64Guest" || len(md.Disks) != 1 || len(md.NICs) == 0 ||
		len(md.Files) != 1 || md.Files[0].Kind != "nvram" {
		t.Fatalf("metadata %s", b)
	}
	d := md.Disks[0]
	raw := filepath.Join(rawDir, d.File)
	var st syscall.Stat_t
	if err := syscall.Stat(raw, &st); err != nil {
		t.Fatal(err)
	}
	if d.Format != "raw" || d.CapacityBytes != 128<<20 || st.Size != d.CapacityBytes || d.Size != st.Size || d.SHA256 != sha256File(t, raw) {
		t.Fatalf("disk %+v; file %d bytes", d, st.Size)
	}
	if st.Blocks*512 >= d.CapacityBytes/2 {
		t.Errorf("raw disk is not sparse: %d of %d bytes allocated", st.Blocks*512, d.CapacityBytes)
	}
	vmdk := filepath.Join(ovfDir, vm+"-disk-0.vmdk")
	if out, err := exec.Command("qemu-img", "compare", "-f", "raw", "-F", "vmdk", raw, vmdk).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img compare raw vs the OVF export's VMDK: %v\n%s", err, out)
	}

	// Every other disk format holds the same content, as qemu-img reads it.
	for _, tc := range []struct{ format, qemu string }{{"qcow2", "qcow2"}, {"vhdx", "vhdx"}, {"vhd", "vpc"}} {
		out := filepath.Join(dir, tc.format)
		args := []string{"export", "--local", "--demo", "--vm", vm, "--output", out, "--format", "disks", "--disk-format", tc.format}
		if tc.format == "vhd" {
			args = append(args, "--vhd-type", "fixed")
		}
		h.run(args...).expect(t, 0, vm+".sha256")
		img := filepath.Join(out, vm+"-disk-0."+tc.format)
		if out, err := exec.Command("qemu-img", "compare", "-f", tc.qemu, "-F", "vmdk", img, vmdk).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img compare %s vs the OVF export's VMDK: %v\n%s", tc.format, err, out)
		}
		h.run("verify", out).expect(t, 0, vm+".sha256: OK: every digest matches")
	}

	// hyperctl verify checks either export against its manifest without
	// being told the format, and names each file that no longer matches.
	h.run("verify", rawDir).expect(t, 0, vm+".sha256: OK: every digest matches", vm+"-disk-0.raw")
	h.run("verify", ovfDir).expect(t, 0, vm+".mf: OK: every digest matches", vm+".ovf", vm+"-disk-0.vmdk")
	f, err := os.OpenFile(vmdk, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0xff}, 4096); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Remove(filepath.Join(rawDir, vm+".json")); err != nil {
		t.Fatal(err)
	}
	h.run("verify", ovfDir).expect(t, 1, "FAILED", vm+"-disk-0.vmdk", "SHA256 mismatch: manifest ", "1 of 1 manifest(s) do not match")
	h.run("verify", filepath.Join(rawDir, vm+".sha256"), "-o", "json").expect(t, 1, `"status": "missing"`, `"ok": false`)
	h.run("verify", dir).expect(t, 1, "holds no manifest")

	// Bad choices are refused before anything is exported, naming the flag.
	h.run("export", "--local", "--demo", "--vm", vm, "--output", filepath.Join(dir, "x"), "--disk-format", "raw").
		expect(t, 2, "--disk-format", "format disks")
	h.run("export", "--local", "--demo", "--vm", vm, "--output", filepath.Join(dir, "x"), "--format", "disks", "--disk-format", "qcow9").
		expect(t, 2, "--disk-format", "must be one of vmdk, raw, qcow2, vhd, vhdx")
	h.run("export", "--local", "--demo", "--vm", vm, "--output", filepath.Join(dir, "x"), "--format", "disks", "--disk-format", "qcow2", "--vhd-type", "fixed").
		expect(t, 2, "--vhd-type", "is for vhd disks")
	h.run("export", "--local", "--demo", "--vm", vm, "--output", filepath.Join(dir, "x"), "--format", "zip").
		expect(t, 2, "--format", "must be ovf, ova or disks")
	// The standalone export is vSphere's: one method, no --method.
	h.run("export", "--local", "--demo", "--vm", vm, "--output", filepath.Join(dir, "x"), "--method", "export-task").
		expect(t, 2, "--method", `"export-task" is not offered`, "single export method")
	if _, err := os.Stat(filepath.Join(dir, "x")); !os.IsNotExist(err) {
		t.Errorf("a refused export created its output directory: %v", err)
	}
}
