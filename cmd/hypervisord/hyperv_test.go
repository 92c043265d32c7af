package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/disk/disktest"
	"github.com/hypersdk/hypersdk/ova"
	"github.com/hypersdk/hypersdk/providers/hyperv"
)

// --demo registers the Hyper-V demo as "demo-hyperv", healthy; its running
// two-disk Generation 2 VM is exported from the CLI to an OVA and to qcow2
// disks; both verify with hyperctl, the qcow2 disks are identical to the
// OVA's, and the dynamic disk is identical to the demo's VHDX as qemu-img
// reads it (qemu-img does not read differencing VHDX: the package tests
// check that disk against its known content).
func TestDemoHyperVExportFromTheCLI(t *testing.T) {
	disktest.QemuImg(t)
	hyperctl := buildHyperctl(t)
	dmn := newDaemon(t, "", "HYPERVISORD_TEST_REAL_PROVIDERS=1")
	dmn.start("--demo")
	if !strings.Contains(dmn.out.String(), "--provider demo-hyperv") {
		t.Fatalf("no Hyper-V demo instructions printed:\n%s", dmn.out.String())
	}
	env := []string{"HYPERSDK_DATA_DIR=" + dmn.dataDir}
	deadline := time.Now().Add(time.Minute)
	for {
		var provs struct{ Items []apitypes.ProviderInfo }
		dmn.call("GET", "/api/v1/providers", nil, &provs)
		i := slices.IndexFunc(provs.Items, func(p apitypes.ProviderInfo) bool { return p.Name == "demo-hyperv" })
		if i < 0 || provs.Items[i].Type != "hyperv" {
			t.Fatalf("no demo-hyperv provider of type hyperv: %+v", provs.Items)
		}
		if provs.Items[i].Health.Healthy {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo-hyperv not healthy: %+v\n%s", provs.Items[i].Health, dmn.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if out := runHyperctl(t, hyperctl, env, "vms", "list", "--provider", "demo-hyperv"); !strings.Contains(out, "web-1") || !strings.Contains(out, "db-1") {
		t.Fatalf("vms list:\n%s", out)
	}
	lastJob := func() *apitypes.Job {
		jobs := dmn.allJobs()
		slices.SortFunc(jobs, func(a, b *apitypes.Job) int { return a.CreatedAt.Compare(b.CreatedAt) })
		return jobs[len(jobs)-1]
	}

	out := runHyperctl(t, hyperctl, env, "export", "--provider", "demo-hyperv", "--vm", "web-1", "--format", "ova", "--wait")
	j := lastJob()
	if j.State != apitypes.JobSucceeded || j.Result == nil {
		t.Fatalf("OVA export %s: %s\n%s", j.State, j.Error, out)
	}
	archive := filepath.Join(j.Result.OutputDir, j.Result.OVAPath)
	runHyperctl(t, hyperctl, env, "ova", "verify", archive)
	ovaDir := t.TempDir()
	rep, err := ova.Extract(context.Background(), archive, ovaDir, ova.ExtractOptions{ReadOptions: ova.ReadOptions{RequireManifest: true}})
	if err != nil || !rep.Verified || !strings.HasSuffix(rep.DescriptorName, ".ovf") {
		t.Fatalf("OVA: %v (%+v)", err, rep)
	}

	out = runHyperctl(t, hyperctl, env, "export", "--provider", "demo-hyperv", "--vm", "web-1", "--format", "disks", "--disk-format", "qcow2", "--wait")
	j = lastJob()
	if j.State != apitypes.JobSucceeded || j.Result == nil {
		t.Fatalf("qcow2 export %s: %s\n%s", j.State, j.Error, out)
	}
	runHyperctl(t, hyperctl, env, "verify", j.Result.OutputDir)
	src := t.TempDir()
	host, err := hyperv.DemoHost(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	web1, err := host.LocalPath(`C:\Hyper-V\Virtual Hard Disks\web-1.vhdx`)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		q := filepath.Join(j.Result.OutputDir, fmt.Sprintf("web-1-disk-%d.qcow2", i))
		disktest.Check(t, q, "qcow2")
		disktest.Compare(t, q, "qcow2", filepath.Join(ovaDir, fmt.Sprintf("web-1-disk-%d.vmdk", i)), "vmdk")
	}
	disktest.Compare(t, filepath.Join(j.Result.OutputDir, "web-1-disk-0.qcow2"), "qcow2", web1, "vhdx")
}
