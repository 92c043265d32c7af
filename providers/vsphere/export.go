package vsphere

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/nfc"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/hypersdk/hypersdk/progress"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/transfer"
)

// DefaultPowerOffTimeout is how long a guest shutdown may take before the
// VM is powered off hard, when the request does not say.
const DefaultPowerOffTimeout = 5 * time.Minute

// leaseProgressInterval is how often the NFC lease is told the export is
// alive; vCenter times leases out after 5 minutes of silence.
const leaseProgressInterval = 5 * time.Second

// PrepareExport implements providers.Exporter. A powered-off VM is
// exported as it is; a powered-on or suspended one only from a temporary
// snapshot (opts.Snapshot, removed by Cleanup whatever happens) or after
// shutting it down (opts.PowerOff). It opens the NFC export lease and hands
// over each disk's URL (a streamOptimized VMDK, chunked, length unknown)
// with the session cookie and an HTTP client pinned to the serving host's
// certificate; the lease hears progress until Finish completes or aborts
// it. The session stays checked out of the pool until Cleanup, since the
// downloads authenticate with its cookie.
func (p *Provider) PrepareExport(ctx context.Context, identifier string, opts providers.ExportOptions) (_ *providers.Export, err error) {
	if err := p.GetExportCapabilities().Validate(opts); err != nil {
		return nil, providers.Permanent(err)
	}
	log := opts.Log().With("provider", p.name)
	opts.Report(progress.Report{Phase: progress.PhaseConnecting})
	vm, err := p.GetVM(ctx, identifier)
	if err != nil {
		return nil, err
	}
	if vm.Labels["template"] == "true" {
		return nil, providers.Permanent(fmt.Errorf("%w: %s is a template; vSphere exports templates only through the content library", providers.ErrUnsupported, vm.Path))
	}
	log = log.With("vm", vm.Path)

	sess, err := p.pool.Get(ctx)
	if err != nil {
		return nil, err
	}
	c := sess.Client.Client
	ref := types.ManagedObjectReference{Type: "VirtualMachine", Value: vm.ID}
	ex := &export{p: p, c: c, vm: vm, obj: object.NewVirtualMachine(c, ref), opts: opts, log: log}
	var snapCleanup func()
	defer func() {
		if err != nil {
			if snapCleanup != nil {
				snapCleanup()
			}
			p.pool.Put(sess, isNotAuthenticated(err))
		}
	}()

	opts.Report(progress.Report{Phase: progress.PhasePreparing})
	lease, snapCleanup, err := ex.openLease(ctx)
	if err != nil {
		return nil, err
	}
	info, err := lease.Wait(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("export lease for %s: %w", vm.Path, err)
	}
	out, err := ex.sources(lease, info)
	if err != nil {
		ex.abort(lease, err)
		return nil, err
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { ex.keepLeaseAlive(ctx, lease, stop) })
	var once sync.Once
	end := func() { once.Do(func() { close(stop); wg.Wait() }) }
	broken := false
	out.Progress = func(r progress.Report) { ex.done.Store(r.BytesDone); ex.total.Store(r.BytesTotal) }
	out.Finish = func(ctx context.Context, cause error) error {
		end()
		if cause != nil {
			broken = isNotAuthenticated(cause)
			ex.abort(lease, cause)
			return nil
		}
		if err := lease.Complete(ctx); err != nil {
			broken = isNotAuthenticated(err)
			return fmt.Errorf("complete export lease for %s: %w", vm.Path, err)
		}
		return nil
	}
	out.Cleanup = func() {
		end()
		if snapCleanup != nil {
			snapCleanup()
		}
		p.pool.Put(sess, broken)
	}
	return out, nil
}

// export holds the state of one prepared export.
type export struct {
	p    *Provider
	c    *vim25.Client
	vm   *providers.VMInfo
	obj  *object.VirtualMachine
	opts providers.ExportOptions
	log  *slog.Logger

	// done and total are the pipeline's last progress report (total 0
	// while unknown), for the lease's percentage.
	done, total atomic.Int64
	capacity    int64 // every disk's capacity plus the known files
}

