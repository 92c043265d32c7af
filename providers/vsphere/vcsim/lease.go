package vcsim

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"reflect"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// LeaseOutcome is where an export lease ended up.
type LeaseOutcome string

// Lease outcomes.
const (
	LeaseActive    LeaseOutcome = "active"    // ready, files can be downloaded
	LeaseCompleted LeaseOutcome = "completed" // HttpNfcLeaseComplete
	LeaseAborted   LeaseOutcome = "aborted"   // HttpNfcLeaseAbort
	LeaseTimedOut  LeaseOutcome = "timedout"  // no HttpNfcLeaseProgress within the lease timeout
	LeaseFailed    LeaseOutcome = "failed"    // error state set by the server (FaultRule.LeaseError, Env.FailLease)
)

// LeaseRecord is what tests can assert about an export lease.
type LeaseRecord struct {
	Ref types.ManagedObjectReference
	// VM is the exported VM's name and VMRef its reference.
	VM    string
	VMRef types.ManagedObjectReference
	// Snapshot is set for ExportSnapshot leases.
	Snapshot *types.ManagedObjectReference
	Outcome  LeaseOutcome
	// Progress is the last HttpNfcLeaseProgress percentage, ProgressCalls
	// how many times it was called.
	Progress      int32
	ProgressCalls int
	// Fault describes the error of an aborted, timed out or failed lease:
	// the fault type, then its message if any.
	Fault string
	Files []LeaseFile
}

// LeaseFile is one deviceUrl of a lease.
type LeaseFile struct {
	DeviceID string // deviceUrl key
	TargetID string // deviceUrl targetId
	URL      string
	Disk     bool
	Size     int64 // bytes of the served file
	Path     string
}

// lease is an HttpNfcLease issued by ExportVm or ExportSnapshot. The
// embedded managed object state changes only through ctx.Update under the
// simulator's object lock; the rest is guarded by env.mu unless immutable.
type lease struct {
	mo.HttpNfcLease

	env      *Env
	ticket   string
	vm       types.ManagedObjectReference
	vmName   string
	snapshot *types.ManagedObjectReference
	files    []*leaseFile
	byTarget map[string]*leaseFile
	done     chan struct{} // closed when the lease stops being active

	// guarded by env.mu
	outcome       LeaseOutcome
	progress      int32
	progressCalls int
	fault         string
	timer         *time.Timer
}

type leaseFile struct {
	LeaseFile
	capacity int64 // bytes, disks only
	sha1     string
}

// Leases returns every export lease issued so far, oldest first.
func (e *Env) Leases() []LeaseRecord {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]LeaseRecord, 0, len(e.leases))
	for _, l := range e.leases {
		out = append(out, l.record())
	}
	return out
}

// Lease returns the record of one lease.
func (e *Env) Lease(ref types.ManagedObjectReference) (LeaseRecord, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	l, ok := e.byRef[ref]
	if !ok {
		return LeaseRecord{}, false
	}
	return l.record(), true
}

// record must be called with env.mu held.
func (l *lease) record() LeaseRecord {
	r := LeaseRecord{
		Ref:           l.Self,
		VM:            l.vmName,
		VMRef:         l.vm,
		Outcome:       l.outcome,
		Progress:      l.progress,
		ProgressCalls: l.progressCalls,
		Fault:         l.fault,
	}
	if l.snapshot != nil {
		s := *l.snapshot
		r.Snapshot = &s
	}
	for _, f := range l.files {
		r.Files = append(r.Files, f.LeaseFile)
	}
	return r
}

// FailLease puts an active lease in the error state with fault, as vSphere
// does when a host fails mid-export; downloads in flight are cut.
func (e *Env) FailLease(ref types.ManagedObjectReference, fault types.BaseMethodFault) error {
	if fault == nil {
		fault = &types.SystemError{Reason: "export failed on the host"}
	}
	return e.endFromServer(ref, LeaseFailed, fault)
}

