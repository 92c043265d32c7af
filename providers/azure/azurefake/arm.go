package azurefake

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8/fake"
)

// armError is an ARM error answer: the HTTP status, x-ms-error-code and
// the {"error": {"code", "message"}} body.
type armError struct {
	status        int
	code, message string
}

func (e *armError) Error() string { return fmt.Sprintf("%d %s: %s", e.status, e.code, e.message) }

func notFound(kind, rg, name string) *armError {
	return &armError{http.StatusNotFound, "ResourceNotFound",
		fmt.Sprintf("The Resource 'Microsoft.Compute/%s/%s' under resource group '%s' was not found.", kind, name, rg)}
}

// factory is the armcompute fake server set the ARM endpoint serves:
// only the operations the provider uses, over the inventory.
func (s *Server) factory() *fake.ServerFactory {
	return &fake.ServerFactory{
		VirtualMachinesServer: fake.VirtualMachinesServer{
			NewListAllPager: func(*armcompute.VirtualMachinesClientListAllOptions) (resp azfake.PagerResponder[armcompute.VirtualMachinesClientListAllResponse]) {
				for _, page := range pages(s.listVMs(""), s.pageSize()) {
					resp.AddPage(http.StatusOK, armcompute.VirtualMachinesClientListAllResponse{VirtualMachineListResult: armcompute.VirtualMachineListResult{Value: page}}, nil)
				}
				return resp
			},
			NewListPager: func(rg string, _ *armcompute.VirtualMachinesClientListOptions) (resp azfake.PagerResponder[armcompute.VirtualMachinesClientListResponse]) {
				for _, page := range pages(s.listVMs(rg), s.pageSize()) {
					resp.AddPage(http.StatusOK, armcompute.VirtualMachinesClientListResponse{VirtualMachineListResult: armcompute.VirtualMachineListResult{Value: page}}, nil)
				}
				return resp
			},
			Get: func(_ context.Context, rg, name string, o *armcompute.VirtualMachinesClientGetOptions) (resp azfake.Responder[armcompute.VirtualMachinesClientGetResponse], errResp azfake.ErrorResponder) {
				s.mu.Lock()
				defer s.mu.Unlock()
				v := s.vms[resourceKey(rg, "virtualMachines", name)]
				if v == nil {
					errResp.SetError(notFound("virtualMachines", rg, name))
					return
				}
				withView := o != nil && o.Expand != nil && *o.Expand == armcompute.InstanceViewTypesInstanceView
				resp.SetResponse(http.StatusOK, armcompute.VirtualMachinesClientGetResponse{VirtualMachine: *s.vmModel(v, withView)}, nil)
				return
			},
			InstanceView: func(_ context.Context, rg, name string, _ *armcompute.VirtualMachinesClientInstanceViewOptions) (resp azfake.Responder[armcompute.VirtualMachinesClientInstanceViewResponse], errResp azfake.ErrorResponder) {
				s.mu.Lock()
				defer s.mu.Unlock()
				v := s.vms[resourceKey(rg, "virtualMachines", name)]
				if v == nil {
					errResp.SetError(notFound("virtualMachines", rg, name))
					return
				}
				resp.SetResponse(http.StatusOK, armcompute.VirtualMachinesClientInstanceViewResponse{VirtualMachineInstanceView: *s.instanceView(v)}, nil)
				return
			},
		},
		VirtualMachineSizesServer: fake.VirtualMachineSizesServer{
			NewListPager: func(location string, _ *armcompute.VirtualMachineSizesClientListOptions) (resp azfake.PagerResponder[armcompute.VirtualMachineSizesClientListResponse]) {
				var sizes []*armcompute.VirtualMachineSize
				if strings.EqualFold(location, s.location("")) || s.hasLocation(location) {
					for _, sz := range s.spec.Sizes {
						sizes = append(sizes, &armcompute.VirtualMachineSize{
							Name: to.Ptr(sz.Name), NumberOfCores: to.Ptr(sz.Cores), MemoryInMB: to.Ptr(sz.MemoryMiB),
							MaxDataDiskCount: to.Ptr(sz.Cores * 4), OSDiskSizeInMB: to.Ptr[int32](1047552), ResourceDiskSizeInMB: to.Ptr[int32](0),
						})
					}
				}
				// The VM sizes list is not paged.
				resp.AddPage(http.StatusOK, armcompute.VirtualMachineSizesClientListResponse{VirtualMachineSizeListResult: armcompute.VirtualMachineSizeListResult{Value: sizes}}, nil)
				return resp
			},
		},
		DisksServer: fake.DisksServer{
			NewListPager: func(*armcompute.DisksClientListOptions) (resp azfake.PagerResponder[armcompute.DisksClientListResponse]) {
				for _, page := range pages(s.listDisks(""), s.pageSize()) {
					resp.AddPage(http.StatusOK, armcompute.DisksClientListResponse{DiskList: armcompute.DiskList{Value: page}}, nil)
				}
				return resp
			},
			NewListByResourceGroupPager: func(rg string, _ *armcompute.DisksClientListByResourceGroupOptions) (resp azfake.PagerResponder[armcompute.DisksClientListByResourceGroupResponse]) {
				for _, page := range pages(s.listDisks(rg), s.pageSize()) {
					resp.AddPage(http.StatusOK, armcompute.DisksClientListByResourceGroupResponse{DiskList: armcompute.DiskList{Value: page}}, nil)
				}
				return resp
			},
			Get: func(_ context.Context, rg, name string, _ *armcompute.DisksClientGetOptions) (resp azfake.Responder[armcompute.DisksClientGetResponse], errResp azfake.ErrorResponder) {
				s.mu.Lock()
				defer s.mu.Unlock()
				d := s.disks[resourceKey(rg, "disks", name)]
				if d == nil {
					errResp.SetError(notFound("disks", rg, name))
					return
				}
				resp.SetResponse(http.StatusOK, armcompute.DisksClientGetResponse{Disk: *s.diskModel(d, time.Now())}, nil)
				return
			},
			BeginUpdate: func(_ context.Context, rg, name string, u armcompute.DiskUpdate, _ *armcompute.DisksClientBeginUpdateOptions) (resp azfake.PollerResponder[armcompute.DisksClientUpdateResponse], errResp azfake.ErrorResponder) {
				s.mu.Lock()
				defer s.mu.Unlock()
				d := s.disks[resourceKey(rg, "disks", name)]
				switch {
				case d == nil:
					errResp.SetError(notFound("disks", rg, name))
					return
				case u.Properties != nil || u.SKU != nil:
					errResp.SetError(&armError{http.StatusBadRequest, "BadRequest", "azurefake updates disk tags only"})
					return
				}
				if u.Tags != nil {
					d.tags = map[string]string{}
					for k, v := range u.Tags {
						d.tags[k] = deref(v)
					}
				}
				resp.SetTerminalResponse(http.StatusOK, armcompute.DisksClientUpdateResponse{Disk: *s.diskModel(d, time.Now())}, nil)
				return
			},
			BeginGrantAccess: func(ctx context.Context, rg, name string, data armcompute.GrantAccessData, _ *armcompute.DisksClientBeginGrantAccessOptions) (resp azfake.PollerResponder[armcompute.DisksClientGrantAccessResponse], errResp azfake.ErrorResponder) {
				sas, err := s.grantAccess(ctx, resourceKey(rg, "disks", name), rg, name, data)
				if err != nil {
					errResp.SetError(err)
					return
				}
				resp.SetTerminalResponse(http.StatusOK, armcompute.DisksClientGrantAccessResponse{AccessURI: armcompute.AccessURI{AccessSAS: to.Ptr(sas)}}, nil)
				return
			},
			BeginRevokeAccess: func(ctx context.Context, rg, name string, _ *armcompute.DisksClientBeginRevokeAccessOptions) (resp azfake.PollerResponder[armcompute.DisksClientRevokeAccessResponse], errResp azfake.ErrorResponder) {
				if err := s.revokeAccess(ctx, resourceKey(rg, "disks", name), rg, name); err != nil {
					errResp.SetError(err)
					return
				}
				resp.SetTerminalResponse(http.StatusOK, armcompute.DisksClientRevokeAccessResponse{}, nil)
				return
			},
		},
		SnapshotsServer: fake.SnapshotsServer{
			NewListPager: func(*armcompute.SnapshotsClientListOptions) (resp azfake.PagerResponder[armcompute.SnapshotsClientListResponse]) {
				for _, page := range pages(s.listSnapshots(""), s.pageSize()) {
					resp.AddPage(http.StatusOK, armcompute.SnapshotsClientListResponse{SnapshotList: armcompute.SnapshotList{Value: page}}, nil)
				}
				return resp
			},
			NewListByResourceGroupPager: func(rg string, _ *armcompute.SnapshotsClientListByResourceGroupOptions) (resp azfake.PagerResponder[armcompute.SnapshotsClientListByResourceGroupResponse]) {
				for _, page := range pages(s.listSnapshots(rg), s.pageSize()) {
					resp.AddPage(http.StatusOK, armcompute.SnapshotsClientListByResourceGroupResponse{SnapshotList: armcompute.SnapshotList{Value: page}}, nil)
				}
				return resp
			},
			Get: func(_ context.Context, rg, name string, _ *armcompute.SnapshotsClientGetOptions) (resp azfake.Responder[armcompute.SnapshotsClientGetResponse], errResp azfake.ErrorResponder) {
				s.mu.Lock()
				defer s.mu.Unlock()
				sn := s.snapshots[resourceKey(rg, "snapshots", name)]
				if sn == nil {
					errResp.SetError(notFound("snapshots", rg, name))
					return
				}
				if sn.pendingPolls > 0 {
					sn.pendingPolls--
				}
				resp.SetResponse(http.StatusOK, armcompute.SnapshotsClientGetResponse{Snapshot: *s.snapshotModel(sn, time.Now())}, nil)
				return
			},
			BeginCreateOrUpdate: func(_ context.Context, rg, name string, in armcompute.Snapshot, _ *armcompute.SnapshotsClientBeginCreateOrUpdateOptions) (resp azfake.PollerResponder[armcompute.SnapshotsClientCreateOrUpdateResponse], errResp azfake.ErrorResponder) {
				out, err := s.createSnapshot(rg, name, in)
				if err != nil {
					errResp.SetError(err)
					return
				}
				resp.SetTerminalResponse(http.StatusOK, armcompute.SnapshotsClientCreateOrUpdateResponse{Snapshot: *out}, nil)
				return
			},
			BeginDelete: func(ctx context.Context, rg, name string, _ *armcompute.SnapshotsClientBeginDeleteOptions) (resp azfake.PollerResponder[armcompute.SnapshotsClientDeleteResponse], errResp azfake.ErrorResponder) {
				status, err := s.deleteSnapshot(rg, name)
				if err != nil {
					errResp.SetError(err)
					return
				}
				resp.SetTerminalResponse(status, armcompute.SnapshotsClientDeleteResponse{}, nil)
				return
			},
			BeginGrantAccess: func(ctx context.Context, rg, name string, data armcompute.GrantAccessData, _ *armcompute.SnapshotsClientBeginGrantAccessOptions) (resp azfake.PollerResponder[armcompute.SnapshotsClientGrantAccessResponse], errResp azfake.ErrorResponder) {
				sas, err := s.grantAccess(ctx, resourceKey(rg, "snapshots", name), rg, name, data)
				if err != nil {
					errResp.SetError(err)
					return
				}
				resp.SetTerminalResponse(http.StatusOK, armcompute.SnapshotsClientGrantAccessResponse{AccessURI: armcompute.AccessURI{AccessSAS: to.Ptr(sas)}}, nil)
				return
			},
			BeginRevokeAccess: func(ctx context.Context, rg, name string, _ *armcompute.SnapshotsClientBeginRevokeAccessOptions) (resp azfake.PollerResponder[armcompute.SnapshotsClientRevokeAccessResponse], errResp azfake.ErrorResponder) {
				if err := s.revokeAccess(ctx, resourceKey(rg, "snapshots", name), rg, name); err != nil {
					errResp.SetError(err)
					return
				}
				resp.SetTerminalResponse(http.StatusOK, armcompute.SnapshotsClientRevokeAccessResponse{}, nil)
				return
			},
		},
	}
}

