package proxmox

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/pipeline"
	"github.com/hypersdk/hypersdk/progress"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/providers/proxmox/pvefake"
)

// exportUntil runs an export of web-1 that is cancelled once bytes flow
// (cancel) or meets the fake's faults, and returns its error.
func exportUntil(t *testing.T, p *Provider, job string, cancelOnBytes bool) error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var once sync.Once
	_, err := pipeline.Export(ctx, p, "web-1", providers.ExportOptions{
		OutputDir: t.TempDir(), Format: providers.FormatDisks, DiskFormat: providers.DiskRaw, JobID: job,
		Progress: func(r progress.Report) {
			if cancelOnBytes && r.BytesDone > 0 {
				once.Do(cancel)
			}
		},
	})
	return err
}

// Whatever ends an export — a stream that breaks, a cancellation, a
// snapshot command whose answer is lost, a backup task stopped mid-way —
// the job's temporary snapshot and dump archive are gone afterwards, and
// no backup task still runs.
func TestCleanupAfterFailureAndCancel(t *testing.T) {
	f := newFixture(t, pvefake.SampleOptions{})
	for _, method := range Methods() {
		cfg := f.config()
		cfg.ExportMethod = method
		p := f.provider(t, cfg)
		t.Run(method+"/stream breaks", func(t *testing.T) {
			setFaults(t, f, pvefake.Faults{FailStreamAfter: 3 << 20})
			defer setFaults(t, f, pvefake.Faults{})
			err := exportUntil(t, p, "job-break-"+method, false)
			if err == nil {
				t.Fatal("an export whose stream broke succeeded")
			}
			if method != MethodAPI && !strings.Contains(err.Error(), "stream failed on purpose") {
				t.Errorf("the error does not carry the command's message: %v", err)
			}
			if left := f.leftovers(t); len(left) != 0 {
				t.Errorf("left after a failure: %v", left)
			}
		})
		t.Run(method+"/cancelled", func(t *testing.T) {
			setFaults(t, f, pvefake.Faults{StreamDelay: 30 * time.Millisecond})
			defer setFaults(t, f, pvefake.Faults{})
			err := exportUntil(t, p, "job-cancel-"+method, method != MethodAPI)
			if method == MethodAPI {
				// The api method's bytes flow after the task: cancel the
				// task itself, mid-dump.
				ctx, cancel := context.WithCancel(context.Background())
				go func() {
					for len(f.srv.RunningTasks()) == 0 {
						time.Sleep(5 * time.Millisecond)
					}
					cancel()
				}()
				_, err = pipeline.Export(ctx, p, "web-1", providers.ExportOptions{OutputDir: t.TempDir(), JobID: "job-cancel-task"})
			}
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled export: %v", err)
			}
			if left := f.leftovers(t); len(left) != 0 {
				t.Errorf("left after a cancel: %v", left)
			}
		})
	}
	t.Run("pvesm/snapshot answer lost", func(t *testing.T) {
		cfg := f.config()
		cfg.ExportMethod = MethodPvesm
		p := f.provider(t, cfg)
		setFaults(t, f, pvefake.Faults{FailSnapshot: true})
		defer setFaults(t, f, pvefake.Faults{})
		err := exportUntil(t, p, "job-lost", false)
		if err == nil || !strings.Contains(err.Error(), "got timeout") {
			t.Fatalf("export after a failed snapshot command: %v", err)
		}
		if left := f.leftovers(t); len(left) != 0 {
			t.Errorf("the snapshot whose answer was lost is left: %v", left)
		}
	})
}

// A daemon killed mid-export leaves the job's snapshot or dump archive
// behind (no Cleanup ran); the sweep of a restarted daemon removes those
// of jobs that are over and keeps those of live jobs.
func TestSweepRemovesWhatAKilledExportLeft(t *testing.T) {
	f := newFixture(t, pvefake.SampleOptions{})
	ctx := context.Background()
	cfg := f.config()
	cfg.ExportMethod = MethodPvesm
	pv := f.provider(t, cfg)
	cfg.ExportMethod = MethodAPI
	pa := f.provider(t, cfg)
	// Prepared, never finished nor cleaned up: what kill -9 leaves.
	if _, err := pv.PrepareExport(ctx, "web-1", providers.ExportOptions{JobID: "job-dead-snap"}); err != nil {
		t.Fatal(err)
	}
	if _, err := pa.PrepareExport(ctx, "web-1", providers.ExportOptions{JobID: "job-dead-dump"}); err != nil {
		t.Fatal(err)
	}
	if _, err := pv.PrepareExport(ctx, "web-1", providers.ExportOptions{JobID: "job-alive"}); err != nil {
		t.Fatal(err)
	}
	if left := f.leftovers(t); len(left) != 3 {
		t.Fatalf("before the sweep: %v, want two snapshots and a dump", left)
	}
	restarted := f.provider(t, f.config()) // another instance: nothing in memory
	removed, err := restarted.SweepOrphans(ctx, func(job string) bool { return job == "job-alive" })
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(removed)
	if len(removed) != 2 || !strings.Contains(removed[0], "job-dead-dump") || !strings.Contains(removed[1], snapshotName("job-dead-snap")) {
		t.Errorf("removed %q", removed)
	}
	left := f.leftovers(t)
	if len(left) != 1 || !strings.Contains(left[0], snapshotName("job-alive")) {
		t.Errorf("after the sweep: %v, want the live job's snapshot only", left)
	}
	if again, err := restarted.SweepOrphans(ctx, func(string) bool { return false }); err != nil || len(again) != 1 {
		t.Errorf("second sweep: %q, %v", again, err)
	}
	if left := f.leftovers(t); len(left) != 0 {
		t.Errorf("after the job ended: %v", left)
	}
}
