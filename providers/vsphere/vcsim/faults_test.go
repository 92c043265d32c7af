package vcsim

import (
	"context"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/view"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

func TestFaultRules(t *testing.T) {
	ctx := context.Background()
	env := start(t, Options{VMs: []VMSpec{twoDiskVM("f1"), twoDiskVM("f2")}})
	c := login(t, env)
	v1, _ := env.VM("f1")
	v2, _ := env.VM("f2")
	vm1, vm2 := findVM(t, c, v1.InventoryPath), findVM(t, c, v2.InventoryPath)

	// A failing ExportVm, once, for one VM only.
	rule := env.AddFault(FaultRule{Method: "ExportVm", Object: "f1", Fault: &types.FileLocked{}, Times: 1})
	if l, err := vm2.Export(ctx); err != nil {
		t.Fatalf("rule for f1 hit f2: %v", err)
	} else if err := l.Abort(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := vm1.Export(ctx); faultType(err) != "FileLocked" {
		t.Fatalf("first ExportVm of f1: %v, want FileLocked", err)
	}
	l1, _ := exportLease(t, vm1)
	if rule.Hits() != 1 {
		t.Fatalf("%d hits", rule.Hits())
	}
	_ = l1.Abort(ctx, nil)
	rule.Remove()

	// A lease that fails on the host side.
	env.AddFault(FaultRule{Method: "ExportVm", LeaseError: true, Fault: &types.FileNotFound{FileFault: types.FileFault{File: "[LocalDS_0] f1/f1.vmdk"}}, Times: 1})
	lease, err := vm1.Export(ctx)
	if err != nil {
		t.Fatalf("ExportVm with a failing lease must succeed: %v", err)
	}
	if _, err := lease.Wait(ctx, nil); faultType(err) != "FileNotFound" {
		t.Fatalf("lease.Wait: %v, want FileNotFound", err)
	}
	rec, _ := env.Lease(lease.Reference())
	if rec.Outcome != LeaseFailed {
		t.Fatalf("record %+v", rec)
	}
	l2, _ := exportLease(t, vm1) // the VM is not left locked
	_ = l2.Complete(ctx)

	// Skip and Times: let one call through, fail the next, then stop.
	env.AddFault(FaultRule{Method: "CurrentTime", Skip: 1, Times: 1, Fault: &types.NotAuthenticated{}})
	now := func() error {
		_, err := methods.GetCurrentTime(ctx, c.Client)
		return err
	}
	if err := now(); err != nil {
		t.Fatal(err)
	}
	if err := now(); faultType(err) != "NotAuthenticated" {
		t.Fatalf("second call: %v", err)
	}
	if err := now(); err != nil {
		t.Fatal(err)
	}

	// Slow calls still answer; lease methods can be targeted by type.
	slow := env.AddFault(FaultRule{Method: "RetrievePropertiesEx", Delay: 20 * time.Millisecond, Times: 2})
	var o mo.VirtualMachine
	for range 3 {
		if err := property.DefaultCollector(c.Client).RetrieveOne(ctx, v1.Ref, []string{"name"}, &o); err != nil || o.Name != "f1" {
			t.Fatalf("slow call: %v", err)
		}
	}
	if slow.Hits() != 2 {
		t.Fatalf("slow rule hit %d times", slow.Hits())
	}
	env.ClearFaults()
	env.AddFault(FaultRule{Method: "HttpNfcLeaseProgress", Object: "HttpNfcLease", Fault: &types.Timedout{}})
	l3, _ := exportLease(t, vm2)
	if err := l3.Progress(ctx, 1); faultType(err) != "Timedout" {
		t.Fatalf("progress: %v", err)
	}
	env.ClearFaults()
	if err := l3.Complete(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestExpireSessions(t *testing.T) {
	ctx := context.Background()
	env := start(t, Options{})
	c1, c2 := login(t, env), login(t, env)
	if n := env.ExpireSessions(ctx); n != 2 {
		t.Fatalf("expired %d sessions, want 2", n)
	}
	if _, err := methods.GetCurrentTime(ctx, c1.Client); faultType(err) != "NotAuthenticated" {
		t.Fatalf("call after expiry: %v, want NotAuthenticated", err)
	}
	if ok, _ := c2.SessionManager.SessionIsActive(ctx); ok {
		t.Fatal("expired session still active")
	}
	// Logging in again works.
	if err := c1.Login(ctx, url.UserPassword(env.Username(), env.Password())); err != nil {
		t.Fatal(err)
	}
	if _, err := methods.GetCurrentTime(ctx, c1.Client); err != nil {
		t.Fatal(err)
	}
	if n := env.ExpireSessions(ctx); n != 1 {
		t.Fatalf("expired %d sessions, want 1", n)
	}
}

// TestConcurrentClients runs what a connection pool does — many sessions
// reading inventory while others export — with a fault rule active, so the
// race detector sees the extension points under load.
func TestConcurrentClients(t *testing.T) {
	ctx := context.Background()
	env := start(t, Options{GenericVMs: 30, VMs: []VMSpec{twoDiskVM("c1"), twoDiskVM("c2"), twoDiskVM("c3")}})
	env.AddFault(FaultRule{Method: "*", Delay: time.Millisecond})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 3 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			c, err := env.NewClient(ctx)
			if err != nil {
				errs <- err
				return
			}
			defer c.Logout(ctx)
			v, err := view.NewManager(c.Client).CreateContainerView(ctx, c.ServiceContent.RootFolder, []string{"VirtualMachine"}, true)
			if err != nil {
				errs <- err
				return
			}
			for range 5 {
				var vms []mo.VirtualMachine
				if err := v.Retrieve(ctx, []string{"VirtualMachine"}, []string{"name", "runtime.powerState", "config.hardware.device"}, &vms); err != nil {
					errs <- err
					return
				}
				if len(vms) != 33 {
					errs <- errFmt("saw %d VMs", len(vms))
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			c, err := env.NewClient(ctx)
			if err != nil {
				errs <- err
				return
			}
			defer c.Logout(ctx)
			vi, _ := env.VM([]string{"c1", "c2", "c3"}[i])
			vm := findVMNoFatal(ctx, c, vi.InventoryPath)
			if vm == nil {
				errs <- errFmt("VM %s not found", vi.Name)
				return
			}
			lease, err := vm.Export(ctx)
			if err != nil {
				errs <- err
				return
			}
			if _, err := lease.Wait(ctx, nil); err != nil {
				errs <- err
				return
			}
			for p := int32(10); p <= 100; p += 30 {
				if err := lease.Progress(ctx, p); err != nil {
					errs <- err
					return
				}
			}
			if err := lease.Complete(ctx); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, r := range env.Leases() {
		if r.Outcome != LeaseCompleted || r.ProgressCalls != 4 {
			t.Errorf("lease %+v", r)
		}
	}
}
