package azure

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"
	"golang.org/x/sync/errgroup"

	"github.com/hypersdk/hypersdk/progress"
	"github.com/hypersdk/hypersdk/providers"
)

// Tags the provider sets. TagJob names the job that owns a snapshot (set
// in the create call itself, so no snapshot of an export ever exists
// untagged) or that holds a grant on a disk (set on the disk before the
// grant is asked for); the orphan sweep finds both by it. TagVM is the VM
// id a snapshot was taken of.
const (
	TagJob = "hypersdk-job"
	TagVM  = "hypersdk-vm"
)

// GetExportCapabilities implements providers.Provider: every packaging and
// disk format the pipeline writes, read through SAS grants as block
// sources. Snapshot is supported (and forces a snapshot even of a
// deallocated VM's disks); power_off is not (see the package doc).
func (p *Provider) GetExportCapabilities() providers.ExportCapabilities {
	return providers.ExportCapabilities{
		Formats:          providers.Formats(),
		DiskFormats:      providers.DiskFormats(),
		Compression:      []string{"gzip", "zstd"},
		SupportsSnapshot: true, ParallelDownloads: true, Resumable: true,
	}
}

// PrepareExport implements providers.Exporter. It looks the VM up and,
// for each of its managed disks at once, makes it readable — a snapshot
// tagged for the job when the disk is attached to a VM that is not
// deallocated (or when opts.Snapshot asks for one), else the disk itself,
// tagged before it is granted — grants read access to it as a VHD, checks
// the SAS URL and the blob's fixed-VHD footer, and hands each disk over as
// a block source of its page ranges. An earlier attempt's snapshot (or
// grant) of the same job is reused, so an export interrupted by a kill -9
// resumes with its journal. Cleanup revokes every grant and deletes every
// snapshot it made.
func (p *Provider) PrepareExport(ctx context.Context, identifier string, opts providers.ExportOptions) (_ *providers.Export, err error) {
	if err := p.GetExportCapabilities().Validate(opts); err != nil {
		return nil, providers.Permanent(err)
	}
	jobID := opts.JobID
	if jobID == "" {
		// A caller without a job (a library user) still gets tagged,
		// findable snapshots, but no resume across calls; a daemon's
		// orphan sweep of the same subscription takes such a job for over.
		jobID = "untracked-" + randomHex(8)
	}
	// The job's logger, or the provider's (opts.Log would fall back to
	// the process default).
	log := p.log
	if opts.Logger != nil {
		log = opts.Logger
	}
	log = log.With("provider", p.name, "job_id", jobID)
	opts.Report(progress.Report{Phase: progress.PhaseConnecting})
	rec, err := p.findVM(ctx, identifier)
	if err != nil {
		return nil, err
	}
	vm, err := p.describe(ctx, rec)
	if err != nil {
		return nil, err
	}
	if len(rec.disks) == 0 {
		return nil, providers.Permanent(fmt.Errorf("azure %s: export %s: %w: the VM has no managed disk (unmanaged VHDs in storage accounts are not exported)", p.name, vm.Path, providers.ErrUnsupported))
	}
	log = log.With("vm", vm.Path)
	c, err := p.clients()
	if err != nil {
		return nil, err
	}
	opts.Report(progress.Report{Phase: progress.PhasePreparing})
	vmGUID := ""
	if rec.vm.Properties != nil {
		vmGUID = to(rec.vm.Properties.VMID)
	}
	accesses := make([]*access, len(rec.disks))
	for i, ref := range rec.disks {
		if ref.disk == nil {
			return nil, fmt.Errorf("azure %s: export %s: disk %s was not found", p.name, vm.Path, ref.id)
		}
		accesses[i] = &access{p: p, c: c, log: log.With("disk", ref.label), jobID: jobID, vmGUID: vmGUID, label: ref.label, disk: ref.disk}
	}
	cleanup := func() {
		var wg sync.WaitGroup
		for _, a := range accesses {
			wg.Go(a.cleanup)
		}
		wg.Wait()
	}
	defer func() {
		if err != nil {
			cleanup()
		}
	}()
	g, gctx := errgroup.WithContext(ctx)
	for _, a := range accesses {
		g.Go(func() error { return a.prepare(gctx, opts.Snapshot) })
	}
	if err := g.Wait(); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("azure %s: export %s: %w", p.name, vm.Path, context.Cause(ctx))
		}
		return nil, err
	}
	out := &providers.Export{VM: cloneVM(vm), Cleanup: cleanup}
	for i, a := range accesses {
		out.VM.Disks[i].CapacityBytes = a.capacity
		out.Disks = append(out.Disks, providers.DiskSource{
			Name: fmt.Sprintf("disk-%d", i), Format: providers.SourceRaw, Capacity: a.capacity, Size: -1,
			Blocks: a.blockSource(),
		})
	}
	return out, nil
}

