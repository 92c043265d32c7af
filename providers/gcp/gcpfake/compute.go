package gcpfake

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/compute/apiv1/computepb"
	"google.golang.org/protobuf/proto"
)

type instance struct {
	spec Instance
	// worker marks a builder's VM: its buffer disk is attached to it but
	// not listed in spec.Disks (not exported with it).
	worker bool
}

type diskRes struct {
	disk   *Disk
	zone   string
	id     uint64
	users  []string
	labels map[string]string
}

type snapshotRes struct {
	name, sourceDisk string
	id               uint64
	content          *Disk
	labels           map[string]string
	status           string // CREATING, READY
	created          time.Time
}

type imageRes struct {
	name   string
	labels map[string]string
}

// operation is a Compute Engine operation: RUNNING for PendingPolls polls,
// then DONE, when done is called (the resource it works on is ready).
type operation struct {
	proto *computepb.Operation
	polls int
	done  func()
}

// machineType returns the vCPUs and MiB of memory of a machine type.
func machineType(name string) (int32, int32, error) {
	known := map[string][2]int32{
		"e2-micro": {2, 1024}, "e2-small": {2, 2048}, "e2-medium": {2, 4096},
		"e2-standard-2": {2, 8192}, "e2-standard-4": {4, 16384},
		"n2-standard-2": {2, 8192}, "n2-standard-4": {4, 16384}, "n2-highmem-8": {8, 65536},
		"t2a-standard-1": {1, 4096},
	}
	if v, ok := known[name]; ok {
		return v[0], v[1], nil
	}
	if rest, ok := strings.CutPrefix(name, "custom-"); ok {
		c, m, ok := strings.Cut(rest, "-")
		cpus, err1 := strconv.Atoi(c)
		mem, err2 := strconv.Atoi(m)
		if ok && err1 == nil && err2 == nil {
			return int32(cpus), int32(mem), nil
		}
	}
	return 0, 0, fmt.Errorf("gcpfake: unknown machine type %q", name)
}

func (s *Server) instanceProto(vm *instance) *computepb.Instance {
	in := vm.spec
	p := &computepb.Instance{
		Id: proto.Uint64(in.ID), Name: proto.String(in.Name), Status: proto.String(in.Status),
		Zone:        proto.String(s.selfLink("zones/" + in.Zone)),
		MachineType: proto.String(s.selfLink("zones/" + in.Zone + "/machineTypes/" + in.MachineType)),
		SelfLink:    proto.String(s.selfLink("zones/" + in.Zone + "/instances/" + in.Name)),
		Labels:      maps.Clone(in.Labels),
		Kind:        proto.String("compute#instance"),
		NetworkInterfaces: []*computepb.NetworkInterface{{
			Name:       proto.String("nic0"),
			Network:    proto.String(s.selfLink("global/networks/" + in.Network)),
			Subnetwork: proto.String(s.selfLink("regions/" + region(in.Zone) + "/subnetworks/" + in.Network)),
			NetworkIP:  proto.String("10.128.0." + strconv.Itoa(int(in.ID%200)+2)),
			NicType:    proto.String("GVNIC"),
		}},
	}
	for i, d := range in.Disks {
		ad := &computepb.AttachedDisk{
			Boot: proto.Bool(i == 0), Index: proto.Int32(int32(i)), DeviceName: proto.String(d.Name),
			DiskSizeGb: proto.Int64(d.SizeGB), Interface: proto.String("SCSI"), Mode: proto.String("READ_WRITE"),
			Source:   proto.String(s.selfLink("zones/" + in.Zone + "/disks/" + d.Name)),
			Type:     proto.String("PERSISTENT"),
			Licenses: d.Licenses, Kind: proto.String("compute#attachedDisk"),
		}
		if d.UEFI {
			ad.GuestOsFeatures = []*computepb.GuestOsFeature{{Type: proto.String("UEFI_COMPATIBLE")}}
		}
		p.Disks = append(p.Disks, ad)
	}
	return p
}

func region(zone string) string {
	if i := strings.LastIndexByte(zone, '-'); i > 0 {
		return zone[:i]
	}
	return zone
}

