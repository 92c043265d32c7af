package vcsim

import (
	"bytes"
	"context"
	"crypto/tls"
	"net/url"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/hypersdk/hypersdk/disk"
	"github.com/hypersdk/hypersdk/disk/disktest"
	"github.com/hypersdk/hypersdk/vmdk"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/view"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

func TestStartClose(t *testing.T) {
	before := runtime.NumGoroutine()
	ctx := context.Background()
	env, err := Start(ctx, Options{
		Datacenters: 2, Clusters: 2, HostsPerCluster: 3, StandaloneHosts: 1, Datastores: 2,
		VMs: []VMSpec{{Name: "solo", Disks: []DiskSpec{{Capacity: 2 * mib, Seed: 1}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	u := env.URL()
	if u.Scheme != "https" || u.User != nil || u.Path != "/sdk" {
		t.Fatalf("URL %s must be https://host/sdk without credentials", u)
	}
	if env.Username() != DefaultUsername || len(env.Password()) < 16 {
		t.Fatalf("credentials %q / %d-char password", env.Username(), len(env.Password()))
	}
	if !bytes.Contains(env.CertificatePEM(), []byte("BEGIN CERTIFICATE")) {
		t.Fatal("no PEM certificate")
	}

	// The served certificate is the one exposed, with the same thumbprint.
	conn, err := tls.Dial("tcp", u.Host, &tls.Config{RootCAs: env.CertPool(), ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("TLS with the exposed certificate as CA: %v", err)
	}
	served := conn.ConnectionState().PeerCertificates[0]
	_ = conn.Close()
	if !served.Equal(env.Certificate()) || thumbprint(served) != env.Thumbprint() {
		t.Fatal("served certificate differs from Env.Certificate")
	}

	// Good credentials log in; a wrong password does not.
	c, err := env.NewClient(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sc := soap.NewClient(env.URL(), false)
	sc.DefaultTransport().TLSClientConfig.RootCAs = env.CertPool()
	vc, err := vim25.NewClient(ctx, sc)
	if err != nil {
		t.Fatal(err)
	}
	if err := session.NewManager(vc).Login(ctx, url.UserPassword(env.Username(), "wrong")); err == nil {
		t.Fatal("wrong password accepted")
	}

	// Inventory shape: 2 DCs × (2 clusters × 3 hosts + 1 standalone), 2 datastores each.
	m := view.NewManager(c.Client)
	count := func(kind string) int {
		v, err := m.CreateContainerView(ctx, c.ServiceContent.RootFolder, []string{kind}, true)
		if err != nil {
			t.Fatal(err)
		}
		defer v.Destroy(ctx)
		refs, err := v.Find(ctx, []string{kind}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return len(refs)
	}
	for kind, want := range map[string]int{"Datacenter": 2, "ClusterComputeResource": 4, "HostSystem": 14, "Datastore": 4, "VirtualMachine": 1} {
		if got := count(kind); got != want {
			t.Errorf("%d %s, want %d", got, kind, want)
		}
	}
	f := find.NewFinder(c.Client)
	if _, err := f.Datastore(ctx, "/DC1/datastore/LocalDS_1"); err != nil {
		t.Errorf("datastore LocalDS_1 of DC1: %v", err)
	}
	if err := c.Logout(ctx); err != nil {
		t.Fatal(err)
	}

	dir := env.Dir()
	if err := env.Close(); err != nil {
		t.Fatal(err)
	}
	if err := env.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("datastore directory %s survives Close: %v", dir, err)
	}
	// The server's goroutines end (client-side idle connections are closed
	// by the transports above going out of scope; allow for those).
	sc.CloseIdleConnections()
	c.Client.CloseIdleConnections()
	eventually(t, "goroutines to wind down", func() bool { return runtime.NumGoroutine() <= before+2 })
}

func TestCallerDirAndCredentials(t *testing.T) {
	dir := t.TempDir()
	env := start(t, Options{Dir: dir, Username: "alice@corp", Password: "s3cret",
		VMs: []VMSpec{{Name: "v1", Disks: []DiskSpec{{Capacity: mib, Seed: 3}}}}})
	vi, ok := env.VM("v1")
	if !ok || !strings.HasPrefix(vi.Disks[0].Path, dir) {
		t.Fatalf("disk %s not under Options.Dir %s", vi.Disks[0].Path, dir)
	}
	c := login(t, env)
	var sm mo.SessionManager
	if err := property.DefaultCollector(c.Client).RetrieveOne(context.Background(), *c.ServiceContent.SessionManager, []string{"currentSession"}, &sm); err != nil {
		t.Fatal(err)
	}
	if sm.CurrentSession.UserName != "alice@corp" {
		t.Fatalf("logged in as %q", sm.CurrentSession.UserName)
	}
	if err := env.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatal("caller's Dir must survive Close")
	}
	if _, err := os.Stat(vi.Disks[0].Path); !os.IsNotExist(err) {
		t.Fatal("VM files must be removed from the caller's Dir")
	}
}

func TestVMInfoAndDiskBytes(t *testing.T) {
	env := start(t, Options{VMs: []VMSpec{twoDiskVM("info-vm")}})
	vi, ok := env.VM("info-vm")
	if !ok {
		t.Fatal("VM not recorded")
	}
	if vi.InventoryPath != "/DC0/vm/test/export/info-vm" || vi.PowerState != types.VirtualMachinePowerStatePoweredOff {
		t.Fatalf("info %+v", vi)
	}
	if len(vi.Disks) != 2 || vi.NVRAM == nil {
		t.Fatalf("disks %d, nvram %v", len(vi.Disks), vi.NVRAM)
	}
	want := []struct{ id, target, ds, label string }{
		{"/" + vi.Ref.Value + "/ParaVirtualSCSIController0:0", "disk-0.vmdk", "[LocalDS_0] info-vm/info-vm.vmdk", "Hard disk 1"},
		{"/" + vi.Ref.Value + "/VirtualLsiLogicController1:0", "disk-1.vmdk", "[LocalDS_0] info-vm/info-vm_1.vmdk", "Hard disk 2"},
	}
	for i, d := range vi.Disks {
		if d.DeviceID != want[i].id || d.TargetID != want[i].target || d.DatastorePath != want[i].ds || d.Label != want[i].label {
			t.Errorf("disk %d: %+v", i, d)
		}
		// The stored file is a streamOptimized VMDK whose content is the raw disk.
		if got := disktest.FileSHA256(t, d.Path); got != d.SHA256 {
			t.Errorf("disk %d: file SHA %s, recorded %s", i, got, d.SHA256)
		}
		f, err := disk.OpenFile(d.Path)
		if err != nil {
			t.Fatal(err)
		}
		im, err := vmdk.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		info := im.Info()
		if info.Subformat != "streamOptimized" || info.VirtualSize != d.Capacity || f.Size != d.Size {
			t.Errorf("disk %d: %+v, size %d", i, info, f.Size)
		}
		if got := disktest.ImageSHA256(t, im); got != d.RawSHA256 {
			t.Errorf("disk %d: raw content SHA %s, recorded %s", i, got, d.RawSHA256)
		}
		_ = f.Close()
	}
	raw := vmdk.GenerateRaw(11, 8*mib)
	if got := disktest.SHA256(t, raw); got != vi.Disks[0].RawSHA256 {
		t.Errorf("RawSHA256 of a generated disk is not the SHA of vmdk.GenerateRaw(seed, capacity)")
	}
	if vi.NVRAM.DeviceID != "/"+vi.Ref.Value+"/nvram" || vi.NVRAM.TargetID != "disk-2.nvram" || vi.NVRAM.Size != 8684 {
		t.Errorf("nvram %+v", vi.NVRAM)
	}
}