func (s *Server) hasLocation(l string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range s.vms {
		if strings.EqualFold(s.location(v.spec.Location), l) {
			return true
		}
	}
	return false
}

func (s *Server) pageSize() int {
	if s.opts.PageSize > 0 {
		return s.opts.PageSize
	}
	return 100
}

// pages cuts items into pages; an empty list is one empty page.
func pages[T any](items []T, size int) [][]T {
	if len(items) == 0 {
		return [][]T{nil}
	}
	return slices.Collect(slices.Chunk(items, size))
}

func (s *Server) listVMs(rg string) []*armcompute.VirtualMachine {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*armcompute.VirtualMachine
	for _, k := range slices.Sorted(maps.Keys(s.vms)) {
		v := s.vms[k]
		if rg == "" || strings.EqualFold(v.spec.ResourceGroup, rg) {
			out = append(out, s.vmModel(v, false))
		}
	}
	return out
}

func (s *Server) listDisks(rg string) []*armcompute.Disk {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	var out []*armcompute.Disk
	for _, k := range slices.Sorted(maps.Keys(s.disks)) {
		d := s.disks[k]
		if rg == "" || strings.EqualFold(d.spec.ResourceGroup, rg) {
			out = append(out, s.diskModel(d, now))
		}
	}
	return out
}

