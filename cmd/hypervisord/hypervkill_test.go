package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/providers/hyperv"
	"github.com/hypersdk/hypersdk/providers/hyperv/winrmfake"
)

// A Hyper-V export whose daemon is SIGKILLed while the host exports the
// job's checkpoint is retried by the restarted daemon: the attempt removes
// the checkpoint and staging folder the killed one left, makes its own,
// succeeds, and leaves nothing on the host. The fake host lives in this
// process, so it outlives the daemon and is asked what is left. The WinRM
// password is in no log line of either run.
func TestHyperVExportResumesAfterSIGKILL(t *testing.T) {
	t.Parallel()
	const (
		user, password, sftpPassword = `LAB\kill9`, "Kill9-WinRM-Password-Value", "Kill9-SFTP-Password-Value"
		staging                      = `C:\HyperSDK`
	)
	host, err := hyperv.DemoHost(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	stagingDir, err := host.LocalPath(staging)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(stagingDir, 0o755); err != nil {
		t.Fatal(err)
	}
	srv := winrmfake.NewTLS(winrmfake.Options{Username: user, Password: password, Host: host})
	t.Cleanup(srv.Close)
	sf, err := winrmfake.StartSFTP(stagingDir, "exporter", sftpPassword, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sf.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, []byte(srv.CAPEM()), 0o644); err != nil {
		t.Fatal(err)
	}
	hostName, port, _ := strings.Cut(srv.Addr(), ":")
	host.Block("export-checkpoint", true)

	dmn := newDaemon(t, fmt.Sprintf(`
jobs:
  heartbeat_stale: 5s
providers:
  - name: hv1
    type: hyperv
    host: %s
    port: %s
    auth: basic
    username: '%s'
    password: {env: TEST_HV_PASSWORD}
    ca_file: %s
    staging_path: '%s'
    files:
      method: sftp
      sftp:
        addr: %s
        username: exporter
        password: {env: TEST_SFTP_PASSWORD}
        host_key_fingerprints: ['%s']
        dir: /
`, hostName, port, user, ca, staging, sf.Addr(), sf.Fingerprint()),
		"HYPERVISORD_TEST_REAL_PROVIDERS=1", "TEST_HV_PASSWORD="+password, "TEST_SFTP_PASSWORD="+sftpPassword)
	dmn.start()
	var j apitypes.Job
	if code := dmn.call("POST", "/api/v1/jobs", map[string]any{
		"provider": "hv1", "vm": "web-1", "format": "disks", "disk_format": "qcow2",
	}, &j); code != 201 {
		t.Fatalf("submit: %d\n%s", code, dmn.out.String())
	}
	calls := func(name string) (n int) {
		for _, c := range host.Calls() {
			if c.Name == name {
				n++
			}
		}
		return n
	}
	waitUntil(t, "the host exporting the job's checkpoint", time.Minute, func() bool {
		return calls("export-checkpoint") == 1 && len(host.Checkpoints()) == 1
	})
	dmn.kill()
	if cps := host.Checkpoints(); len(cps) != 1 || cps[0].Name != "hypersdk-"+j.ID {
		t.Fatalf("checkpoints after the kill: %+v, want the job's", cps)
	}
	host.Block("export-checkpoint", false)

	dmn.start()
	waitJob(t, dmn, &j, 3*time.Minute)
	if j.State != apitypes.JobSucceeded {
		t.Fatalf("export %s: %s\n%s", j.State, j.Error, dmn.out.String())
	}
	if j.Attempt < 2 {
		t.Errorf("the job finished in attempt %d; the kill did not interrupt it", j.Attempt)
	}
	if n := calls("checkpoint"); n != 2 {
		t.Errorf("%d checkpoints made, want one per attempt", n)
	}
	if cps := host.Checkpoints(); len(cps) != 0 {
		t.Errorf("checkpoints left: %+v", cps)
	}
	if left, _ := host.StagingFolders(staging); len(left) != 0 {
		t.Errorf("staging folders left: %v", left)
	}
	avhdx, _ := filepath.Glob(filepath.Join(host.Root, "C", "Hyper-V", "Virtual Hard Disks", "*.avhdx"))
	if len(avhdx) != 1 {
		t.Errorf("differencing disks on the host: %v, want only the demo's own", avhdx)
	}
	disks, _ := filepath.Glob(filepath.Join(j.Result.OutputDir, "*.qcow2"))
	if len(disks) != 2 {
		t.Errorf("disks exported: %v", disks)
	}
	for _, s := range []string{password, sftpPassword} {
		if strings.Contains(dmn.out.String(), s) {
			t.Error("a password is in the daemon's output")
		}
	}
}
