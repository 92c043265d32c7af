package vcsim

import (
	"slices"
	"strings"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// handle is installed as the simulator registry's Handler. The simulator
// calls it first for every SOAP call (over HTTPS or in process), before it
// looks the target object up; it returns a fault to answer instead, or an
// object to dispatch the call to.
func (e *Env) handle(ctx *simulator.Context, m *simulator.Method) (mo.Reference, types.BaseMethodFault) {
	if f := e.applyFaults(ctx, m); f != nil {
		return nil, f
	}
	if f := e.lockFault(m); f != nil {
		return nil, f
	}
	if ctx.Session == nil {
		return nil, nil // the simulator answers NotAuthenticated
	}
	switch {
	case m.This.Type == "VirtualMachine" && m.Name == "ExportVm":
		vm, ok := ctx.Map.Get(m.This).(*simulator.VirtualMachine)
		if !ok {
			return nil, nil
		}
		s := &vmShim{VirtualMachine: vm, env: e}
		return e.putShim(ctx, m.This, s), nil
	case m.This.Type == "VirtualMachineSnapshot" && m.Name == "ExportSnapshot":
		snap, ok := ctx.Map.Get(m.This).(*simulator.VirtualMachineSnapshot)
		if !ok {
			return nil, nil
		}
		s := &snapshotShim{VirtualMachineSnapshot: snap, env: e}
		return e.putShim(ctx, m.This, s), nil
	}
	return nil, nil
}

// Extending a per-entity method such as VirtualMachine.ExportVm needs a
// quirk of vcsim's dispatch: once the Handler has returned, the simulator
// looks the target up in the caller's session registry, which falls back to
// the global registry and so overrides whatever the Handler returned. The
// shim therefore goes into the caller's session registry for the duration
// of the call and is removed by the extended method itself. Concurrent
// calls from one session share the shim through a reference count.
//
// The global registry cannot hold shims instead: the simulator type-asserts
// entities it fetches from it (*simulator.VirtualMachine and friends).
type shimKey struct {
	reg *simulator.Registry // the session's registry
	ref types.ManagedObjectReference
}

// putShim installs s in the caller's session for ref, or reuses the shim a
// concurrent call of the same session installed.
func (e *Env) putShim(ctx *simulator.Context, ref types.ManagedObjectReference, s mo.Reference) mo.Reference {
	k := shimKey{ctx.Session.Registry, ref}
	e.shimMu.Lock()
	defer e.shimMu.Unlock()
	e.shims[k]++
	if e.shims[k] == 1 {
		ctx.Session.Put(s)
		return s
	}
	if cur := ctx.Session.Registry.Get(ref); cur != nil {
		return cur
	}
	return s
}

// releaseShim undoes putShim; extended methods defer it.
func (e *Env) releaseShim(ctx *simulator.Context, ref types.ManagedObjectReference) {
	if ctx.Session == nil {
		return
	}
	k := shimKey{ctx.Session.Registry, ref}
	e.shimMu.Lock()
	defer e.shimMu.Unlock()
	if e.shims[k] <= 1 {
		delete(e.shims, k)
		ctx.Session.Remove(ctx, ref)
		return
	}
	e.shims[k]--
}

// vmShim adds ExportVm to a VirtualMachine. Every other method and property
// is the embedded VM's. Self and Entity shadow the VM's own: registering
// the shim in a session writes Self (and would write entity status through
// Entity()), and those writes must land on the shim, not on the shared VM.
type vmShim struct {
	*simulator.VirtualMachine
	Self   types.ManagedObjectReference
	Entity struct{}
	env    *Env
}

// snapshotShim replaces VirtualMachineSnapshot.ExportSnapshot with one that
// issues this package's leases.
type snapshotShim struct {
	*simulator.VirtualMachineSnapshot
	Self types.ManagedObjectReference
	env  *Env
}

// Methods that an active export lease blocks, as vSphere locks an entity
// while its disks are being read.
var (
	vmExportBlocks = []string{"ExportVm", "UnregisterVM", "MarkAsTemplate"}
	snapVMBlocks   = []string{"Destroy_Task", "RemoveAllSnapshots_Task", "RevertToCurrentSnapshot_Task", "UnregisterVM", "ExportVm"}
	snapshotBlocks = []string{"RemoveSnapshot_Task", "RevertToSnapshot_Task", "ExportSnapshot"}
)

const msgTaskInProgress = "Another task is already in progress."

// lockFault returns TaskInProgress for calls an active lease forbids.
func (e *Env) lockFault(m *simulator.Method) types.BaseMethodFault {
	e.mu.Lock()
	l := e.locked[m.This]
	e.mu.Unlock()
	if l == nil {
		return nil
	}
	blocked := false
	switch {
	case m.This == l.vm && l.snapshot == nil:
		blocked = strings.HasSuffix(m.Name, "_Task") || slices.Contains(vmExportBlocks, m.Name)
	case m.This == l.vm:
		blocked = slices.Contains(snapVMBlocks, m.Name)
	default:
		blocked = slices.Contains(snapshotBlocks, m.Name)
	}
	if !blocked {
		return nil
	}
	return &types.TaskInProgress{
		VimFault: types.VimFault{MethodFault: types.MethodFault{
			FaultMessage: []types.LocalizableMessage{{Key: "msg.taskInProgress", Message: msgTaskInProgress}},
		}},
		Task: l.Self,
	}
}