func (s *Server) listSnapshots(rg string) []*armcompute.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	var out []*armcompute.Snapshot
	for _, k := range slices.Sorted(maps.Keys(s.snapshots)) {
		sn := s.snapshots[k]
		if rg == "" || strings.EqualFold(sn.rg, rg) {
			out = append(out, s.snapshotModel(sn, now))
		}
	}
	return out
}

func tagPtrs(tags map[string]string) map[string]*string {
	if tags == nil {
		return nil
	}
	out := make(map[string]*string, len(tags))
	for k, v := range tags {
		out[k] = to.Ptr(v)
	}
	return out
}

func (s *Server) vmModel(v *vm, withView bool) *armcompute.VirtualMachine {
	sp := v.spec
	osType := armcompute.OperatingSystemTypes(sp.OSType)
	if sp.OSType == "" {
		osType = armcompute.OperatingSystemTypesLinux
	}
	storage := &armcompute.StorageProfile{
		OSDisk: &armcompute.OSDisk{
			Name: to.Ptr(v.disks[0].spec.Name), OSType: to.Ptr(osType), CreateOption: to.Ptr(armcompute.DiskCreateOptionTypesFromImage),
			DiskSizeGB: to.Ptr(int32(v.disks[0].spec.Content.Size() >> 30)), Caching: to.Ptr(armcompute.CachingTypesReadWrite),
			ManagedDisk: &armcompute.ManagedDiskParameters{ID: to.Ptr(v.disks[0].id), StorageAccountType: to.Ptr(armcompute.StorageAccountTypes(skuOf(v.disks[0].spec)))},
		},
	}
	for i, d := range v.disks[1:] {
		storage.DataDisks = append(storage.DataDisks, &armcompute.DataDisk{
			Lun: to.Ptr(int32(i)), Name: to.Ptr(d.spec.Name), CreateOption: to.Ptr(armcompute.DiskCreateOptionTypesAttach),
			DiskSizeGB:  to.Ptr(int32(d.spec.Content.Size() >> 30)),
			ManagedDisk: &armcompute.ManagedDiskParameters{ID: to.Ptr(d.id), StorageAccountType: to.Ptr(armcompute.StorageAccountTypes(skuOf(d.spec)))},
		})
	}
	if parts := strings.Split(sp.Image, ":"); len(parts) == 4 {
		storage.ImageReference = &armcompute.ImageReference{Publisher: &parts[0], Offer: &parts[1], SKU: &parts[2], Version: &parts[3], ExactVersion: &parts[3]}
	}
	net := &armcompute.NetworkProfile{}
	for i, n := range sp.NICs {
		net.NetworkInterfaces = append(net.NetworkInterfaces, &armcompute.NetworkInterfaceReference{
			ID:         to.Ptr(fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Network/networkInterfaces/%s", s.opts.SubscriptionID, sp.ResourceGroup, n)),
			Properties: &armcompute.NetworkInterfaceReferenceProperties{Primary: to.Ptr(i == 0)},
		})
	}
	out := &armcompute.VirtualMachine{
		ID: to.Ptr(v.id), Name: to.Ptr(sp.Name), Type: to.Ptr("Microsoft.Compute/virtualMachines"),
		Location: to.Ptr(s.location(sp.Location)), Tags: tagPtrs(sp.Tags),
		Properties: &armcompute.VirtualMachineProperties{
			VMID: to.Ptr(v.vmID), ProvisioningState: to.Ptr("Succeeded"),
			HardwareProfile: &armcompute.HardwareProfile{VMSize: to.Ptr(armcompute.VirtualMachineSizeTypes(sp.Size))},
			StorageProfile:  storage, NetworkProfile: net,
		},
	}
	if sp.Zone != "" {
		out.Zones = []*string{to.Ptr(sp.Zone)}
	}
	if sp.SecurityType != "" {
		out.Properties.SecurityProfile = &armcompute.SecurityProfile{SecurityType: to.Ptr(armcompute.SecurityTypes(sp.SecurityType))}
	}
	if withView {
		out.Properties.InstanceView = s.instanceView(v)
	}
	return out
}

func (s *Server) instanceView(v *vm) *armcompute.VirtualMachineInstanceView {
	iv := &armcompute.VirtualMachineInstanceView{
		ComputerName: to.Ptr(v.spec.Name),
		Statuses: []*armcompute.InstanceViewStatus{
			{Code: to.Ptr("ProvisioningState/succeeded"), Level: to.Ptr(armcompute.StatusLevelTypesInfo), DisplayStatus: to.Ptr("Provisioning succeeded")},
			{Code: to.Ptr(powerStatus(v.power)), Level: to.Ptr(armcompute.StatusLevelTypesInfo), DisplayStatus: to.Ptr("VM " + v.power)},
		},
		HyperVGeneration: to.Ptr(armcompute.HyperVGenerationType(genOf(v.disks[0].spec))),
	}
	if v.power == PowerRunning && v.spec.OSName != "" {
		iv.OSName, iv.OSVersion = to.Ptr(v.spec.OSName), to.Ptr(v.spec.OSVersion)
	}
	return iv
}

func skuOf(d *Disk) string {
	if d.SKU == "" {
		return "Premium_LRS"
	}
	return d.SKU
}

func genOf(d *Disk) string {
	if d.HyperVGeneration == "" {
		return "V1"
	}
	return d.HyperVGeneration
}

func (s *Server) diskModel(d *disk, now time.Time) *armcompute.Disk {
	size := d.spec.Content.Size()
	out := &armcompute.Disk{
		ID: to.Ptr(d.id), Name: to.Ptr(d.spec.Name), Type: to.Ptr("Microsoft.Compute/disks"),
		Location: to.Ptr(d.location), Tags: tagPtrs(d.tags),
		SKU: &armcompute.DiskSKU{Name: to.Ptr(armcompute.DiskStorageAccountTypes(skuOf(d.spec)))},
		Properties: &armcompute.DiskProperties{
			CreationData:      &armcompute.CreationData{CreateOption: to.Ptr(armcompute.DiskCreateOptionEmpty)},
			DiskSizeGB:        to.Ptr(int32((size + gib - 1) / gib)),
			DiskSizeBytes:     to.Ptr(size),
			DiskState:         to.Ptr(armcompute.DiskState(d.state(now))),
			HyperVGeneration:  to.Ptr(armcompute.HyperVGeneration(genOf(d.spec))),
			ProvisioningState: to.Ptr("Succeeded"), TimeCreated: to.Ptr(d.created), UniqueID: to.Ptr(d.uniqueID),
			LastOwnershipUpdateTime: to.Ptr(d.ownership),
		},
	}
	if d.spec.OSType != "" {
		out.Properties.OSType = to.Ptr(armcompute.OperatingSystemTypes(d.spec.OSType))
	}
	if d.vm != nil {
		out.ManagedBy = to.Ptr(d.vm.id)
	}
	return out
}

func (s *Server) snapshotModel(sn *snapshot, now time.Time) *armcompute.Snapshot {
	size := sn.content.Size()
	state := armcompute.DiskStateUnattached
	if sn.grant.active(now) {
		state = armcompute.DiskStateActiveSAS
	}
	complete := float32(100)
	if sn.pendingPolls > 0 {
		complete = float32(100 * 1 / (1 + sn.pendingPolls))
	}
	out := &armcompute.Snapshot{
		ID: to.Ptr(sn.id), Name: to.Ptr(sn.name), Type: to.Ptr("Microsoft.Compute/snapshots"),
		Location: to.Ptr(sn.location), Tags: tagPtrs(sn.tags),
		SKU: &armcompute.SnapshotSKU{Name: to.Ptr(armcompute.SnapshotStorageAccountTypes(sn.sku))},
		Properties: &armcompute.SnapshotProperties{
			CreationData:  &armcompute.CreationData{CreateOption: to.Ptr(armcompute.DiskCreateOptionCopy), SourceResourceID: to.Ptr(sn.sourceID)},
			DiskSizeGB:    to.Ptr(int32((size + gib - 1) / gib)),
			DiskSizeBytes: to.Ptr(size), DiskState: to.Ptr(state), Incremental: to.Ptr(sn.incremental),
			ProvisioningState: to.Ptr("Succeeded"), TimeCreated: to.Ptr(sn.created), UniqueID: to.Ptr(sn.uniqueID),
			HyperVGeneration: to.Ptr(armcompute.HyperVGeneration(genOf(sn.source.spec))),
		},
	}
	if sn.incremental {
		out.Properties.CompletionPercent = to.Ptr(complete)
	}
	return out
}

// createSnapshot makes a snapshot as Azure does: a copy of a disk of the
// subscription, in its region, incremental when the disk's SKU allows
// nothing else. A name that exists is an update, allowed for tags only.
func (s *Server) createSnapshot(rg, name string, in armcompute.Snapshot) (*armcompute.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if !validName(name) {
		return nil, &armError{http.StatusBadRequest, "InvalidResourceName", fmt.Sprintf("Resource name %s is invalid.", name)}
	}
	p := in.Properties
	if in.Location == nil || p == nil || p.CreationData == nil || p.CreationData.CreateOption == nil ||
		*p.CreationData.CreateOption != armcompute.DiskCreateOptionCopy || p.CreationData.SourceResourceID == nil {
		return nil, &armError{http.StatusBadRequest, "InvalidParameter", "a snapshot needs a location and creationData {createOption: Copy, sourceResourceId}"}
	}
	key := resourceKey(rg, "snapshots", name)
	if sn := s.snapshots[key]; sn != nil {
		if !strings.EqualFold(sn.sourceID, *p.CreationData.SourceResourceID) {
			return nil, &armError{http.StatusConflict, "PropertyChangeNotAllowed", "Changing property 'sourceResourceId' is not allowed."}
		}
		sn.tags = map[string]string{}
		for k, v := range in.Tags {
			sn.tags[k] = deref(v)
		}
		if s.faults.LoseSnapshotAnswers > 0 {
			s.faults.LoseSnapshotAnswers--
			return nil, &armError{http.StatusInternalServerError, "InternalExecutionError", "An internal execution error occurred."}
		}
		return s.snapshotModel(sn, now), nil
	}
	srcKey, ok := s.keyOfID(*p.CreationData.SourceResourceID)
	src := s.disks[srcKey]
	if !ok || src == nil {
		return nil, &armError{http.StatusNotFound, "NotFound", fmt.Sprintf("Source resource %s was not found.", *p.CreationData.SourceResourceID)}
	}
	if !strings.EqualFold(*in.Location, src.location) {
		return nil, &armError{http.StatusBadRequest, "InvalidParameter", fmt.Sprintf("The snapshot must be in the source disk's region %s.", src.location)}
	}
	incremental := p.Incremental != nil && *p.Incremental
	if sku := skuOf(src.spec); (sku == "PremiumV2_LRS" || sku == "UltraSSD_LRS") && !incremental {
		return nil, &armError{http.StatusBadRequest, "BadRequest", fmt.Sprintf("Only incremental snapshots are supported for disks of SKU %s.", sku)}
	}
	if s.faults.FailSnapshots > 0 {
		s.faults.FailSnapshots--
		return nil, &armError{http.StatusInternalServerError, "InternalExecutionError", "An internal execution error occurred."}
	}
	sku := "Standard_LRS"
	if in.SKU != nil && in.SKU.Name != nil {
		sku = string(*in.SKU.Name)
	}
	sn := &snapshot{
		id: s.resourceID(rg, "snapshots", name), name: name, rg: rg, location: src.location, uniqueID: newGUID(),
		source: src, sourceID: src.id, sku: sku, incremental: incremental, content: src.spec.Content.Clone(),
		created: now.UTC(), tags: map[string]string{},
	}
	for k, v := range in.Tags {
		sn.tags[k] = deref(v)
	}
	if incremental {
		sn.pendingPolls = s.faults.SnapshotCopyPolls
	}
	s.snapshots[key] = sn
	s.stats.SnapshotsCreated++
	if s.faults.LoseSnapshotAnswers > 0 {
		// Created, but the answer never reaches the client.
		s.faults.LoseSnapshotAnswers--
		return nil, &armError{http.StatusInternalServerError, "InternalExecutionError", "An internal execution error occurred."}
	}
	return s.snapshotModel(sn, now), nil
}

// deleteSnapshot deletes a snapshot; one with an active SAS is refused, as
// in Azure. A missing one answers 204.
func (s *Server) deleteSnapshot(rg, name string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := resourceKey(rg, "snapshots", name)
	sn := s.snapshots[key]
	if sn == nil {
		return http.StatusNoContent, nil
	}
	if sn.grant.active(time.Now()) {
		return 0, &armError{http.StatusConflict, "OperationNotAllowed",
			fmt.Sprintf("Snapshot %s is currently being accessed (ActiveSAS); revoke access before deleting it.", name)}
	}
	delete(s.snapshots, key)
	s.stats.SnapshotsDeleted++
	return http.StatusOK, nil
}

// validName: Azure's managed disk and snapshot names.
func validName(n string) bool {
	if n == "" || len(n) > 80 {
		return false
	}
	for _, c := range n {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	last := n[len(n)-1]
	return last != '.' && last != '-'
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