func (s *Server) listInstances(w http.ResponseWriter, r *http.Request) {
	s.count("instances.list")
	match, err := labelFilter(r.URL.Query().Get("filter"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "invalid", err.Error())
		return
	}
	zone := r.PathValue("zone")
	var items []*computepb.Instance
	s.mu.Lock()
	for _, vm := range s.instances {
		if vm.spec.Zone == zone && match(vm.spec.Labels) {
			items = append(items, s.instanceProto(vm))
		}
	}
	s.mu.Unlock()
	items, next := page(r, items, "maxResults")
	list := &computepb.InstanceList{Items: items, Kind: proto.String("compute#instanceList")}
	if next != "" {
		list.NextPageToken = proto.String(next)
	}
	writeProto(w, r, list)
}

func (s *Server) getInstance(w http.ResponseWriter, r *http.Request) {
	s.count("instances.get")
	zone, name := r.PathValue("zone"), r.PathValue("name")
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, vm := range s.instances {
		if vm.spec.Zone == zone && vm.spec.Name == name {
			writeProto(w, r, s.instanceProto(vm))
			return
		}
	}
	notFound(w, "projects/"+s.project+"/zones/"+zone+"/instances/"+name)
}

// deleteInstance deletes an instance; its disks are detached (not
// auto-deleted, as the builder attaches them).
func (s *Server) deleteInstance(w http.ResponseWriter, r *http.Request) {
	s.count("instances.delete")
	zone, name := r.PathValue("zone"), r.PathValue("name")
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.removeInstance(zone, name) {
		notFound(w, "projects/"+s.project+"/zones/"+zone+"/instances/"+name)
		return
	}
	writeProto(w, r, s.newOperation("delete", "zones/"+zone, "zones/"+zone+"/instances/"+name, nil))
}

// removeInstance removes an instance and detaches its disks; callers
// hold s.mu.
func (s *Server) removeInstance(zone, name string) bool {
	i := slices.IndexFunc(s.instances, func(vm *instance) bool { return vm.spec.Zone == zone && vm.spec.Name == name })
	if i < 0 {
		return false
	}
	s.instances = slices.Delete(s.instances, i, i+1)
	user := "zones/" + zone + "/instances/" + name
	for _, d := range s.disks {
		d.users = slices.DeleteFunc(d.users, func(u string) bool { return u == user })
	}
	return true
}

func (s *Server) getMachineType(w http.ResponseWriter, r *http.Request) {
	s.count("machineTypes.get")
	zone, name := r.PathValue("zone"), r.PathValue("name")
	cpus, mem, err := machineType(name)
	if err != nil {
		notFound(w, "projects/"+s.project+"/zones/"+zone+"/machineTypes/"+name)
		return
	}
	writeProto(w, r, &computepb.MachineType{
		Name: proto.String(name), GuestCpus: proto.Int32(cpus), MemoryMb: proto.Int32(mem),
		Zone: proto.String(zone), SelfLink: proto.String(s.selfLink("zones/" + zone + "/machineTypes/" + name)),
	})
}

func (s *Server) diskProto(d *diskRes) *computepb.Disk {
	typ := d.disk.Type
	if typ == "" {
		typ = "pd-balanced"
	}
	var users []string
	for _, u := range d.users {
		users = append(users, s.selfLink(u))
	}
	return &computepb.Disk{
		Id: proto.Uint64(d.id), Name: proto.String(d.disk.Name), SizeGb: proto.Int64(d.disk.SizeGB),
		Zone: proto.String(s.selfLink("zones/" + d.zone)), Status: proto.String("READY"),
		Type:     proto.String(s.selfLink("zones/" + d.zone + "/diskTypes/" + typ)),
		SelfLink: proto.String(s.selfLink("zones/" + d.zone + "/disks/" + d.disk.Name)),
		Users:    users, Labels: maps.Clone(d.labels), Licenses: d.disk.Licenses,
	}
}

func (s *Server) listDisks(w http.ResponseWriter, r *http.Request) {
	s.count("disks.list")
	match, err := labelFilter(r.URL.Query().Get("filter"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "invalid", err.Error())
		return
	}
	zone := r.PathValue("zone")
	var items []*computepb.Disk
	s.mu.Lock()
	for _, k := range sortedKeys(s.disks) {
		if d := s.disks[k]; d.zone == zone && match(d.labels) {
			items = append(items, s.diskProto(d))
		}
	}
	s.mu.Unlock()
	items, next := page(r, items, "maxResults")
	list := &computepb.DiskList{Items: items}
	if next != "" {
		list.NextPageToken = proto.String(next)
	}
	writeProto(w, r, list)
}

