package main

import (
	"context"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hypersdk/hypersdk/client/clienttest"
	"github.com/hypersdk/hypersdk/config"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/providers/vsphere"
)

// onlyOVA fails unless dir holds exactly the archive name: the OVF
// folder's disks, descriptor and manifest were removed once packed.
func onlyOVA(t *testing.T, dir, name string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != 1 || names[0] != name {
		t.Fatalf("%s holds %v, want only %s", dir, names, name)
	}
}

// An OVA export through the daemon keeps no second copy of the disks by
// default, and `export --format ova --wait` names the archive by its full
// path; --keep-ovf keeps the folder's files.
func TestExportOVAWaitNamesArchiveAndKeepsNoOVFCopy(t *testing.T) {
	vc := startVC(t)
	p, err := vsphere.NewProvider("vc", vsphere.Config{URL: vc.URL().String(), Username: vc.Username(),
		Password: config.NewSecret(vc.Password()), Thumbprint: vc.Thumbprint()},
		vsphere.PoolConfig{Enabled: true, MaxConnections: 2}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Disconnect() })
	h := newHarness(t, clienttest.Options{Providers: []providers.Provider{p}})
	dir := filepath.Join(h.srv.ExportDir, "app")
	archive := filepath.Join(dir, "app-01.ova")
	h.run("export", "--provider", "vc", "--vm", "app-01", "--output", "app", "--format", "ova", "--wait").
		expect(t, 0, "succeeded: vc app-01", "archive: "+archive, "hyperctl ova verify "+archive)
	onlyOVA(t, dir, "app-01.ova")
	h.run("ova", "verify", archive).expect(t, 0)

	h.run("export", "--provider", "vc", "--vm", "app-01", "--output", "kept", "--format", "ova", "--keep-ovf", "--wait").expect(t, 0)
	for _, f := range []string{"app-01.ova", "app-01.ovf", "app-01.mf", "app-01-disk-0.vmdk"} {
		if _, err := os.Stat(filepath.Join(h.srv.ExportDir, "kept", f)); err != nil {
			t.Errorf("--keep-ovf: %v", err)
		}
	}
}

// `export --local --format ova` packs the same way and prints the
// archive's full path.
func TestExportLocalOVANamesArchive(t *testing.T) {
	vc := startVC(t)
	h := newHarness(t, clienttest.Options{})
	u := vc.URL()
	u.User = url.User(vc.Username())
	h.vars = map[string]string{"GOVC_URL": u.String(), "GOVC_PASSWORD": vc.Password(), "GOVC_INSECURE": "1"}
	out := filepath.Join(t.TempDir(), "app-01")
	archive := filepath.Join(out, "app-01.ova")
	r := h.run("export", "--local", "--vm", "app-01", "--output", out, "--format", "ova").expect(t, 0, "archive: "+archive)
	if strings.Contains(r.stdout, "sha256sum -c") {
		t.Errorf("suggests checking a manifest that is inside the archive:\n%s", r.stdout)
	}
	onlyOVA(t, out, "app-01.ova")
}