// access is how one disk of an export is read: a snapshot made for the
// export, or the disk itself, under a SAS grant. Each step that leaves
// something on the platform is recorded before it is asked for, so that
// cleanup undoes it whatever happened to the answer.
type access struct {
	p      *Provider
	c      *clients
	log    *slog.Logger
	jobID  string
	vmGUID string
	label  string
	disk   *armcompute.Disk

	// The target granted: the snapshot (kind "snapshots") or the disk.
	kind, rg, name, id, uniqueID string

	mu         sync.Mutex
	madeSnap   bool // the snapshot named rg/name may exist
	taggedDisk bool // the disk may carry TagJob=jobID
	granted    bool // a grant on the target may be active
	cleanedUp  bool
	blob       *pageBlob
	capacity   int64
	blobSize   int64
	sourceID   string
	refreshes  int
	// refreshMu makes renewals one at a time: the listing and the block
	// workers may find an expired SAS together.
	refreshMu sync.Mutex
}

// prepare makes the disk readable: snapshot or tag, grant, footer.
func (a *access) prepare(ctx context.Context, forceSnapshot bool) error {
	d := a.disk
	rid, err := arm.ParseResourceID(to(d.ID))
	if err != nil {
		return fmt.Errorf("azure %s: disk id %q: %w", a.p.name, to(d.ID), err)
	}
	state := ""
	if d.Properties != nil && d.Properties.DiskState != nil {
		state = string(*d.Properties.DiskState)
	}
	ours := to(d.Tags[TagJob]) == a.jobID
	direct := !forceSnapshot && (state == string(armcompute.DiskStateUnattached) || state == string(armcompute.DiskStateReserved)) ||
		state == string(armcompute.DiskStateActiveSAS) && ours
	if direct {
		a.kind, a.rg, a.name, a.id = "disks", rid.ResourceGroupName, rid.Name, to(d.ID)
		a.uniqueID = ""
		if d.Properties != nil {
			a.uniqueID = to(d.Properties.UniqueID)
		}
		err := a.prepareDirect(ctx, state, ours)
		if err == nil || statusOf(err) != http.StatusConflict {
			return err
		}
		// The VM started meanwhile: its disk can only be read through a
		// snapshot now.
		a.log.Info("the disk cannot be granted directly any more; snapshotting it", "err", err)
		a.undoDirect()
	}
	return a.prepareSnapshot(ctx, rid)
}

// prepareDirect grants access to the disk itself (unattached, or attached
// to a deallocated VM): tagged for the job first, so that a grant whose
// export dies is found by the orphan sweep. The block source's id names
// the disk and when its ownership last changed: a disk attached and
// started between two attempts is read anew.
func (a *access) prepareDirect(ctx context.Context, state string, ours bool) error {
	a.mu.Lock()
	a.taggedDisk = true
	a.mu.Unlock()
	if !ours {
		tags := map[string]*string{}
		maps.Copy(tags, a.disk.Tags)
		tags[TagJob] = ptr(a.jobID)
		if err := a.updateDiskTags(ctx, tags); err != nil {
			return err
		}
	}
	if state == string(armcompute.DiskStateActiveSAS) {
		// An earlier attempt's grant: its SAS is lost with that attempt.
		a.mu.Lock()
		a.granted = true
		a.mu.Unlock()
		if err := a.revoke(ctx); err != nil {
			return err
		}
	}
	owned := ""
	if p := a.disk.Properties; p != nil && p.LastOwnershipUpdateTime != nil {
		owned = p.LastOwnershipUpdateTime.UTC().Format(time.RFC3339Nano)
	}
	if owned != "" && a.uniqueID != "" {
		a.sourceID = a.id + "#" + a.uniqueID + "@" + owned
	}
	a.log.Info("reading the disk itself", "disk_id", a.id, "state", state)
	return a.grantAndOpen(ctx)
}

