package ovf

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustParse(t *testing.T, name string) *Descriptor {
	t.Helper()
	d, err := Parse(mustRead(t, name))
	if err != nil {
		t.Fatalf("parse %s: %v", name, err)
	}
	return d
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestParseVSphere(t *testing.T) {
	d := mustParse(t, "vsphere.ovf")
	if d.Version() != 1 {
		t.Errorf("version %d", d.Version())
	}
	wantFiles := []File{
		{ID: "file1", Href: "web01-disk1.vmdk", Size: 1073741824},
		{ID: "file2", Href: "web01-disk2.vmdk", Size: 68157440},
		{ID: "file3", Href: "web01-file1.nvram", Size: 8684},
	}
	if got := d.Files(); !reflect.DeepEqual(got, wantFiles) {
		t.Errorf("files:\n got %+v\nwant %+v", got, wantFiles)
	}
	disks := d.Disks()
	if len(disks) != 2 || disks[0].Capacity != 40<<30 || disks[1].Capacity != 512<<20 ||
		disks[0].PopulatedSize != 2<<30 || disks[1].PopulatedSize != 0 || disks[0].Format != FormatVMDKStreamOptimized {
		t.Errorf("disks: %+v", disks)
	}
	nets := d.Networks()
	if len(nets) != 2 || nets[1].Name != "backend & storage" || nets[1].Description != "The backend & storage network" {
		t.Errorf("networks: %+v", nets)
	}
	vss := d.VirtualSystems()
	if len(vss) != 1 {
		t.Fatalf("%d systems", len(vss))
	}
	vs := vss[0]
	if vs.Name != "web01" || vs.OS.ID != 101 || vs.OS.OSType != "ubuntu64Guest" || vs.Firmware != "efi" || vs.SystemType != "vmx-19" {
		t.Errorf("system: %+v", vs)
	}
	if !strings.Contains(vs.Annotation, "platform@example.com") || len(vs.Products) != 1 || vs.Products[0].FullVersion != "2.4.1-build77" {
		t.Errorf("annotation/product: %q %+v", vs.Annotation, vs.Products)
	}
	s := d.Summary()
	want := SystemSummary{
		ID: "web01", Name: "web01", OS: vs.OS, SystemType: "vmx-19", Firmware: "efi", CPUs: 4, MemoryBytes: 8 << 30,
		Annotation: vs.Annotation,
		Disks: []DiskSummary{
			{DiskID: "vmdisk1", FileID: "file1", Href: "web01-disk1.vmdk", CapacityBytes: 40 << 30, PopulatedBytes: 2 << 30, FileSize: 1073741824,
				Format: FormatVMDKStreamOptimized, FormatName: "vmdk-streamOptimized", Controller: "SCSI VirtualSCSI", Address: "0"},
			{DiskID: "vmdisk2", FileID: "file2", Href: "web01-disk2.vmdk", CapacityBytes: 512 << 20, PopulatedBytes: 0, FileSize: 68157440,
				Format: FormatVMDKStreamOptimized, FormatName: "vmdk-streamOptimized", Controller: "SCSI VirtualSCSI", Address: "1"},
		},
		NICs: []NICSummary{
			{Name: "Network adapter 1", Network: "VM Network", Type: "VmxNet3"},
			{Name: "Network adapter 2", Network: "backend & storage", Type: "E1000e"},
		},
	}
	if s.Name() != "web01" || len(s.Systems) != 1 || !reflect.DeepEqual(s.Systems[0], want) {
		t.Errorf("summary:\n got %+v\nwant %+v", s.Systems, want)
	}
}

func TestParseVirtualBox(t *testing.T) {
	d := mustParse(t, "virtualbox.ovf")
	if f := d.Files(); len(f) != 1 || f[0].Size != -1 {
		t.Errorf("files %+v", f)
	}
	s := d.Summary().Systems[0]
	if s.Name != "debian12" || s.CPUs != 2 || s.MemoryBytes != 2<<30 || s.Firmware != "efi" || s.OS.ID != 96 {
		t.Errorf("summary %+v", s)
	}
	if len(s.Disks) != 1 || s.Disks[0].CapacityBytes != 20<<30 || s.Disks[0].Controller != "SATA" || s.Disks[0].Href != "debian12-disk001.vmdk" || s.Disks[0].FileSize != -1 {
		t.Errorf("disks %+v", s.Disks)
	}
	if len(s.NICs) != 1 || s.NICs[0].Network != "NAT" || s.NICs[0].Type != "E1000" {
		t.Errorf("nics %+v", s.NICs)
	}
}

func TestParseOVF2(t *testing.T) {
	d := mustParse(t, "ovf2.ovf")
	if d.Version() != 2 {
		t.Errorf("version %d", d.Version())
	}
	pf, err := d.PackageFiles()
	if err != nil {
		t.Fatal(err)
	}
	want := []PackageFile{
		{Name: "images/app.qcow2.000000000", FileID: "img", Href: "images/app.qcow2", Size: 2048, Chunk: 0},
		{Name: "images/app.qcow2.000000001", FileID: "img", Href: "images/app.qcow2", Size: 2048, Chunk: 1},
		{Name: "images/app.qcow2.000000002", FileID: "img", Href: "images/app.qcow2", Size: 904, Chunk: 2},
		{Name: "seed.iso", FileID: "seed", Href: "seed.iso", Size: 4096, Chunk: -1},
	}
	if !reflect.DeepEqual(pf, want) {
		t.Errorf("package files:\n got %+v\nwant %+v", pf, want)
	}
	if d.Files()[1].Compression != "gzip" {
		t.Errorf("compression: %+v", d.Files()[1])
	}
	if d.DefaultConfiguration() != "large" {
		t.Errorf("default configuration %q", d.DefaultConfiguration())
	}
	s := d.Summary().Systems[0]
	if s.Name != "App VM" || s.CPUs != 8 || s.MemoryBytes != 16<<30 || s.OS.ID != -1 {
		t.Errorf("summary %+v", s)
	}
	if len(s.Disks) != 1 || s.Disks[0].CapacityBytes != -1 || s.Disks[0].Controller != "NVMe" || s.Disks[0].FormatName != "qcow2" {
		t.Errorf("disks %+v", s.Disks)
	}
	if len(s.NICs) != 1 || s.NICs[0].MAC != "00:50:56:aa:bb:cc" || s.NICs[0].Network != "prod" {
		t.Errorf("nics %+v", s.NICs)
	}
}

// TestMarshalRoundTrip pins the serializer's bytes for each sample and checks
// that unknown content survives and that Marshal is a fixed point.
func TestMarshalRoundTrip(t *testing.T) {
	golden := map[string]string{
		"vsphere.ovf":    "5ff9dd25b5f83e373777275a13ec7de73e86c5f53a0529c60a623283785161d0",
		"virtualbox.ovf": "728647f7b4fb3396667af7c9b209360c3c3a6b3e17f47f8053ca4ffd23ca8a52",
		"ovf2.ovf":       "e04952ea4ba3936f2dc1c3746b369f9b0ed82a85ad055efd4a117bb1efc09ebd",
	}
	keep := map[string][]string{
		"vsphere.ovf": {
			"<!--Generated by VMware ESX Server, User: root, UTC time: 2025-11-02T10:14:08.221Z-->",
			`vmw:buildId="build-24022510"`,
			`<vmw:BootOrderSection vmw:instanceId="5" vmw:type="disk">`,
			`<vmw:ExtraConfig ovf:required="false" vmw:key="nvram" vmw:value="ovf:/file/file3"/>`,
			`<vmw:CoresPerSocket ovf:required="false">2</vmw:CoresPerSocket>`,
			`<Property ovf:key="hostname" ovf:type="string" ovf:userConfigurable="true" ovf:value="web01">`,
			"Owner: platform team &lt;platform@example.com&gt;</Annotation>",
			`<Network ovf:name="backend &amp; storage">`,
		},
		"virtualbox.ovf": {
			`vbox:uuid="1c7e9a7e-3f1b-4a38-9d3b-7b0f6a0c2f11"`,
			`<vbox:Machine ovf:required="false" version="1.19-linux"`,
			"<ovf:Info>Complete VirtualBox machine configuration in VirtualBox format</ovf:Info>",
			`<Firmware type="EFI"/>`,
		},
		"ovf2.ovf": {
			`<ovf:Envelope xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/2"`,
			`xmlns:acme="urn:example:acme"`,
			`<acme:Tuning acme:profile="latency">cpu &lt;pinned&gt; &amp; isolated</acme:Tuning>`,
			`<ovf:File ovf:id="img" ovf:href="images/app.qcow2" ovf:size="5000" ovf:chunkSize="2048"/>`,
		},
	}
	for name := range golden {
		t.Run(name, func(t *testing.T) {
			d := mustParse(t, name)
			out := d.Marshal()
			for _, s := range keep[name] {
				if !strings.Contains(string(out), s) {
					t.Errorf("marshal lost %q", s)
				}
			}
			d2, err := Parse(out)
			if err != nil {
				t.Fatalf("re-parse: %v", err)
			}
			if out2 := d2.Marshal(); string(out2) != string(out) {
				t.Errorf("Marshal is not a fixed point")
			}
			if !reflect.DeepEqual(d.Summary(), d2.Summary()) {
				t.Errorf("summary changed across round trip")
			}
			if got := sha(out); got != golden[name] {
				t.Errorf("marshal sha256 %s, want %s", got, golden[name])
			}
		})
	}
}

func TestSetFileSize(t *testing.T) {
	t.Run("adds with the document's ovf prefix", func(t *testing.T) {
		d := mustParse(t, "virtualbox.ovf")
		if err := d.SetFileSize("debian12-disk001.vmdk", 1234567); err != nil {
			t.Fatal(err)
		}
		out := string(d.Marshal())
		if !strings.Contains(out, `<File ovf:id="file1" ovf:href="debian12-disk001.vmdk" ovf:size="1234567"/>`) {
			t.Errorf("marshal: %s", out)
		}
		d2, _ := Parse([]byte(out))
		if f, _ := d2.FileByHref("debian12-disk001.vmdk"); f.Size != 1234567 {
			t.Errorf("size %d", f.Size)
		}
	})
	t.Run("replaces", func(t *testing.T) {
		d := mustParse(t, "vsphere.ovf")
		if err := d.SetFileSize("web01-disk2.vmdk", 42); err != nil {
			t.Fatal(err)
		}
		if f, _ := d.FileByHref("web01-disk2.vmdk"); f.Size != 42 {
			t.Errorf("size %d", f.Size)
		}
		if strings.Count(string(d.Marshal()), `ovf:size="42"`) != 1 {
			t.Error("size attribute not replaced in place")
		}
	})
	t.Run("declares a prefix when none is bound", func(t *testing.T) {
		// Only a default namespace and a prefix bound on a nested element.
		src := `<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1"><References xmlns:o="http://schemas.dmtf.org/ovf/envelope/1"><File o:id="f1" o:href="a.vmdk"/></References><DiskSection xmlns:ovf="urn:other"/></Envelope>`
		d, err := Parse([]byte(src))
		if err != nil {
			t.Fatal(err)
		}
		if err := d.SetFileSize("a.vmdk", 7); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(d.Marshal()), `<File o:id="f1" o:href="a.vmdk" o:size="7"/>`) {
			t.Errorf("did not reuse nested prefix: %s", d.Marshal())
		}
		src = `<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="urn:taken"><References><File id="f1" href="a.vmdk"/></References></Envelope>`
		if d, err = Parse([]byte(src)); err != nil {
			t.Fatal(err)
		}
		if err := d.SetFileSize("a.vmdk", 9); err != nil {
			t.Fatal(err)
		}
		// Unqualified attributes stay unqualified: follow the document.
		if !strings.Contains(string(d.Marshal()), `<File id="f1" href="a.vmdk" size="9"/>`) {
			t.Errorf("unqualified: %s", d.Marshal())
		}
		src = `<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="urn:taken"><References><File/></References></Envelope>`
		doc, err := parseXML([]byte(src))
		if err != nil {
			t.Fatal(err)
		}
		f := doc.root.elements()[0].elements()[0]
		f.setAttr(NamespaceOVF1, "size", "1", "ovf")
		if got := string(doc.marshal()); !strings.Contains(got, `xmlns:ovf1="http://schemas.dmtf.org/ovf/envelope/1"`) || !strings.Contains(got, `<File ovf1:size="1"/>`) {
			t.Errorf("fresh prefix: %s", got)
		}
	})
	t.Run("errors", func(t *testing.T) {
		d := mustParse(t, "vsphere.ovf")
		if err := d.SetFileSize("nope.vmdk", 1); err == nil {
			t.Error("unknown href accepted")
		}
		if err := d.SetFileSize("web01-disk1.vmdk", -1); err == nil {
			t.Error("negative size accepted")
		}
	})
}

