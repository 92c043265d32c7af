package vcsim

import (
	"context"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// FaultRule makes matching SOAP calls slow, failing, or both.
//
// Rules are this package's own rather than govmomi's FaultInjector, whose
// matching updates counters and a random source under a read lock and so
// races when calls run concurrently, as they do under a connection pool.
type FaultRule struct {
	// Method is the SOAP method name, e.g. "ExportVm", "HttpNfcLeaseProgress",
	// "RetrievePropertiesEx", "ExportVm"; "" or "*" matches all.
	Method string
	// Object restricts the rule to one target: an entity name ("web-01"), a
	// MoRef value ("vm-42") or a type ("HttpNfcLease"); "" matches any.
	Object string
	// Fault is returned instead of running the method. Nil lets the call run
	// after Delay: a slow call.
	Fault types.BaseMethodFault
	// Delay is waited before answering (cut short by Close).
	Delay time.Duration
	// LeaseError applies to ExportVm and ExportSnapshot only: the call
	// succeeds, but the lease it returns goes straight to the error state
	// with Fault, as when vSphere cannot open a disk for export.
	LeaseError bool
	// Skip lets the first Skip matching calls through untouched; the rule
	// then applies Times times (0: for ever).
	Skip  int
	Times int
}

// InjectedFault is a rule added with AddFault.
type InjectedFault struct {
	e *Env
	r *faultRule
}

type faultRule struct {
	FaultRule
	id   int
	seen int // matching calls
	hits int // calls the rule acted on
}

// AddFault adds a rule; rules are tried in the order they were added and the
// first that acts on a call wins.
func (e *Env) AddFault(r FaultRule) *InjectedFault {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.nextFault++
	fr := &faultRule{FaultRule: r, id: e.nextFault}
	e.faults = append(e.faults, fr)
	return &InjectedFault{e: e, r: fr}
}

// Hits returns how many calls the rule has acted on.
func (f *InjectedFault) Hits() int {
	f.e.mu.Lock()
	defer f.e.mu.Unlock()
	return f.r.hits
}

// Remove deletes the rule.
func (f *InjectedFault) Remove() {
	f.e.mu.Lock()
	defer f.e.mu.Unlock()
	for i, r := range f.e.faults {
		if r == f.r {
			f.e.faults = append(f.e.faults[:i], f.e.faults[i+1:]...)
			return
		}
	}
}

// ClearFaults removes every rule.
func (e *Env) ClearFaults() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faults = nil
}

// matchRule returns the first rule that acts on a call and counts the hit.
func (e *Env) matchRule(ctx *simulator.Context, m *simulator.Method, lease bool) *FaultRule {
	e.mu.Lock()
	needName := false
	for _, r := range e.faults {
		if r.LeaseError == lease && r.Object != "" && r.Object != m.This.Value && r.Object != m.This.Type {
			needName = true
		}
	}
	e.mu.Unlock()
	name := ""
	if needName {
		name = e.entityName(ctx, m.This)
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range e.faults {
		if r.LeaseError != lease {
			continue
		}
		if r.Method != "" && r.Method != "*" && r.Method != m.Name {
			continue
		}
		if r.Object != "" && r.Object != m.This.Value && r.Object != m.This.Type && r.Object != name {
			continue
		}
		r.seen++
		if r.seen <= r.Skip || (r.Times > 0 && r.hits >= r.Times) {
			continue
		}
		r.hits++
		rule := r.FaultRule
		return &rule
	}
	return nil
}

func (e *Env) entityName(ctx *simulator.Context, ref types.ManagedObjectReference) string {
	obj := ctx.Map.Get(ref)
	ent, ok := obj.(mo.Entity)
	if !ok {
		return ""
	}
	var name string
	// ctx may already hold obj's lock (ExportVm does): the simulator's locks
	// are re-entrant per context.
	ctx.WithLock(obj, func() { name = ent.Entity().Name })
	return name
}

// applyFaults runs the call-level rules for m: it waits the delay and
// returns the fault to answer with, if any.
func (e *Env) applyFaults(ctx *simulator.Context, m *simulator.Method) types.BaseMethodFault {
	r := e.matchRule(ctx, m, false)
	if r == nil {
		return nil
	}
	if r.Delay > 0 {
		t := time.NewTimer(r.Delay)
		select {
		case <-t.C:
		case <-e.closed:
			t.Stop()
		}
	}
	return r.Fault
}

// leaseFault returns the fault a new lease for m must fail with, if a
// LeaseError rule says so.
func (e *Env) leaseFault(ctx *simulator.Context, m *simulator.Method) types.BaseMethodFault {
	r := e.matchRule(ctx, m, true)
	if r == nil {
		return nil
	}
	if r.Fault == nil {
		return &types.SystemError{Reason: "injected lease failure"}
	}
	return r.Fault
}

// ExpireSessions ends every client session, as vCenter does when sessions
// time out or an administrator terminates them: each client's next call
// fails with NotAuthenticated until it logs in again. It returns how many
// sessions ended. It bypasses SOAP, so fault rules do not affect it.
func (e *Env) ExpireSessions(ctx context.Context) int {
	reg := e.model.Map()
	ref := *e.model.ServiceContent.SessionManager
	admin := &simulator.Session{
		UserSession: types.UserSession{Key: "hypersdk-vcsim-admin", UserName: e.user},
		Registry:    simulator.NewRegistry(),
		Map:         reg,
	}
	view, ok := admin.Get(ref).(*simulator.SessionManager)
	if !ok {
		return 0
	}
	var keys []string
	for _, s := range view.SessionList {
		keys = append(keys, s.Key)
	}
	if len(keys) == 0 {
		return 0
	}
	sc := &simulator.Context{Context: ctx, Map: reg, Session: admin}
	res := reg.SessionManager().TerminateSession(sc, &types.TerminateSession{This: ref, SessionId: keys})
	if res.Fault() != nil {
		// A session ended between listing and terminating: end the rest.
		n := 0
		for _, k := range keys {
			one := reg.SessionManager().TerminateSession(sc, &types.TerminateSession{This: ref, SessionId: []string{k}})
			if one.Fault() == nil {
				n++
			}
		}
		return n
	}
	return len(keys)
}
