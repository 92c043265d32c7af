package providertest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hypersdk/hypersdk/providers"
)

// Fake is an in-memory provider for engine and API tests. Its exports write
// real files (deterministic disk bytes, a descriptor and a SHA-256
// manifest) through temp-and-rename, report progress, honour cancellation,
// and fail on command. The zero value is not usable; call NewFake.
type Fake struct {
	name string
	vms  []*providers.VMInfo

	// ChunkDelay slows exports down: it is slept (cancellably) after every
	// 64 KiB written.
	ChunkDelay time.Duration
	// CallLog, when set, receives one line per export start and completion
	// ("start VM DIR", "done VM DIR"), appended with O_APPEND so that
	// several processes can share it.
	CallLog string
	// BeforeExport, when set, runs at the start of every export; a non-nil
	// error fails the export with it.
	BeforeExport func(ctx context.Context, vm string) error
	// FinishGate, when set, names a file that holds exports that have
	// written everything before they complete: while the file exists and is
	// empty, all wait; while it holds a number N, they wait once CallLog
	// has N completions. Process tests use it to reach an instant when no
	// export is completing, with some done and some in flight.
	FinishGate string

	mu        sync.Mutex
	failures  map[string][]error // per VM name: errors to return, in order
	connected bool
	exports   map[string]int    // per VM name: completed exports
	finals    map[string][]bool // per VM name: each export's FinalAttempt
	running   int
	maxSeen   int
	busy      map[string]bool // per VM ID: an export is in progress
	overlaps  int             // exports refused because one of the VM ran
}

// ErrTaskInProgress is what the fake answers, like vSphere's
// TaskInProgress fault, to an export of a VM that is being exported: a
// platform holds a VM for one export (snapshot, lease) at a time.
var ErrTaskInProgress = errors.New("another task is already in progress (TaskInProgress)")

// FakeDiskSize is the size of each disk of the default fake VMs.
const FakeDiskSize = 1 << 20

// NewFake returns a fake provider named name with the given VMs, or a
// default inventory of four VMs when none are given.
func NewFake(name string, vms ...*providers.VMInfo) *Fake {
	if len(vms) == 0 {
		vms = DefaultFakeVMs(4)
	}
	for _, vm := range vms {
		vm.Provider = name
	}
	sort.Slice(vms, func(i, j int) bool { return vms[i].Path < vms[j].Path })
	return &Fake{name: name, vms: vms, failures: map[string][]error{}, exports: map[string]int{}, finals: map[string][]bool{}, busy: map[string]bool{}}
}

// DefaultFakeVMs returns n powered-off VMs named vm-000…, each with two disks.
func DefaultFakeVMs(n int) []*providers.VMInfo {
	out := make([]*providers.VMInfo, n)
	for i := range out {
		name := fmt.Sprintf("vm-%03d", i)
		out[i] = &providers.VMInfo{
			ID: fmt.Sprintf("fake-%03d", i), Name: name, Path: "/DC0/vm/" + name, Datacenter: "DC0",
			PowerState: providers.PowerOff, GuestOS: "otherLinux64Guest", CPUs: 2, MemoryMiB: 2048,
			UUID: fmt.Sprintf("42000000-0000-0000-0000-%012d", i),
			Disks: []providers.DiskInfo{
				{Label: "Hard disk 1", CapacityBytes: FakeDiskSize, Path: "[ds] " + name + "/disk1.vmdk"},
				{Label: "Hard disk 2", CapacityBytes: FakeDiskSize / 2, Path: "[ds] " + name + "/disk2.vmdk"},
			},
			NICs: []providers.NICInfo{{Label: "Network adapter 1", Network: "VM Network"}},
		}
	}
	return out
}

// FailNext makes the next exports of VM name fail with errs, in order.
func (f *Fake) FailNext(name string, errs ...error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures[name] = append(f.failures[name], errs...)
}