// undoDirect revokes and untags after a direct grant failed.
func (a *access) undoDirect() {
	ctx, cancel := context.WithTimeout(context.Background(), a.p.tune.cleanupTimeout)
	defer cancel()
	a.mu.Lock()
	granted, tagged := a.granted, a.taggedDisk
	a.granted, a.taggedDisk = false, false
	a.mu.Unlock()
	if granted {
		if err := a.revoke(ctx); err != nil {
			a.log.Warn("revoking the disk's grant failed; the orphan sweep will retry", "err", err)
		}
	}
	if tagged {
		if err := a.untagDisk(ctx); err != nil {
			a.log.Warn("untagging the disk failed; the orphan sweep will retry", "err", err)
		}
	}
}

// prepareSnapshot snapshots the disk — or reuses the snapshot an earlier
// attempt of the job made of it — waits for an incremental snapshot's
// copy, grants access to it.
func (a *access) prepareSnapshot(ctx context.Context, disk *arm.ResourceID) error {
	a.kind, a.rg, a.name = "snapshots", disk.ResourceGroupName, snapshotName(a.jobID, to(a.disk.ID))
	if vmRG := a.vmResourceGroup(); vmRG != "" {
		// Beside the VM: the configured resource groups, which the sweep
		// lists, hold it.
		a.rg = vmRG
	}
	a.mu.Lock()
	a.madeSnap = true // from here on, whatever answers, cleanup deletes rg/name
	a.mu.Unlock()
	snap, err := a.existingSnapshot(ctx)
	if err != nil {
		return err
	}
	if snap == nil {
		snap, err = a.createSnapshot(ctx)
		if err != nil {
			return err
		}
	}
	if snap.Properties == nil || snap.Properties.UniqueID == nil || snap.ID == nil {
		return fmt.Errorf("azure %s: snapshot %s/%s: the answer lacks its id", a.p.name, a.rg, a.name)
	}
	a.id, a.uniqueID = *snap.ID, *snap.Properties.UniqueID
	a.sourceID = a.id + "#" + a.uniqueID
	if err := a.waitCopy(ctx, snap); err != nil {
		return err
	}
	return a.grantAndOpen(ctx)
}

// vmResourceGroup is the resource group of the VM the disk is attached to.
func (a *access) vmResourceGroup() string {
	if a.disk.ManagedBy == nil {
		return ""
	}
	return rgOf(*a.disk.ManagedBy, "")
}

