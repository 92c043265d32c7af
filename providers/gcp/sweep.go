package gcp

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"cloud.google.com/go/storage"
	"google.golang.org/api/iterator"
)

// SweepOrphans implements providers.OrphanSweeper: it finds every job
// that left something on the platform — snapshots, images, the builder's
// VMs and disks labelled hypersdk-job, builds tagged hypersdk still queued or working,
// staging objects under <staging_prefix>/<job id>/ — and removes what the
// jobs isLive reports over left (a daemon killed mid-export, a clean-up
// that failed). isLive must answer true for every job that may still run.
func (p *Provider) SweepOrphans(ctx context.Context, isLive func(jobID string) bool) ([]string, error) {
	jobs, err := p.jobsOnPlatform(ctx)
	var deleted []string
	errs := []error{err}
	for _, job := range jobs {
		if isLive(job) {
			continue
		}
		d, err := p.deleteJob(ctx, job)
		deleted = append(deleted, d...)
		errs = append(errs, err)
		if len(d) > 0 {
			p.log.Info("orphaned export resources deleted", "job_id", job, "deleted", d)
		}
	}
	return deleted, errors.Join(errs...)
}

// jobsOnPlatform lists the job ids that label, tag or prefix something.
func (p *Provider) jobsOnPlatform(ctx context.Context) ([]string, error) {
	c, err := p.clients()
	if err != nil {
		return nil, err
	}
	var jobs []string
	add := func(j string) {
		if j != "" && jobIDPattern.MatchString(j) && !slices.Contains(jobs, j) {
			jobs = append(jobs, j)
		}
	}
	var errs []error
	filter := "labels." + LabelJob + ":*"
	snaps, err := p.listSnapshots(ctx, filter)
	errs = append(errs, err)
	for _, s := range snaps {
		add(s.GetLabels()[LabelJob])
	}
	images, err := p.listImages(ctx, filter)
	errs = append(errs, err)
	for _, im := range images {
		add(im.GetLabels()[LabelJob])
	}
	for _, z := range p.cfg.Zones {
		disks, err := p.listDisks(ctx, z, filter)
		errs = append(errs, err)
		for _, d := range disks {
			add(d.GetLabels()[LabelJob])
		}
		workers, err := p.listWorkers(ctx, z, filter)
		errs = append(errs, err)
		for _, in := range workers {
			add(in.GetLabels()[LabelJob])
		}
	}
	for _, st := range []string{"QUEUED", "WORKING"} {
		builds, err := p.listBuilds(ctx, fmt.Sprintf(`tags="%s" AND status="%s"`, TagAll, st))
		errs = append(errs, err)
		for _, b := range builds {
			for _, t := range b.GetTags() {
				if j, ok := strings.CutPrefix(t, TagJob); ok {
					add(j)
				}
			}
		}
	}
	it := c.storage.Bucket(p.cfg.StagingBucket).Objects(ctx, &storage.Query{Prefix: p.cfg.prefix() + "/", Delimiter: "/"})
	for {
		o, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			errs = append(errs, p.apiError("list gs://"+p.cfg.StagingBucket+"/"+p.cfg.prefix()+"/", err))
			break
		}
		if o.Prefix != "" {
			add(strings.TrimSuffix(strings.TrimPrefix(o.Prefix, p.cfg.prefix()+"/"), "/"))
		}
	}
	return jobs, errors.Join(errs...)
}
