package vsphere

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/nfc"
	"github.com/vmware/govmomi/object"
	vovf "github.com/vmware/govmomi/ovf"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/hypersdk/hypersdk/internal/safepath"
	"github.com/hypersdk/hypersdk/ova"
	"github.com/hypersdk/hypersdk/ovf"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/transfer"
)

// DefaultPowerOffTimeout is how long a guest shutdown may take before the
// VM is powered off hard, when the request does not say.
const DefaultPowerOffTimeout = 5 * time.Minute

// leaseProgressInterval is how often the NFC lease is told the export is
// alive; vCenter times leases out after 5 minutes of silence.
const leaseProgressInterval = 5 * time.Second

// ExportVM implements providers.Provider. A powered-off VM is exported as
// it is; a powered-on or suspended one only from a temporary snapshot
// (opts.Snapshot, removed afterwards whatever happens) or after shutting it
// down (opts.PowerOff). Disks download in parallel through transfer while
// being hashed; the OVF descriptor comes from vCenter's OvfManager with the
// real file names and sizes, and a SHA-256 manifest is always written.
func (p *Provider) ExportVM(ctx context.Context, identifier string, opts providers.ExportOptions) (res *providers.ExportResult, err error) {
	start := time.Now()
	if opts.Format == "" {
		opts.Format = providers.FormatOVF
	}
	if err := p.GetExportCapabilities().Validate(opts); err != nil {
		return nil, providers.Permanent(err)
	}
	if opts.OutputDir == "" {
		return nil, providers.Permanent(fmt.Errorf("%w: no output directory", providers.ErrInvalidArgument))
	}
	log := opts.Log().With("provider", p.name)
	opts.Report(providers.Progress{Phase: providers.PhaseConnecting})
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
	broken := false
	defer func() { p.pool.Put(sess, broken) }()
	c := sess.Client.Client
	ref := types.ManagedObjectReference{Type: "VirtualMachine", Value: vm.ID}
	obj := object.NewVirtualMachine(c, ref)

	root := opts.OutputRoot
	if root == nil {
		if root, err = safepath.OpenPath(opts.OutputDir, ".", 0o750); err != nil {
			return nil, providers.Permanent(fmt.Errorf("output directory: %w", err))
		}
		defer root.Close()
	}
	ex := &export{p: p, c: c, vm: vm, obj: obj, opts: opts, log: log, base: fileBase(vm.Name), root: root}
	defer func() {
		if err != nil {
			ex.removeWritten()
			if isNotAuthenticated(err) {
				broken = true
			}
		}
	}()

	opts.Report(providers.Progress{Phase: providers.PhasePreparing})
	lease, cleanup, err := ex.openLease(ctx)
	if cleanup != nil {
		defer cleanup()
	}
	if err != nil {
		return nil, err
	}
	files, err := ex.download(ctx, lease)
	if err != nil {
		return nil, err
	}
	res, err = ex.finish(ctx, lease, files)
	if err != nil {
		return nil, err
	}
	res.Duration = time.Since(start)
	if s := res.Duration.Seconds(); s > 0 {
		res.Throughput = float64(res.Bytes) / s
	}
	log.Info("export complete", "files", len(res.Files), "bytes", res.Bytes, "duration", res.Duration.Round(time.Millisecond).String(),
		"throughput_mib_s", fmt.Sprintf("%.1f", res.Throughput/(1<<20)))
	return res, nil
}

// export holds the state of one ExportVM call.
type export struct {
	p    *Provider
	c    *vim25.Client
	vm   *providers.VMInfo
	obj  *object.VirtualMachine
	opts providers.ExportOptions
	log  *slog.Logger
	base string // file name prefix derived from the VM name
	// root is the output directory; every file is created through it.
	root *os.Root

	mu      sync.Mutex
	written []string // final names in root, removed if the export fails
}

func (ex *export) track(path string) {
	ex.mu.Lock()
	ex.written = append(ex.written, path)
	ex.mu.Unlock()
}

