package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/disk/disktest"
	"github.com/hypersdk/hypersdk/ova"
	"github.com/hypersdk/hypersdk/providers/proxmox/pvefake"
)

// hypervisord --demo registers the Proxmox VE demo as "demo-proxmox",
// reported healthy; from the CLI (hyperctl, as a user runs it) its VMs
// are listed, the two-disk VM web-1 is exported as qcow2 disks (manifest
// verifies, qemu-img check clean, identical to the demo's disks) and as
// an OVA (it validates), and the container is refused with the reason.
func TestDemoProxmoxFromTheCLI(t *testing.T) {
	disktest.QemuImg(t)
	hyperctl := buildHyperctl(t)
	dmn := newDaemon(t, "", "HYPERVISORD_TEST_REAL_PROVIDERS=1")
	dmn.start("--demo")
	if !strings.Contains(dmn.out.String(), "--provider demo-proxmox") {
		t.Fatalf("no Proxmox demo instructions printed:\n%s", dmn.out.String())
	}
	env := []string{"HYPERSDK_DATA_DIR=" + dmn.dataDir}
	deadline := time.Now().Add(time.Minute)
	for {
		out := runHyperctl(t, hyperctl, env, "providers", "list")
		if line := lineWith(out, "demo-proxmox"); strings.Contains(line, "proxmox") && strings.Contains(strings.ToLower(line), "healthy") && !strings.Contains(strings.ToLower(line), "unhealthy") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo-proxmox not healthy:\n%s\n%s", out, dmn.out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	vms := runHyperctl(t, hyperctl, env, "vms", "list", "--provider", "demo-proxmox")
	for _, name := range []string{"web-1", "db-1", "ct-1"} {
		if !strings.Contains(vms, name) {
			t.Errorf("vms list lacks %s:\n%s", name, vms)
		}
	}

	runHyperctl(t, hyperctl, env, "export", "--provider", "demo-proxmox", "--vm", "web-1", "--format", "disks", "--disk-format", "qcow2", "--wait")
	j := lastJob(t, dmn)
	if j.State != apitypes.JobSucceeded {
		t.Fatalf("qcow2 export %s: %s", j.State, j.Error)
	}
	dir := j.Result.OutputDir
	check := exec.Command("sha256sum", "--strict", "-c", j.Result.Manifest)
	check.Dir = dir
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum -c: %v\n%s", err, out)
	}
	// The demo's disks are pvefake's sample layout: made again here.
	for i, size := range []int64{40<<20 + 20<<10 + 512, 24<<20 + 4<<10} {
		img := filepath.Join(dir, "web-1-disk-"+string(rune('0'+i))+".qcow2")
		disktest.Check(t, img, "qcow2")
		want := filepath.Join(t.TempDir(), "want.raw")
		if err := pvefake.WriteSampleDisk(want, size, uint64(i+1)); err != nil {
			t.Fatal(err)
		}
		disktest.Compare(t, img, "qcow2", want, "raw")
	}

	runHyperctl(t, hyperctl, env, "export", "--provider", "demo-proxmox", "--vm", "web-1", "--format", "ova", "--wait")
	j = lastJob(t, dmn)
	if j.State != apitypes.JobSucceeded || j.Result.OVAPath == "" {
		t.Fatalf("OVA export %s: %s", j.State, j.Error)
	}
	rep, err := ova.Validate(context.Background(), filepath.Join(j.Result.OutputDir, j.Result.OVAPath), ova.ReadOptions{})
	if err != nil || !rep.Verified || !strings.HasSuffix(rep.Members[0].Name, ".ovf") {
		t.Errorf("OVA: %v (report %+v)", err, rep)
	}

	cmd := exec.Command(hyperctl, "export", "--provider", "demo-proxmox", "--vm", "ct-1", "--wait")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "LXC container") {
		t.Errorf("export of the container: %v\n%s", err, out)
	}
}