// TimeoutLease ends an active lease as if its holder had not called
// HttpNfcLeaseProgress within the lease timeout.
func (e *Env) TimeoutLease(ref types.ManagedObjectReference) error {
	return e.endFromServer(ref, LeaseTimedOut, &types.Timedout{})
}

func (e *Env) endFromServer(ref types.ManagedObjectReference, outcome LeaseOutcome, fault types.BaseMethodFault) error {
	e.mu.Lock()
	l, ok := e.byRef[ref]
	e.mu.Unlock()
	if !ok {
		return fmt.Errorf("vcsim: no lease %s", ref)
	}
	ctx := e.newCtx()
	ended := false
	ctx.WithLock(l, func() {
		ended = l.end(ctx, outcome, types.HttpNfcLeaseStateError, localized(fault))
	})
	if !ended {
		return fmt.Errorf("vcsim: lease %s is not active", ref)
	}
	return nil
}

// timeout is the lease timer's callback.
func (l *lease) timeout() {
	select {
	case <-l.env.closed:
		return
	default:
	}
	ctx := l.env.newCtx()
	ctx.WithLock(l, func() {
		l.end(ctx, LeaseTimedOut, types.HttpNfcLeaseStateError, localized(&types.Timedout{}))
	})
}

// end moves an active lease to its final state. The caller holds the
// lease's object lock. It reports false if the lease had already ended.
func (l *lease) end(ctx *simulator.Context, outcome LeaseOutcome, state types.HttpNfcLeaseState, fault *types.LocalizedMethodFault) bool {
	e := l.env
	e.mu.Lock()
	if l.outcome != LeaseActive {
		e.mu.Unlock()
		return false
	}
	l.outcome = outcome
	if fault != nil {
		l.fault = describe(fault)
	}
	if l.timer != nil {
		l.timer.Stop()
	}
	if e.locked[l.vm] == l {
		delete(e.locked, l.vm)
	}
	if l.snapshot != nil && e.locked[*l.snapshot] == l {
		delete(e.locked, *l.snapshot)
	}
	close(l.done)
	e.mu.Unlock()

	changes := []types.PropertyChange{{Name: "state", Val: state}}
	if fault != nil {
		changes = append(changes, types.PropertyChange{Name: "error", Val: fault})
	}
	ctx.Update(l, changes)
	return true
}

func localized(f types.BaseMethodFault) *types.LocalizedMethodFault {
	msg := ""
	if m := f.GetMethodFault().FaultMessage; len(m) > 0 {
		msg = m[0].Message
	}
	switch x := f.(type) {
	case *types.SystemError:
		msg = x.Reason
	case *types.Timedout:
		msg = "Operation timed out."
	}
	return &types.LocalizedMethodFault{Fault: f, LocalizedMessage: msg}
}

func describe(f *types.LocalizedMethodFault) string {
	if f.Fault == nil {
		return f.LocalizedMessage
	}
	t := reflect.TypeOf(f.Fault)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if f.LocalizedMessage == "" {
		return t.Name()
	}
	return t.Name() + ": " + f.LocalizedMessage
}

// stateFault returns the fault for a call on a lease that is not active.
// env.mu must be held.
func (l *lease) stateFault() (string, types.BaseMethodFault) {
	switch l.outcome {
	case LeaseActive:
		return "", nil
	case LeaseTimedOut:
		return "Operation timed out.", &types.Timedout{}
	default:
		return "The operation is not allowed in the current state.", &types.InvalidState{}
	}
}

