package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"slices"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/objstore"
	"github.com/hypersdk/hypersdk/providers"
)

// urlJob is a job with an object-storage output, as the upload sweep sees
// it.
type urlJob struct {
	id, url, dir string
	state        apitypes.JobState
	created      int64
}

// SweepUploads removes what exports to object storage left in the store
// when no attempt of theirs will follow but none removed it: the job ended
// while the daemon running it was dead (cancelled, or failed for want of
// attempts, by the daemon that took it over), or the removal at its end
// failed (the store was down). For every failed or cancelled job whose
// export directory still keeps upload state, each object's open uploads
// are aborted, the object deleted and the state forgotten
// (objstore.Targets.RemoveStarted). A later job with the same output owns
// the objects: while one is queued or running nothing is touched, and
// when one succeeded the state is forgotten and the store left alone. It
// returns the objects removed; the leader runs it (see cmd/hypervisord).
func (m *Manager) SweepUploads(ctx context.Context) ([]string, error) {
	rows, err := m.db.SQL.QueryContext(ctx, `SELECT id, state, spec, created_at FROM jobs WHERE spec LIKE '%"output_url":%'`)
	if err != nil {
		return nil, err
	}
	var all []urlJob
	for rows.Next() {
		var (
			j    urlJob
			spec string
		)
		if err := rows.Scan(&j.id, &j.state, &spec, &j.created); err != nil {
			rows.Close()
			return nil, err
		}
		var s apitypes.JobSpec
		if err := json.Unmarshal([]byte(spec), &s); err != nil || s.Options.OutputURL == "" {
			continue
		}
		if u, err := objstore.ParseURL("output", s.Options.OutputURL); err == nil {
			j.url, j.dir = u.String(), s.Options.OutputDir
			all = append(all, j)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var (
		removed []string
		errs    []error
	)
	for _, j := range all {
		if j.state != apitypes.JobFailed && j.state != apitypes.JobCancelled {
			continue
		}
		busy, superseded := false, false
		for _, o := range all {
			if o.url != j.url || o.id == j.id {
				continue
			}
			busy = busy || !o.state.Terminal()
			superseded = superseded || o.state == apitypes.JobSucceeded && o.created > j.created
		}
		if busy {
			continue
		}
		objs, err := m.sweepJobUploads(ctx, j, superseded)
		removed = append(removed, objs...)
		if err != nil {
			errs = append(errs, fmt.Errorf("job %s: %w", j.id, err))
		}
	}
	return removed, errors.Join(errs...)
}

// sweepJobUploads removes (or, superseded, forgets) the uploads whose
// state job j's export directory keeps.
func (m *Manager) sweepJobUploads(ctx context.Context, j urlJob, superseded bool) ([]string, error) {
	state, err := m.openKept(j.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // nothing kept (or kept on a file system this node does not share)
	}
	if err != nil {
		return nil, err
	}
	defer state.Close()
	if superseded {
		names, err := objstore.ForgetStarted(state)
		if len(names) > 0 {
			m.log.Info("forgot the uploads of an ended job: a later job with the same output succeeded", "job_id", j.id, "output", j.url, "objects", names)
		}
		return nil, err
	}
	log := m.log.With("job_id", j.id)
	removed, err := m.opts.OutputTargets.RemoveStarted(ctx, j.url, state, log)
	if errors.Is(err, providers.ErrInvalidArgument) {
		// No target serves the output any more: nothing can be reached
		// with what the configuration holds, and the state stays for a
		// configuration that serves it again.
		log.Warn("uploads of an ended job kept: no output target serves its output", "output", j.url, "err", err)
		return nil, nil
	}
	if len(removed) > 0 {
		log.Info("removed what an ended job's uploads left in object storage", "objects", removed)
		m.appendLog(ctx, j.id, slog.LevelInfo, "removed what the export's uploads left in object storage", map[string]any{"objects": removed})
	}
	return removed, err
}

// openKept opens an existing export directory beneath its root without
// creating it (the sweep only reads what an export kept).
func (m *Manager) openKept(dir string) (*os.Root, error) {
	root, rel, ok := m.outputRoot(dir, append(slices.Clone(m.allowedRoots()), m.opts.ExportDir))
	if !ok || rel == "." {
		return nil, fmt.Errorf("output %s: outside the allowed export roots", dir)
	}
	base, err := os.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	defer base.Close()
	return base.OpenRoot(rel)
}
