package gcpfake

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/cloudbuild/apiv1/v2/cloudbuildpb"
	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/klauspost/pgzip"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// BuilderName is the executable the fake's builds accept: the image export
// builder `gcloud compute images export` runs.
const BuilderName = "gce_vm_image_export"

// build is one Cloud Build build and its simulated builder run.
type build struct {
	proto  *cloudbuildpb.Build
	cancel context.CancelFunc
	done   chan struct{}
	log    bytes.Buffer
	once   sync.Once
}

func (b *build) stop() {
	if b.cancel != nil {
		b.cancel()
	}
}

func terminal(st cloudbuildpb.Build_Status) bool {
	switch st {
	case cloudbuildpb.Build_QUEUED, cloudbuildpb.Build_WORKING, cloudbuildpb.Build_PENDING, cloudbuildpb.Build_STATUS_UNKNOWN:
		return false
	}
	return true
}

func (s *Server) regionalUnsupported(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotImplemented, "UNIMPLEMENTED", "notImplemented", "gcpfake serves global builds only")
}

// createBuild starts a build and answers its operation, whose metadata
// holds the build (BuildOperationMetadata), as Cloud Build does.
func (s *Server) createBuild(w http.ResponseWriter, r *http.Request) {
	s.count("builds.create")
	var req cloudbuildpb.Build
	if err := readProto(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "badRequest", "Invalid JSON payload received. "+err.Error())
		return
	}
	if len(req.Steps) == 0 {
		writeError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "badRequest", "invalid build: steps must not be empty")
		return
	}
	for _, t := range req.Tags {
		if !tagPattern.MatchString(t) {
			writeError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "badRequest", fmt.Sprintf("invalid build: invalid build tag %q: must match format %q", t, tagPattern.String()))
			return
		}
	}
	if d := req.GetTimeout(); d != nil && (d.AsDuration() > 24*time.Hour || d.AsDuration() < 30*time.Second) {
		writeError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "badRequest", "invalid build: invalid timeout: must be between 30s and 24h")
		return
	}
	id := newUUID()
	b := &build{proto: proto.Clone(&req).(*cloudbuildpb.Build), done: make(chan struct{})}
	b.proto.Id, b.proto.ProjectId = id, s.project
	b.proto.Name = "projects/" + s.project + "/locations/global/builds/" + id
	b.proto.Status = cloudbuildpb.Build_QUEUED
	b.proto.CreateTime = timestamppb.Now()
	b.proto.LogUrl = "https://console.cloud.google.com/cloud-build/builds/" + id + "?project=" + s.project
	if b.proto.Timeout == nil {
		b.proto.Timeout = durationpb.New(10 * time.Minute)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	s.mu.Lock()
	s.builds[id] = b
	faults := s.faults
	s.mu.Unlock()
	go s.run(ctx, b, faults)
	writeProto(w, r, s.buildOperation(b))
}

var tagPattern = regexp.MustCompile(`^[\w][\w.-]{0,127}$`)

// buildOperation is the long-running operation of b.
func (s *Server) buildOperation(b *build) *longrunningpb.Operation {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := proto.Clone(b.proto).(*cloudbuildpb.Build)
	meta, _ := anypb.New(&cloudbuildpb.BuildOperationMetadata{Build: snap})
	op := &longrunningpb.Operation{
		Name:     "operations/build/" + s.project + "/" + base64.StdEncoding.EncodeToString([]byte(snap.Id)),
		Metadata: meta,
	}
	if terminal(snap.Status) {
		op.Done = true
		res, _ := anypb.New(snap)
		op.Result = &longrunningpb.Operation_Response{Response: res}
	}
	return op
}

func (s *Server) getBuildOperation(w http.ResponseWriter, r *http.Request) {
	s.count("operations.get")
	raw, err := base64.StdEncoding.DecodeString(r.PathValue("opid"))
	s.mu.Lock()
	b, ok := s.builds[string(raw)]
	s.mu.Unlock()
	if err != nil || !ok {
		notFound(w, r.URL.Path)
		return
	}
	writeProto(w, r, s.buildOperation(b))
}

