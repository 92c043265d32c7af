package client_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLightDependencies keeps the client free of the daemon: a program
// importing it must not compile a database engine, the job queue or the
// HTTP framework. The wire types come from the leaf package apitypes.
func TestLightDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/hypersdk/hypersdk/client").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	heavy := []string{
		"github.com/riverqueue/", "modernc.org/", "github.com/jackc/", "github.com/lib/pq",
		"github.com/danielgtaylor/huma", "github.com/go-chi/", "github.com/prometheus/",
		"github.com/hypersdk/hypersdk/daemon/",
	}
	var bad []string
	for _, pkg := range strings.Fields(string(out)) {
		for _, h := range heavy {
			if strings.HasPrefix(pkg, h) {
				bad = append(bad, pkg)
			}
		}
	}
	if len(bad) > 0 {
		t.Errorf("client depends on %d heavy packages; use apitypes instead:\n%s", len(bad), strings.Join(bad, "\n"))
	}
}
