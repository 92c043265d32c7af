package vcsim

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// ExportVm implements VirtualMachine.ExportVm: the VM must be powered off;
// the returned lease is ready at once, with one deviceUrl per disk (a
// streamOptimized VMDK) and one for the NVRAM file when it is not empty.
func (s *vmShim) ExportVm(ctx *simulator.Context, req *types.ExportVm) soap.HasFault {
	defer s.env.releaseShim(ctx, req.This)
	body := &methods.ExportVmBody{}
	vm := s.VirtualMachine

	// The simulator holds the VM's lock during this call.
	switch state := vm.Runtime.PowerState; state {
	case types.VirtualMachinePowerStatePoweredOn, types.VirtualMachinePowerStateSuspended:
		body.Fault_ = simulator.Fault(
			fmt.Sprintf("The attempted operation cannot be performed in the current state (%s).", powerWord(state)),
			&types.InvalidPowerState{RequestedState: types.VirtualMachinePowerStatePoweredOff, ExistingState: state})
		return body
	}
	l, f := s.env.newLease(ctx, &simulator.Method{Name: "ExportVm", This: req.This}, vm, nil, vm.Config)
	if f != nil {
		body.Fault_ = simulator.Fault(faultMessage(f), f)
		return body
	}
	body.Res = &types.ExportVmResponse{Returnval: l.Self}
	return body
}

// ExportSnapshot implements VirtualMachineSnapshot.ExportSnapshot with this
// package's leases: the disks as they were when the snapshot was taken,
// whatever the VM's power state.
func (s *snapshotShim) ExportSnapshot(ctx *simulator.Context, req *types.ExportSnapshot) soap.HasFault {
	defer s.env.releaseShim(ctx, req.This)
	body := &methods.ExportSnapshotBody{}
	vm, ok := ctx.Map.Get(s.Vm).(*simulator.VirtualMachine)
	if !ok {
		body.Fault_ = simulator.Fault("", &types.ManagedObjectNotFound{Obj: s.Vm})
		return body
	}
	snap := req.This
	var l *lease
	var f types.BaseMethodFault
	ctx.WithLock(vm, func() {
		l, f = s.env.newLease(ctx, &simulator.Method{Name: "ExportSnapshot", This: req.This}, vm, &snap, &s.Config)
	})
	if f != nil {
		body.Fault_ = simulator.Fault(faultMessage(f), f)
		return body
	}
	body.Res = &types.ExportSnapshotResponse{Returnval: l.Self}
	return body
}

// faultMessage is the localized message vSphere would send with f.
func faultMessage(f types.BaseMethodFault) string {
	switch x := f.(type) {
	case *types.TaskInProgress:
		return msgTaskInProgress
	case *types.FileNotFound:
		return fmt.Sprintf("File %s was not found", x.File)
	case *types.InvalidDatastorePath:
		return fmt.Sprintf("Invalid datastore path '%s'.", x.DatastorePath)
	case *types.InvalidDatastore:
		return fmt.Sprintf("Invalid datastore %s.", x.Name)
	case *types.SystemError:
		return x.Reason
	}
	return ""
}

func powerWord(s types.VirtualMachinePowerState) string {
	switch s {
	case types.VirtualMachinePowerStatePoweredOn:
		return "Powered on"
	case types.VirtualMachinePowerStateSuspended:
		return "Suspended"
	}
	return "Powered off"
}