func (s *Server) getBuild(w http.ResponseWriter, r *http.Request) {
	s.count("builds.get")
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.builds[r.PathValue("id")]
	if !ok {
		notFound(w, "projects/"+s.project+"/builds/"+r.PathValue("id"))
		return
	}
	writeProto(w, r, b.proto)
}

func (s *Server) cancelBuild(w http.ResponseWriter, r *http.Request) {
	id, ok := strings.CutSuffix(r.PathValue("idcancel"), ":cancel")
	if !ok {
		writeError(w, http.StatusNotFound, "NOT_FOUND", "notFound", "unknown method")
		return
	}
	s.count("builds.cancel")
	s.mu.Lock()
	b, found := s.builds[id]
	if !found {
		s.mu.Unlock()
		notFound(w, "projects/"+s.project+"/builds/"+id)
		return
	}
	if !terminal(b.proto.Status) {
		// The step is killed: the builder's own clean-up does not run.
		b.proto.Status = cloudbuildpb.Build_CANCELLED
		b.proto.FinishTime = timestamppb.Now()
		b.stop()
	}
	out := proto.Clone(b.proto).(*cloudbuildpb.Build)
	s.mu.Unlock()
	writeProto(w, r, out)
}

// listBuilds serves the filter terms the provider uses: tags="T" and
// status="S", joined by AND.
func (s *Server) listBuilds(w http.ResponseWriter, r *http.Request) {
	s.count("builds.list")
	var tags, statuses []string
	for _, m := range filterTerm.FindAllStringSubmatch(r.URL.Query().Get("filter"), -1) {
		switch m[1] {
		case "tags":
			tags = append(tags, m[2])
		case "status":
			statuses = append(statuses, m[2])
		default:
			writeError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "badRequest", "unsupported filter field "+m[1])
			return
		}
	}
	var items []*cloudbuildpb.Build
	s.mu.Lock()
	ids := sortedKeys(s.builds)
	slices.Reverse(ids) // newest first, as Cloud Build lists them (ids are random: ordered by creation below)
	slices.SortStableFunc(ids, func(a, b string) int {
		return s.builds[b].proto.CreateTime.AsTime().Compare(s.builds[a].proto.CreateTime.AsTime())
	})
	for _, id := range ids {
		b := s.builds[id]
		ok := true
		for _, t := range tags {
			ok = ok && slices.Contains(b.proto.Tags, t)
		}
		for _, st := range statuses {
			ok = ok && b.proto.Status.String() == st
		}
		if ok {
			items = append(items, proto.Clone(b.proto).(*cloudbuildpb.Build))
		}
	}
	s.mu.Unlock()
	items, next := page(r, items, "pageSize")
	writeProto(w, r, &cloudbuildpb.ListBuildsResponse{Builds: items, NextPageToken: next})
}

var filterTerm = regexp.MustCompile(`(\w+)\s*=\s*"([^"]*)"`)