// sources describes the lease's files: disks as streamOptimized VMDKs of
// unknown length, NVRAM (whose size the lease tells) as a file.
func (ex *export) sources(lease *nfc.Lease, info *nfc.LeaseInfo) (*providers.Export, error) {
	if len(info.Items) == 0 {
		return nil, fmt.Errorf("export lease for %s offers no files", ex.vm.Path)
	}
	known := make(map[string]int64, len(info.DeviceUrl))
	for _, du := range info.DeviceUrl {
		if du.FileSize > 0 { // set for non-disk backings only
			known[du.Key] = du.FileSize
		}
	}
	ex.capacity = info.TotalDiskCapacityInKB * 1024
	// The lease's file URLs authenticate with the session cookie.
	hdr := http.Header{}
	for _, ck := range ex.c.Jar.Cookies(ex.c.URL()) {
		hdr.Add("Cookie", ck.Name+"="+ck.Value)
	}
	// Disks are served by ESXi hosts whose certificates vCenter vouches
	// for in the lease (govmomi records them per host): one client per pin.
	clients := map[string]*http.Client{}
	clientFor := func(host string) (*http.Client, error) {
		thumb := ex.c.Thumbprint(host)
		if c, ok := clients[thumb]; ok {
			return c, nil
		}
		c, err := transfer.NewHTTPClient(ex.p.transferOptions(thumb))
		clients[thumb] = c
		return c, err
	}
	out := &providers.Export{VM: ex.vm}
	for _, item := range info.Items {
		client, err := clientFor(item.URL.Host)
		if err != nil {
			return nil, err
		}
		src := &providers.HTTPSource{URL: item.URL.String(), Header: hdr, Client: client}
		base := path.Base(item.Path)
		if strings.HasSuffix(item.Path, ".nvram") || strings.Contains(item.DeviceId, "nvram") {
			size, ok := known[item.DeviceId]
			if !ok {
				size = -1
			} else {
				ex.capacity += size
			}
			out.Files = append(out.Files, providers.FileSource{Name: base, Kind: "nvram", Size: size, HTTP: src})
			continue
		}
		d := providers.DiskSource{Name: strings.TrimSuffix(base, path.Ext(base)), Format: providers.SourceVMDKStream, Size: -1, HTTP: src}
		// The lease lists disks in device order, as discovery does.
		if i := len(out.Disks); i < len(ex.vm.Disks) {
			d.Capacity = ex.vm.Disks[i].CapacityBytes
		}
		out.Disks = append(out.Disks, d)
	}
	return out, nil
}

// openLease starts the NFC export lease, preparing a powered-on VM first.
// cleanup (non-nil even on error when something needs undoing) removes the
// temporary snapshot; it runs after the lease has ended.
func (ex *export) openLease(ctx context.Context) (*nfc.Lease, func(), error) {
	switch {
	case ex.vm.PowerState == providers.PowerOff:
		lease, err := ex.obj.Export(ctx)
		return lease, nil, ex.leaseErr(err)
	case ex.opts.Snapshot:
		return ex.snapshotLease(ctx)
	case ex.opts.PowerOff:
		if err := ex.powerOff(ctx); err != nil {
			return nil, nil, err
		}
		lease, err := ex.obj.Export(ctx)
		return lease, nil, ex.leaseErr(err)
	default:
		return nil, nil, providers.Permanent(fmt.Errorf("%w: %s is %s; export it from a temporary snapshot (snapshot: true) or shut it down first (power_off: true)",
			providers.ErrInvalidArgument, ex.vm.Path, ex.vm.PowerState))
	}
}

func (ex *export) leaseErr(err error) error {
	if err == nil {
		return nil
	}
	if fault.Is(err, &types.InvalidPowerState{}) {
		return providers.Permanent(fmt.Errorf("export %s: %w: %v", ex.vm.Path, providers.ErrInvalidArgument, err))
	}
	if fault.Is(err, &types.TaskInProgress{}) {
		// Another export or task holds the VM; worth retrying later.
		return fmt.Errorf("export %s: the VM is busy with another task or export: %w", ex.vm.Path, err)
	}
	return fmt.Errorf("start export lease for %s: %w", ex.vm.Path, err)
}

// snapshotLease exports a running VM from a snapshot made for the purpose.
func (ex *export) snapshotLease(ctx context.Context) (*nfc.Lease, func(), error) {
	name := "hypersdk-export-" + time.Now().UTC().Format("20060102T150405Z")
	task, err := ex.obj.CreateSnapshot(ctx, name, "Temporary snapshot for a HyperSDK export; removed when the export ends.", false, false)
	if err != nil {
		return nil, nil, fmt.Errorf("create snapshot of %s: %w", ex.vm.Path, err)
	}
	info, err := task.WaitForResult(ctx, nil)
	if err != nil {
		// A snapshot may exist even though waiting failed (cancelled).
		return nil, ex.removeSnapshotNamed(name), fmt.Errorf("create snapshot of %s: %w", ex.vm.Path, err)
	}
	snap, ok := info.Result.(types.ManagedObjectReference)
	if !ok {
		return nil, ex.removeSnapshotNamed(name), fmt.Errorf("create snapshot of %s: unexpected task result %T", ex.vm.Path, info.Result)
	}
	ex.log.Info("created temporary snapshot", "snapshot", name)
	cleanup := func() { ex.removeSnapshot(snap, name) }
	res, err := methods.ExportSnapshot(ctx, ex.c, &types.ExportSnapshot{This: snap})
	if err != nil {
		return nil, cleanup, ex.leaseErr(err)
	}
	return nfc.NewLease(ex.c, res.Returnval), cleanup, nil
}

