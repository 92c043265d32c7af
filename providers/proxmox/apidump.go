package proxmox

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hypersdk/hypersdk/progress"
	"github.com/hypersdk/hypersdk/providers"
)

// archiveLine is vzdump's log line naming the archive it writes.
var archiveLine = regexp.MustCompile(`creating vzdump archive '([^']+)'`)

// prepareAPIDump has the API back the VM up into the configured storage
// (POST /nodes/{node}/vzdump, remove=0 so that the storage's retention
// never prunes the user's backups, the notes tagged with the job), follows
// the task, then streams the archive over SFTP into the export. The
// archive is deleted by Cleanup and, if the daemon dies first, by the
// sweep, which finds it by its notes.
func (p *Provider) prepareAPIDump(ctx context.Context, g *guest, jobID string, opts providers.ExportOptions, log *slog.Logger) (_ *providers.Export, err error) {
	if err := checkBackedUp(g); err != nil {
		return nil, fmt.Errorf("proxmox %s: export %d: %w", p.name, g.vmid(), err)
	}
	a, err := p.client()
	if err != nil {
		return nil, err
	}
	sftp, err := p.sftpClient(g.res.Node)
	if err != nil {
		return nil, err
	}
	storage, node := p.cfg.Vzdump.Storage, g.res.Node
	comp := p.cfg.compress()
	if comp == "none" {
		comp = "0"
	}
	var upid string
	params := url.Values{
		"vmid": {strconv.Itoa(g.vmid())}, "mode": {p.cfg.mode()}, "compress": {comp}, "storage": {storage},
		"remove": {"0"}, "notes-template": {jobTag + jobID},
	}
	// Whatever happens from here, the job's archives go.
	cleanup := func() {
		if err := p.removeJobDumps(node, jobID, log); err != nil {
			log.Warn("removing the dump archive failed; the orphan sweep will retry", "err", err)
		}
	}
	defer func() {
		if err != nil {
			cleanup()
		}
	}()
	if err := a.post(ctx, "/nodes/"+url.PathEscape(node)+"/vzdump", params, &upid); err != nil {
		return nil, fmt.Errorf("proxmox %s: start the backup of VM %d: %w", p.name, g.vmid(), err)
	}
	log.Info("backup task started", "upid", upid, "storage", storage)
	lines, err := p.waitTask(ctx, node, upid, opts, log)
	if err != nil {
		return nil, fmt.Errorf("proxmox %s: backup of VM %d: %w", p.name, g.vmid(), err)
	}
	archive := ""
	for _, l := range lines {
		if m := archiveLine.FindStringSubmatch(l); m != nil {
			archive = m[1]
		}
	}
	if archive == "" || !path.IsAbs(archive) {
		return nil, fmt.Errorf("proxmox %s: backup of VM %d: the task log names no archive", p.name, g.vmid())
	}
	src := sftp.Source(archive)
	body, info, err := src.OpenRange(ctx, 0, -1)
	if err != nil {
		return nil, fmt.Errorf("proxmox %s: fetch %s: %w", p.name, src, sshErr(err))
	}
	log.Info("fetching the archive over SFTP", "archive", archive, "bytes", info.Size)
	s, err := openStream(body, "backup "+path.Base(archive)+" of VM "+strconv.Itoa(g.vmid()))
	if err != nil {
		body.Close()
		return nil, fmt.Errorf("proxmox %s: %w", p.name, err)
	}
	exp, err := p.streamExport(g, s, log)
	if err != nil {
		s.Close()
		body.Close()
		return nil, err
	}
	exp.Fill = s.fill
	exp.Cleanup = func() {
		s.Close()
		body.Close()
		cleanup()
	}
	return exp, nil
}

