package gcpfake

import (
	"fmt"
	"maps"
	"slices"

	"cloud.google.com/go/compute/apiv1/computepb"
	"github.com/fsouza/fake-gcs-server/fakestorage"
)

// Leftovers lists what exports may leave behind: snapshots, images, the
// builder's worker VMs, disks that are not attached to an instance of the
// spec (buffer disks), builds still queued or working, and objects in the spec's buckets — each as
// "kind name (labels)". An export that cleaned up after itself leaves none.
func (s *Server) Leftovers() []string {
	var out []string
	s.mu.Lock()
	for _, k := range sortedKeys(s.snapshots) {
		out = append(out, fmt.Sprintf("snapshot %s %v", k, s.snapshots[k].labels))
	}
	for _, k := range sortedKeys(s.images) {
		out = append(out, fmt.Sprintf("image %s %v", k, s.images[k].labels))
	}
	for _, vm := range s.instances {
		if vm.worker {
			out = append(out, fmt.Sprintf("instance %s/%s %v", vm.spec.Zone, vm.spec.Name, vm.spec.Labels))
		}
	}
	for _, k := range sortedKeys(s.disks) {
		if d := s.disks[k]; len(d.users) == 0 || d.labels["gce-image-export-tmp"] != "" {
			out = append(out, fmt.Sprintf("disk %s %v", k, d.labels))
		}
	}
	for _, k := range sortedKeys(s.builds) {
		if b := s.builds[k]; !terminal(b.proto.Status) {
			out = append(out, fmt.Sprintf("build %s %s %v", k, b.proto.Status, b.proto.Tags))
		}
	}
	s.mu.Unlock()
	for _, b := range s.buckets {
		objs, _, _ := s.gcs.ListObjectsWithOptions(b, fakestorage.ListOptions{})
		for _, o := range objs {
			out = append(out, fmt.Sprintf("object gs://%s/%s", b, o.Name))
		}
	}
	return out
}

// AddImage creates an image labelled labels, as a builder that converts
// through an image leaves one when its clean-up does not run.
func (s *Server) AddImage(name string, labels map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.images[name] = &imageRes{name: name, labels: maps.Clone(labels)}
}

// Build is what the fake knows of a build.
type Build struct {
	ID, Status string
	// Builder is the step's image.
	Builder    string
	Tags, Args []string
	Timeout    string
	LogsBucket string
}

// Builds lists every build, running or over.
func (s *Server) Builds() []Build {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Build
	for _, k := range sortedKeys(s.builds) {
		b := s.builds[k].proto
		out = append(out, Build{ID: b.Id, Status: b.Status.String(), Builder: b.Steps[0].Name, Tags: slices.Clone(b.Tags),
			Args: slices.Clone(b.Steps[0].Args), Timeout: b.Timeout.AsDuration().String(), LogsBucket: b.LogsBucket})
	}
	return out
}

// Snapshot returns what the fake holds of a snapshot.
func (s *Server) Snapshot(name string) (*computepb.Snapshot, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sn, ok := s.snapshots[name]
	if !ok {
		return nil, false
	}
	return s.snapshotProto(sn), true
}