// run is the builder: it plays gce_vm_image_export, which runs a Daisy
// workflow that creates a buffer disk from the snapshot, streams it as a
// GNU tar of disk.raw (not sparse: every byte, zeros included) through
// gzip into the bucket, and deletes the disk.
func (s *Server) run(ctx context.Context, b *build, f Faults) {
	defer close(b.done)
	s.mu.Lock()
	b.proto.Status = cloudbuildpb.Build_WORKING
	b.proto.StartTime = timestamppb.Now()
	timeout := b.proto.Timeout.AsDuration()
	step := b.proto.Steps[0]
	logsBucket := b.proto.LogsBucket
	id := b.proto.Id
	s.mu.Unlock()

	logf := func(format string, args ...any) {
		s.mu.Lock()
		fmt.Fprintf(&b.log, "Step #0: "+format+"\n", args...)
		s.mu.Unlock()
	}
	// The log is complete in the bucket before the build is marked
	// finished, as Cloud Build does.
	end := func(st cloudbuildpb.Build_Status, detail string) {
		s.mu.Lock()
		if terminal(b.proto.Status) {
			s.mu.Unlock()
			return
		}
		if st == cloudbuildpb.Build_FAILURE {
			fmt.Fprintf(&b.log, "ERROR: build step 0 %q failed: step exited with non-zero status: 1\n", step.Name)
		}
		logText := b.log.String()
		s.mu.Unlock()
		s.writeLog(logsBucket, id, logText)
		s.mu.Lock()
		defer s.mu.Unlock()
		if terminal(b.proto.Status) {
			return
		}
		b.proto.Status = st
		b.proto.FinishTime = timestamppb.Now()
		if st != cloudbuildpb.Build_SUCCESS {
			b.proto.StatusDetail = detail
			b.proto.FailureInfo = &cloudbuildpb.Build_FailureInfo{Type: cloudbuildpb.Build_FailureInfo_USER_BUILD_STEP, Detail: detail}
		}
	}
	stepFailed := fmt.Sprintf("Build step failure: build step 0 %q failed: step exited with non-zero status: 1", step.Name)

	if !strings.Contains(step.Name, BuilderName) {
		logf("exec: %q: executable file not found in $PATH", step.Name)
		end(cloudbuildpb.Build_FAILURE, stepFailed)
		return
	}
	args, err := parseArgs(step.Args)
	if err != nil {
		logf("[image-export] %v", err)
		end(cloudbuildpb.Build_FAILURE, stepFailed)
		return
	}
	logf("[image-export] 2026/01/02 03:04:05 Cloud Build ID: %s", id)
	src := strings.TrimPrefix(args["source_disk_snapshot"], "projects/"+s.project+"/global/snapshots/")
	s.mu.Lock()
	sn, ok := s.snapshots[src]
	s.mu.Unlock()
	if !ok || args["destination_uri"] == "" || args["source_image"] != "" {
		logf(`[image-export] 2026/01/02 03:04:06 error: Snapshot "%s" not found or no destination given`, args["source_disk_snapshot"])
		end(cloudbuildpb.Build_FAILURE, stepFailed)
		return
	}
	if f.DenyBuilderCompute {
		logf(`[Daisy] Errors in one or more workflows:`)
		logf(`[image-export] 2026/01/02 03:04:07 step "setup-disks" run error: operation failed &{ClientOperationId: CreationTimestamp: Description: EndTime: Error:0xc000 HttpErrorMessage:FORBIDDEN HttpErrorStatusCode:403}: googleapi: Error 403: Required 'compute.disks.create' permission for 'projects/%s/zones/%s/disks/disk-image-export-%s', forbidden`, s.project, args["zone"], id[:8])
		end(cloudbuildpb.Build_FAILURE, stepFailed)
		return
	}
	// The buffer disk, labelled as the builder labels what it creates.
	zone := args["zone"]
	if zone == "" {
		zone = "us-central1-a"
	}
	bufName := "disk-image-export-" + id[:8]
	labels := map[string]string{"gce-image-export-tmp": "true", "gce-image-export-build-id": id}
	for _, kv := range strings.Split(args["labels"], ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			labels[k] = v
		}
	}
	// The worker VM with the buffer disk attached, labelled alike; the
	// workflow deletes both when it ends, a killed step never does.
	instName := "inst-image-export-" + id[:8]
	s.mu.Lock()
	s.disks[zone+"/"+bufName] = &diskRes{disk: &Disk{Name: bufName, SizeGB: sn.content.SizeGB, Type: "pd-ssd"}, zone: zone, id: s.nextID(),
		labels: labels, users: []string{"zones/" + zone + "/instances/" + instName}}
	s.instances = append(s.instances, &instance{spec: Instance{
		ID: s.nextID(), Name: instName, Zone: zone, MachineType: "e2-standard-4", Status: "RUNNING", Labels: maps.Clone(labels), Network: "default",
	}, worker: true})
	s.mu.Unlock()
	// The workflow deletes what it made, whether it succeeds or fails,
	// before the step exits; a cancelled (killed) step never does.
	finish := end
	end = func(st cloudbuildpb.Build_Status, detail string) {
		s.mu.Lock()
		s.removeInstance(zone, instName)
		delete(s.disks, zone+"/"+bufName)
		s.mu.Unlock()
		finish(st, detail)
	}
	logf("[image-export] 2026/01/02 03:04:08 [Daisy] Workflow \"image-export\" started; CreateDisks: %s", bufName)
	logf("GCEExport: Disk /dev/sdb is %d GiB, compressed size will most likely be much smaller.", sn.content.SizeGB)

	select {
	case <-ctx.Done():
		return // cancelled: nothing more happens, the buffer disk stays
	case <-time.After(min(f.BuildDelay, timeout)):
	}
	if f.BuildDelay > timeout {
		end(cloudbuildpb.Build_TIMEOUT, "Build timed out")
		return
	}
	if f.BuildError != "" {
		logf("[image-export] 2026/01/02 03:05:09 %s", f.BuildError)
		end(cloudbuildpb.Build_FAILURE, stepFailed)
		return
	}
	if f.DenyComputeStorage {
		logf(`[image-export] 2026/01/02 03:05:09 step "wait-for-inst-export-disk" run error: WaitForInstancesSignal FailureMatch found for "inst-export-disk-%s": "ExportFailed: Failed to export disk source to GCS because default Compute Engine Service account does not have storage.objects.create permission for [Privacy-> %s. <-Privacy]."`, id[:8], args["destination_uri"])
		end(cloudbuildpb.Build_FAILURE, stepFailed)
		return
	}
	if err := s.writeImage(ctx, sn.content, args, id, f); err != nil {
		if ctx.Err() != nil {
			return
		}
		logf("[image-export] 2026/01/02 03:05:10 ExportFailed: %v", err)
		end(cloudbuildpb.Build_FAILURE, stepFailed)
		return
	}
	logf("GCEExport: Finished export")
	logf("[image-export] 2026/01/02 03:06:11 [Daisy] Workflow \"image-export\" cleaning up (this may take up to 2 minutes).")
	end(cloudbuildpb.Build_SUCCESS, "")
}