// existingSnapshot returns the job's snapshot of the disk an earlier
// attempt made, when usable (nil when there is none); an unusable one is
// removed.
func (a *access) existingSnapshot(ctx context.Context) (*armcompute.Snapshot, error) {
	res, err := a.c.snapshots.Get(ctx, a.rg, a.name, nil)
	if err != nil {
		err = a.p.armError("get snapshot "+a.rg+"/"+a.name, err)
		if statusOf(err) == http.StatusNotFound {
			return nil, nil
		}
		return nil, err
	}
	s := &res.Snapshot
	why := ""
	switch {
	case to(s.Tags[TagJob]) != a.jobID:
		why = "it is not tagged for this job"
	case s.Properties == nil || s.Properties.CreationData == nil || !strings.EqualFold(to(s.Properties.CreationData.SourceResourceID), to(a.disk.ID)):
		why = "it is of another disk"
	case !strings.EqualFold(to(s.Properties.ProvisioningState), "Succeeded"):
		why = "its provisioning state is " + to(s.Properties.ProvisioningState)
	}
	if why != "" {
		if to(s.Tags[TagJob]) != a.jobID {
			// Not ours: never touched.
			a.mu.Lock()
			a.madeSnap = false
			a.mu.Unlock()
			return nil, providers.Permanent(fmt.Errorf("azure %s: snapshot %s/%s exists and %s; remove it or use another job", a.p.name, a.rg, a.name, why))
		}
		a.log.Info("the job's earlier snapshot is unusable; replacing it", "snapshot", to(s.ID), "reason", why)
		if err := a.deleteSnapshot(ctx, true); err != nil {
			return nil, err
		}
		return nil, nil
	}
	a.log.Info("resuming from the job's snapshot", "snapshot", to(s.ID))
	if s.Properties.DiskState != nil && *s.Properties.DiskState == armcompute.DiskStateActiveSAS {
		// The earlier attempt's grant: its SAS died with that attempt.
		a.mu.Lock()
		a.granted = true
		a.mu.Unlock()
		a.id = to(s.ID)
		if err := a.revoke(ctx); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// incrementalOnly are the disk SKUs that can be snapshotted incrementally
// only.
var incrementalOnly = []armcompute.DiskStorageAccountTypes{
	armcompute.DiskStorageAccountTypesPremiumV2LRS, armcompute.DiskStorageAccountTypesUltraSSDLRS,
}

// createSnapshot snapshots the disk, tagged in the create call itself.
func (a *access) createSnapshot(ctx context.Context) (*armcompute.Snapshot, error) {
	incremental := a.disk.SKU != nil && a.disk.SKU.Name != nil && slices.Contains(incrementalOnly, *a.disk.SKU.Name)
	in := armcompute.Snapshot{
		Location: a.disk.Location,
		Tags:     map[string]*string{TagJob: ptr(a.jobID), TagVM: ptr(a.vmGUID)},
		Properties: &armcompute.SnapshotProperties{
			CreationData: &armcompute.CreationData{CreateOption: ptr(armcompute.DiskCreateOptionCopy), SourceResourceID: a.disk.ID},
			Incremental:  ptr(incremental),
		},
	}
	a.log.Info("creating a snapshot", "snapshot", a.rg+"/"+a.name, "incremental", incremental)
	poller, err := a.c.snapshots.BeginCreateOrUpdate(ctx, a.rg, a.name, in, nil)
	if err != nil {
		return nil, a.p.armError("create snapshot "+a.rg+"/"+a.name, err)
	}
	res, err := poller.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: a.p.tune.pollFrequency})
	if err != nil {
		return nil, a.p.armError("create snapshot "+a.rg+"/"+a.name, err)
	}
	a.log.Info("snapshot created", "snapshot", to(res.ID))
	return &res.Snapshot, nil
}

// waitCopy waits until an incremental snapshot's background copy is
// complete: it cannot be granted before.
func (a *access) waitCopy(ctx context.Context, s *armcompute.Snapshot) error {
	deadline := time.Now().Add(a.p.tune.copyTimeout)
	for {
		if s.Properties == nil || s.Properties.CompletionPercent == nil || *s.Properties.CompletionPercent >= 100 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("azure %s: snapshot %s still copying (%.0f%%) after %s", a.p.name, a.id, *s.Properties.CompletionPercent, a.p.tune.copyTimeout)
		}
		a.log.Info("waiting for the incremental snapshot's copy", "snapshot", a.id, "percent", *s.Properties.CompletionPercent)
		select {
		case <-ctx.Done():
			return fmt.Errorf("azure %s: wait for snapshot %s: %w", a.p.name, a.id, context.Cause(ctx))
		case <-time.After(a.p.tune.copyPoll):
		}
		res, err := a.c.snapshots.Get(ctx, a.rg, a.name, nil)
		if err != nil {
			return a.p.armError("get snapshot "+a.id, err)
		}
		s = &res.Snapshot
	}
}

