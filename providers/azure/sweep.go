package azure

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"
)

// SweepOrphans implements providers.OrphanSweeper: it removes what exports
// of jobs that isLive reports over left behind (a daemon killed
// mid-export, a clean-up that failed): snapshots tagged TagJob — their
// grant revoked, then deleted — and disks tagged TagJob — their grant
// revoked, the tag removed. It looks at the whole subscription, or at the
// configured resource groups (which hold the snapshots of their VMs).
// isLive must answer true for every job that may still run. It returns
// the ids of what it cleaned up; a failure is reported and the sweep goes
// on.
func (p *Provider) SweepOrphans(ctx context.Context, isLive func(jobID string) bool) ([]string, error) {
	c, err := p.clients()
	if err != nil {
		return nil, err
	}
	var done []string
	var errs []error
	snaps, err := p.listSnapshots(ctx, c)
	if err != nil {
		return nil, err
	}
	for _, s := range snaps {
		job := to(s.Tags[TagJob])
		if job == "" || s.ID == nil || isLive(job) {
			continue
		}
		a, err := p.orphan(c, job, "snapshots", *s.ID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		a.id = *s.ID
		if err := a.deleteSnapshot(ctx, true); err != nil {
			errs = append(errs, err)
			continue
		}
		p.log.Info("orphaned snapshot deleted", "snapshot", *s.ID, "job_id", job)
		done = append(done, *s.ID)
	}
	disks, err := p.listDisks(ctx, c)
	if err != nil {
		return done, errors.Join(append(errs, err)...)
	}
	for _, d := range disks {
		job := to(d.Tags[TagJob])
		if job == "" || d.ID == nil || isLive(job) {
			continue
		}
		a, err := p.orphan(c, job, "disks", *d.ID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		a.disk = d
		if err := a.revoke(ctx); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := a.untagDisk(ctx); err != nil {
			errs = append(errs, err)
			continue
		}
		p.log.Info("orphaned disk grant revoked", "disk", *d.ID, "job_id", job)
		done = append(done, *d.ID)
	}
	return done, errors.Join(errs...)
}

// orphan is an access to what a dead job left, for the sweep.
func (p *Provider) orphan(c *clients, job, kind, id string) (*access, error) {
	rid, err := arm.ParseResourceID(id)
	if err != nil {
		return nil, err
	}
	return &access{
		p: p, c: c, log: p.log.With("job_id", job), jobID: job,
		kind: kind, rg: rid.ResourceGroupName, name: rid.Name, id: id,
		disk: &armcompute.Disk{ID: &id},
	}, nil
}

// listSnapshots lists the snapshots of the subscription (or of the
// configured resource groups).
func (p *Provider) listSnapshots(ctx context.Context, c *clients) (map[string]*armcompute.Snapshot, error) {
	out := map[string]*armcompute.Snapshot{}
	add := func(ss []*armcompute.Snapshot) {
		for _, s := range ss {
			if s != nil && s.ID != nil {
				out[strings.ToLower(*s.ID)] = s
			}
		}
	}
	if len(p.cfg.ResourceGroups) == 0 {
		pages := c.snapshots.NewListPager(nil)
		for pages.More() {
			page, err := pages.NextPage(ctx)
			if err != nil {
				return nil, p.armError("list snapshots", err)
			}
			add(page.Value)
		}
		return out, nil
	}
	for _, rg := range p.cfg.ResourceGroups {
		pages := c.snapshots.NewListByResourceGroupPager(rg, nil)
		for pages.More() {
			page, err := pages.NextPage(ctx)
			if err != nil {
				if statusOf(p.armError("", err)) == http.StatusNotFound {
					break // a resource group that does not exist holds nothing
				}
				return nil, p.armError("list snapshots of resource group "+rg, err)
			}
			add(page.Value)
		}
	}
	return out, nil
}