// parseArgs reads the builder's -key=value arguments.
func parseArgs(args []string) (map[string]string, error) {
	out := map[string]string{}
	for _, a := range args {
		k, v, ok := strings.Cut(strings.TrimPrefix(a, "-"), "=")
		if !ok || !strings.HasPrefix(a, "-") {
			return nil, fmt.Errorf("flag provided but not defined or malformed: %q", a)
		}
		out[k] = v
	}
	return out, nil
}

// writeLog stores the build's log where Cloud Build puts it:
// <logsBucket>/log-<build id>.txt.
func (s *Server) writeLog(logsBucket, id, text string) {
	bucket, prefix, ok := splitGS(logsBucket)
	if !ok {
		return
	}
	name := strings.TrimSuffix(prefix, "/")
	if name != "" {
		name += "/"
	}
	s.gcs.CreateObject(fakestorage.Object{
		ObjectAttrs: fakestorage.ObjectAttrs{BucketName: bucket, Name: name + "log-" + id + ".txt", ContentType: "text/plain"},
		Content:     []byte(text),
	})
}

func splitGS(uri string) (bucket, object string, ok bool) {
	rest, ok := strings.CutPrefix(uri, "gs://")
	if !ok || rest == "" {
		return "", "", false
	}
	bucket, object, _ = strings.Cut(rest, "/")
	return bucket, object, bucket != ""
}