func TestRenameFile(t *testing.T) {
	d := mustParse(t, "vsphere.ovf")
	if err := d.RenameFile("web01-disk1.vmdk", "web01-1.vmdk"); err != nil {
		t.Fatal(err)
	}
	if _, ok := d.FileByHref("web01-1.vmdk"); !ok {
		t.Error("rename lost")
	}
	for _, bad := range []string{"../x.vmdk", "/etc/passwd", "web01-disk2.vmdk", "http://evil/x"} {
		if err := d.RenameFile("web01-1.vmdk", bad); err == nil {
			t.Errorf("rename to %q accepted", bad)
		}
	}
}

func TestParseErrors(t *testing.T) {
	deep := strings.Repeat("<a>", maxDepth+1) + strings.Repeat("</a>", maxDepth+1)
	env := func(body string) string {
		return `<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">` + body + `</Envelope>`
	}
	cases := map[string]struct{ in, want string }{
		"not xml":        {"hello", "text outside"},
		"empty":          {"", "no root element"},
		"dtd":            {`<!DOCTYPE lolz [<!ENTITY lol "lol">]><Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1"/>`, "DTD"},
		"entity":         {env("&lol;"), "invalid character entity"},
		"wrong root":     {`<Foo xmlns="http://schemas.dmtf.org/ovf/envelope/1"/>`, "not an OVF"},
		"wrong ns":       {`<Envelope xmlns="urn:nope"/>`, "not an OVF"},
		"ovf 0.9":        {`<Envelope xmlns="http://www.vmware.com/schema/ovf/1/envelope"/>`, "not an OVF"},
		"undeclared":     {env("<x:y/>"), "undeclared namespace prefix"},
		"undeclared att": {env(`<References x:a="1"/>`), "undeclared namespace prefix"},
		"mismatch":       {env("<References></DiskSection>"), "unexpected end tag </DiskSection>"},
		"unclosed":       {`<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1"><References>`, "unclosed element <References>"},
		"deep":           {env(deep), "nested deeper"},
		"two roots":      {env("") + "<Envelope/>", "root"},
		"text outside":   {env("") + "junk", "text outside"},
		"latin1":         {`<?xml version="1.0" encoding="ISO-8859-1"?>` + env(""), "unsupported encoding"},
		"dup attr":       {env(`<References a="1" a="2"/>`), "duplicate attribute"},
		"dup id":         {env(`<References><File ovf:id="a" ovf:href="x"/><File ovf:id="a" ovf:href="y"/></References>`), "duplicate file id"},
		"no href":        {env(`<References><File ovf:id="a"/></References>`), "without ovf:id or ovf:href"},
		"bad size":       {env(`<References><File ovf:id="a" ovf:href="x" ovf:size="-5"/></References>`), "bad ovf:size"},
		"zero chunk":     {env(`<References><File ovf:id="a" ovf:href="x" ovf:chunkSize="0"/></References>`), "bad ovf:chunkSize"},
		"bad ref":        {env(`<DiskSection><Disk ovf:diskId="d" ovf:capacity="1" ovf:fileRef="nope"/></DiskSection>`), "unknown file"},
		"bad capacity":   {env(`<DiskSection><Disk ovf:diskId="d" ovf:capacity="lots"/></DiskSection>`), "bad ovf:capacity"},
		"bad units":      {env(`<DiskSection><Disk ovf:diskId="d" ovf:capacity="1" ovf:capacityAllocationUnits="furlong"/></DiskSection>`), "not a byte unit"},
		"no capacity":    {env(`<DiskSection><Disk ovf:diskId="d"/></DiskSection>`), "no ovf:capacity"},
		"huge":           {strings.Repeat(" ", MaxDescriptorSize+1), "larger than"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(c.in))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want error containing %q", err, c.want)
			}
		})
	}
}