// newLease creates and registers an export lease for the disks of cfg (the
// VM's or a snapshot's configuration) and the VM's NVRAM file. The caller
// holds the VM's object lock.
func (e *Env) newLease(ctx *simulator.Context, m *simulator.Method, vm *simulator.VirtualMachine, snap *types.ManagedObjectReference, cfg *types.VirtualMachineConfigInfo) (*lease, types.BaseMethodFault) {
	if cfg == nil {
		return nil, &types.InvalidState{}
	}
	files, total, f := e.leaseFiles(ctx, vm, cfg)
	if f != nil {
		return nil, f
	}
	ticket, err := randomHex(16)
	if err != nil {
		return nil, &types.SystemError{Reason: err.Error()}
	}
	a, _ := randomHex(16)
	b, _ := randomHex(16)
	l := &lease{
		env:      e,
		ticket:   ticket,
		vm:       vm.Self,
		vmName:   vm.Name,
		snapshot: snap,
		files:    files,
		byTarget: make(map[string]*leaseFile),
		done:     make(chan struct{}),
		outcome:  LeaseActive,
	}
	l.Self = types.ManagedObjectReference{Type: "HttpNfcLease", Value: fmt.Sprintf("session[%s]%s", uuidString(a), uuidString(b))}
	l.State = types.HttpNfcLeaseStateInitializing
	l.InitializeProgress = 100
	l.Mode = string(types.HttpNfcLeaseModePushOrGet)
	l.Capabilities = types.HttpNfcLeaseCapabilities{PullModeSupported: true, CorsSupported: true}

	base := "https://" + e.url.Host + "/nfc/" + ticket + "/"
	var urls []types.HttpNfcLeaseDeviceUrl
	for _, lf := range files {
		lf.URL = base + lf.TargetID
		l.byTarget[lf.TargetID] = lf
		du := types.HttpNfcLeaseDeviceUrl{
			Key:           lf.DeviceID,
			Url:           lf.URL,
			SslThumbprint: e.thumb,
			Disk:          types.NewBool(lf.Disk),
			TargetId:      lf.TargetID,
		}
		if !lf.Disk {
			du.FileSize = lf.Size // vSphere sets it for non-disk files only
		}
		urls = append(urls, du)
	}

	e.mu.Lock()
	if cur := e.locked[vm.Self]; cur != nil {
		e.mu.Unlock()
		return nil, &types.TaskInProgress{Task: cur.Self}
	}
	if snap != nil && e.locked[*snap] != nil {
		e.mu.Unlock()
		return nil, &types.TaskInProgress{Task: e.locked[*snap].Self}
	}
	e.locked[vm.Self] = l
	if snap != nil {
		e.locked[*snap] = l
	}
	e.leases = append(e.leases, l)
	e.byRef[l.Self] = l
	e.byTicket[ticket] = l
	l.timer = time.AfterFunc(e.opts.LeaseTimeout, l.timeout)
	e.mu.Unlock()

	ctx.Map.Put(l)

	lf := e.leaseFault(ctx, m)
	ctx.WithLock(l, func() {
		if lf != nil {
			l.end(ctx, LeaseFailed, types.HttpNfcLeaseStateError, localized(lf))
			return
		}
		ctx.Update(l, []types.PropertyChange{
			{Name: "info", Val: &types.HttpNfcLeaseInfo{
				Lease:                 l.Self,
				Entity:                vm.Self,
				DeviceUrl:             urls,
				TotalDiskCapacityInKB: total / 1024,
				LeaseTimeout:          int32(e.opts.LeaseTimeout / time.Second),
			}},
			{Name: "state", Val: types.HttpNfcLeaseStateReady},
		})
	})
	return l, nil
}

// leaseFiles lists the files an export of cfg serves: every disk, then the
// NVRAM file if it is not empty.
func (e *Env) leaseFiles(ctx *simulator.Context, vm *simulator.VirtualMachine, cfg *types.VirtualMachineConfigInfo) ([]*leaseFile, int64, types.BaseMethodFault) {
	devices := object.VirtualDeviceList(cfg.Hardware.Device)
	var files []*leaseFile
	var total int64
	for i, d := range devices.SelectByType((*types.VirtualDisk)(nil)) {
		disk := d.(*types.VirtualDisk)
		fb, ok := disk.Backing.(types.BaseVirtualDeviceFileBackingInfo)
		if !ok {
			continue
		}
		info := fb.GetVirtualDeviceFileBackingInfo()
		local, f := e.localPath(ctx, info.FileName, info.Datastore)
		if f != nil {
			return nil, 0, f
		}
		st, err := os.Stat(local)
		if err != nil {
			return nil, 0, &types.FileNotFound{FileFault: types.FileFault{File: info.FileName}}
		}
		capacity := disk.CapacityInBytes
		if capacity == 0 {
			capacity = disk.CapacityInKB * 1024
		}
		total += capacity
		files = append(files, &leaseFile{
			LeaseFile: LeaseFile{
				DeviceID: deviceID(vm.Self, devices, disk),
				TargetID: fmt.Sprintf("disk-%d.vmdk", i),
				Disk:     true,
				Size:     st.Size(),
				Path:     local,
			},
			capacity: capacity,
		})
	}
	if local, f := e.localPath(ctx, vm.Config.Files.VmPathName, nil); f == nil {
		if path.Ext(local) == ".vmx" {
			local = filepath.Dir(local)
		}
		nv := filepath.Join(local, vm.Name+".nvram")
		if st, err := os.Stat(nv); err == nil && st.Size() > 0 {
			files = append(files, &leaseFile{LeaseFile: LeaseFile{
				DeviceID: "/" + vm.Self.Value + "/nvram",
				TargetID: fmt.Sprintf("disk-%d.nvram", len(files)),
				Size:     st.Size(),
				Path:     nv,
			}})
		}
	}
	return files, total, nil
}

// localPath resolves a datastore path to the local file behind it.
func (e *Env) localPath(ctx *simulator.Context, dsPath string, dsRef *types.ManagedObjectReference) (string, types.BaseMethodFault) {
	var p object.DatastorePath
	if !p.FromString(dsPath) {
		return "", &types.InvalidDatastorePath{DatastorePath: dsPath}
	}
	var ds *simulator.Datastore
	if dsRef != nil {
		ds, _ = ctx.Map.Get(*dsRef).(*simulator.Datastore)
	}
	if ds == nil {
		for _, obj := range ctx.Map.All("Datastore") {
			if d, ok := obj.(*simulator.Datastore); ok && d.Name == p.Datastore {
				ds = d
				break
			}
		}
	}
	if ds == nil {
		return "", &types.InvalidDatastore{Name: p.Datastore}
	}
	return filepath.Join(ds.Info.GetDatastoreInfo().Url, filepath.FromSlash(p.Path)), nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// uuidString formats 32 hex digits as a UUID.
func uuidString(h string) string {
	if len(h) < 32 {
		return h
	}
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

var _ mo.Reference = (*lease)(nil)