// removeSnapshot deletes the temporary snapshot even when the export's
// context is cancelled: a left-over snapshot grows without bound.
func (ex *export) removeSnapshot(snap types.ManagedObjectReference, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	consolidate := true
	res, err := methods.RemoveSnapshot_Task(ctx, ex.c, &types.RemoveSnapshot_Task{This: snap, RemoveChildren: false, Consolidate: &consolidate})
	if err == nil {
		err = object.NewTask(ex.c, res.Returnval).Wait(ctx)
	}
	if err != nil {
		ex.log.Error("could not remove the temporary snapshot; remove it by hand", "snapshot", name, "err", err)
		return
	}
	ex.log.Info("removed temporary snapshot", "snapshot", name)
}

// removeSnapshotNamed finds and removes a snapshot by name (used when its
// creation was interrupted and no reference came back).
func (ex *export) removeSnapshotNamed(name string) func() {
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		ref, err := ex.obj.FindSnapshot(ctx, name)
		if err != nil {
			return // never created
		}
		ex.removeSnapshot(*ref, name)
	}
}

// powerOff shuts the guest down, waits up to the timeout, then powers off.
func (ex *export) powerOff(ctx context.Context) error {
	timeout := ex.opts.PowerOffTimeout
	if timeout <= 0 {
		timeout = DefaultPowerOffTimeout
	}
	if ex.vm.PowerState == providers.PowerSuspend {
		ex.log.Info("VM is suspended; powering it off")
		return ex.hardPowerOff(ctx)
	}
	ex.log.Info("shutting the guest down", "timeout", timeout.String())
	if err := ex.obj.ShutdownGuest(ctx); err != nil {
		ex.log.Warn("guest shutdown refused; powering off", "err", err)
		return ex.hardPowerOff(ctx)
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := ex.obj.WaitForPowerState(wctx, types.VirtualMachinePowerStatePoweredOff); err == nil {
		ex.log.Info("guest shut down")
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	ex.log.Warn("guest did not shut down in time; powering off", "timeout", timeout.String())
	return ex.hardPowerOff(ctx)
}

func (ex *export) hardPowerOff(ctx context.Context) error {
	task, err := ex.obj.PowerOff(ctx)
	if err == nil {
		err = task.Wait(ctx)
	}
	if err != nil {
		return fmt.Errorf("power off %s: %w", ex.vm.Path, err)
	}
	return nil
}

// leasePercent is the percentage HttpNfcLeaseProgress reports: exact once
// the total is known, else measured against the disks' capacity (an
// underestimate: the streams are smaller than the capacity). At most 99
// until the lease is completed.
func (ex *export) leasePercent() int32 {
	done, total := ex.done.Load(), ex.total.Load()
	if total <= 0 {
		total = ex.capacity
	}
	if total <= 0 {
		return 0
	}
	return int32(min(99, done*100/total))
}

// keepLeaseAlive reports the download's percentage to the lease until stop.
func (ex *export) keepLeaseAlive(ctx context.Context, lease *nfc.Lease, stop <-chan struct{}) {
	t := time.NewTicker(leaseProgressInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-t.C:
			if err := lease.Progress(ctx, ex.leasePercent()); err != nil && ctx.Err() == nil {
				ex.log.Warn("lease progress update failed", "err", err)
			}
		}
	}
}

// abort tells vCenter the export failed, even when ctx was cancelled.
func (ex *export) abort(lease *nfc.Lease, cause error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fault := &types.LocalizedMethodFault{Fault: &types.SystemError{Reason: "HyperSDK export failed"}, LocalizedMessage: truncate(cause.Error(), 512)}
	if err := lease.Abort(ctx, fault); err != nil {
		ex.log.Warn("aborting the export lease failed", "err", err)
		return
	}
	ex.log.Info("export lease aborted", "reason", truncate(cause.Error(), 200))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// transferOptions configures TLS for NFC downloads like the API client:
// insecure when configured, else the host thumbprint from the lease (or
// the configured one), else the system roots.
func (p *Provider) transferOptions(leaseThumbprint string) transfer.ClientOptions {
	o := transfer.ClientOptions{InsecureSkipVerify: p.insecure}
	if !p.insecure {
		o.Thumbprint = leaseThumbprint
		if o.Thumbprint == "" {
			o.Thumbprint = p.thumbprint
		}
	}
	return o
}
