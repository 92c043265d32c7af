package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/client/clienttest"
)

// The API's field errors name the flag the user typed, whether the daemon's
// engine or huma's schema refused the field, for every command that
// submits a body.
func TestErrorsNameFlags(t *testing.T) {
	t.Parallel()
	h := newHarness(t, clienttest.Options{})
	r := h.run("export", "--provider", "lab", "--vm", "vm-001", "--output", "/not/allowed").
		expect(t, 1, "invalid job request (HTTP 422 invalid-job-request)", `  --output: "/not/allowed" is outside the allowed export roots`)
	if strings.Contains(r.stderr, "body.output") || strings.Contains(r.stderr, "\n  output:") {
		t.Fatalf("API field named:\n%s", r.stderr)
	}
	h.run("jobs", "submit", "--provider", "lab", "--vm", "vm-001", "--compression-level", "12").
		expect(t, 1, "  --compression-level: expected number <= 9 (got 12)")
	h.run("jobs", "submit", "--provider", "nope", "--vm", "vm-001", "--compress", "--format", "ovf").
		expect(t, 1, `  --provider: no provider named "nope" is configured`, "  --compress: only OVA exports are compressed")
	// Schedules: the template's fields (body.job.output) and the arguments.
	h.run("schedules", "create", "n1", "0 3 * * *", "--provider", "lab", "--vm", "vm-001", "--output", "/not/allowed", "--timezone", "Mars/Olympus").
		expect(t, 1, `  --output: "/not/allowed" is outside`, `  --timezone: timezone "Mars/Olympus"`)
	h.run("schedules", "create", "n2", "0 3 * *", "--provider", "lab", "--vm", "vm-001", "--parallel", "99").
		expect(t, 1, "  --parallel: expected number <= 32")
	h.run("schedules", "create", "n3", "0 3 * *", "--provider", "lab", "--vm", "vm-001").
		expect(t, 1, "  argument CRON: ")
	h.run("schedules", "create", "sch_x", "0 3 * * *", "--provider", "lab", "--vm", "vm-001").
		expect(t, 1, "  argument NAME: names starting with sch_ are reserved")
	// Webhooks (admin): huma's schema check of max_retries.
	h.as(clienttest.AdminToken, "webhooks", "add", "http://127.0.0.1:9/x", "--events", "job.*", "--max-retries", "99").
		expect(t, 1, "  --max-retries: expected number <= 50")
	// export --local checks options before connecting, in the same words.
	h.run("export", "--local", "--url", "https://127.0.0.1:9/sdk", "--vm", "x", "--compression-level", "12", "--power-off-timeout", "soon").
		expect(t, 2, "  --compression-level: must be between 0 and 9, got 12", `  --power-off-timeout: must be a positive duration such as 5m, got "soon"`)
}

// `hyperctl version` shows the client's build and the daemon's version; an
// unreachable daemon is said so, failing only when --server named it.
func TestVersion(t *testing.T) {
	t.Parallel()
	h := newHarness(t, clienttest.Options{})
	r := h.run("version").expect(t, 0, "Client:", "Server:")
	if !strings.Contains(r.stdout, "Client:  "+buildVersion()+" (") || !strings.Contains(r.stdout, "Server:  clienttest ("+h.srv.URL) {
		t.Fatalf("version:\n%s", r.stdout)
	}
	var info versionInfo
	if err := json.Unmarshal([]byte(h.run("version", "-o", "json").expect(t, 0).stdout), &info); err != nil {
		t.Fatal(err)
	}
	if info.Client.Version != buildVersion() || info.Client.Go == "" || info.Server.Version != "clienttest" || info.Server.URL != h.srv.URL {
		t.Fatalf("json %+v %+v", info.Client, info.Server)
	}
	h.vars["HYPERSDK_SERVER"] = "http://127.0.0.1:1"
	h.run("version").expect(t, 0, "Client:  "+buildVersion(), "Server:  unknown: unreachable at http://127.0.0.1:1")
	h.run("version", "--server", "http://127.0.0.1:1").expect(t, 1, "Server:  unknown: unreachable", "cannot reach hypervisord")
}

// export --local --demo needs no vCenter: the demo VMs in process, and the
// export's manifest verifies.
func TestExportLocalDemo(t *testing.T) {
	h := newHarness(t, clienttest.Options{})
	// The demo generates ~190 MiB of disk content: slow under -race.
	h.timeout = 5 * time.Minute
	dir := t.TempDir()
	r := h.run("export", "--local", "--demo", "--vm", "dev-ubuntu-01", "--output", filepath.Join(dir, "out")).
		expect(t, 0, "exported /DC0/vm/dev/dev-ubuntu-01", "demo: a simulated vCenter")
	out := filepath.Join(dir, "out")
	mf, err := os.ReadFile(filepath.Join(out, "dev-ubuntu-01.mf"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(mf)), "\n")
	if len(lines) < 2 {
		t.Fatalf("manifest:\n%s", mf)
	}
	for _, l := range lines { // SHA256(file)= hex
		name, sum, ok := strings.Cut(strings.TrimPrefix(l, "SHA256("), ")= ")
		if !ok || sha256File(t, filepath.Join(out, name)) != sum || !strings.Contains(r.stdout, sum) {
			t.Fatalf("manifest line %q does not match the file", l)
		}
	}
	cmd := exec.Command("sha256sum", "-c", "dev-ubuntu-01.mf")
	cmd.Dir = out
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum: %v\n%s", err, b)
	}
	// Without --vm the demo VMs are named; --demo without --local is refused.
	h.run("export", "--local", "--demo").expect(t, 2, "--vm is required (the demo VMs: web-01, db-01")
	h.run("export", "--demo", "--vm", "db-01").expect(t, 2, "--demo applies only with --local")
	h.run("export", "--local", "--demo", "--url", "https://x/sdk", "--vm", "db-01").expect(t, 2, "--url and --demo exclude each other")
}
