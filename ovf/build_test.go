package ovf

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

func goldenSpec() VMSpec {
	return VMSpec{
		Name:      "web01",
		GuestOS:   GuestOS{CIMID: 101, VMwareID: "otherLinux64Guest", Description: "Linux (64-bit)"},
		CPUs:      2,
		MemoryMiB: 4096,
		Firmware:  "efi",
		Disks: []DiskSpec{
			{File: "web01-disk1.vmdk", CapacityBytes: 16 << 30, PopulatedBytes: 3 << 30, FileSize: 1234567},
			{File: "web01-disk2.vmdk", CapacityBytes: 1<<20 + 512},
		},
		NICs: []NICSpec{
			{Network: "VM Network", Type: "VmxNet3", MAC: "00:50:56:01:02:03"},
			{Network: "backend & storage"},
			{Network: "VM Network"},
		},
		Annotation: "Exported by HyperSDK",
	}
}

// TestBuildGolden pins the exact bytes Build writes. Review
// testdata/build-golden.ovf when it changes (go test -run TestBuildGolden
// -update).
func TestBuildGolden(t *testing.T) {
	d, err := Build(goldenSpec())
	if err != nil {
		t.Fatal(err)
	}
	out := d.Marshal()
	path := filepath.Join("testdata", "build-golden.ovf")
	if *update {
		if err := os.WriteFile(path, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != string(want) {
		t.Errorf("Build output differs from %s (sha256 %s, want %s)", path, sha(out), sha(want))
	}
	const wantSHA = "8ce4caf81c2278bb31d8845ff99fe91a99800bd31f81faa921943c1d2f4d0850"
	if sha(out) != wantSHA {
		t.Errorf("sha256 %s, want %s", sha(out), wantSHA)
	}
}

func TestBuildSummary(t *testing.T) {
	spec := goldenSpec()
	d, err := Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	s := d.Summary()
	if s.OVFVersion != 1 || len(s.Systems) != 1 {
		t.Fatalf("summary %+v", s)
	}
	sys := s.Systems[0]
	if sys.Name != "web01" || sys.CPUs != 2 || sys.MemoryBytes != 4096<<20 || sys.Firmware != "efi" ||
		sys.OS.ID != 101 || sys.OS.OSType != "otherLinux64Guest" || sys.SystemType != "vmx-13" || sys.Annotation != "Exported by HyperSDK" {
		t.Errorf("system %+v", sys)
	}
	wantDisks := []DiskSummary{
		{DiskID: "vmdisk1", FileID: "file1", Href: "web01-disk1.vmdk", CapacityBytes: 16 << 30, PopulatedBytes: 3 << 30, FileSize: 1234567,
			Format: FormatVMDKStreamOptimized, FormatName: "vmdk-streamOptimized", Controller: "SCSI lsilogic", Address: "0"},
		{DiskID: "vmdisk2", FileID: "file2", Href: "web01-disk2.vmdk", CapacityBytes: 1<<20 + 512, PopulatedBytes: -1, FileSize: -1,
			Format: FormatVMDKStreamOptimized, FormatName: "vmdk-streamOptimized", Controller: "SCSI lsilogic", Address: "1"},
	}
	if !reflect.DeepEqual(sys.Disks, wantDisks) {
		t.Errorf("disks:\n got %+v\nwant %+v", sys.Disks, wantDisks)
	}
	wantNICs := []NICSummary{
		{Name: "Network adapter 1", Network: "VM Network", Type: "VmxNet3", MAC: "00:50:56:01:02:03"},
		{Name: "Network adapter 2", Network: "backend & storage", Type: "E1000"},
		{Name: "Network adapter 3", Network: "VM Network", Type: "E1000"},
	}
	if !reflect.DeepEqual(sys.NICs, wantNICs) {
		t.Errorf("nics:\n got %+v\nwant %+v", sys.NICs, wantNICs)
	}
	if n := d.Networks(); len(n) != 2 || n[0].Name != "VM Network" || n[1].Name != "backend & storage" {
		t.Errorf("networks %+v", n)
	}
	// A provider fills in the size once the download is done.
	if err := d.SetFileSize("web01-disk2.vmdk", 99); err != nil {
		t.Fatal(err)
	}
	if f, _ := d.FileByHref("web01-disk2.vmdk"); f.Size != 99 {
		t.Errorf("size %d", f.Size)
	}
}

// TestBuildRASDOrder checks the schema order importers validate against:
// every Item's RASD properties alphabetical, System before Items, vmw:Config
// after them.
func TestBuildRASDOrder(t *testing.T) {
	spec := goldenSpec()
	spec.Controller = "sata"
	d, err := Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	hw := d.doc.root.child(NamespaceOVF1, "VirtualSystem").child(NamespaceOVF1, "VirtualHardwareSection")
	var kinds []string
	for _, e := range hw.elements() {
		kinds = append(kinds, e.local)
		if e.local != "Item" {
			continue
		}
		var names []string
		for _, p := range e.elements() {
			if p.space != NamespaceRASD {
				t.Errorf("item property %s in namespace %s", p.local, p.space)
			}
			names = append(names, p.local)
		}
		if !slices.IsSorted(names) {
			t.Errorf("item properties not in schema order: %v", names)
		}
	}
	want := []string{"Info", "System", "Item", "Item", "Item", "Item", "Item", "Item", "Item", "Item", "Config"}
	if !reflect.DeepEqual(kinds, want) {
		t.Errorf("hardware section order %v, want %v", kinds, want)
	}
	if c := d.Summary().Systems[0].Disks[0].Controller; c != "SATA" {
		t.Errorf("controller %q", c)
	}
}

func TestBuildControllers(t *testing.T) {
	for _, c := range []struct {
		controller string
		disks      int
		wantCtrls  int
		wantUnits  []string
		wantName   string
	}{
		{"scsi", 16, 2, []string{"0", "1", "2", "3", "4", "5", "6", "8", "9", "10", "11", "12", "13", "14", "15", "0"}, "SCSI lsilogic"},
		{"pvscsi", 1, 1, []string{"0"}, "SCSI VirtualSCSI"},
		{"ide", 3, 2, []string{"0", "1", "0"}, "IDE"},
	} {
		t.Run(c.controller, func(t *testing.T) {
			spec := VMSpec{Name: "m", CPUs: 1, MemoryMiB: 512, Controller: c.controller}
			for i := range c.disks {
				spec.Disks = append(spec.Disks, DiskSpec{File: fmt.Sprintf("d%d.vmdk", i), CapacityBytes: 1 << 30})
			}
			d, err := Build(spec)
			if err != nil {
				t.Fatal(err)
			}
			sys := d.Summary().Systems[0]
			var units []string
			for _, k := range sys.Disks {
				units = append(units, k.Address)
				if k.Controller != c.wantName {
					t.Errorf("controller %q", k.Controller)
				}
			}
			if !reflect.DeepEqual(units, c.wantUnits) {
				t.Errorf("units %v, want %v", units, c.wantUnits)
			}
			ctrls := map[string]bool{}
			for _, it := range d.VirtualSystems()[0].Items {
				if it.ResourceType == ResourceDisk {
					ctrls[it.Parent] = true
				}
			}
			if len(ctrls) != c.wantCtrls {
				t.Errorf("%d controllers, want %d", len(ctrls), c.wantCtrls)
			}
		})
	}
}

func TestBuildOVF2(t *testing.T) {
	spec := goldenSpec()
	spec.OVFVersion = 2
	d, err := Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	if d.Version() != 2 || !strings.Contains(string(d.Marshal()), `xmlns="http://schemas.dmtf.org/ovf/envelope/2"`) {
		t.Error("not OVF 2")
	}
	s := d.Summary().Systems[0]
	if s.CPUs != 2 || len(s.Disks) != 2 || len(s.NICs) != 3 {
		t.Errorf("summary %+v", s)
	}
}

func TestBuildInvalid(t *testing.T) {
	base := func() VMSpec {
		return VMSpec{Name: "m", CPUs: 1, MemoryMiB: 512, Disks: []DiskSpec{{File: "a.vmdk", CapacityBytes: 1}}}
	}
	for name, mut := range map[string]func(*VMSpec){
		"no name":      func(s *VMSpec) { s.Name = " " },
		"bad char":     func(s *VMSpec) { s.Name = "a\x01b" },
		"cpus":         func(s *VMSpec) { s.CPUs = 0 },
		"memory":       func(s *VMSpec) { s.MemoryMiB = 0 },
		"firmware":     func(s *VMSpec) { s.Firmware = "uefi" },
		"version":      func(s *VMSpec) { s.OVFVersion = 3 },
		"controller":   func(s *VMSpec) { s.Controller = "floppy" },
		"traversal":    func(s *VMSpec) { s.Disks[0].File = "../a.vmdk" },
		"dup file":     func(s *VMSpec) { s.Disks = append(s.Disks, DiskSpec{File: "A.vmdk", CapacityBytes: 1}) },
		"capacity":     func(s *VMSpec) { s.Disks[0].CapacityBytes = 0 },
		"nic":          func(s *VMSpec) { s.NICs = []NICSpec{{}} },
		"too many ide": func(s *VMSpec) { s.Controller = "ide"; s.Disks = make([]DiskSpec, 5) },
	} {
		t.Run(name, func(t *testing.T) {
			s := base()
			mut(&s)
			if _, err := Build(s); err == nil {
				t.Error("accepted")
			}
		})
	}
}
