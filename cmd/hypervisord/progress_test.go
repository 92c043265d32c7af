package main

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/progress"
	"github.com/hypersdk/hypersdk/providers"
)

// nfcTicket matches the secret part of an NFC lease URL: vSphere (and the
// demo vCenter) serve disks at https://host/nfc/<ticket>/<file>, the ticket
// a UUID or hex string.
var nfcTicket = regexp.MustCompile(`/nfc/[0-9a-fA-F-]{16,}/`)

// The multi-disk demo VM exported through the daemon, bandwidth-limited so
// that its progress can be sampled while it runs: no sample is above 100%
// or has a total above the VM's disk capacity (vSphere's lease gives the
// capacity of all disks, which used to be counted once per disk), a sample
// with an unknown total (0) has no ETA, and at the end bytes_total is
// within 10% of the disk files written. The job's logs and error, which
// viewers read, never show an NFC lease URL's ticket.
func TestDemoMultiDiskProgressIsHonest(t *testing.T) {
	dmn := newDaemon(t, "", "HYPERVISORD_TEST_REAL_PROVIDERS=1")
	dmn.start("--demo")
	var vm providers.VMInfo
	if code := dmn.call("GET", "/api/v1/providers/demo/vms/db-01", nil, &vm); code != 200 || len(vm.Disks) < 2 {
		t.Fatalf("demo VM db-01: %d %+v", code, vm)
	}
	capacity := vm.TotalDiskBytes()

	var j apitypes.Job
	if code := dmn.call("POST", "/api/v1/jobs", map[string]any{"provider": "demo", "vm": "db-01", "format": "ovf",
		"bandwidth_limit": 4 << 20, "parallel_downloads": 2}, &j); code != 201 {
		t.Fatalf("submit: %d", code)
	}
	var samples []apitypes.JobProgress
	running := map[int64]bool{} // distinct bytes_done seen while downloading
	deadline := time.Now().Add(3 * time.Minute)
	for !j.State.Terminal() {
		if time.Now().After(deadline) {
			t.Fatalf("export still %s after %d samples", j.State, len(samples))
		}
		time.Sleep(50 * time.Millisecond)
		dmn.call("GET", "/api/v1/jobs/"+j.ID, nil, &j)
		p := j.Progress
		samples = append(samples, p)
		if j.State == apitypes.JobRunning && p.Phase == progress.PhaseDownloading && p.BytesDone > 0 {
			running[p.BytesDone] = true
		}
		switch {
		case p.Percent > 100 || p.Percent < 0:
			t.Errorf("%s: %.1f%% (%d of %d bytes)", j.State, p.Percent, p.BytesDone, p.BytesTotal)
		case p.BytesTotal > capacity:
			t.Errorf("%s: bytes_total %d is more than the VM's disk capacity %d", j.State, p.BytesTotal, capacity)
		case p.BytesTotal > 0 && p.BytesDone > p.BytesTotal:
			t.Errorf("%s: %d bytes done of %d", j.State, p.BytesDone, p.BytesTotal)
		case p.BytesTotal == 0 && (p.ETASeconds != nil || p.Percent != 0):
			t.Errorf("%s: unknown total but %.1f%%, ETA %v", j.State, p.Percent, p.ETASeconds)
		}
	}
	if j.State != apitypes.JobSucceeded {
		t.Fatalf("export %s: %s", j.State, j.Error)
	}
	// Sampled while the disks were moving, not only before and after.
	if len(running) < 3 {
		t.Fatalf("only %d distinct samples taken while downloading: %+v", len(running), samples)
	}
	var disks int64
	for _, f := range j.Result.Files {
		if f.Kind == "disk" {
			disks += f.Size
		}
	}
	if p := j.Progress; p.BytesTotal < disks || float64(p.BytesTotal) > 1.1*float64(disks) || p.BytesDone != p.BytesTotal || p.Percent != 100 {
		t.Errorf("final progress %+v; the disk files hold %d bytes", p, disks)
	}

	// The transfer logs each file with its URL: present, but redacted.
	req, _ := http.NewRequest("GET", dmn.url+"/api/v1/jobs/"+j.ID+"/logs", nil)
	req.Header.Set("Authorization", "Bearer "+dmn.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	logs, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(logs), `/nfc/`) {
		t.Fatalf("job logs name no NFC file at all (the check below would prove nothing):\n%s", logs)
	}
	for _, h := range []string{string(logs), j.Error, dmn.out.String()} {
		if m := nfcTicket.FindString(h); m != "" {
			t.Errorf("NFC lease ticket %q in %.2000s", m, h)
		}
	}
}