// waitTask polls task upid until it stops and returns its log; a task
// that did not end OK is an error naming its error lines. When ctx ends
// first, the task is stopped.
func (p *Provider) waitTask(ctx context.Context, node, upid string, opts providers.ExportOptions, log *slog.Logger) ([]string, error) {
	a, err := p.client()
	if err != nil {
		return nil, err
	}
	base := "/nodes/" + url.PathEscape(node) + "/tasks/" + url.PathEscape(upid)
	ctx, cancel := context.WithTimeout(ctx, p.tune.taskTimeout)
	defer cancel()
	t := time.NewTicker(p.tune.taskPoll)
	defer t.Stop()
	for {
		var st struct {
			Status     string `json:"status"`
			ExitStatus string `json:"exitstatus"`
		}
		err := a.get(ctx, base+"/status", nil, &st)
		if err == nil && st.Status == "stopped" {
			lines, lerr := p.taskLog(ctx, base)
			if st.ExitStatus != "OK" {
				var errs []string
				for _, l := range lines {
					if strings.Contains(l, "ERROR") {
						errs = append(errs, strings.TrimSpace(l))
					}
				}
				return nil, fmt.Errorf("task %s ended %q: %s", upid, st.ExitStatus, strings.Join(errs, "; "))
			}
			return lines, lerr
		}
		if err != nil && ctx.Err() == nil && !transient(err) {
			return nil, err
		}
		opts.Report(progress.Report{Phase: progress.PhasePreparing, Item: "vzdump task"})
		select {
		case <-t.C:
		case <-ctx.Done():
			sctx, scancel := context.WithTimeout(context.Background(), p.tune.cleanupTimeout)
			if err := a.del(sctx, base, nil, nil); err != nil {
				log.Warn("stopping the backup task failed", "upid", upid, "err", err)
			}
			// Wait for the stop, so that the archive is gone or complete
			// before the clean-up looks for it.
			for sctx.Err() == nil {
				var st struct {
					Status string `json:"status"`
				}
				if a.get(sctx, base+"/status", nil, &st) != nil || st.Status == "stopped" {
					break
				}
				time.Sleep(p.tune.taskPoll)
			}
			scancel()
			return nil, context.Cause(ctx)
		}
	}
}

// taskLog reads the whole log of a task.
func (p *Provider) taskLog(ctx context.Context, base string) ([]string, error) {
	a, err := p.client()
	if err != nil {
		return nil, err
	}
	var out []string
	const page = 500
	for start := 0; ; start += page {
		var lines []struct {
			N int    `json:"n"`
			T string `json:"t"`
		}
		if err := a.get(ctx, base+"/log", url.Values{"start": {strconv.Itoa(start)}, "limit": {strconv.Itoa(page)}}, &lines); err != nil {
			return out, err
		}
		for _, l := range lines {
			out = append(out, l.T)
		}
		if len(lines) < page {
			return out, nil
		}
	}
}

// backupEntry is a backup in a storage's content listing.
type backupEntry struct {
	VolID string `json:"volid"`
	Notes string `json:"notes"`
}

// jobDumps lists the backups in the configured storage, as node sees it,
// whose notes name a job.
func (p *Provider) jobDumps(ctx context.Context, node string) (map[string][]string, error) {
	a, err := p.client()
	if err != nil {
		return nil, err
	}
	var entries []backupEntry
	if err := a.get(ctx, "/nodes/"+url.PathEscape(node)+"/storage/"+url.PathEscape(p.cfg.Vzdump.Storage)+"/content",
		url.Values{"content": {"backup"}}, &entries); err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, e := range entries {
		if job, ok := taggedJob(e.Notes); ok {
			out[job] = append(out[job], e.VolID)
		}
	}
	return out, nil
}

// removeJobDumps deletes the backups of jobID in the configured storage,
// on a context of its own.
func (p *Provider) removeJobDumps(node, jobID string, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(context.Background(), p.tune.cleanupTimeout)
	defer cancel()
	dumps, err := p.jobDumps(ctx, node)
	if err != nil {
		return err
	}
	for _, volid := range dumps[jobID] {
		if err := p.deleteVolume(ctx, node, volid); err != nil {
			return err
		}
		log.Info("dump archive deleted", "volid", volid)
	}
	return nil
}

// deleteVolume deletes a storage volume and waits for the deletion task.
func (p *Provider) deleteVolume(ctx context.Context, node, volid string) error {
	a, err := p.client()
	if err != nil {
		return err
	}
	var upid string
	if err := a.del(ctx, "/nodes/"+url.PathEscape(node)+"/storage/"+url.PathEscape(p.cfg.Vzdump.Storage)+"/content/"+url.PathEscape(volid), nil, &upid); err != nil {
		return fmt.Errorf("delete %s: %w", volid, err)
	}
	if upid == "" {
		return nil // older PVE deletes synchronously
	}
	_, err = p.waitTask(ctx, node, upid, providers.ExportOptions{}, slog.New(slog.DiscardHandler))
	if err != nil {
		return fmt.Errorf("delete %s: %w", volid, err)
	}
	return nil
}