func TestValidatePackage(t *testing.T) {
	env := func(files string) *Descriptor {
		d, err := Parse([]byte(`<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"><References>` + files + `</References></Envelope>`))
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	for name, c := range map[string]struct{ files, want string }{
		"traversal": {`<File ovf:id="a" ovf:href="../a.vmdk"/>`, "escapes"},
		"absolute":  {`<File ovf:id="a" ovf:href="/etc/shadow"/>`, "absolute"},
		"url":       {`<File ovf:id="a" ovf:href="http://example.com/a.vmdk"/>`, "colon"},
		"dup":       {`<File ovf:id="a" ovf:href="A.vmdk"/><File ovf:id="b" ovf:href="a.VMDK"/>`, "collides"},
		"chunk":     {`<File ovf:id="a" ovf:href="a.vmdk" ovf:chunkSize="10"/>`, "without ovf:size"},
		"chunks":    {`<File ovf:id="a" ovf:href="a.vmdk" ovf:size="9000000000000" ovf:chunkSize="1"/>`, "more than"},
		"overflow":  {`<File ovf:id="a" ovf:href="a.vmdk" ovf:size="9223372036854775807" ovf:chunkSize="2"/>`, "more than"},
	} {
		t.Run(name, func(t *testing.T) {
			d := env(c.files)
			err := d.ValidatePackage()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want %q", err, c.want)
			}
			if _, err := d.PackageFiles(); err == nil {
				t.Error("PackageFiles accepted an invalid package")
			}
		})
	}
}