// Exports returns how many exports of VM name completed.
func (f *Fake) Exports(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.exports[name]
}

// FinalAttempts returns, per export of VM name that found the VM free,
// whether the job engine marked it its job's last attempt.
func (f *Fake) FinalAttempts(name string) []bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.finals[name])
}

// Overlaps returns how many exports were refused with ErrTaskInProgress
// because another export of the same VM was running.
func (f *Fake) Overlaps() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.overlaps
}

// Busy returns the IDs of the VMs an export holds now (sorted): what a
// platform would show as a VM with an export task or lease.
func (f *Fake) Busy() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for id := range f.busy {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// MaxConcurrent returns the largest number of exports seen running at once.
func (f *Fake) MaxConcurrent() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.maxSeen
}

func (f *Fake) Name() string         { return f.name }
func (f *Fake) Type() providers.Type { return providers.TypeVSphere }
func (f *Fake) Disconnect() error    { f.mu.Lock(); f.connected = false; f.mu.Unlock(); return nil }
func (f *Fake) Connect(context.Context) error {
	f.mu.Lock()
	f.connected = true
	f.mu.Unlock()
	return nil
}

func (f *Fake) ValidateCredentials(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.connected {
		return fmt.Errorf("not connected")
	}
	return ctx.Err()
}

func (f *Fake) ListVMs(ctx context.Context, flt providers.VMFilter) ([]*providers.VMInfo, error) {
	var out []*providers.VMInfo
	for _, vm := range f.vms {
		if flt.Name != "" {
			if ok, _ := path.Match(flt.Name, vm.Name); !ok {
				continue
			}
		}
		if flt.PowerState != "" && vm.PowerState != flt.PowerState {
			continue
		}
		if flt.FolderPrefix != "" && !strings.HasPrefix(vm.Path, flt.FolderPrefix) {
			continue
		}
		if flt.Datacenter != "" && vm.Datacenter != flt.Datacenter {
			continue
		}
		if flt.GuestOS != "" && !strings.Contains(strings.ToLower(vm.GuestOS), strings.ToLower(flt.GuestOS)) {
			continue
		}
		c := *vm
		out = append(out, &c)
	}
	return out, ctx.Err()
}

func (f *Fake) GetVM(ctx context.Context, id string) (*providers.VMInfo, error) {
	for _, vm := range f.vms {
		if id == vm.ID || id == vm.Name || id == vm.Path || id == vm.UUID {
			c := *vm
			return &c, nil
		}
	}
	return nil, fmt.Errorf("vm %q: %w", id, providers.ErrNotFound)
}

func (f *Fake) SearchVMs(ctx context.Context, q string) ([]*providers.VMInfo, error) {
	q = strings.ToLower(q)
	var out []*providers.VMInfo
	for _, vm := range f.vms {
		if strings.Contains(strings.ToLower(vm.Name+" "+vm.Path+" "+vm.GuestOS+" "+vm.ID), q) {
			c := *vm
			out = append(out, &c)
		}
	}
	return out, nil
}

func (f *Fake) GetExportCapabilities() providers.ExportCapabilities {
	return providers.ExportCapabilities{
		Formats:          providers.Formats(),
		DiskFormats:      providers.DiskFormats(),
		Compression:      []string{"gzip", "zstd"},
		SupportsSnapshot: true, SupportsPowerOff: true, ParallelDownloads: true,
	}
}

// FakeDiskBytes returns the deterministic content of disk i of VM id.
func FakeDiskBytes(id string, i int, size int64) io.Reader {
	seed := sha256.Sum256([]byte(fmt.Sprintf("%s/%d", id, i)))
	return io.LimitReader(rand.NewChaCha8(seed), size)
}