// HttpNfcLeaseProgress records the holder's progress and keeps the lease
// alive.
func (l *lease) HttpNfcLeaseProgress(ctx *simulator.Context, req *types.HttpNfcLeaseProgress) soap.HasFault {
	body := &methods.HttpNfcLeaseProgressBody{}
	e := l.env
	e.mu.Lock()
	msg, f := l.stateFault()
	if f == nil && (req.Percent < 0 || req.Percent > 100) {
		msg, f = "A specified parameter was not correct: percent", &types.InvalidArgument{InvalidProperty: "percent"}
	}
	if f == nil {
		l.progress = req.Percent
		l.progressCalls++
		if l.timer != nil {
			l.timer.Reset(e.opts.LeaseTimeout)
		}
	}
	e.mu.Unlock()
	if f != nil {
		body.Fault_ = simulator.Fault(msg, f)
		return body
	}
	ctx.Update(l, []types.PropertyChange{{Name: "transferProgress", Val: req.Percent}})
	body.Res = &types.HttpNfcLeaseProgressResponse{}
	return body
}

// HttpNfcLeaseComplete ends the lease successfully and unlocks the VM.
func (l *lease) HttpNfcLeaseComplete(ctx *simulator.Context, req *types.HttpNfcLeaseComplete) soap.HasFault {
	body := &methods.HttpNfcLeaseCompleteBody{}
	l.env.mu.Lock()
	msg, f := l.stateFault()
	l.env.mu.Unlock()
	if f != nil || !l.end(ctx, LeaseCompleted, types.HttpNfcLeaseStateDone, nil) {
		if f == nil {
			msg, f = "The operation is not allowed in the current state.", &types.InvalidState{}
		}
		body.Fault_ = simulator.Fault(msg, f)
		return body
	}
	body.Res = &types.HttpNfcLeaseCompleteResponse{}
	return body
}

// HttpNfcLeaseAbort ends the lease in the error state with the given fault.
func (l *lease) HttpNfcLeaseAbort(ctx *simulator.Context, req *types.HttpNfcLeaseAbort) soap.HasFault {
	body := &methods.HttpNfcLeaseAbortBody{}
	fault := req.Fault
	if fault == nil {
		fault = &types.LocalizedMethodFault{Fault: &types.RequestCanceled{}, LocalizedMessage: "The task was canceled by a user."}
	}
	l.env.mu.Lock()
	msg, f := l.stateFault()
	l.env.mu.Unlock()
	if f != nil || !l.end(ctx, LeaseAborted, types.HttpNfcLeaseStateError, fault) {
		if f == nil {
			msg, f = "The operation is not allowed in the current state.", &types.InvalidState{}
		}
		body.Fault_ = simulator.Fault(msg, f)
		return body
	}
	body.Res = &types.HttpNfcLeaseAbortResponse{}
	return body
}

// HttpNfcLeaseGetManifest returns the SHA-1 digest and size of every file
// of the lease.
func (l *lease) HttpNfcLeaseGetManifest(ctx *simulator.Context, req *types.HttpNfcLeaseGetManifest) soap.HasFault {
	body := &methods.HttpNfcLeaseGetManifestBody{}
	l.env.mu.Lock()
	msg, f := l.stateFault()
	l.env.mu.Unlock()
	if f != nil {
		body.Fault_ = simulator.Fault(msg, f)
		return body
	}
	res := &types.HttpNfcLeaseGetManifestResponse{}
	for _, lf := range l.files {
		if lf.sha1 == "" {
			sum, err := sha1File(lf.Path)
			if err != nil {
				body.Fault_ = simulator.Fault(err.Error(), &types.FileFault{File: lf.Path})
				return body
			}
			lf.sha1 = sum // guarded by the lease's object lock
		}
		res.Returnval = append(res.Returnval, types.HttpNfcLeaseManifestEntry{
			Key:          lf.DeviceID,
			Sha1:         lf.sha1,
			Checksum:     lf.sha1,
			ChecksumType: string(types.HttpNfcLeaseManifestEntryChecksumTypeSha1),
			Size:         lf.Size,
			Disk:         lf.Disk,
			Capacity:     lf.capacity,
		})
	}
	body.Res = res
	return body
}

func sha1File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha1.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