func TestParseByteUnits(t *testing.T) {
	for in, want := range map[string]int64{
		"": 1, "byte": 1, "byte * 2^10": 1024, "byte*2^30": 1 << 30, " byte * 2^20 ": 1 << 20,
		"byte * 10^9": 1e9, "byte * 1024": 1024, "byte * 2^10 * 1000": 1024000, "MegaBytes": 1 << 20,
		"GB": 1 << 30, "KiloBytes": 1024,
	} {
		if got, err := ParseByteUnits(in); err != nil || got != want {
			t.Errorf("%q: got %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"hertz * 10^6", "byte * 2^63", "byte * 2^70", "byte * x", "byte * 0", "byte * 1^3", "byte * 2^-1", "byte * 10^18 * 10"} {
		if _, err := ParseByteUnits(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func TestCheckPath(t *testing.T) {
	for _, ok := range []string{"a.vmdk", "disks/a.vmdk", "web01 (copy)-disk1.vmdk", "ünïcode.vmdk", "a..b", ".hidden"} {
		if err := CheckPath(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{
		"", "/abs", "../x", "a/../../x", "a/..", "./a", "a/./b", "a//b", "a/", `a\b`, `..\x`, "C:x", "http://x",
		"a\x00b", "a\nb", "\xff", strings.Repeat("a", 256), strings.Repeat("a/", 600),
	} {
		if err := CheckPath(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