func (ex *export) removeWritten() {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	for _, p := range ex.written {
		_ = ex.root.Remove(p)
	}
	ex.written = nil
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

// downloadedFile is one file of the lease, on disk under its final name.
type downloadedFile struct {
	item   nfc.FileItem
	name   string // file name in the output directory
	size   int64
	sha256 string
	kind   string
}

// download fetches every file the lease offers in parallel, keeping the
// lease alive with real progress, and aborts the lease on failure.
func (ex *export) download(ctx context.Context, lease *nfc.Lease) (_ []downloadedFile, err error) {
	info, err := lease.Wait(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("export lease for %s: %w", ex.vm.Path, err)
	}
	defer func() {
		if err != nil {
			ex.abort(lease, err)
		}
	}()

	files := make([]downloadedFile, 0, len(info.Items))
	for _, item := range info.Items {
		kind := "disk"
		if strings.HasSuffix(item.Path, ".nvram") || strings.Contains(item.DeviceId, "nvram") {
			kind = "nvram"
		}
		files = append(files, downloadedFile{item: item, name: ex.base + "-" + filepath.Base(item.Path), kind: kind})
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("export lease for %s offers no files", ex.vm.Path)
	}
	sizes := newLeaseSizes(&info.HttpNfcLeaseInfo, files)

	progressStop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { ex.keepLeaseAlive(ctx, lease, sizes, progressStop) })
	defer func() { close(progressStop); wg.Wait() }()

	// The lease's file URLs authenticate with the session cookie.
	hdr := http.Header{}
	for _, ck := range ex.c.Jar.Cookies(ex.c.URL()) {
		hdr.Add("Cookie", ck.Name+"="+ck.Value)
	}
	// Disks are served by ESXi hosts whose certificates vCenter vouches
	// for in the lease (govmomi records them per host): one pin, so one
	// client, per host. All files still go through one Downloader, so the
	// disks of every host download at once under one concurrency and one
	// bandwidth limit.
	clients := map[string]*http.Client{}
	tf := make([]transfer.File, len(files))
	byPath := make(map[string]int, len(files))
	for i, f := range files {
		thumb := ex.c.Thumbprint(f.item.URL.Host)
		client, ok := clients[thumb]
		if !ok {
			if client, err = transfer.NewHTTPClient(ex.p.transferOptions(thumb)); err != nil {
				return nil, err
			}
			clients[thumb] = client
		}
		byPath[f.name] = i
		tf[i] = transfer.File{URL: f.item.URL.String(), Root: ex.root, Path: f.name, Header: hdr, Client: client}
	}
	d := transfer.NewDownloader(transfer.Options{
		Concurrency: max(1, ex.opts.ParallelDownloads), BandwidthLimit: ex.opts.BandwidthLimit, Logger: ex.log,
		Progress: func(pr transfer.Progress) {
			if i, ok := byPath[pr.Path]; ok {
				sizes.update(i, pr)
			}
			done, total := sizes.sums()
			ex.opts.Report(providers.Progress{Phase: providers.PhaseDownloading, BytesDone: done, BytesTotal: total,
				Item: filepath.Base(pr.Path), ItemBytes: pr.FileBytes, ItemSize: max(pr.FileSize, 0)})
		},
	})
	results, err := d.Download(ctx, tf)
	for i, r := range results {
		if r.Err == nil && r.SHA256 != "" {
			files[i].size, files[i].sha256 = r.Size, r.SHA256
			ex.track(r.Path)
		}
	}
	if err != nil {
		return nil, ex.transferErr(err)
	}
	return files, nil
}

func (ex *export) transferErr(err error) error {
	var se *transfer.StatusError
	if errors.As(err, &se) && (se.StatusCode == http.StatusUnauthorized || se.StatusCode == http.StatusForbidden) {
		return fmt.Errorf("download disks of %s: %w (%v)", ex.vm.Path, providers.ErrAuth, err)
	}
	return fmt.Errorf("download disks of %s: %w", ex.vm.Path, err)
}

// leaseSizes tracks what the files of one lease have moved and how big
// they are, to report progress in bytes that will actually be written.
//
// vSphere tells the size of non-disk files (deviceUrl.fileSize, e.g. NVRAM)
// up front, but not of disks: NFC streams each disk as a streamOptimized
// VMDK, chunked, whose length is known only at its last byte and is usually
// a small fraction of the disk's capacity. The lease's
// totalDiskCapacityInKB (which govmomi copies into every disk's
// FileItem.Size) is the capacity of all disks together, so it is neither
// a file's size nor the bytes that will move: using it reported N disks ×
// total capacity. The total is therefore unknown (0) until every file's
// size is known, and exact from then on.
type leaseSizes struct {
	files    []fileSize
	capacity int64 // bytes of every disk's capacity plus the known files: a bound for the lease's percentage
}

type fileSize struct {
	done atomic.Int64
	size atomic.Int64 // -1 while unknown
}

