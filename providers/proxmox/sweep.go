package proxmox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/hypersdk/hypersdk/providers"
)

// SweepOrphans implements providers.OrphanSweeper: it removes the
// temporary snapshots (named hypersdk_…, the job in their description) and
// the dump archives (the job in their notes, in the configured storage) of
// jobs that isLive reports over — what a daemon killed mid-export, or a
// removal that failed, left behind.
func (p *Provider) SweepOrphans(ctx context.Context, isLive func(jobID string) bool) ([]string, error) {
	gs, err := p.resources(ctx)
	if err != nil {
		return nil, err
	}
	a, err := p.client()
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	nodes := map[string]bool{}
	for _, g := range gs {
		nodes[g.Node] = true
		if g.Type != "qemu" {
			continue
		}
		var snaps []struct {
			Name        string          `json:"name"`
			Description json.RawMessage `json:"description"`
		}
		if err := a.get(ctx, fmt.Sprintf("/nodes/%s/qemu/%d/snapshot", url.PathEscape(g.Node), int(g.VMID)), nil, &snaps); err != nil {
			if errors.Is(err, providers.ErrNotFound) {
				continue // migrated or deleted since the listing
			}
			errs = append(errs, err)
			continue
		}
		for _, s := range snaps {
			var descr string
			_ = json.Unmarshal(s.Description, &descr)
			job, tagged := taggedJob(descr)
			if !strings.HasPrefix(s.Name, snapshotPrefix) || !tagged || s.Name != snapshotName(job) || isLive(job) {
				continue
			}
			ssh, err := p.sshClient(g.Node)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			log := p.log.With("job_id", job, "vmid", int(g.VMID))
			if err := p.removeSnapshot(ssh, int(g.VMID), s.Name, log); err != nil {
				errs = append(errs, fmt.Errorf("snapshot %s of VM %d: %w", s.Name, int(g.VMID), err))
				continue
			}
			removed = append(removed, fmt.Sprintf("snapshot %s of VM %d (job %s)", s.Name, int(g.VMID), job))
		}
	}
	if p.cfg.Vzdump.Storage != "" {
		seen := map[string]bool{} // a shared storage lists the same volumes on every node
		for node := range nodes {
			dumps, err := p.jobDumps(ctx, node)
			if err != nil {
				if errors.Is(err, providers.ErrNotFound) {
					continue // the storage is not on this node
				}
				errs = append(errs, err)
				continue
			}
			for job, volids := range dumps {
				if isLive(job) {
					continue
				}
				for _, v := range volids {
					if seen[v] {
						continue
					}
					seen[v] = true
					if err := p.deleteVolume(ctx, node, v); err != nil {
						errs = append(errs, err)
						continue
					}
					removed = append(removed, fmt.Sprintf("dump %s (job %s)", v, job))
				}
			}
		}
	}
	return removed, errors.Join(errs...)
}