// grantAndOpen grants read access to the target and reads its blob's
// geometry.
func (a *access) grantAndOpen(ctx context.Context) error {
	sas, err := a.grant(ctx)
	if err != nil {
		return err
	}
	what := fmt.Sprintf("disk %s (%s %s)", a.label, strings.TrimSuffix(a.kind, "s"), a.name)
	b, err := a.p.newPageBlob(a.c.blobHTTP, what, sas)
	if err != nil {
		return err
	}
	capacity, size, err := b.geometry(ctx, a.p.tune.listRetry)
	if err != nil {
		return err
	}
	if want := diskBytes(a.disk); want > 0 && capacity != want {
		a.log.Warn("the VHD footer's size differs from the disk's", "footer_bytes", capacity, "disk_bytes", want)
	}
	a.mu.Lock()
	a.blob, a.capacity, a.blobSize = b, capacity, size
	a.mu.Unlock()
	return nil
}

// grant asks for read access to the target, as a VHD, for the tuned
// duration, and checks the SAS URL it answers.
func (a *access) grant(ctx context.Context) (*url.URL, error) {
	a.mu.Lock()
	a.granted = true // recorded before it is asked for
	a.mu.Unlock()
	data := armcompute.GrantAccessData{
		Access:            ptr(armcompute.AccessLevelRead),
		DurationInSeconds: ptr(int32(a.p.tune.grantDuration / time.Second)),
		FileFormat:        ptr(armcompute.FileFormatVHD),
	}
	what := fmt.Sprintf("grant read access to %s %s/%s", strings.TrimSuffix(a.kind, "s"), a.rg, a.name)
	var sas *string
	opts := &runtime.PollUntilDoneOptions{Frequency: a.p.tune.pollFrequency}
	if a.kind == "snapshots" {
		poller, err := a.c.snapshots.BeginGrantAccess(ctx, a.rg, a.name, data, nil)
		if err != nil {
			return nil, a.p.armError(what, err)
		}
		res, err := poller.PollUntilDone(ctx, opts)
		if err != nil {
			return nil, a.p.armError(what, err)
		}
		sas = res.AccessSAS
	} else {
		poller, err := a.c.disks.BeginGrantAccess(ctx, a.rg, a.name, data, nil)
		if err != nil {
			return nil, a.p.armError(what, err)
		}
		res, err := poller.PollUntilDone(ctx, opts)
		if err != nil {
			return nil, a.p.armError(what, err)
		}
		sas = res.AccessSAS
	}
	if sas == nil || *sas == "" {
		return nil, fmt.Errorf("azure %s: %s: the answer holds no SAS URL", a.p.name, what)
	}
	u, err := a.p.checkSAS(*sas)
	if err != nil {
		return nil, providers.Permanent(fmt.Errorf("azure %s: %s: %w", a.p.name, what, err))
	}
	a.log.Info("read access granted", "resource", a.id, "expires", sasExpiry(u).Format(time.RFC3339))
	return u, nil
}