func newLeaseSizes(info *types.HttpNfcLeaseInfo, files []downloadedFile) *leaseSizes {
	known := make(map[string]int64, len(info.DeviceUrl))
	for _, du := range info.DeviceUrl {
		if du.FileSize > 0 { // set for non-disk backings only
			known[du.Key] = du.FileSize
		}
	}
	s := &leaseSizes{files: make([]fileSize, len(files)), capacity: info.TotalDiskCapacityInKB * 1024}
	for i, f := range files {
		n, ok := known[f.item.DeviceId]
		if !ok {
			n = -1
		} else {
			s.capacity += n
		}
		s.files[i].size.Store(n)
	}
	return s
}

// update records a transfer report about file i. transfer knows a size
// from Content-Length or, for a chunked body, once it has ended.
func (s *leaseSizes) update(i int, pr transfer.Progress) {
	s.files[i].done.Store(pr.FileBytes)
	if pr.FileSize >= 0 {
		s.files[i].size.Store(pr.FileSize)
	}
}

// sums returns the bytes written so far and the total, 0 while any file's
// size is unknown. A total is never below what was written.
func (s *leaseSizes) sums() (done, total int64) {
	unknown := false
	for i := range s.files {
		done += s.files[i].done.Load()
		if n := s.files[i].size.Load(); n >= 0 {
			total += n
		} else {
			unknown = true
		}
	}
	if unknown {
		return done, 0
	}
	return done, max(total, done)
}

// leasePercent is the percentage HttpNfcLeaseProgress reports: exact once
// the total is known, else measured against the disks' capacity (an
// underestimate: the streams are smaller than the capacity). At most 99
// until the lease is completed.
func (s *leaseSizes) leasePercent() int32 {
	done, total := s.sums()
	if total <= 0 {
		total = s.capacity
	}
	if total <= 0 {
		return 0
	}
	return int32(min(99, done*100/total))
}

