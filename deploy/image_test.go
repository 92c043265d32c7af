package deploy

import (
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

// The image works as built: the binaries the Dockerfile's build command
// produces are static, and started as the image starts them (ENTRYPOINT,
// ENV, USER, its configuration file) on a read-only root with only the data
// volume and /tmp writable, hypervisord --demo serves, its HEALTHCHECK
// passes, `hyperctl` in the container (as `docker exec` runs it) exports a
// demo VM into the volume and verifies it, and nothing outside the volume
// and /tmp changes. After SIGTERM the daemon exits cleanly and the
// HEALTHCHECK fails.
func TestImageRunsOnReadOnlyRoot(t *testing.T) {
	d := parseDockerfile(t)
	final := d.final()
	r := imageRoot(t)
	for _, bin := range []string{"hypervisord", "hyperctl"} {
		if !isStatic(t, r.path("/usr/local/bin/"+bin)) {
			t.Errorf("%s is dynamically linked: it cannot run on distroless/static", bin)
		}
	}
	env := stageEnv(final)
	dataDir := env["HYPERSDK_DATA_DIR"]
	entry := commandsOf[*instructions.EntrypointCommand](final)[0].CmdLine
	health := commandsOf[*instructions.HealthCheckCommand](final)[0].Health.Test[1:]
	listen := "HYPERSDK_API_LISTEN=" + freeListen(t)

	before := r.snapshot()
	dmn := r.start(dataDir, append(append([]string(nil), entry...), "--demo"), listen)

	code, out := r.run(health, listen)
	if code != 0 || !strings.Contains(out, "healthy") {
		t.Fatalf("HEALTHCHECK %v: exit %d: %s\ndaemon:\n%s", health, code, out, dmn.out.String())
	}

	hyperctl := "/usr/local/bin/hyperctl"
	code, out = r.run([]string{hyperctl, "export", "--provider", "demo", "--vm", "/DC0/vm/production/db/db-01", "--output", "db-01", "--wait"}, listen)
	if code != 0 {
		t.Fatalf("hyperctl export in the container: exit %d: %s\ndaemon:\n%s", code, out, dmn.out.String())
	}
	exportDir := path.Join(dataDir, "exports", "db-01")
	if code, out := r.run([]string{hyperctl, "verify", exportDir}, listen); code != 0 {
		t.Fatalf("hyperctl verify %s: exit %d: %s", exportDir, code, out)
	}
	// And an independent check of the manifest, outside the container.
	mfs, _ := filepath.Glob(filepath.Join(r.path(exportDir), "*.mf"))
	if len(mfs) != 1 {
		t.Fatalf("export %s: manifests %v", exportDir, mfs)
	}
	sum := exec.Command("sha256sum", "-c", filepath.Base(mfs[0]))
	sum.Dir = r.path(exportDir)
	if out, err := sum.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum -c of %s: %v\n%s", mfs[0], err, out)
	}

	dmn.stop(t)
	if code, out := r.run(health, listen); code != 1 {
		t.Errorf("HEALTHCHECK with the daemon stopped: exit %d (want 1): %s", code, out)
	}
	r.unchangedSince(before)
	if strings.Contains(dmn.out.String(), "read-only file system") || strings.Contains(dmn.out.String(), "permission denied") {
		t.Errorf("the daemon hit a write outside its volumes:\n%s", dmn.out.String())
	}
}
