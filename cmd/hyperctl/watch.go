package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/client"
	"github.com/hypersdk/hypersdk/objstore"
	"github.com/hypersdk/hypersdk/providers"
)

// progressView shows a watched job's snapshots.
type progressView interface {
	update(j *apitypes.Job)
	// close stops the view; final is nil when watching stopped early.
	close(final *apitypes.Job)
}

// watch follows job id until it ends, then prints the outcome: the job
// itself with -o json|yaml, a summary otherwise. A job that did not
// succeed is a *jobEndedError.
func (a *app) watch(ctx context.Context, c *client.Client, id string) error {
	var view progressView
	if a.env.isTerminal(a.env.stderr) {
		view = newBarView(a.env.stderr)
	} else {
		view = &lineView{w: a.env.stderr, now: a.env.now}
	}
	final, err := c.WatchJob(ctx, id, a.env.pollInterval, view.update)
	view.close(final)
	if err != nil {
		if errors.Is(ctx.Err(), context.Canceled) {
			return fmt.Errorf("stopped watching job %s, which goes on: resume with 'hyperctl jobs watch %s', stop it with 'hyperctl jobs cancel %s'", id, id, id)
		}
		return fmt.Errorf("watch job %s: %w", id, err)
	}
	if err := a.show(final, func(w io.Writer) error {
		if final.State != apitypes.JobSucceeded {
			return nil // the error says it
		}
		fmt.Fprintf(w, "job %s succeeded: %s %s\n", final.ID, final.Provider, final.VM)
		if r := final.Result; r != nil {
			fmt.Fprintf(w, "  %d file(s), %s in %s (%s) in %s\n", len(r.Files), humanBytes(r.Bytes),
				humanDuration(r.Duration), humanRate(r.Throughput), r.OutputDir)
			printArchive(w, r)
		}
		return nil
	}); err != nil {
		return err
	}
	if final.State != apitypes.JobSucceeded {
		return &jobEndedError{job: final}
	}
	return nil
}

// barView is a live mpb progress bar: phase, bytes done/total, bar,
// percent, rate and ETA as the daemon computed them.
type barView struct {
	p   *mpb.Progress
	bar *mpb.Bar

	mu  sync.Mutex
	job *apitypes.Job
}

func newBarView(w io.Writer) *barView {
	v := &barView{}
	v.p = mpb.New(mpb.WithOutput(w), mpb.WithAutoRefresh(), mpb.WithRefreshRate(200*time.Millisecond))
	v.bar = v.p.New(0, mpb.BarStyle(), mpb.BarWidth(40),
		mpb.PrependDecorators(
			decor.Any(v.field(phaseField), decor.WCSyncSpaceR),
			decor.Any(v.field(bytesField), decor.WCSyncSpace),
		),
		mpb.AppendDecorators(
			decor.Any(v.field(percentField), decor.WC{W: 7}),
			decor.Any(v.field(rateField), decor.WCSyncSpace),
			decor.Any(v.field(etaField), decor.WCSyncSpace),
		),
	)
	return v
}

type field int

const (
	phaseField field = iota
	bytesField
	percentField
	rateField
	etaField
)

// field renders one piece of the latest snapshot.
func (v *barView) field(f field) decor.DecorFunc {
	return func(decor.Statistics) string {
		v.mu.Lock()
		j := v.job
		v.mu.Unlock()
		if j == nil {
			return "…"
		}
		p := j.Progress
		running := j.State == apitypes.JobRunning
		switch f {
		case phaseField:
			s := string(j.State)
			if running && p.Phase != "" {
				s = p.Phase
			}
			if j.Attempt > 1 {
				s += fmt.Sprintf(" (attempt %d/%d)", j.Attempt, j.MaxAttempts)
			}
			return s
		case bytesField:
			if p.BytesTotal <= 0 {
				if !running || p.BytesDone <= 0 {
					return ""
				}
				return humanBytes(p.BytesDone) + " / unknown"
			}
			return humanBytes(p.BytesDone) + " / " + humanBytes(p.BytesTotal)
		case percentField:
			if p.BytesTotal <= 0 && j.State != apitypes.JobSucceeded {
				return ""
			}
			return percent(p.Percent)
		case rateField:
			if !running || p.RateBps <= 0 {
				return ""
			}
			return humanRate(p.RateBps)
		case etaField:
			if !running || p.ETASeconds == nil {
				return ""
			}
			return "ETA " + eta(*p.ETASeconds)
		}
		return ""
	}
}

func (v *barView) update(j *apitypes.Job) {
	v.mu.Lock()
	v.job = j
	v.mu.Unlock()
	// While the total is unknown the bar stays empty: filling it against a
	// guess would show a percentage nobody knows.
	if j.Progress.BytesTotal > 0 {
		v.bar.SetTotal(j.Progress.BytesTotal, false)
		v.bar.SetCurrent(min(j.Progress.BytesDone, j.Progress.BytesTotal))
	}
}

func (v *barView) close(final *apitypes.Job) {
	if final != nil && final.State == apitypes.JobSucceeded {
		v.update(final)
		v.bar.SetTotal(-1, true)
	} else {
		v.bar.Abort(false)
	}
	v.p.Wait()
}

// lineView prints a line when the state, phase or attempt changes, and
// at every tenth of the bytes, for logs and pipes.
type lineView struct {
	w    io.Writer
	now  func() time.Time
	last string
	tens int
}

func (v *lineView) update(j *apitypes.Job) {
	key := fmt.Sprintf("%s/%s/%d", j.State, j.Progress.Phase, j.Attempt)
	tens := int(j.Progress.Percent / 10)
	if key == v.last && (j.State != apitypes.JobRunning || tens == v.tens) {
		return
	}
	v.last, v.tens = key, tens
	line := fmt.Sprintf("job %s: %s", j.ID, stateText(j))
	switch {
	case j.State == apitypes.JobRunning:
		line += ", " + progressLine(j)
	case j.State == apitypes.JobQueued && j.NextAttemptAt != nil:
		line += fmt.Sprintf(", attempt %d failed (%s); retrying in %s", j.Attempt, j.Error,
			humanDuration(j.NextAttemptAt.Sub(v.now()).Round(time.Second)))
	}
	fmt.Fprintln(v.w, line)
}

func (v *lineView) close(*apitypes.Job) {}

// printArchive names the OVA by its full path, or the OVF folder's
// manifest, and how to verify either.
func printArchive(w io.Writer, r *providers.ExportResult) {
	if r.OVAPath != "" {
		path := outputPath(r.OutputDir, r.OVAPath)
		fmt.Fprintf(w, "  archive: %s\n", path)
		fmt.Fprintf(w, "  verify with: hyperctl ova verify %s\n", path)
		return
	}
	if r.Manifest != "" {
		fmt.Fprintf(w, "  manifest: %s\n", outputPath(r.OutputDir, r.Manifest))
		if objstore.IsURL(r.OutputDir) {
			fmt.Fprintf(w, "  verify with: download the objects, then sha256sum -c %s\n", r.Manifest)
			return
		}
		fmt.Fprintf(w, "  verify with: hyperctl verify %s   (or: cd %s && sha256sum -c %s)\n", r.OutputDir, r.OutputDir, r.Manifest)
	}
}

// outputPath names the file name of an export in dir: a path, or the
// object under an object-storage location.
func outputPath(dir, name string) string {
	if objstore.IsURL(dir) {
		return strings.TrimSuffix(dir, "/") + "/" + name
	}
	return filepath.Join(dir, name)
}