// PrepareExport implements providers.Exporter: each disk is handed over
// as a raw reader of its deterministic bytes (FakeDiskBytes), paced by
// ChunkDelay. The VM counts as busy from here until Cleanup, like a
// platform's snapshot or lease; Finish holds a successful export at the
// FinishGate and counts it.
func (f *Fake) PrepareExport(ctx context.Context, id string, opts providers.ExportOptions) (_ *providers.Export, err error) {
	vm, err := f.GetVM(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := f.GetExportCapabilities().Validate(opts); err != nil {
		return nil, err
	}
	f.mu.Lock()
	if f.busy[vm.ID] {
		f.overlaps++
		f.mu.Unlock()
		return nil, fmt.Errorf("export %s: %w", vm.Name, ErrTaskInProgress)
	}
	f.busy[vm.ID] = true
	f.running++
	f.maxSeen = max(f.maxSeen, f.running)
	f.finals[vm.Name] = append(f.finals[vm.Name], opts.FinalAttempt)
	var failure error
	if q := f.failures[vm.Name]; len(q) > 0 {
		failure, f.failures[vm.Name] = q[0], q[1:]
	}
	f.mu.Unlock()
	release := func() { f.mu.Lock(); f.running--; delete(f.busy, vm.ID); f.mu.Unlock() }
	defer func() {
		if err != nil {
			release()
		}
	}()
	f.logCall("start", vm.Name, opts.OutputDir)
	if failure != nil {
		return nil, failure
	}
	if f.BeforeExport != nil {
		if err := f.BeforeExport(ctx, vm.Name); err != nil {
			return nil, err
		}
	}
	exp := &providers.Export{VM: vm, Cleanup: release}
	for i, d := range vm.Disks {
		exp.Disks = append(exp.Disks, providers.DiskSource{
			Name: fmt.Sprintf("disk%d", i+1), Format: providers.SourceRaw, Capacity: d.CapacityBytes, Size: d.CapacityBytes,
			Open: func(ctx context.Context) (io.ReadCloser, error) {
				return io.NopCloser(&pacedReader{ctx: ctx, r: FakeDiskBytes(vm.ID, i, d.CapacityBytes), delay: f.ChunkDelay}), nil
			},
		})
	}
	exp.Finish = func(ctx context.Context, cause error) error {
		if cause != nil {
			return nil
		}
		if err := f.waitGate(ctx); err != nil {
			return err
		}
		f.mu.Lock()
		f.exports[vm.Name]++
		f.mu.Unlock()
		f.logCall("done", vm.Name, opts.OutputDir)
		return nil
	}
	return exp, nil
}

// pacedReader sleeps (cancellably) after every 64 KiB it hands out.
type pacedReader struct {
	ctx   context.Context
	r     io.Reader
	delay time.Duration
}

func (p *pacedReader) Read(b []byte) (int, error) {
	if err := p.ctx.Err(); err != nil {
		return 0, err
	}
	if len(b) > 64<<10 {
		b = b[:64<<10]
	}
	n, err := p.r.Read(b)
	if n > 0 && p.delay > 0 {
		select {
		case <-p.ctx.Done():
		case <-time.After(p.delay):
		}
	}
	return n, err
}

// waitGate holds an export while the FinishGate says so.
func (f *Fake) waitGate(ctx context.Context) error {
	for f.FinishGate != "" {
		b, err := os.ReadFile(f.FinishGate)
		if err != nil {
			return nil // no gate
		}
		if limit, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && f.completions() < limit {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// completions counts the "done" lines of the call log.
func (f *Fake) completions() int {
	b, err := os.ReadFile(f.CallLog)
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "\ndone ") + boolInt(strings.HasPrefix(string(b), "done "))
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (f *Fake) logCall(event, vm, dir string) {
	if f.CallLog == "" {
		return
	}
	fh, err := os.OpenFile(f.CallLog, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return
	}
	defer fh.Close()
	// One write per line: O_APPEND makes it atomic across processes.
	_, _ = fh.WriteString(fmt.Sprintf("%s %s %s\n", event, vm, dir))
	_ = fh.Sync()
}
