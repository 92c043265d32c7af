package awsfake

import (
	"encoding/xml"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// A snapshot holds its volume's blocks as they were when it was created.
type snapshot struct {
	id, volumeID, description string
	volumeSize                int32
	start                     time.Time
	blocks                    map[int64]*block
	indexes                   []int64 // sorted keys of blocks

	completed    bool
	polls        int // DescribeSnapshots answers that reported it pending
	pendingPolls int
	pendingUntil time.Time
	deleted      bool
}

func (sn *snapshot) state() string {
	if sn.completed {
		return "completed"
	}
	return "pending"
}

func (sn *snapshot) progress() string {
	if sn.completed {
		return "100%"
	}
	return strconv.Itoa(min(99, 100*sn.polls/(sn.pendingPolls+1))) + "%"
}

// observe is one DescribeSnapshots look at a pending snapshot: it completes
// once it has been reported pending PendingPolls times and PendingFor has
// passed.
func (sn *snapshot) observe(now time.Time) {
	if sn.completed {
		return
	}
	if sn.polls >= sn.pendingPolls && !now.Before(sn.pendingUntil) {
		sn.completed = true
		return
	}
	sn.polls++
}

func snapshotNotFound(id string) error {
	return &apiError{http.StatusBadRequest, "InvalidSnapshot.NotFound", fmt.Sprintf("The snapshot '%s' does not exist.", id)}
}

// --- CreateSnapshots ---

type createSnapshotsResponse struct {
	XMLName xml.Name `xml:"CreateSnapshotsResponse"`
	ec2Meta
	Snapshots set[xmlSnapshotInfo] `xml:"snapshotSet"`
}

type xmlSnapshotInfo struct {
	Description string      `xml:"description,omitempty"`
	TagSet      set[ec2Tag] `xml:"tagSet"`
	Encrypted   bool        `xml:"encrypted"`
	VolumeID    string      `xml:"volumeId"`
	State       string      `xml:"state"`
	VolumeSize  int32       `xml:"volumeSize"`
	StartTime   string      `xml:"startTime"`
	Progress    string      `xml:"progress"`
	OwnerID     string      `xml:"ownerId"`
	SnapshotID  string      `xml:"snapshotId"`
}

func (s *Server) createSnapshots(q query) (ec2Response, error) {
	instanceID := q.get("InstanceSpecification.InstanceId")
	if instanceID == "" {
		return nil, &apiError{http.StatusBadRequest, "MissingParameter", "The request must contain the parameter InstanceSpecification.InstanceId"}
	}
	excludeBoot := q.bool("InstanceSpecification.ExcludeBootVolume")
	excluded := q.list("InstanceSpecification.ExcludeDataVolumeId")
	tags := map[string]string{}
	for i := 1; ; i++ {
		p := "TagSpecification." + strconv.Itoa(i)
		rt, ok := q[p+".ResourceType"]
		if !ok {
			break
		}
		if len(rt) == 0 || rt[0] != "snapshot" {
			return nil, &apiError{http.StatusBadRequest, "InvalidParameterValue",
				fmt.Sprintf("'%s' is not a valid taggable resource type for this operation.", q.get(p+".ResourceType"))}
		}
		for _, t := range q.tags(p + ".Tag") {
			tags[t.Key] = t.Value
		}
	}
	copyFrom := q.get("CopyTagsFromSource")
	if copyFrom != "" && copyFrom != "volume" {
		return nil, &apiError{http.StatusBadRequest, "InvalidParameterValue", fmt.Sprintf("Value (%s) for parameter copyTagsFromSource is invalid.", copyFrom)}
	}
	faults := s.currentFaults()

	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.instance(instanceID)
	if in == nil {
		return nil, &apiError{http.StatusBadRequest, "InvalidInstanceID.NotFound", fmt.Sprintf("The instance ID '%s' does not exist", instanceID)}
	}
	now := time.Now().UTC()
	resp := &createSnapshotsResponse{}
	// All volumes are captured under one lock: a crash-consistent set.
	for _, d := range in.Devices {
		if (excludeBoot && d.Name == in.rootDeviceName()) || slices.Contains(excluded, d.VolumeID) {
			continue
		}
		v := s.volumes[d.VolumeID]
		snapTags := map[string]string{}
		if copyFrom == "volume" {
			maps.Copy(snapTags, s.tags[v.ID])
		}
		maps.Copy(snapTags, tags)
		id := newID("snap-")
		if s.opts.StableSnapshotIDs {
			id = s.stableSnapshotID(v.ID, snapTags)
		}
		sn := &snapshot{
			id:           id,
			volumeID:     v.ID,
			description:  q.get("Description"),
			volumeSize:   v.SizeGiB,
			start:        now,
			blocks:       v.snapshotBlocks(),
			pendingPolls: faults.PendingPolls,
			pendingUntil: now.Add(faults.PendingFor),
		}
		sn.indexes = sortedKeys(sn.blocks)
		if len(snapTags) > 0 {
			s.tags[sn.id] = snapTags
		}
		s.snapshots[sn.id] = sn
		s.snapOrder = append(s.snapOrder, sn.id)
		resp.Snapshots.Items = append(resp.Snapshots.Items, xmlSnapshotInfo{
			Description: sn.description,
			TagSet:      tagSet(snapTags),
			VolumeID:    sn.volumeID,
			State:       sn.state(),
			VolumeSize:  sn.volumeSize,
			StartTime:   sn.start.Format(ec2Time),
			Progress:    sn.progress(),
			OwnerID:     s.opts.AccountID,
			SnapshotID:  sn.id,
		})
	}
	return resp, nil
}

// --- DescribeSnapshots ---

type describeSnapshotsResponse struct {
	XMLName xml.Name `xml:"DescribeSnapshotsResponse"`
	ec2Meta
	Snapshots set[xmlSnapshot] `xml:"snapshotSet"`
	NextToken string           `xml:"nextToken,omitempty"`
}

type xmlSnapshot struct {
	SnapshotID  string      `xml:"snapshotId"`
	VolumeID    string      `xml:"volumeId"`
	Status      string      `xml:"status"`
	StartTime   string      `xml:"startTime"`
	Progress    string      `xml:"progress"`
	OwnerID     string      `xml:"ownerId"`
	VolumeSize  int32       `xml:"volumeSize"`
	Description string      `xml:"description"`
	Encrypted   bool        `xml:"encrypted"`
	StorageTier string      `xml:"storageTier"`
	TagSet      set[ec2Tag] `xml:"tagSet"`
}

func (s *Server) describeSnapshots(q query) (ec2Response, error) {
	ids := q.list("SnapshotId")
	if err := refuseIDsWithMaxResults(q, ids, "snapshotIds"); err != nil {
		return nil, err
	}
	owners := q.list("Owner")
	fs := q.filters()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		if sn := s.snapshots[id]; sn == nil || sn.deleted {
			return nil, snapshotNotFound(id)
		}
	}
	ownedBy := func() bool {
		if len(owners) == 0 {
			return true
		}
		return slices.Contains(owners, "self") || slices.Contains(owners, s.opts.AccountID)
	}()
	var picked []*snapshot
	for _, id := range s.snapOrder {
		sn := s.snapshots[id]
		if sn.deleted || !ownedBy || (len(ids) > 0 && !slices.Contains(ids, id)) {
			continue
		}
		ok, err := matchFilters(fs, func(name string) ([]string, bool) {
			switch name {
			case "snapshot-id":
				return []string{sn.id}, true
			case "volume-id":
				return []string{sn.volumeID}, true
			case "status":
				return []string{sn.state()}, true
			case "owner-id":
				return []string{s.opts.AccountID}, true
			case "description":
				return []string{sn.description}, true
			case "volume-size":
				return []string{strconv.Itoa(int(sn.volumeSize))}, true
			case "progress":
				return []string{sn.progress()}, true
			case "encrypted":
				return []string{"false"}, true
			}
			return tagFilterValues(name, s.tagsOf(sn.id))
		})
		if err != nil {
			return nil, err
		}
		if ok {
			picked = append(picked, sn)
		}
	}
	page, next, err := paginate(q, "DescribeSnapshots", picked, 5, 1000)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	resp := &describeSnapshotsResponse{NextToken: next}
	for _, sn := range page {
		sn.observe(now)
		resp.Snapshots.Items = append(resp.Snapshots.Items, xmlSnapshot{
			SnapshotID:  sn.id,
			VolumeID:    sn.volumeID,
			Status:      sn.state(),
			StartTime:   sn.start.Format(ec2Time),
			Progress:    sn.progress(),
			OwnerID:     s.opts.AccountID,
			VolumeSize:  sn.volumeSize,
			Description: sn.description,
			StorageTier: "standard",
			TagSet:      tagSet(s.tagsOf(sn.id)),
		})
	}
	return resp, nil
}

// --- DeleteSnapshot ---

func (s *Server) deleteSnapshot(q query) (ec2Response, error) {
	id := q.get("SnapshotId")
	if id == "" {
		return nil, &apiError{http.StatusBadRequest, "MissingParameter", "The request must contain the parameter snapshotId"}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sn := s.snapshots[id]
	if sn == nil || sn.deleted {
		return nil, snapshotNotFound(id)
	}
	sn.deleted = true
	sn.blocks = nil // the data goes; the record stays for the request stats
	delete(s.tags, id)
	return &returnResponse{XMLName: xml.Name{Local: "DeleteSnapshotResponse"}, Return: true}, nil
}
