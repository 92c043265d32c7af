package apitypes

import (
	"testing"

	"github.com/hypersdk/hypersdk/progress"
)

func TestNewJobProgress(t *testing.T) {
	eta := 12.0
	for _, tc := range []struct {
		name    string
		state   JobState
		p       progress.Report
		percent float64
	}{
		{"known total", JobRunning, progress.Report{Phase: progress.PhaseDownloading, BytesDone: 1 << 20, BytesTotal: 4 << 20}, 25},
		{"unknown total", JobRunning, progress.Report{Phase: progress.PhaseDownloading, BytesDone: 1 << 20}, 0},
		{"past the total", JobRunning, progress.Report{BytesDone: 5, BytesTotal: 4}, 100},
		{"succeeded", JobSucceeded, progress.Report{Phase: "done", BytesDone: 3}, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := NewJobProgress(tc.state, tc.p, 2<<20, &eta)
			want := JobProgress{Phase: tc.p.Phase, BytesDone: tc.p.BytesDone, BytesTotal: tc.p.BytesTotal, Percent: tc.percent, RateBps: 2 << 20, ETASeconds: &eta}
			if got != want {
				t.Errorf("NewJobProgress = %+v, want %+v", got, want)
			}
		})
	}
}