func (s *Server) getDisk(w http.ResponseWriter, r *http.Request) {
	s.count("disks.get")
	key := r.PathValue("zone") + "/" + r.PathValue("name")
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.disks[key]
	if !ok {
		notFound(w, "projects/"+s.project+"/zones/"+key)
		return
	}
	writeProto(w, r, s.diskProto(d))
}

func (s *Server) deleteDisk(w http.ResponseWriter, r *http.Request) {
	s.count("disks.delete")
	zone, name := r.PathValue("zone"), r.PathValue("name")
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.disks[zone+"/"+name]
	if !ok {
		notFound(w, "projects/"+s.project+"/zones/"+zone+"/disks/"+name)
		return
	}
	if len(d.users) > 0 {
		writeError(w, http.StatusBadRequest, "FAILED_PRECONDITION", "resourceInUseByAnotherResource",
			fmt.Sprintf("The disk resource 'projects/%s/zones/%s/disks/%s' is already being used by '%s'", s.project, zone, name, d.users[0]))
		return
	}
	delete(s.disks, zone+"/"+name)
	writeProto(w, r, s.newOperation("delete", "zones/"+zone, "zones/"+zone+"/disks/"+name, nil))
}

// newOperation records an operation on target; done runs when it
// completes. Callers hold s.mu.
func (s *Server) newOperation(kind, scope, target string, done func()) *computepb.Operation {
	name := fmt.Sprintf("operation-%d-%s", time.Now().UnixMilli(), randomHex(6))
	op := &computepb.Operation{
		Name: proto.String(name), Id: proto.Uint64(s.nextID()), OperationType: proto.String(kind),
		TargetLink: proto.String(s.selfLink(target)), Status: computepb.Operation_RUNNING.Enum(), Progress: proto.Int32(0),
		SelfLink: proto.String(s.selfLink(scope + "/operations/" + name)), Kind: proto.String("compute#operation"),
	}
	if z, ok := strings.CutPrefix(scope, "zones/"); ok {
		op.Zone = proto.String(s.selfLink("zones/" + z))
	}
	o := &operation{proto: op, done: done}
	s.ops[name] = o
	if s.faults.PendingPolls <= 0 {
		s.finish(o)
	}
	return proto.Clone(op).(*computepb.Operation)
}

func (s *Server) finish(o *operation) {
	if o.proto.GetStatus() == computepb.Operation_DONE {
		return
	}
	if o.done != nil {
		o.done()
	}
	o.proto.Status, o.proto.Progress = computepb.Operation_DONE.Enum(), proto.Int32(100)
}

func (s *Server) getOperation(w http.ResponseWriter, r *http.Request) {
	s.count("operations.get")
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.ops[r.PathValue("name")]
	if !ok {
		notFound(w, "operations/"+r.PathValue("name"))
		return
	}
	o.polls++
	if o.polls >= s.faults.PendingPolls {
		s.finish(o)
	}
	writeProto(w, r, o.proto)
}

func (s *Server) snapshotProto(sn *snapshotRes) *computepb.Snapshot {
	return &computepb.Snapshot{
		Id: proto.Uint64(sn.id), Name: proto.String(sn.name), Status: proto.String(sn.status),
		SourceDisk: proto.String(sn.sourceDisk), DiskSizeGb: proto.Int64(sn.content.SizeGB),
		Labels: maps.Clone(sn.labels), SelfLink: proto.String(s.selfLink("global/snapshots/" + sn.name)),
		CreationTimestamp: proto.String(sn.created.Format(time.RFC3339)),
		LabelFingerprint:  proto.String("42WmSpB8rSM="), Kind: proto.String("compute#snapshot"),
	}
}

// diskByLink finds a disk from its URL or relative name.
func (s *Server) diskByLink(link string) (*diskRes, bool) {
	i := strings.Index(link, "zones/")
	if i < 0 {
		return nil, false
	}
	zone, name, ok := strings.Cut(link[i+len("zones/"):], "/disks/")
	if !ok {
		return nil, false
	}
	d, found := s.disks[zone+"/"+name]
	return d, found
}

