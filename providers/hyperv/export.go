package hyperv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"regexp"
	"strings"

	"github.com/hypersdk/hypersdk/progress"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/providers/hyperv/internal/ps"
)

// namePrefix starts the name of every checkpoint and staging folder an
// export makes; the job id follows.
const namePrefix = "hypersdk-"

// jobIDPattern: what a job id may hold to become part of a checkpoint and
// folder name (the job engine's ids are digits; hyperctl's made-up ones
// letters, digits and dashes).
var jobIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

// stagedDisk is a disk ready on the host (ps.Stage's answer).
type stagedDisk struct {
	Path     string `json:"path"` // relative to the job's folder, \ separators
	Size     int64  `json:"size"` // virtual size
	FileSize int64  `json:"file"`
	Format   string `json:"format"`
}

// jobInput is the input of every per-job script.
type jobInput struct {
	ID      string   `json:"id,omitempty"`   // VMId
	Name    string   `json:"name,omitempty"` // checkpoint name
	Staging string   `json:"staging"`
	Folder  string   `json:"folder"`
	Files   []string `json:"files,omitempty"`
}

// PrepareExport exports the VM on the host into the job's staging folder
// and hands its disks over, each as one self-contained VHDX read over SMB
// or SFTP:
//
//   - a VM that is off: Export-VM;
//   - any other state: Checkpoint-VM named hypersdk-<job id> (the VM's
//     checkpoint type: Production by default, which quiesces the guest),
//     Export-VMSnapshot of it, and the checkpoint removed in Cleanup.
//
// Then ps.Stage merges every exported differencing chain (.avhdx) into a
// new dynamic VHDX with Convert-VHD, so what is handed over never needs a
// parent. The checkpoint and staging folder carry the job id in their
// names, fixed before they are created: Cleanup removes them whatever
// happened, and SweepOrphans removes those of jobs that are over (after a
// kill -9). A previous attempt's leftovers of the same job are removed
// before starting over.
func (p *Provider) PrepareExport(ctx context.Context, identifier string, opts providers.ExportOptions) (_ *providers.Export, err error) {
	if err := p.GetExportCapabilities().Validate(opts); err != nil {
		return nil, providers.Permanent(fmt.Errorf("hyperv %s: %w (a running VM is exported from a checkpoint)", p.name, err))
	}
	resumable := opts.JobID != ""
	if opts.JobID == "" {
		// A caller without a job (a library user) still gets named,
		// findable leftovers, but no resume across calls; a daemon's
		// orphan sweep of the same host takes such a job for over.
		opts.JobID = "untracked-" + randomToken()[:16]
	}
	if !jobIDPattern.MatchString(opts.JobID) {
		return nil, providers.Permanent(fmt.Errorf("hyperv %s: %w: job id %q cannot name a checkpoint and folder (letters, digits, - and _, at most 64)", p.name, providers.ErrInvalidArgument, opts.JobID))
	}
	opts.Report(progress.Report{Phase: progress.PhaseConnecting})
	raw, err := p.listRaw(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("hyperv %s: %w", p.name, err)
	}
	var infos []*providers.VMInfo
	for _, v := range raw {
		infos = append(infos, p.vmInfo(v))
	}
	vm, err := findVM(infos, identifier)
	if err != nil {
		return nil, fmt.Errorf("hyperv %s: %w", p.name, err)
	}
	var src vmJSON
	for _, v := range raw {
		if strings.EqualFold(v.ID, vm.ID) {
			src = v
		}
	}
	if len(src.Disks) == 0 {
		return nil, providers.Permanent(fmt.Errorf("hyperv %s: VM %q has no hard drive to export", p.name, vm.Name))
	}
	job := jobInput{ID: src.ID, Name: namePrefix + opts.JobID, Staging: p.cfg.StagingPath, Folder: namePrefix + opts.JobID}
	useCheckpoint := src.State != "Off"
	log := opts.Log().With("provider", p.name, "job_id", opts.JobID, "vm", vm.Name)

	cleanup := func() { p.cleanup(log, job, useCheckpoint) }
	defer func() {
		if err != nil {
			cleanup()
		}
	}()
	// An earlier attempt of this job that got as far as staging every
	// disk left a complete folder (and its checkpoint): reused as it is,
	// its files unchanged, so that their downloads resume from the part
	// files that attempt kept.
	check := job
	if !useCheckpoint {
		check.Name = ""
	}
	var staged []stagedDisk
	if err := p.run(ctx, ps.Staged, check, &staged); err != nil {
		log.Warn("cannot tell whether an earlier attempt staged the disks; staging again", "err", err)
		staged = nil
	}
	if len(staged) == len(src.Disks) {
		log.Info("reusing the disks an earlier attempt of the job staged", "folder", job.Folder)
	} else if staged, err = p.stageDisks(ctx, log, opts, vm, src, job, useCheckpoint); err != nil {
		return nil, err
	}
	files, err := p.fileClient()
	if err != nil {
		return nil, err
	}
	exp := &providers.Export{VM: vm, Cleanup: cleanup}
	for i, s := range staged {
		rel, err := relPath(job.Folder, s.Path)
		if err != nil {
			return nil, fmt.Errorf("hyperv %s: staged disk %d: %w", p.name, i, err)
		}
		fi, err := files.Stat(ctx, rel)
		if err != nil {
			return nil, fmt.Errorf("hyperv %s: staged disk %s: %w", p.name, rel, err)
		}
		if fi.Size() != s.FileSize {
			return nil, fmt.Errorf("hyperv %s: staged disk %s is %d bytes over %s, %d on the host", p.name, rel, fi.Size(), p.cfg.Files.Method, s.FileSize)
		}
		vm.Disks[i].CapacityBytes = s.Size
		exp.Disks = append(exp.Disks, p.diskSource(opts, resumable, fmt.Sprintf("disk-%d", i), files, rel, s))
	}
	return exp, nil
}

