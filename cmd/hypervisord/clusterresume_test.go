package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/daemon/store/storetest"
	"github.com/hypersdk/hypersdk/providers"
)

// TestClusterRescueResumesBlockDownload: a bandwidth-capped demo-aws
// export (files-1, 32 MiB of data in EBS blocks) runs on one of two
// daemons sharing PostgreSQL and the exports directory; that daemon is
// SIGKILLed once the block journal in the job's output directory records
// some blocks. The other daemon rescues the job and resumes the download:
// its result reports resumed bytes (the blocks the journal recorded, not
// fetched again), and the disk is the same, byte for byte, as an
// uninterrupted export of the same instance. This works because every
// demo process simulates the account alike (the job's snapshot ids derive
// from the volume and the job) and the exports directory is shared.
func TestClusterRescueResumesBlockDownload(t *testing.T) {
	const (
		dataBytes = 32 << 20 // files-1's data
		rate      = 2 << 20  // bytes a second: 16 s for the whole volume
	)
	cfg := fmt.Sprintf(`
database:
  url: %q
export:
  output_dir: %s
  format: disks
  disk_format: qcow2
jobs:
  heartbeat_stale: 5s
  retry_backoff: 1s
cluster:
  heartbeat_interval: 500ms
  dead_after: 5s
`, storetest.PostgresURL(t), filepath.Join(t.TempDir(), "exports"))
	nodes := startCluster(t, 2, cfg)
	ids := []string{nodes[0].nodeID(), nodes[1].nodeID()}

	var j apitypes.Job
	if code := nodes[0].call("POST", "/api/v1/jobs", map[string]any{
		"provider": demoAWSProvider, "vm": "files-1", "max_attempts": 5, "bandwidth_limit": rate,
	}, &j); code != 201 {
		t.Fatalf("submit: HTTP %d", code)
	}
	outDir := j.Spec.Options.OutputDir

	// Kill the daemon running it once the journal holds a batch and a
	// quarter of the data has moved.
	var seen int64
	waitUntil(t, "the export running with blocks journaled", 2*time.Minute, func() bool {
		nodes[0].call("GET", "/api/v1/jobs/"+j.ID, nil, &j)
		if j.State.Terminal() {
			t.Fatalf("the export ended %s before it could be interrupted: %s", j.State, j.Error)
		}
		seen = j.Progress.BytesDone
		return j.State == apitypes.JobRunning && j.Node != "" && seen >= dataBytes/4 && journalHasBatch(t, outDir)
	})
	vi := 0
	if j.Node == ids[1] {
		vi = 1
	}
	victim, survivor := nodes[vi], nodes[1-vi]
	victim.kill()
	t.Logf("killed %s with %d MiB of the export's progress seen", ids[vi], seen>>20)

	waitUntil(t, "the rescued export done", 3*time.Minute, func() bool {
		survivor.call("GET", "/api/v1/jobs/"+j.ID, nil, &j)
		return j.State.Terminal()
	})
	if j.State != apitypes.JobSucceeded {
		t.Fatalf("rescued export %s: %s", j.State, j.Error)
	}
	if j.Node == ids[vi] || j.Attempt < 2 {
		t.Fatalf("the export finished on %s in attempt %d; want a later attempt on %s", j.Node, j.Attempt, ids[1-vi])
	}
	resumed := j.Result.ResumedBytes
	// The rescuing attempt fetches what the journal did not record: the
	// blocks the dead attempt never reached and those it fetched but had
	// not journaled yet (fetched twice). The progress last seen before the
	// kill bounds the latter from below.
	t.Logf("resumed %d of %d MiB (%.0f%%) on %s, which fetched the other %.0f%%; fetched twice: at least %d MiB (%.0f%%) the dead attempt had not journaled",
		resumed>>20, dataBytes>>20, 100*float64(resumed)/dataBytes, j.Node, 100*float64(dataBytes-resumed)/dataBytes,
		max(0, seen-resumed)>>20, 100*float64(max(0, seen-resumed))/dataBytes)
	if resumed <= 0 || resumed >= dataBytes {
		t.Fatalf("resumed bytes %d; want part of the %d the volume holds", resumed, dataBytes)
	}

	cmd := exec.Command("sha256sum", "--strict", "-c", j.Result.Manifest)
	cmd.Dir = j.Result.OutputDir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum -c: %v\n%s", err, out)
	}
	// The same instance exported in one go gives the same disk.
	var clean apitypes.Job
	if code := survivor.call("POST", "/api/v1/jobs", map[string]any{"provider": demoAWSProvider, "vm": "files-1"}, &clean); code != 201 {
		t.Fatalf("submit the uninterrupted export: HTTP %d", code)
	}
	waitUntil(t, "the uninterrupted export done", 2*time.Minute, func() bool {
		survivor.call("GET", "/api/v1/jobs/"+clean.ID, nil, &clean)
		return clean.State.Terminal()
	})
	if clean.State != apitypes.JobSucceeded {
		t.Fatalf("uninterrupted export %s: %s", clean.State, clean.Error)
	}
	got, want := diskDigests(j.Result), diskDigests(clean.Result)
	if len(got) != 1 || len(want) != 1 || got[0] != want[0] {
		t.Fatalf("the resumed export's disk (SHA-256 %v) differs from the uninterrupted one's (%v)", got, want)
	}
}

func diskDigests(r *providers.ExportResult) []string {
	var out []string
	for _, f := range r.Files {
		if f.Kind == "disk" {
			out = append(out, f.SHA256)
		}
	}
	return out
}