func (s *Server) insertSnapshot(w http.ResponseWriter, r *http.Request) {
	s.count("snapshots.insert")
	var req computepb.Snapshot
	if err := readProto(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "parseError", "Parse Error: "+err.Error())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.faults.DenySnapshots {
		writeError(w, http.StatusForbidden, "PERMISSION_DENIED", "forbidden",
			fmt.Sprintf("Required 'compute.snapshots.create' permission for 'projects/%s/global/snapshots/%s'", s.project, req.GetName()))
		return
	}
	name := req.GetName()
	if name == "" || len(name) > 63 {
		writeError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "invalid", "Invalid value for field 'resource.name': '"+name+"'.")
		return
	}
	if _, dup := s.snapshots[name]; dup {
		writeError(w, http.StatusConflict, "ALREADY_EXISTS", "alreadyExists",
			fmt.Sprintf("The resource 'projects/%s/global/snapshots/%s' already exists", s.project, name))
		return
	}
	d, ok := s.diskByLink(req.GetSourceDisk())
	if !ok {
		notFound(w, req.GetSourceDisk())
		return
	}
	sn := &snapshotRes{name: name, id: s.nextID(), sourceDisk: s.selfLink("zones/" + d.zone + "/disks/" + d.disk.Name),
		content: d.disk.snapshot(), labels: maps.Clone(req.GetLabels()), status: "CREATING", created: time.Now()}
	s.snapshots[name] = sn
	writeProto(w, r, s.newOperation("insert", "global", "global/snapshots/"+name, func() { sn.status = "READY" }))
}

func (s *Server) getSnapshot(w http.ResponseWriter, r *http.Request) {
	s.count("snapshots.get")
	s.mu.Lock()
	defer s.mu.Unlock()
	sn, ok := s.snapshots[r.PathValue("name")]
	if !ok {
		notFound(w, "projects/"+s.project+"/global/snapshots/"+r.PathValue("name"))
		return
	}
	writeProto(w, r, s.snapshotProto(sn))
}

func (s *Server) listSnapshots(w http.ResponseWriter, r *http.Request) {
	s.count("snapshots.list")
	match, err := labelFilter(r.URL.Query().Get("filter"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "invalid", err.Error())
		return
	}
	var items []*computepb.Snapshot
	s.mu.Lock()
	for _, k := range sortedKeys(s.snapshots) {
		if sn := s.snapshots[k]; match(sn.labels) {
			items = append(items, s.snapshotProto(sn))
		}
	}
	s.mu.Unlock()
	items, next := page(r, items, "maxResults")
	list := &computepb.SnapshotList{Items: items}
	if next != "" {
		list.NextPageToken = proto.String(next)
	}
	writeProto(w, r, list)
}

func (s *Server) deleteSnapshot(w http.ResponseWriter, r *http.Request) {
	s.count("snapshots.delete")
	name := r.PathValue("name")
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.snapshots[name]; !ok {
		notFound(w, "projects/"+s.project+"/global/snapshots/"+name)
		return
	}
	delete(s.snapshots, name)
	writeProto(w, r, s.newOperation("delete", "global", "global/snapshots/"+name, nil))
}

func (s *Server) listImages(w http.ResponseWriter, r *http.Request) {
	s.count("images.list")
	match, err := labelFilter(r.URL.Query().Get("filter"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "invalid", err.Error())
		return
	}
	var items []*computepb.Image
	s.mu.Lock()
	for _, k := range sortedKeys(s.images) {
		if im := s.images[k]; match(im.labels) {
			items = append(items, &computepb.Image{Name: proto.String(im.name), Labels: maps.Clone(im.labels), Status: proto.String("READY")})
		}
	}
	s.mu.Unlock()
	items, next := page(r, items, "maxResults")
	list := &computepb.ImageList{Items: items}
	if next != "" {
		list.NextPageToken = proto.String(next)
	}
	writeProto(w, r, list)
}

func (s *Server) deleteImage(w http.ResponseWriter, r *http.Request) {
	s.count("images.delete")
	name := r.PathValue("name")
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.images[name]; !ok {
		notFound(w, "projects/"+s.project+"/global/images/"+name)
		return
	}
	delete(s.images, name)
	writeProto(w, r, s.newOperation("delete", "global", "global/images/"+name, nil))
}
