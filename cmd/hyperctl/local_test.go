package main

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hypersdk/hypersdk/client/clienttest"
	"github.com/hypersdk/hypersdk/providers/vsphere/vcsim"
)

func startVC(t *testing.T) *vcsim.Env {
	t.Helper()
	env, err := vcsim.Start(context.Background(), vcsim.Options{VMs: []vcsim.VMSpec{
		{Name: "app-01", Folder: "apps", Disks: []vcsim.DiskSpec{{Capacity: 32 << 20, Seed: 7, Used: 3 << 20}, {Capacity: 16 << 20, Seed: 8, Used: 1 << 20}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.Close() })
	return env
}

// `export --local` with govc's environment: no daemon, the same provider
// code, files verified by sha256sum against the simulator's bytes.
func TestExportLocalWithGovcEnvironment(t *testing.T) {
	vc := startVC(t)
	h := newHarness(t, clienttest.Options{})
	u := vc.URL()
	u.User = url.User(vc.Username())
	h.vars = map[string]string{"GOVC_URL": u.String(), "GOVC_PASSWORD": vc.Password(), "GOVC_INSECURE": "1"}
	out := filepath.Join(t.TempDir(), "app-01")
	r := h.run("export", "--local", "--vm", "/DC0/vm/apps/app-01", "--output", out).expect(t, 0, "exported /DC0/vm/apps/app-01", "hyperctl verify "+out, "sha256sum -c app-01.mf")
	if strings.Contains(r.stderr, "warning") {
		t.Errorf("unexpected warning: %s", r.stderr)
	}
	cmd := exec.Command("sha256sum", "-c", "app-01.mf")
	cmd.Dir = out
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum: %v\n%s", err, b)
	}
	src, _ := vc.VM("app-01")
	for _, d := range src.Disks {
		if !strings.Contains(r.stdout, d.SHA256) {
			t.Errorf("disk %s (%s) not in the output", d.TargetID, d.SHA256)
		}
	}
	if strings.Contains(r.stdout+r.stderr, vc.Password()) {
		t.Error("the password was printed")
	}
}

func TestExportLocalPasswordHandling(t *testing.T) {
	vc := startVC(t)
	h := newHarness(t, clienttest.Options{})
	u := vc.URL()
	u.User = url.UserPassword(vc.Username(), vc.Password())
	// A password in --url works, with a warning; --thumbprint pins the certificate.
	out := filepath.Join(t.TempDir(), "x")
	h.vars = map[string]string{}
	r := h.run("export", "--local", "--url", u.String(), "--thumbprint", vc.Thumbprint(), "--vm", "app-01", "--output", out, "--format", "ova", "-o", "json")
	r.expect(t, 0, "warning: a password in --url is visible in the process list")
	if _, err := os.Stat(filepath.Join(out, "app-01.ova")); err != nil {
		t.Fatal(err)
	}
	// No password anywhere and no terminal: a clear usage error.
	u.User = url.User(vc.Username())
	h.run("export", "--local", "--url", u.String(), "--vm", "app-01", "--output", out).expect(t, 2, "no password: set GOVC_PASSWORD")
	// A wrong password is an authentication error, not a crash.
	h.vars = map[string]string{"GOVC_PASSWORD": "wrong", "GOVC_INSECURE": "true"}
	h.run("export", "--local", "--url", u.String(), "--vm", "app-01", "--output", out).expect(t, 1, "authentication failed")
}
