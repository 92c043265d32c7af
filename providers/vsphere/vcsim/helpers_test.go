package vcsim

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/disk/disktest"
	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/nfc"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/progress"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

const mib = 1 << 20

// start starts an Env for a test and closes it at the end.
func start(t *testing.T, opts Options) *Env {
	t.Helper()
	env, err := Start(context.Background(), opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = env.Close() })
	return env
}

// login returns a logged-in client, logged out at the end of the test.
func login(t *testing.T, env *Env) *govmomi.Client {
	t.Helper()
	ctx := context.Background()
	c, err := env.NewClient(ctx)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { _ = c.Logout(context.Background()) })
	return c
}

func findVM(t *testing.T, c *govmomi.Client, path string) *object.VirtualMachine {
	t.Helper()
	vm, err := find.NewFinder(c.Client).VirtualMachine(context.Background(), path)
	if err != nil {
		t.Fatalf("find %s: %v", path, err)
	}
	return vm
}

// twoDiskVM is a powered-off VM with two disks on different controllers.
func twoDiskVM(name string) VMSpec {
	return VMSpec{
		Name: name, Folder: "test/export", GuestID: "ubuntu64Guest", CPUs: 2, MemoryMB: 2048, Firmware: "efi",
		Annotation: "two disks",
		Disks: []DiskSpec{
			{Capacity: 8 * mib, Seed: 11},
			{Capacity: 32 * mib, Seed: 12, Used: 4 * mib, Controller: "lsilogic"},
		},
	}
}

// exportLease runs ExportVm and waits for the lease to be ready.
func exportLease(t *testing.T, vm *object.VirtualMachine) (*nfc.Lease, *nfc.LeaseInfo) {
	t.Helper()
	ctx := context.Background()
	lease, err := vm.Export(ctx)
	if err != nil {
		t.Fatalf("ExportVm: %v", err)
	}
	info, err := lease.Wait(ctx, nil)
	if err != nil {
		t.Fatalf("lease.Wait: %v", err)
	}
	return lease, info
}

// download fetches every item of a lease with the lease's client into dir
// and returns the SHA-256 of each file by target ID.
func download(t *testing.T, lease *nfc.Lease, info *nfc.LeaseInfo, dir string) map[string]string {
	t.Helper()
	sums := map[string]string{}
	for _, item := range info.Items {
		p := filepath.Join(dir, item.Path)
		// Without a lease updater nobody reads the item's own progress
		// channel, so give the download a sink that discards reports.
		if err := lease.DownloadFile(context.Background(), p, item, soap.Download{Progress: discard{}}); err != nil {
			t.Fatalf("download %s: %v", item.Path, err)
		}
		sums[item.Path] = disktest.FileSHA256(t, p)
	}
	return sums
}

// discard is a progress sink that drops every report.
type discard struct{}

func (discard) Sink() chan<- progress.Report {
	ch := make(chan progress.Report)
	go func() {
		for range ch {
		}
	}()
	return ch
}

// faultOf returns the vSphere fault inside a govmomi error, or nil.
func faultOf(err error) types.BaseMethodFault {
	if err == nil {
		return nil
	}
	var f interface{ Fault() types.BaseMethodFault }
	if errors.As(err, &f) {
		return f.Fault()
	}
	return nil
}

// httpClient trusts the Env's certificate.
func httpClient(env *Env) *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: env.CertPool()}}}
}

// qemuImg returns the path of qemu-img, failing the test when it is missing.
func qemuImg(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("qemu-img")
	if err != nil {
		t.Fatalf("qemu-img not found (%v): install it with `apt-get install qemu-utils` (Debian/Ubuntu) or `dnf install qemu-img` (Fedora)", err)
	}
	return p
}

func runCmd(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// eventually polls cond until it holds; the limit only bounds a hang.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func errFmt(format string, args ...any) error { return fmt.Errorf(format, args...) }

func findVMNoFatal(ctx context.Context, c *govmomi.Client, path string) *object.VirtualMachine {
	vm, err := find.NewFinder(c.Client).VirtualMachine(ctx, path)
	if err != nil {
		return nil
	}
	return vm
}