func lineWith(text, s string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// lastJob returns the most recently created job.
func lastJob(t *testing.T, dmn *daemon) *apitypes.Job {
	t.Helper()
	jobs := dmn.allJobs()
	if len(jobs) == 0 {
		t.Fatal("no job")
	}
	last := jobs[0]
	for _, j := range jobs {
		if j.CreatedAt.After(last.CreatedAt) {
			last = j
		}
	}
	var full apitypes.Job
	dmn.call("GET", "/api/v1/jobs/"+last.ID, nil, &full)
	return &full
}

// A Proxmox provider's password, API token secret and SSH private key
// appear nowhere a user or another system can read: the daemon's log,
// the API's answers (providers, jobs, job logs), hyperctl's output —
// through exports with ticket and token auth, one refused (a container).
func TestProxmoxSecretsNeverShown(t *testing.T) {
	const (
		password = "Pve-pw-4c1d9e-must-not-leak"
		secret   = "8a7b6c5d-pve-token-must-not-leak"
	)
	dir := t.TempDir()
	inv, err := pvefake.SampleInventory(dir, pvefake.SampleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := pvefake.NewState(filepath.Join(dir, "state"), inv)
	if err != nil {
		t.Fatal(err)
	}
	srv := pvefake.New(pvefake.Options{State: st, Users: map[string]string{"exporter@pve": password},
		Tokens: map[string]string{"exporter@pve!ci": secret}})
	srv.Start()
	t.Cleanup(srv.Close)
	sshd, err := pvefake.StartSSH(st, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sshd.Close)
	keyFile := filepath.Join(dir, "pve_ed25519")
	if err := os.WriteFile(keyFile, sshd.ClientKey, 0o600); err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(sshd.Addr, ":")
	common := fmt.Sprintf(`    url: %s
    thumbprint: %s
    ssh:
      user: root
      private_key: {file: %s}
      nodes:
        pve1: {host: %s, port: %s, host_key_fingerprint: "%s"}
        pve2: {host: %s, port: %s, host_key_fingerprint: "%s"}
`, srv.URL(), srv.Thumbprint(), keyFile, host, port, sshd.Fingerprint, host, port, sshd.Fingerprint)
	dmn := newDaemon(t, `providers:
  - name: pve-ticket
    type: proxmox
    username: exporter@pve
    password: {env: TEST_PVE_PASSWORD}
`+common+`  - name: pve-token
    type: proxmox
    token_id: exporter@pve!ci
    token_secret: {env: TEST_PVE_TOKEN}
`+common, "HYPERVISORD_TEST_REAL_PROVIDERS=1", "TEST_PVE_PASSWORD="+password, "TEST_PVE_TOKEN="+secret)
	dmn.start()
	hyperctl := buildHyperctl(t)
	env := []string{"HYPERSDK_DATA_DIR=" + dmn.dataDir}
	var shown strings.Builder
	see := func(s string) { shown.WriteString(s + "\n") }
	key := strings.Split(strings.TrimSpace(string(sshd.ClientKey)), "\n")[2] // a line of the key's body

	for _, prov := range []string{"pve-ticket", "pve-token"} {
		see(runHyperctl(t, hyperctl, env, "export", "--provider", prov, "--vm", "db-1", "--format", "disks", "--disk-format", "raw", "--wait"))
		j := lastJob(t, dmn)
		if j.State != apitypes.JobSucceeded {
			t.Fatalf("%s: export %s: %s\n%s", prov, j.State, j.Error, dmn.out.String())
		}
		see(runHyperctl(t, hyperctl, env, "jobs", "get", j.ID))
		see(runHyperctl(t, hyperctl, env, "jobs", "logs", j.ID))
		cmd := exec.Command(hyperctl, "export", "--provider", prov, "--vm", "ct-1", "--wait")
		cmd.Env = append(os.Environ(), env...)
		out, _ := cmd.CombinedOutput()
		see(string(out))
	}
	see(runHyperctl(t, hyperctl, env, "providers", "list"))
	see(runHyperctl(t, hyperctl, env, "vms", "list", "--provider", "pve-token"))
	for _, path := range []string{"/api/v1/providers", "/api/v1/jobs?limit=100"} {
		var v any
		dmn.call("GET", path, nil, &v)
		b, _ := json.Marshal(v)
		see(string(b))
	}
	for _, j := range dmn.allJobs() {
		var v any
		dmn.call("GET", "/api/v1/jobs/"+j.ID+"/logs", nil, &v)
		b, _ := json.Marshal(v)
		see(string(b))
	}
	see(dmn.out.String())
	if !strings.Contains(shown.String(), "LXC container") || !strings.Contains(shown.String(), "db-1-disk-0.raw") {
		t.Fatalf("the surfaces checked do not show the exports:\n%s", shown.String())
	}
	for name, s := range map[string]string{"password": password, "token secret": secret, "SSH key": key} {
		if strings.Contains(shown.String(), s) {
			t.Errorf("the %s is shown", name)
		}
	}
}
