package metrics

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/providers/providertest"
)

func newTestMetrics(t *testing.T) (*Metrics, []*providers.Instance) {
	t.Helper()
	m := New("test", "rev", slog.New(slog.NewTextHandler(io.Discard, nil)))
	set, err := providers.NewSet(slog.New(slog.NewTextHandler(io.Discard, nil)),
		&providers.Instance{Provider: providertest.NewFake("lab")}, &providers.Instance{Provider: providertest.NewFake("dc2")})
	if err != nil {
		t.Fatal(err)
	}
	set.Observe(m)
	return m, set.List()
}

// A provider's counters exist at 0 before anything happens, so that
// Prometheus sees the first failure as an increase.
func TestProviderCountersStartAtZero(t *testing.T) {
	m, insts := newTestMetrics(t)
	m.RegisterProviders(func() []*providers.Instance { return insts })
	want := `
# HELP hypersdk_jobs_total Jobs that reached a final state, by provider and state.
# TYPE hypersdk_jobs_total counter
hypersdk_jobs_total{provider="dc2",state="cancelled"} 0
hypersdk_jobs_total{provider="dc2",state="failed"} 0
hypersdk_jobs_total{provider="dc2",state="succeeded"} 0
hypersdk_jobs_total{provider="lab",state="cancelled"} 0
hypersdk_jobs_total{provider="lab",state="failed"} 1
hypersdk_jobs_total{provider="lab",state="succeeded"} 0
# HELP hypersdk_provider_up Whether the provider's last connection or health check succeeded (1) or not (0).
# TYPE hypersdk_provider_up gauge
hypersdk_provider_up{provider="dc2",type="vsphere"} 0
hypersdk_provider_up{provider="lab",type="vsphere"} 0
# HELP hypersdk_orphans_deleted_total Platform objects that jobs left after they ended, found and deleted by the sweep, by provider (output_targets: objects and open uploads left in object storage).
# TYPE hypersdk_orphans_deleted_total counter
hypersdk_orphans_deleted_total{provider="dc2"} 0
hypersdk_orphans_deleted_total{provider="lab"} 3
# HELP hypersdk_export_resumed_bytes_total Source bytes successful exports did not fetch again because an earlier attempt had stored them, by provider.
# TYPE hypersdk_export_resumed_bytes_total counter
hypersdk_export_resumed_bytes_total{provider="dc2"} 0
hypersdk_export_resumed_bytes_total{provider="lab"} 4096
`
	m.JobFinished("lab", apitypes.JobFailed, time.Second)
	m.OrphanSweep("lab", 3, nil)
	m.ResumedBytes("lab", 4096)
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(want),
		"hypersdk_jobs_total", "hypersdk_provider_up", "hypersdk_orphans_deleted_total", "hypersdk_export_resumed_bytes_total"); err != nil {
		t.Error(err)
	}
}

// Platform calls through an instance are timed and their failures
// counted, by provider and operation.
func TestProviderCalls(t *testing.T) {
	m, insts := newTestMetrics(t)
	lab := insts[1]
	if lab.Name() != "lab" {
		t.Fatalf("instances not sorted: %s", lab.Name())
	}
	if _, err := lab.ListVMs(context.Background(), providers.VMFilter{}); err != nil {
		t.Fatal(err)
	}
	if _, err := lab.GetVM(context.Background(), "no-such-vm"); err == nil {
		t.Fatal("GetVM of a missing VM succeeded")
	}
	if n := testutil.CollectAndCount(m.providerCalls); n != 3 { // connect, list_vms, get_vm
		t.Errorf("%d latency series, want 3 (connect, list_vms, get_vm)", n)
	}
	if v := testutil.ToFloat64(m.providerErrs.WithLabelValues("lab", "get_vm")); v != 1 {
		t.Errorf("get_vm errors = %v, want 1", v)
	}
}

// The active-jobs gauges sum per provider and never label a job; a store
// that fails makes the scrape report the metrics invalid and counts the
// error.
func TestActiveJobs(t *testing.T) {
	m, insts := newTestMetrics(t)
	now := time.Unix(1_000_000, 0)
	var fail bool
	m.RegisterActiveJobs(func(context.Context) ([]ActiveJob, error) {
		if fail {
			return nil, errors.New("database is locked")
		}
		return []ActiveJob{
			{Provider: "lab", Format: "ova", State: apitypes.JobRunning, BytesDone: 100, BytesTotal: 400, CreatedAt: now.Add(-time.Hour)},
			{Provider: "lab", Format: "ova", State: apitypes.JobRunning, BytesDone: 50, BytesTotal: 100, CreatedAt: now.Add(-time.Hour)},
			{Provider: "lab", Format: "disks", State: apitypes.JobQueued, CreatedAt: now.Add(-90 * time.Second)},
			{Provider: "lab", Format: "ovf", State: apitypes.JobQueued, CreatedAt: now.Add(-30 * time.Second)},
		}, nil
	}, func() []*providers.Instance { return insts }, func() time.Time { return now })
	want := `
# HELP hypersdk_export_progress_bytes Bytes the running exports have written so far, by provider (all daemons).
# TYPE hypersdk_export_progress_bytes gauge
hypersdk_export_progress_bytes{provider="dc2"} 0
hypersdk_export_progress_bytes{provider="lab"} 150
# HELP hypersdk_export_size_bytes Bytes the running exports write in all, where known, by provider (all daemons).
# TYPE hypersdk_export_size_bytes gauge
hypersdk_export_size_bytes{provider="dc2"} 0
hypersdk_export_size_bytes{provider="lab"} 500
# HELP hypersdk_jobs_oldest_queued_age_seconds Age of the oldest queued job, retries included (0 when none is queued; all daemons).
# TYPE hypersdk_jobs_oldest_queued_age_seconds gauge
hypersdk_jobs_oldest_queued_age_seconds 90
`
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(want),
		"hypersdk_export_progress_bytes", "hypersdk_export_size_bytes", "hypersdk_jobs_oldest_queued_age_seconds"); err != nil {
		t.Error(err)
	}
	// 2 providers × 3 formats × 2 states, every one present.
	if n := testutil.CollectAndCount(m.Registry, "hypersdk_jobs_active"); n != 12 {
		t.Errorf("%d hypersdk_jobs_active series, want 12", n)
	}
	fail = true
	if _, err := m.Registry.Gather(); err == nil {
		t.Error("a failing store read did not fail the scrape's metrics")
	}
	if v := testutil.ToFloat64(m.storeErrors.WithLabelValues("active_jobs")); v != 1 {
		t.Errorf("store errors = %v, want 1", v)
	}
}