// relPath is the staged file's path under the staging path, / separated,
// refusing anything that would leave the job's folder.
func relPath(folder, p string) (string, error) {
	r := strings.ReplaceAll(p, `\`, "/")
	c := path.Clean("/" + r)
	if r == "" || c != "/"+r || strings.Contains(r, ":") {
		return "", fmt.Errorf("path %q is not a plain relative path", p)
	}
	return folder + c, nil
}

// windowsBase is the last element of a Windows path.
func windowsBase(p string) string {
	if i := strings.LastIndexAny(p, `\/`); i >= 0 {
		return p[i+1:]
	}
	return p
}

// removeJobLeftovers removes what an earlier attempt of the job left.
func (p *Provider) removeJobLeftovers(ctx context.Context, log *slog.Logger, job jobInput, checkpoint bool) {
	if checkpoint {
		if err := p.run(ctx, ps.RemoveCheckpoint, job, nil); err != nil {
			log.Warn("removing an earlier checkpoint of this job failed", "err", err)
		}
	}
	if err := p.run(ctx, ps.RemoveStaging, job, nil); err != nil {
		log.Warn("removing an earlier staging folder of this job failed", "err", err)
	}
}

// cleanup removes the job's checkpoint and staging folder on a context of
// its own (the export's may be cancelled).
func (p *Provider) cleanup(log *slog.Logger, job jobInput, checkpoint bool) {
	ctx, cancel := context.WithTimeout(context.Background(), p.cleanupTimeout)
	defer cancel()
	var errs []error
	if checkpoint {
		if err := p.run(ctx, ps.RemoveCheckpoint, job, nil); err != nil {
			errs = append(errs, fmt.Errorf("checkpoint %s: %w", job.Name, err))
		}
	}
	if err := p.run(ctx, ps.RemoveStaging, job, nil); err != nil {
		errs = append(errs, fmt.Errorf("staging folder %s: %w", job.Folder, err))
	}
	if err := errors.Join(errs...); err != nil {
		log.Warn("cleanup failed; the orphan sweep retries it", "err", err)
		return
	}
	log.Info("checkpoint and staging folder removed", "folder", job.Folder)
}

// SweepOrphans removes the checkpoints and staging folders of jobs that
// are over (providers.OrphanSweeper).
func (p *Provider) SweepOrphans(ctx context.Context, isLive func(jobID string) bool) ([]string, error) {
	var left struct {
		Checkpoints []struct{ VM, Name string } `json:"checkpoints"`
		Folders     []string                    `json:"folders"`
	}
	if err := p.run(ctx, ps.ListLeftovers, map[string]string{"prefix": namePrefix, "staging": p.cfg.StagingPath}, &left); err != nil {
		return nil, fmt.Errorf("hyperv %s: %w", p.name, err)
	}
	var deleted []string
	var errs []error
	for _, c := range left.Checkpoints {
		id := strings.TrimPrefix(c.Name, namePrefix)
		if !jobIDPattern.MatchString(id) || isLive(id) {
			continue
		}
		if err := p.run(ctx, ps.RemoveCheckpoint, jobInput{ID: c.VM, Name: c.Name, Staging: p.cfg.StagingPath}, nil); err != nil {
			errs = append(errs, err)
			continue
		}
		deleted = append(deleted, "checkpoint "+c.Name)
	}
	for _, f := range left.Folders {
		id := strings.TrimPrefix(f, namePrefix)
		if !jobIDPattern.MatchString(id) || isLive(id) {
			continue
		}
		if err := p.run(ctx, ps.RemoveStaging, jobInput{Staging: p.cfg.StagingPath, Folder: f}, nil); err != nil {
			errs = append(errs, err)
			continue
		}
		deleted = append(deleted, "staging folder "+f)
	}
	return deleted, errors.Join(errs...)
}

// stageDisks exports the VM (or its checkpoint, made first) into the job's
// folder and merges its disks there, after removing what an earlier
// attempt of the job left.
func (p *Provider) stageDisks(ctx context.Context, log *slog.Logger, opts providers.ExportOptions, vm *providers.VMInfo, src vmJSON, job jobInput, useCheckpoint bool) ([]stagedDisk, error) {
	// Removing an earlier attempt's checkpoint puts the VM back on its own
	// disks, so the drives are listed again: their files are what the
	// export copies.
	p.removeJobLeftovers(ctx, log, job, useCheckpoint)
	again, err := p.listRaw(ctx, src.ID)
	if err != nil {
		return nil, fmt.Errorf("hyperv %s: %w", p.name, err)
	}
	if len(again) != 1 || len(again[0].Disks) != len(src.Disks) {
		return nil, fmt.Errorf("hyperv %s: VM %q changed while the export started", p.name, vm.Name)
	}
	src = again[0]
	opts.Report(progress.Report{Phase: progress.PhasePreparing, Item: vm.Name})
	if useCheckpoint {
		var cp struct{ ID, Type string }
		log.Info("creating checkpoint", "checkpoint", job.Name)
		if err := p.run(ctx, ps.Checkpoint, job, &cp); err != nil {
			return nil, fmt.Errorf("hyperv %s: checkpoint of %q: %w", p.name, vm.Name, err)
		}
		log.Info("exporting checkpoint", "checkpoint", job.Name, "type", cp.Type)
		if err := p.run(ctx, ps.ExportCheckpoint, job, nil); err != nil {
			return nil, fmt.Errorf("hyperv %s: export of checkpoint of %q: %w", p.name, vm.Name, err)
		}
	} else {
		log.Info("exporting VM", "folder", job.Folder)
		if err := p.run(ctx, ps.ExportVM, job, nil); err != nil {
			return nil, fmt.Errorf("hyperv %s: export of %q: %w", p.name, vm.Name, err)
		}
	}
	stage := job
	for _, d := range src.Disks {
		stage.Files = append(stage.Files, windowsBase(d.Path))
	}
	var staged []stagedDisk
	if err := p.run(ctx, ps.Stage, stage, &staged); err != nil {
		return nil, fmt.Errorf("hyperv %s: staging the disks of %q: %w", p.name, vm.Name, err)
	}
	if len(staged) != len(src.Disks) {
		return nil, fmt.Errorf("hyperv %s: staging answered %d disks for %d drives", p.name, len(staged), len(src.Disks))
	}
	return staged, nil
}