// revoke ends the target's grant; a target already gone is not an error.
func (a *access) revoke(ctx context.Context) error {
	what := fmt.Sprintf("revoke access to %s %s/%s", strings.TrimSuffix(a.kind, "s"), a.rg, a.name)
	var err error
	opts := &runtime.PollUntilDoneOptions{Frequency: a.p.tune.pollFrequency}
	if a.kind == "snapshots" {
		var poller *runtime.Poller[armcompute.SnapshotsClientRevokeAccessResponse]
		if poller, err = a.c.snapshots.BeginRevokeAccess(ctx, a.rg, a.name, nil); err == nil {
			_, err = poller.PollUntilDone(ctx, opts)
		}
	} else {
		var poller *runtime.Poller[armcompute.DisksClientRevokeAccessResponse]
		if poller, err = a.c.disks.BeginRevokeAccess(ctx, a.rg, a.name, nil); err == nil {
			_, err = poller.PollUntilDone(ctx, opts)
		}
	}
	if err != nil {
		err = a.p.armError(what, err)
		if statusOf(err) != http.StatusNotFound {
			return err
		}
	}
	a.mu.Lock()
	a.granted = false
	a.mu.Unlock()
	a.log.Info("read access revoked", "resource", cmpOr(a.id, a.rg+"/"+a.name))
	return nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// refresh renews the grant after its SAS expired (or was withdrawn):
// revoke, grant anew, and check that the new SAS serves the same blob.
func (a *access) refresh(ctx context.Context) error {
	a.refreshMu.Lock()
	defer a.refreshMu.Unlock()
	a.mu.Lock()
	a.refreshes++
	n := a.refreshes
	a.mu.Unlock()
	a.log.Info("renewing read access", "resource", a.id, "renewal", n)
	if err := a.revoke(ctx); err != nil {
		return err
	}
	sas, err := a.grant(ctx)
	if err != nil {
		return err
	}
	if err := a.blob.setSAS(sas); err != nil {
		return err
	}
	capacity, size, err := a.blob.geometry(ctx, a.p.tune.listRetry)
	if err != nil {
		return err
	}
	if capacity != a.capacity || size != a.blobSize {
		return providers.Permanent(fmt.Errorf("azure %s: %s: the renewed grant serves a blob of %d bytes (disk %d), not %d (disk %d)",
			a.p.name, a.id, size, capacity, a.blobSize, a.capacity))
	}
	return nil
}

// deleteSnapshot deletes the snapshot rg/name, revoking its grant first
// when asked (Azure refuses to delete a snapshot under an active grant).
func (a *access) deleteSnapshot(ctx context.Context, revokeFirst bool) error {
	if revokeFirst {
		if err := a.revoke(ctx); err != nil {
			return err
		}
	}
	what := "delete snapshot " + a.rg + "/" + a.name
	poller, err := a.c.snapshots.BeginDelete(ctx, a.rg, a.name, nil)
	if err == nil {
		_, err = poller.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: a.p.tune.pollFrequency})
	}
	if err != nil {
		if err = a.p.armError(what, err); statusOf(err) != http.StatusNotFound {
			return err
		}
	}
	a.log.Info("snapshot deleted", "snapshot", a.rg+"/"+a.name)
	return nil
}

// updateDiskTags replaces the disk's tags.
func (a *access) updateDiskTags(ctx context.Context, tags map[string]*string) error {
	rid, err := arm.ParseResourceID(to(a.disk.ID))
	if err != nil {
		return err
	}
	what := "tag disk " + to(a.disk.ID)
	poller, err := a.c.disks.BeginUpdate(ctx, rid.ResourceGroupName, rid.Name, armcompute.DiskUpdate{Tags: tags}, nil)
	if err == nil {
		_, err = poller.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: a.p.tune.pollFrequency})
	}
	return a.p.armError(what, err)
}

// untagDisk removes TagJob from the disk when it is this job's.
func (a *access) untagDisk(ctx context.Context) error {
	d, err := a.p.getDisk(ctx, a.c, to(a.disk.ID))
	if err != nil {
		if statusOf(err) == http.StatusNotFound {
			return nil
		}
		return err
	}
	if to(d.Tags[TagJob]) != a.jobID {
		return nil
	}
	tags := maps.Clone(d.Tags)
	delete(tags, TagJob)
	if tags == nil {
		tags = map[string]*string{}
	}
	return a.updateDiskTags(ctx, tags)
}

// cleanup undoes what prepare recorded: revokes the grant, deletes the
// snapshot, untags the disk. It runs once, on a context of its own; what
// fails is left to the orphan sweep.
func (a *access) cleanup() {
	a.mu.Lock()
	if a.cleanedUp {
		a.mu.Unlock()
		return
	}
	a.cleanedUp = true
	granted, madeSnap, tagged := a.granted, a.madeSnap, a.taggedDisk
	a.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), a.p.tune.cleanupTimeout)
	defer cancel()
	if a.kind == "" {
		return // nothing was asked for
	}
	if granted {
		if err := a.revoke(ctx); err != nil {
			a.log.Warn("revoking read access failed; the orphan sweep will retry", "resource", cmpOr(a.id, a.rg+"/"+a.name), "err", err)
			if madeSnap {
				return // Azure will not delete it under a grant
			}
		}
	}
	if madeSnap {
		if err := a.deleteSnapshot(ctx, false); err != nil {
			a.log.Warn("deleting the snapshot failed; the orphan sweep will retry", "snapshot", a.rg+"/"+a.name, "err", err)
		}
	}
	if tagged {
		if err := a.untagDisk(ctx); err != nil {
			a.log.Warn("untagging the disk failed; the orphan sweep will retry", "disk", to(a.disk.ID), "err", err)
		}
	}
}

