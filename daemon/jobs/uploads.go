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
	id, provider, vm, url, dir string
	state                      apitypes.JobState
	created                    int64
	// published names the objects a succeeded job wrote.
	published []string
}

// SweepUploads removes what exports to object storage left in the store
// when no attempt of theirs will follow but none removed it: the job ended
// while the daemon running it was dead (cancelled, or failed for want of
// attempts, by the daemon that took it over), or the removal at its end
// failed (the store was down). For every failed or cancelled job whose
// export directory still keeps upload state, each object's open uploads
// are aborted, the object deleted and the state forgotten
// (objstore.Targets.RemoveStarted).
//
// Objects are named after the VM, so a later job may write the same keys:
// while a job exporting the same VM to the same output is queued or
// running, the ended job's objects are left alone (the live job's upload
// is one of them), and an object a later job published under the same
// key is that job's: its state is forgotten, the store left alone. Jobs
// of other VMs sharing the output prefix do not hold the sweep back. It
// returns the objects removed; the leader runs it (see cmd/hypervisord).
func (m *Manager) SweepUploads(ctx context.Context) ([]string, error) {
	rows, err := m.db.SQL.QueryContext(ctx, `SELECT id, provider, vm, state, spec, COALESCE(result, ''), created_at FROM jobs WHERE spec LIKE '%"output_url":%'`)
	if err != nil {
		return nil, err
	}
	var all []urlJob
	for rows.Next() {
		var (
			j            urlJob
			spec, result string
		)
		if err := rows.Scan(&j.id, &j.provider, &j.vm, &j.state, &spec, &result, &j.created); err != nil {
			rows.Close()
			return nil, err
		}
		var s apitypes.JobSpec
		if err := json.Unmarshal([]byte(spec), &s); err != nil || s.Options.OutputURL == "" {
			continue
		}
		u, err := objstore.ParseURL("output", s.Options.OutputURL)
		if err != nil {
			continue
		}
		j.url, j.dir = u.String(), s.Options.OutputDir
		if j.state == apitypes.JobSucceeded && result != "" {
			var res providers.ExportResult
			if json.Unmarshal([]byte(result), &res) == nil {
				for _, f := range res.Files {
					j.published = append(j.published, f.Path)
				}
			}
		}
		all = append(all, j)
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
		busy := false
		owned := map[string]bool{} // keys a later job published
		for _, o := range all {
			if o.url != j.url || o.id == j.id {
				continue
			}
			busy = busy || !o.state.Terminal() && o.provider == j.provider && o.vm == j.vm
			if o.created > j.created {
				for _, n := range o.published {
					owned[n] = true
				}
			}
		}
		if busy {
			continue
		}
		objs, err := m.sweepJobUploads(ctx, j, owned)
		removed = append(removed, objs...)
		if err != nil {
			errs = append(errs, fmt.Errorf("job %s: %w", j.id, err))
		}
	}
	return removed, errors.Join(errs...)
}

// sweepJobUploads removes the uploads whose state job j's export directory
// keeps, and forgets those of objects a later job published (owned).
func (m *Manager) sweepJobUploads(ctx context.Context, j urlJob, owned map[string]bool) ([]string, error) {
	state, err := m.openKept(j.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // nothing kept (or kept on a file system this node does not share)
	}
	if err != nil {
		return nil, err
	}
	defer state.Close()
	names, err := objstore.StartedUploads(state)
	if err != nil || len(names) == 0 {
		return nil, err
	}
	var mine, theirs []string
	for _, n := range names {
		if owned[n] {
			theirs = append(theirs, n)
		} else {
			mine = append(mine, n)
		}
	}
	log := m.log.With("job_id", j.id)
	var errs []error
	if len(theirs) > 0 {
		_, err := objstore.ForgetStarted(state, theirs)
		errs = append(errs, err)
		log.Info("forgot the uploads of an ended job: a later job published the same objects", "output", j.url, "objects", theirs)
	}
	removed, err := m.opts.OutputTargets.RemoveStarted(ctx, j.url, state, mine, log)
	if errors.Is(err, providers.ErrInvalidArgument) {
		// No target serves the output any more: nothing can be reached
		// with what the configuration holds, and the state stays for a
		// configuration that serves it again.
		log.Warn("uploads of an ended job kept: no output target serves its output", "output", j.url, "err", err)
		return nil, errors.Join(errs...)
	}
	errs = append(errs, err)
	if len(removed) > 0 {
		log.Info("removed what an ended job's uploads left in object storage", "objects", removed)
		m.appendLog(ctx, j.id, slog.LevelInfo, "removed what the export's uploads left in object storage", map[string]any{"objects": removed})
	}
	return removed, errors.Join(errs...)
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