// keepLeaseAlive reports the download's percentage to the lease until stop.
func (ex *export) keepLeaseAlive(ctx context.Context, lease *nfc.Lease, sizes *leaseSizes, stop <-chan struct{}) {
	t := time.NewTicker(leaseProgressInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-t.C:
			if err := lease.Progress(ctx, sizes.leasePercent()); err != nil && ctx.Err() == nil {
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

// finish writes the descriptor and manifest, completes the lease and, for
// OVA exports, packs the folder.
func (ex *export) finish(ctx context.Context, lease *nfc.Lease, files []downloadedFile) (res *providers.ExportResult, err error) {
	defer func() {
		if err != nil {
			ex.abort(lease, err)
		}
	}()
	ovfFiles := make([]types.OvfFile, 0, len(files))
	for _, f := range files {
		ovfFiles = append(ovfFiles, types.OvfFile{DeviceId: f.item.DeviceId, Path: f.name, Size: f.size})
	}
	desc, err := vovf.NewManager(ex.c).CreateDescriptor(ctx, ex.obj, types.OvfCreateDescriptorParams{
		Name: ex.vm.Name, OvfFiles: ovfFiles, IncludeImageFiles: types.NewBool(false),
	})
	if err != nil {
		return nil, fmt.Errorf("create OVF descriptor for %s: %w", ex.vm.Path, err)
	}
	if len(desc.Error) > 0 {
		return nil, fmt.Errorf("create OVF descriptor for %s: %s", ex.vm.Path, desc.Error[0].LocalizedMessage)
	}
	// Check what vCenter wrote: every file we have, with its size.
	parsed, err := ovf.Parse([]byte(desc.OvfDescriptor))
	if err != nil {
		return nil, fmt.Errorf("OVF descriptor from vCenter for %s: %w", ex.vm.Path, err)
	}
	for _, f := range files {
		ref, ok := parsed.FileByHref(f.name)
		if !ok || (ref.Size >= 0 && ref.Size != f.size) {
			return nil, fmt.Errorf("OVF descriptor from vCenter for %s does not reference %s with %d bytes", ex.vm.Path, f.name, f.size)
		}
	}

	ovfName := ex.base + ".ovf"
	descBytes := []byte(desc.OvfDescriptor)
	if err := ex.writeFile(ovfName, descBytes); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(descBytes)
	res = &providers.ExportResult{VM: ex.vm, OutputDir: ex.opts.OutputDir, Format: providers.FormatOVF}
	res.Files = append(res.Files, providers.ExportedFile{Path: ovfName, Size: int64(len(descBytes)), SHA256: hex.EncodeToString(sum[:]), Kind: "ovf"})
	mf := &ovf.Manifest{}
	if err := mf.Add(ovf.SHA256, ovfName, res.Files[0].SHA256); err != nil {
		return nil, err
	}
	for _, f := range files {
		res.Files = append(res.Files, providers.ExportedFile{Path: f.name, Size: f.size, SHA256: f.sha256, Kind: f.kind})
		if err := mf.Add(ovf.SHA256, f.name, f.sha256); err != nil {
			return nil, err
		}
	}
	res.Manifest = ovf.ManifestName(ovfName)
	mfBytes := mf.Marshal()
	if err := ex.writeFile(res.Manifest, mfBytes); err != nil {
		return nil, err
	}
	msum := sha256.Sum256(mfBytes)
	res.Files = append(res.Files, providers.ExportedFile{Path: res.Manifest, Size: int64(len(mfBytes)), SHA256: hex.EncodeToString(msum[:]), Kind: "manifest"})
	for _, f := range res.Files {
		res.Bytes += f.Size
	}

	if err := lease.Complete(ctx); err != nil {
		return nil, fmt.Errorf("complete export lease for %s: %w", ex.vm.Path, err)
	}
	if ex.opts.Format == providers.FormatOVA {
		if err := ex.pack(ctx, ovfName, res); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// pack turns the OVF folder into an OVA (compressed when asked).
func (ex *export) pack(ctx context.Context, ovfName string, res *providers.ExportResult) error {
	comp := ova.CompressionNone
	if ex.opts.Compress {
		comp = ova.CompressionGzip
		if ex.opts.Compression == "zstd" {
			comp = ova.CompressionZstd
		}
	}
	name := ex.base + comp.Extension()
	ex.opts.Report(providers.Progress{Phase: providers.PhasePackaging, BytesDone: 0, BytesTotal: res.Bytes})
	pr, err := ova.PackIn(ctx, ex.root, ovfName, ex.root, name, ova.Options{
		Compression: comp, Level: ex.opts.CompressionLevel, CleanupOVF: ex.opts.CleanupOVF,
		Progress: func(p ova.Progress) {
			ex.opts.Report(providers.Progress{Phase: providers.PhasePackaging, BytesDone: min(p.Done, res.Bytes), BytesTotal: res.Bytes, Item: p.Member})
		},
	})
	if err != nil {
		return fmt.Errorf("pack %s: %w", name, err)
	}
	ex.track(name)
	ex.log.Info("packed OVA", "file", name, "bytes", pr.Size, "compression", string(pr.Compression), "ratio", fmt.Sprintf("%.2f", pr.Ratio),
		"throughput_mib_s", fmt.Sprintf("%.1f", pr.Throughput/(1<<20)))
	if ex.opts.CleanupOVF {
		res.Files = nil
		res.Bytes = 0
	}
	res.Format = providers.FormatOVA
	res.OVAPath = name
	res.Packaging = &providers.Packaging{Compression: string(pr.Compression), Level: pr.Level, Ratio: pr.Ratio,
		Throughput: pr.Throughput, Duration: pr.Duration}
	for _, m := range pr.Members {
		res.Members = append(res.Members, providers.ExportedFile{Path: m.Name, Size: m.Size, SHA256: m.Digests[ovf.SHA256], Kind: string(m.Kind)})
	}
	res.Files = append(res.Files, providers.ExportedFile{Path: name, Size: pr.Size, SHA256: pr.SHA256, Kind: "ova"})
	res.Bytes += pr.Size
	return nil
}

// writeFile writes a small file through temp-and-rename inside the output
// directory; a planted "<name>.part" link is refused, not written through.
func (ex *export) writeFile(name string, data []byte) error {
	tmp := name + ".part"
	f, err := safepath.OpenFile(ex.root, tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return providers.Permanent(fmt.Errorf("output %w", err))
	}
	_, werr := f.Write(data)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		ex.root.Remove(tmp)
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := ex.root.Rename(tmp, name); err != nil {
		ex.root.Remove(tmp)
		return err
	}
	ex.track(name)
	return nil
}

// fileBase makes a VM name safe as a file name prefix.
func fileBase(name string) string {
	b := strings.Map(func(r rune) rune {
		switch {
		case r == '/' || r == '\\' || r == 0 || r == ':' || r < 0x20:
			return '_'
		}
		return r
	}, name)
	b = strings.Trim(b, ". ")
	if b == "" {
		b = "vm"
	}
	return b
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