// writeImage writes the exported image to -destination_uri: by default a
// gzipped GNU tar holding manifest.json (licences, when the disk has
// some) and disk.raw. Other -format values (qemu-img conversions) are not
// simulated and fail the build.
func (s *Server) writeImage(ctx context.Context, d *Disk, args map[string]string, id string, f Faults) error {
	bucket, object, ok := splitGS(args["destination_uri"])
	if !ok {
		return fmt.Errorf("invalid destination %q", args["destination_uri"])
	}
	var data []byte
	switch args["format"] {
	case "":
		var err error
		if data, err = s.cache.targz(d); err != nil {
			return err
		}
	default:
		return fmt.Errorf("gcpfake: format %q is not simulated", args["format"])
	}
	client := s.gcs.Client()
	if f.PartSize > 0 && int64(len(data)) > f.PartSize {
		// As the builder's buffered writer: parts, composed 32 at a time.
		var parts []string
		for i, off := 0, int64(0); off < int64(len(data)); i, off = i+1, off+f.PartSize {
			name := object + "/" + id + "_part" + strconv.Itoa(i)
			if err := upload(ctx, client, bucket, name, data[off:min(off+f.PartSize, int64(len(data)))]); err != nil {
				return err
			}
			parts = append(parts, name)
		}
		compose := func(dst string, srcNames []string) error {
			var srcs []*storage.ObjectHandle
			for _, p := range srcNames {
				srcs = append(srcs, client.Bucket(bucket).Object(p))
			}
			if _, err := client.Bucket(bucket).Object(dst).ComposerFrom(srcs...).Run(ctx); err != nil {
				return fmt.Errorf("compose: %w", err)
			}
			s.count("objects.compose")
			for _, p := range srcNames {
				if err := client.Bucket(bucket).Object(p).Delete(ctx); err != nil {
					return err
				}
			}
			return nil
		}
		for len(parts) > 32 {
			dst := object + "/" + id + "_compose_" + strconv.Itoa(len(parts))
			if err := compose(dst, parts[:32]); err != nil {
				return err
			}
			parts = append([]string{dst}, parts[32:]...)
		}
		if err := compose(object, parts); err != nil {
			return err
		}
	} else if err := upload(ctx, client, bucket, object, data); err != nil {
		return err
	}
	return nil
}

func upload(ctx context.Context, c *storage.Client, bucket, name string, data []byte) error {
	w := c.Bucket(bucket).Object(name).NewWriter(ctx)
	w.ChunkSize = 0
	if _, err := w.Write(data); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

// imageCache keeps the tar.gz of disk contents already exported, so that
// tests exporting the same disk many times compress it once. Cells are
// immutable, so the set of cells identifies a content.
type imageCache struct {
	mu      sync.Mutex
	entries map[[32]byte][]byte
}

func (c *imageCache) targz(d *Disk) ([]byte, error) {
	key := d.fingerprint()
	c.mu.Lock()
	defer c.mu.Unlock()
	if b, ok := c.entries[key]; ok {
		return b, nil
	}
	var buf bytes.Buffer
	gz, err := pgzip.NewWriterLevel(&buf, 3) // the builder's default level
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(gz)
	if len(d.Licenses) > 0 {
		body, _ := json.Marshal(map[string][]string{"licenses": d.Licenses})
		if err := tw.WriteHeader(&tar.Header{Name: "manifest.json", Mode: 0o600, Size: int64(len(body)), Format: tar.FormatGNU}); err != nil {
			return nil, err
		}
		tw.Write(body)
	}
	if err := tw.WriteHeader(&tar.Header{Name: "disk.raw", Mode: 0o600, Size: d.Size(), Format: tar.FormatGNU}); err != nil {
		return nil, err
	}
	if _, err := io.Copy(tw, io.NewSectionReader(d, 0, d.Size())); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	if c.entries == nil {
		c.entries = map[[32]byte][]byte{}
	}
	c.entries[key] = buf.Bytes()
	return buf.Bytes(), nil
}

// fingerprint identifies the disk's content by its cells' identities.
func (d *Disk) fingerprint() [32]byte {
	d.mu.RLock()
	defer d.mu.RUnlock()
	h := sha256.New()
	keys := slices.Sorted(maps.Keys(d.cells))
	var b [16]byte
	for _, k := range keys {
		binary.LittleEndian.PutUint64(b[:8], uint64(k))
		binary.LittleEndian.PutUint64(b[8:], uint64(crc32.ChecksumIEEE(d.cells[k])))
		h.Write(b[:])
	}
	fmt.Fprintf(h, "%d/%v", d.SizeGB, d.Licenses)
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

func newUUID() string {
	h := randomHex(16)
	return h[:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:32]
}