// blockSource serves the disk's page blob to the pipeline: its page
// ranges, cut to the cell grid, listed once per attempt; each block one
// ranged GET with its MD5; Refresh renews the grant.
func (a *access) blockSource() *providers.BlockSource {
	cell := a.p.tune.cellSize
	return &providers.BlockSource{
		ID:        a.sourceID,
		BlockSize: cell,
		Timeout:   a.p.tune.blockTimeout,
		List: func(ctx context.Context) iter.Seq2[providers.Block, error] {
			return cellBlocks(a.ranges(ctx), cell, a.capacity, func(err error) {
				a.log.Warn("Get Page Ranges failed; reading every cell instead", "err", err)
			})
		},
		Fetch: func(ctx context.Context, b providers.Block, dst []byte) (providers.BlockChecksums, error) {
			if b.Offset < 0 || b.Length <= 0 || b.Offset+b.Length > a.capacity || int64(len(dst)) != b.Length {
				return providers.BlockChecksums{}, providers.Permanent(fmt.Errorf("azure %s: block of %d bytes at %d: outside the %d-byte disk", a.p.name, b.Length, b.Offset, a.capacity))
			}
			sum, err := a.blob.readRange(ctx, b.Offset, dst, b.Length <= maxMD5Range)
			if err != nil {
				return providers.BlockChecksums{}, err
			}
			return providers.BlockChecksums{MD5: sum}, nil
		},
		Refresh: a.refresh,
	}
}

// ranges lists the blob's page ranges, resuming a listing that failed
// (after renewing the grant when it expired) past what it already
// yielded, a few times before giving up.
func (a *access) ranges(ctx context.Context) iter.Seq2[pageRange, error] {
	return func(yield func(pageRange, error) bool) {
		var last int64
		for attempt := 1; ; attempt++ {
			var failed error
			for r, err := range a.blob.pageRanges(ctx) {
				if err != nil {
					failed = err
					break
				}
				if r.end <= last {
					continue // yielded by an earlier attempt
				}
				if !yield(r, nil) {
					return
				}
				last = r.end
			}
			switch {
			case failed == nil:
				return
			case ctx.Err() != nil:
				yield(pageRange{}, context.Cause(ctx))
				return
			case attempt >= listAttempts || providers.IsPermanent(failed):
				yield(pageRange{}, failed)
				return
			case errors.Is(failed, providers.ErrExpired):
				if err := a.refresh(ctx); err != nil {
					yield(pageRange{}, err)
					return
				}
			}
			if err := a.p.tune.listRetry.Sleep(ctx, attempt); err != nil {
				yield(pageRange{}, context.Cause(ctx))
				return
			}
		}
	}
}

// snapshotName is the name of the job's snapshot of a disk: recognisable
// (hypersdk-<job>-…), valid for Azure (letters, digits, _ - ., at most 80)
// and the same in every attempt of the job, so that an attempt finds what
// an earlier one made.
func snapshotName(jobID, diskID string) string {
	sum := sha256.Sum256([]byte(jobID + "\x00" + strings.ToLower(diskID)))
	job := []byte(jobID)
	for i, c := range job {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			job[i] = '-'
		}
	}
	if len(job) > 52 {
		job = job[:52]
	}
	return "hypersdk-" + string(job) + "-" + hex.EncodeToString(sum[:4])
}

// cloneVM copies vm deeply enough to change its disks.
func cloneVM(vm *providers.VMInfo) *providers.VMInfo {
	c := *vm
	c.Disks = slices.Clone(vm.Disks)
	c.NICs = slices.Clone(vm.NICs)
	c.Labels = maps.Clone(vm.Labels)
	return &c
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // never fails on supported platforms
	}
	return hex.EncodeToString(b)
}
