package gcp

import (
	"archive/tar"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	cloudbuild "cloud.google.com/go/cloudbuild/apiv1/v2"
	"cloud.google.com/go/cloudbuild/apiv1/v2/cloudbuildpb"
	"cloud.google.com/go/compute/apiv1/computepb"
	"cloud.google.com/go/storage"
	"github.com/klauspost/pgzip"
	"google.golang.org/api/iterator"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/hypersdk/hypersdk/internal/backoff"
	"github.com/hypersdk/hypersdk/progress"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/transfer"
)

// Labels and build tags that record what an export creates, set in the
// creating call itself so nothing exists unrecorded: LabelJob (value: the
// job id) on snapshots and, through the builder's -labels, on the disks
// and images the builder makes; TagJob+<job id> and TagDisk+<index> on
// builds; and the object prefix <staging_prefix>/<job id>/ for images,
// logs and the builder's scratch files.
const (
	LabelJob = "hypersdk-job"
	LabelVM  = "hypersdk-vm"
	TagAll   = "hypersdk"
	TagJob   = "hypersdk-job-"
	TagDisk  = "hypersdk-disk-"
)

// jobIDPattern is what a job id must look like to be a label value and a
// path segment.
var jobIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// GetExportCapabilities implements providers.Provider: every packaging and
// disk format the pipeline writes, from per-disk snapshots exported by
// Cloud Build. Snapshot is accepted (every export reads snapshots); power
// off is not (see the package doc).
func (p *Provider) GetExportCapabilities() providers.ExportCapabilities {
	return providers.ExportCapabilities{
		Formats: providers.Formats(), DiskFormats: providers.DiskFormats(), Compression: []string{"gzip", "zstd"},
		SupportsSnapshot: true, ParallelDownloads: true, Resumable: true,
	}
}

// diskExport is one disk's way out: its snapshot, build and object.
type diskExport struct {
	index    int
	zone     string
	source   string // the disk's relative resource name
	sizeGB   int64
	snapshot string
	object   string
	build    string // id
	attrs    *storage.ObjectAttrs
}

// PrepareExport implements providers.Exporter: snapshot every disk of the
// instance (labelled with the job), export each snapshot with the image
// export builder on Cloud Build into the staging bucket, and hand each
// image over as a raw stream decoded while it downloads. An earlier
// attempt of the same job (a retry, a daemon restarted after kill -9) is
// resumed: its snapshots are reused, a build still running is waited for
// and a finished image is read again instead of being rebuilt. Cleanup
// removes everything labelled, tagged or stored for the job.
func (p *Provider) PrepareExport(ctx context.Context, identifier string, opts providers.ExportOptions) (_ *providers.Export, err error) {
	if err := p.GetExportCapabilities().Validate(opts); err != nil {
		return nil, providers.Permanent(err)
	}
	jobID := opts.JobID
	if jobID == "" {
		jobID = "untracked-" + randomHex(8)
	}
	if !jobIDPattern.MatchString(jobID) {
		return nil, providers.Permanent(fmt.Errorf("%w: job id %q cannot label Compute Engine resources (lower-case letters, digits, - and _, at most 63)", providers.ErrInvalidArgument, jobID))
	}
	log := opts.Log().With("provider", p.name, "job_id", jobID)
	opts.Report(progress.Report{Phase: progress.PhaseConnecting})
	vm, _, err := p.getInstance(ctx, identifier)
	if err != nil {
		return nil, err
	}
	if len(vm.Disks) == 0 {
		return nil, providers.Permanent(fmt.Errorf("gcp %s: export %s: %w: the instance has no persistent disk", p.name, vm.Name, providers.ErrUnsupported))
	}
	log = log.With("instance", vm.Path)
	defer func() {
		if err != nil {
			p.cleanupJob(jobID, log)
		}
	}()

	opts.Report(progress.Report{Phase: progress.PhasePreparing})
	disks := make([]*diskExport, len(vm.Disks))
	for i, d := range vm.Disks {
		disks[i] = &diskExport{index: i, zone: vm.Datacenter, source: d.Path, sizeGB: d.CapacityBytes >> 30,
			snapshot: snapshotName(jobID, i),
			object:   p.cfg.prefix() + "/" + jobID + "/disk-" + strconv.Itoa(i) + ".tar.gz"}
	}
	// Snapshots first, all of them, so the disks are captured close in
	// time; then one build per disk, all running at once.
	if err := p.forEach(ctx, disks, func(ctx context.Context, d *diskExport) error { return p.ensureSnapshot(ctx, jobID, vm, d, log) }); err != nil {
		return nil, err
	}
	var mu sync.Mutex
	status := make([]string, len(disks))
	report := func(i int, s string) {
		mu.Lock()
		status[i] = s
		item := strings.Join(status, "; ")
		mu.Unlock()
		opts.Report(progress.Report{Phase: progress.PhasePreparing, Item: item})
	}
	if err := p.forEach(ctx, disks, func(ctx context.Context, d *diskExport) error {
		return p.ensureImage(ctx, jobID, d, log, func(s string) { report(d.index, fmt.Sprintf("disk-%d: %s", d.index, s)) })
	}); err != nil {
		return nil, err
	}

	out := &providers.Export{VM: cloneVM(vm)}
	// The disks downloading at once share the job's bandwidth limit.
	par := max(1, min(len(disks), opts.ParallelDownloads))
	perDisk := opts.BandwidthLimit / int64(par)
	if opts.BandwidthLimit > 0 {
		perDisk = max(perDisk, 1)
	}
	for i, d := range disks {
		capacity := d.sizeGB << 30
		out.VM.Disks[i].CapacityBytes = capacity
		out.Disks = append(out.Disks, providers.DiskSource{
			Name: fmt.Sprintf("disk-%d", i), Format: providers.SourceRaw, Capacity: capacity, Size: capacity,
			Open: p.opener(d, capacity, perDisk, log),
		})
	}
	out.Cleanup = func() { p.cleanupJob(jobID, log) }
	return out, nil
}

// forEach runs fn for every disk at once and returns the first error;
// the others are cancelled.
func (p *Provider) forEach(ctx context.Context, disks []*diskExport, fn func(context.Context, *diskExport) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for _, d := range disks {
		wg.Go(func() {
			if err := fn(ctx, d); err != nil {
				once.Do(func() { first = err; cancel(err) })
			}
		})
	}
	wg.Wait()
	return first
}

// snapshotName is the job's snapshot of disk i: fixed, so that a resumed
// attempt finds it, and a valid resource name whatever the job id.
func snapshotName(jobID string, i int) string {
	sum := sha256.Sum256([]byte(jobID))
	return "hypersdk-" + hex.EncodeToString(sum[:10]) + "-" + strconv.Itoa(i)
}

// ensureSnapshot finds the job's snapshot of the disk or creates it,
// labelled in the insert call, and waits until it is READY.
func (p *Provider) ensureSnapshot(ctx context.Context, jobID string, vm *providers.VMInfo, d *diskExport, log *slog.Logger) error {
	c, err := p.clients()
	if err != nil {
		return err
	}
	get := func() (*computepb.Snapshot, error) {
		return c.snapshots.Get(ctx, &computepb.GetSnapshotRequest{Project: p.cfg.Project, Snapshot: d.snapshot})
	}
	sn, err := get()
	switch {
	case err == nil && (sn.GetLabels()[LabelJob] != jobID || relativeName(sn.GetSourceDisk()) != d.source || sn.GetStatus() == "FAILED"):
		log.Info("the job's earlier snapshot is unusable; replacing it", "snapshot", d.snapshot, "status", sn.GetStatus())
		if err := p.deleteSnapshot(ctx, c, d.snapshot); err != nil {
			return err
		}
		sn = nil
	case err == nil:
		log.Info("resuming from the job's snapshot", "snapshot", d.snapshot, "status", sn.GetStatus())
	case isNotFound(err):
		sn = nil
	default:
		return p.apiError("get snapshot "+d.snapshot, err)
	}
	if sn == nil {
		op, err := c.snapshots.Insert(ctx, &computepb.InsertSnapshotRequest{Project: p.cfg.Project, SnapshotResource: &computepb.Snapshot{
			Name: proto.String(d.snapshot), SourceDisk: proto.String(d.source),
			Description: proto.String(fmt.Sprintf("hypersdk export job %s of %s", jobID, vm.Path)),
			Labels:      map[string]string{LabelJob: jobID, LabelVM: vm.ID},
		}})
		if err != nil && httpCode(err) != 409 {
			return p.apiError("snapshot "+d.source, err)
		}
		if err == nil {
			log.Info("snapshot requested", "snapshot", d.snapshot, "disk", d.source)
			if err := p.waitOperation(ctx, op.Proto(), "snapshot "+d.source); err != nil {
				return err
			}
		}
	}
	deadline := time.Now().Add(p.tune.snapshotTimeout)
	for attempt := 1; ; attempt++ {
		sn, err := get()
		if err != nil {
			return p.apiError("get snapshot "+d.snapshot, err)
		}
		switch sn.GetStatus() {
		case "READY":
			d.sizeGB = sn.GetDiskSizeGb()
			return nil
		case "FAILED", "DELETING":
			return fmt.Errorf("gcp %s: snapshot %s of %s is %s", p.name, d.snapshot, d.source, sn.GetStatus())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gcp %s: snapshot %s still %s after %v", p.name, d.snapshot, sn.GetStatus(), p.tune.snapshotTimeout)
		}
		if err := backoff.Wait(ctx, p.poll(attempt)); err != nil {
			return fmt.Errorf("gcp %s: wait for snapshot %s: %w", p.name, d.snapshot, context.Cause(ctx))
		}
	}
}

// poll is the wait before poll number attempt: from pollMin doubling to
// pollMax.
func (p *Provider) poll(attempt int) time.Duration {
	return backoff.Policy{Base: p.tune.pollMin, Max: p.tune.pollMax, Jitter: 0.2}.Delay(attempt)
}

// waitOperation polls a global Compute Engine operation until it is DONE
// and returns its error, if any.
func (p *Provider) waitOperation(ctx context.Context, op *computepb.Operation, what string) error {
	c, err := p.clients()
	if err != nil {
		return err
	}
	for attempt := 1; op.GetStatus() != computepb.Operation_DONE; attempt++ {
		if err := backoff.Wait(ctx, p.poll(attempt)); err != nil {
			return fmt.Errorf("gcp %s: %s: %w", p.name, what, context.Cause(ctx))
		}
		op, err = c.globalOps.Get(ctx, &computepb.GetGlobalOperationRequest{Project: p.cfg.Project, Operation: op.GetName()})
		if err != nil {
			return p.apiError(what, err)
		}
	}
	return opError(p.name, what, op)
}

// opError is the error a finished operation reports, nil when none.
func opError(provider, what string, op *computepb.Operation) error {
	if e := op.GetError(); e != nil && len(e.GetErrors()) > 0 {
		var msgs []string
		for _, x := range e.GetErrors() {
			msgs = append(msgs, x.GetCode()+": "+x.GetMessage())
		}
		return fmt.Errorf("gcp %s: %s: %s", provider, what, strings.Join(msgs, "; "))
	}
	return nil
}

// buildTimeout is the build's timeout for a disk of sizeGB GiB:
// buildBase + buildPerGiB per GiB, within [buildMin, buildMax]. The
// builder moves about 12 hours per TB in the field (~42 s per GiB, which
// is why gcloud's 2 h default fails past ~150 GB); a minute per GiB leaves
// ~40% margin, and the 30 minutes cover booting its worker, creating the
// buffer disk and copying the object. Cloud Build allows 24 h at most.
func (t tuning) buildTimeout(sizeGB int64) time.Duration {
	d := t.buildBase + time.Duration(sizeGB)*t.buildPerGiB
	return min(max(d, t.buildMin), t.buildMax)
}

// builderTimeout is the builder's own -timeout: the build's less 3%
// (between 30 s and 5 min), as gcloud computes it, so the builder stops
// and cleans up before Cloud Build kills it.
func builderTimeout(build time.Duration) time.Duration {
	off := min(max(build*3/100, 30*time.Second), 5*time.Minute)
	return max(build-off, time.Second)
}

// ensureImage gets the disk's image into the staging bucket: a finished
// build of the job whose object is there is reused, a running one is
// waited for, else a build is started.
func (p *Provider) ensureImage(ctx context.Context, jobID string, d *diskExport, log *slog.Logger, report func(string)) error {
	c, err := p.clients()
	if err != nil {
		return err
	}
	builds, err := p.listBuilds(ctx, fmt.Sprintf(`tags="%s%s" AND tags="%s%d"`, TagJob, jobID, TagDisk, d.index))
	if err != nil {
		return err
	}
	for _, b := range builds { // newest first
		switch b.GetStatus() {
		case cloudbuildpb.Build_SUCCESS:
			if attrs, err := c.storage.Bucket(p.cfg.StagingBucket).Object(d.object).Attrs(ctx); err == nil {
				log.Info("resuming: the job's image is in the bucket", "build", b.GetId(), "object", d.object)
				d.build, d.attrs = b.GetId(), attrs
				return nil
			}
		case cloudbuildpb.Build_QUEUED, cloudbuildpb.Build_WORKING, cloudbuildpb.Build_PENDING:
			log.Info("resuming: waiting for the job's build", "build", b.GetId())
			d.build = b.GetId()
			if err := p.waitBuild(ctx, d, nil, report); err != nil {
				return err
			}
			return p.imageAttrs(ctx, d)
		}
	}
	timeout := p.tune.buildTimeout(d.sizeGB)
	if p.tune.buildBase+time.Duration(d.sizeGB)*p.tune.buildPerGiB > p.tune.buildMax {
		log.Warn("the disk may not export within Cloud Build's 24 h limit", "size_gib", d.sizeGB)
	}
	job := p.cfg.prefix() + "/" + jobID
	args := []string{
		"-client_id=hypersdk",
		"-source_disk_snapshot=projects/" + p.cfg.Project + "/global/snapshots/" + d.snapshot,
		"-destination_uri=gs://" + p.cfg.StagingBucket + "/" + d.object,
		"-timeout=" + strconv.FormatInt(int64(builderTimeout(timeout)/time.Second), 10) + "s",
		"-zone=" + d.zone,
		"-scratch_bucket_gcs_path=gs://" + p.cfg.StagingBucket + "/" + job + "/scratch",
		"-labels=" + LabelJob + "=" + jobID,
	}
	if p.cfg.Network != "" {
		args = append(args, "-network="+p.cfg.Network)
	}
	if p.cfg.Subnet != "" {
		args = append(args, "-subnet="+p.cfg.Subnet)
	}
	slices.Sort(args)
	op, err := c.builds.CreateBuild(ctx, &cloudbuildpb.CreateBuildRequest{ProjectId: p.cfg.Project, Build: &cloudbuildpb.Build{
		Steps:      []*cloudbuildpb.BuildStep{{Name: p.cfg.builder(), Args: args}},
		Tags:       []string{"gce-daisy", "gce-daisy-image-export", TagAll, TagJob + jobID, TagDisk + strconv.Itoa(d.index)},
		Timeout:    durationpb.New(timeout),
		LogsBucket: "gs://" + p.cfg.StagingBucket + "/" + job + "/logs",
	}})
	if err != nil {
		return p.apiError("start the image export build of "+d.snapshot, err)
	}
	meta, err := op.Metadata()
	if err != nil || meta.GetBuild().GetId() == "" {
		return fmt.Errorf("gcp %s: the build operation %s carries no build: %v", p.name, op.Name(), err)
	}
	d.build = meta.GetBuild().GetId()
	log.Info("image export build started", "build", d.build, "snapshot", d.snapshot, "timeout", timeout.String(), "object", d.object)
	if err := p.waitBuild(ctx, d, op, report); err != nil {
		return err
	}
	return p.imageAttrs(ctx, d)
}

// imageAttrs reads the finished image's size, generation and CRC32C.
func (p *Provider) imageAttrs(ctx context.Context, d *diskExport) error {
	c, err := p.clients()
	if err != nil {
		return err
	}
	attrs, err := c.storage.Bucket(p.cfg.StagingBucket).Object(d.object).Attrs(ctx)
	if err != nil {
		return p.apiError(fmt.Sprintf("read the image gs://%s/%s of build %s", p.cfg.StagingBucket, d.object, d.build), err)
	}
	d.attrs = attrs
	return nil
}

// waitBuild polls the build until it ends: through its long-running
// operation when this attempt created it (op), by GetBuild when resuming
// one. When ctx ends first the build is cancelled. A build that did not
// succeed fails with the builder's own error line from its log.
func (p *Provider) waitBuild(ctx context.Context, d *diskExport, op *cloudbuild.CreateBuildOperation, report func(string)) error {
	c, err := p.clients()
	if err != nil {
		return err
	}
	start := time.Now()
	var b *cloudbuildpb.Build
	for attempt := 1; ; attempt++ {
		if op != nil {
			b, err = op.Poll(ctx)
			if b == nil && err == nil {
				if m, merr := op.Metadata(); merr == nil {
					b = m.GetBuild()
				}
			}
			if err != nil && b == nil && op.Done() {
				// The operation ended with an error status: the build
				// tells what happened.
				b, err = c.builds.GetBuild(ctx, &cloudbuildpb.GetBuildRequest{ProjectId: p.cfg.Project, Id: d.build})
			}
		} else {
			b, err = c.builds.GetBuild(ctx, &cloudbuildpb.GetBuildRequest{ProjectId: p.cfg.Project, Id: d.build})
		}
		if err != nil && ctx.Err() == nil {
			return p.apiError("poll build "+d.build, err)
		}
		if ctx.Err() != nil {
			p.cancelBuild(d.build)
			return fmt.Errorf("gcp %s: build %s: %w", p.name, d.build, context.Cause(ctx))
		}
		if b != nil {
			report(fmt.Sprintf("build %s %s (%s)", d.build, b.GetStatus(), time.Since(start).Round(time.Second)))
			if terminal(b.GetStatus()) {
				break
			}
		}
		if err := backoff.Wait(ctx, p.poll(attempt)); err != nil {
			p.cancelBuild(d.build)
			return fmt.Errorf("gcp %s: build %s: %w", p.name, d.build, context.Cause(ctx))
		}
	}
	if b.GetStatus() == cloudbuildpb.Build_SUCCESS {
		return nil
	}
	return p.buildFailure(ctx, b)
}

func terminal(s cloudbuildpb.Build_Status) bool {
	switch s {
	case cloudbuildpb.Build_QUEUED, cloudbuildpb.Build_WORKING, cloudbuildpb.Build_PENDING, cloudbuildpb.Build_STATUS_UNKNOWN:
		return false
	}
	return true
}

// buildFailure turns a build that did not succeed into the job's error:
// the builder's own error line from the build log in the staging bucket,
// with the roles a permission refusal calls for. A build that failed or
// timed out is permanent (the same build fails the same way); one that
// was cancelled by someone else or failed inside Cloud Build is not.
func (p *Provider) buildFailure(ctx context.Context, b *cloudbuildpb.Build) error {
	line := p.buildLogLine(ctx, b)
	if line == "" {
		line = b.GetFailureInfo().GetDetail()
	}
	if line == "" {
		line = b.GetStatusDetail()
	}
	msg := fmt.Sprintf("gcp %s: image export build %s ended %s: %s", p.name, b.GetId(), b.GetStatus(), line)
	if hint := builderHint(line, ""); hint != "" {
		msg += " (" + hint + ")"
	}
	if b.GetStatus() == cloudbuildpb.Build_TIMEOUT {
		msg += fmt.Sprintf(" (build timeout %v)", b.GetTimeout().AsDuration())
	}
	err := errors.New(transfer.RedactURLs(msg))
	switch b.GetStatus() {
	case cloudbuildpb.Build_FAILURE, cloudbuildpb.Build_TIMEOUT, cloudbuildpb.Build_EXPIRED:
		return providers.Permanent(err)
	}
	return err
}

// buildLogLine reads the build's log (<logsBucket>/log-<id>.txt, where
// Cloud Build writes it) and returns the builder's error line.
func (p *Provider) buildLogLine(ctx context.Context, b *cloudbuildpb.Build) string {
	c, err := p.clients()
	if err != nil {
		return ""
	}
	bucket, prefix, ok := strings.Cut(strings.TrimPrefix(b.GetLogsBucket(), "gs://"), "/")
	if !ok && bucket == "" {
		return ""
	}
	name := "log-" + b.GetId() + ".txt"
	if prefix = strings.Trim(prefix, "/"); prefix != "" {
		name = prefix + "/" + name
	}
	r, err := c.storage.Bucket(bucket).Object(name).NewReader(ctx)
	if err != nil {
		p.log.Warn("cannot read the build log", "build", b.GetId(), "err", err)
		return ""
	}
	defer r.Close()
	// The tail holds the error; the head may be long.
	text, _ := io.ReadAll(io.LimitReader(r, 8<<20))
	return builderErrorLine(string(text))
}

// cancelBuild cancels a build still running, on a context of its own (the
// export's has usually ended).
func (p *Provider) cancelBuild(id string) {
	c, err := p.clients()
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.tune.cleanupTimeout)
	defer cancel()
	if _, err := c.builds.CancelBuild(ctx, &cloudbuildpb.CancelBuildRequest{ProjectId: p.cfg.Project, Id: id}); err != nil {
		p.log.Warn("cancelling the build failed; the orphan sweep will retry", "build", id, "err", err)
	}
}

// listBuilds lists the builds matching filter, newest first, all pages.
func (p *Provider) listBuilds(ctx context.Context, filter string) ([]*cloudbuildpb.Build, error) {
	c, err := p.clients()
	if err != nil {
		return nil, err
	}
	it := c.builds.ListBuilds(ctx, &cloudbuildpb.ListBuildsRequest{ProjectId: p.cfg.Project, Filter: filter, PageSize: 100})
	var out []*cloudbuildpb.Build
	for {
		b, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return out, nil
		}
		if err != nil {
			return nil, p.apiError("list builds", err)
		}
		out = append(out, b)
	}
}

// mediaURL is the JSON API download URL of one generation of an object:
// a later write of the same name is never read in its place.
func (p *Provider) mediaURL(c *clients, object string, generation int64) string {
	return c.storageURL + "b/" + url.PathEscape(p.cfg.StagingBucket) + "/o/" + url.PathEscape(object) +
		"?alt=media&generation=" + strconv.FormatInt(generation, 10)
}

// opener returns the disk's reader: the image object read through
// transfer.Reader (parallel ranged GETs, CRC32C of the whole object
// verified at its last byte), decoded from gzip and tar to the bytes of
// disk.raw as they arrive, never stored whole.
func (p *Provider) opener(d *diskExport, capacity, bandwidth int64, log *slog.Logger) func(context.Context) (io.ReadCloser, error) {
	return func(ctx context.Context) (io.ReadCloser, error) {
		c, err := p.clients()
		if err != nil {
			return nil, err
		}
		var want [4]byte
		binary.BigEndian.PutUint32(want[:], d.attrs.CRC32C)
		obj := "gs://" + p.cfg.StagingBucket + "/" + d.object
		rd, err := transfer.NewReader(ctx, transfer.ReaderOptions{
			URL: p.mediaURL(c, d.object, d.attrs.Generation), Client: c.http, Size: d.attrs.Size,
			ChunkSize: p.tune.readChunk, Concurrency: p.tune.readConcurrency, BandwidthLimit: bandwidth,
			Digest: crc32.New(crc32.MakeTable(crc32.Castagnoli)), WantDigest: want[:], DigestName: "CRC32C",
			Logger: log.With("object", obj),
		})
		if err != nil {
			return nil, p.readError(obj, err)
		}
		gz, err := pgzip.NewReader(rd)
		if err != nil {
			rd.Close()
			return nil, p.readError(obj, fmt.Errorf("not a gzip stream: %w", err))
		}
		tr := tar.NewReader(gz)
		for {
			h, err := tr.Next()
			if err != nil {
				gz.Close()
				rd.Close()
				if errors.Is(err, io.EOF) {
					err = errors.New("the archive holds no disk.raw")
				}
				return nil, p.readError(obj, err)
			}
			if h.Name != "disk.raw" || h.Typeflag != tar.TypeReg && h.Typeflag != tar.TypeGNUSparse {
				continue // manifest.json (licences) precedes it
			}
			if h.Size != capacity {
				gz.Close()
				rd.Close()
				return nil, providers.Permanent(fmt.Errorf("gcp %s: %s: disk.raw holds %d bytes, the disk %d", p.name, obj, h.Size, capacity))
			}
			return &imageReader{p: p, obj: obj, src: tr, left: h.Size, tar: tr, gz: gz, rd: rd}, nil
		}
	}
}

// readError classifies a failure to read the staging object.
func (p *Provider) readError(obj string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("gcp %s: read %s: %w", p.name, obj, err)
	}
	var se *transfer.StatusError
	if errors.As(err, &se) && se.StatusCode == 403 {
		return providers.Permanent(fmt.Errorf("gcp %s: read %s: the account HyperSDK runs as lacks storage.objects.get; grant it roles/storage.objectAdmin on the staging bucket: %w", p.name, obj, err))
	}
	if errors.Is(err, transfer.ErrDigestMismatch) {
		return providers.Permanent(fmt.Errorf("gcp %s: %s is corrupt, refused: %w", p.name, obj, err))
	}
	if errors.Is(err, transfer.ErrPermanent) || errors.Is(err, tar.ErrHeader) || errors.Is(err, pgzip.ErrChecksum) || errors.Is(err, pgzip.ErrHeader) {
		return providers.Permanent(fmt.Errorf("gcp %s: read %s: %w", p.name, obj, err))
	}
	return fmt.Errorf("gcp %s: read %s: %w", p.name, obj, err)
}

// imageReader hands out disk.raw's bytes. With the read of its last byte
// it reads the rest of the object (tar trailer, gzip footer), so that the
// gzip CRC-32 and length and the object's CRC32C are verified before the
// pipeline takes the disk for complete: a corrupt object fails that Read.
type imageReader struct {
	p    *Provider
	obj  string
	src  io.Reader
	left int64 // bytes of disk.raw not yet read
	tar  *tar.Reader
	gz   *pgzip.Reader
	rd   *transfer.Reader
	done bool
}

func (r *imageReader) Read(b []byte) (int, error) {
	if r.done {
		return 0, io.EOF
	}
	n, err := r.src.Read(b)
	r.left -= int64(n)
	if err != nil && !errors.Is(err, io.EOF) {
		return n, r.p.readError(r.obj, err)
	}
	if r.left > 0 {
		if errors.Is(err, io.EOF) {
			return n, r.p.readError(r.obj, io.ErrUnexpectedEOF)
		}
		return n, nil
	}
	r.done = true
	// The disk's last bytes are handed out only once the whole object
	// verified: a reader that fills its buffer with them (io.ReadFull)
	// would drop an error returned with them.
	if ferr := r.finish(); ferr != nil {
		return 0, r.p.readError(r.obj, ferr)
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// finish reads the archive and the object to their ends.
func (r *imageReader) finish() error {
	for {
		_, err := r.tar.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
	}
	if _, err := io.Copy(io.Discard, r.gz); err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, r.rd); err != nil {
		return err
	}
	return nil
}

func (r *imageReader) Close() error {
	if r.gz != nil {
		r.gz.Close()
	}
	return r.rd.Close()
}

// cleanupJob removes what the job left on the platform, on a context of
// its own: its builds still running are cancelled first (a build holds a
// buffer disk made from a snapshot), then its snapshots and images, the
// builder's worker VMs and buffer disks (labelled with the job; a
// cancelled build's step is killed and the builder's clean-up never
// runs), and its staging objects (the job's prefix) are deleted. It
// returns what it deleted.
func (p *Provider) cleanupJob(jobID string, log *slog.Logger) []string {
	ctx, cancel := context.WithTimeout(context.Background(), p.tune.cleanupTimeout)
	defer cancel()
	deleted, err := p.deleteJob(ctx, jobID)
	if err != nil {
		log.Warn("cleaning up the job's resources failed in part; the orphan sweep will retry", "err", err, "deleted", deleted)
	} else if len(deleted) > 0 {
		log.Info("export resources deleted", "deleted", deleted)
	}
	return deleted
}

func (p *Provider) deleteJob(ctx context.Context, jobID string) ([]string, error) {
	c, err := p.clients()
	if err != nil {
		return nil, err
	}
	var deleted []string
	var errs []error
	builds, err := p.listBuilds(ctx, fmt.Sprintf(`tags="%s%s"`, TagJob, jobID))
	errs = append(errs, err)
	for _, b := range builds {
		if !terminal(b.GetStatus()) {
			if _, err := c.builds.CancelBuild(ctx, &cloudbuildpb.CancelBuildRequest{ProjectId: p.cfg.Project, Id: b.GetId()}); err != nil {
				errs = append(errs, p.apiError("cancel build "+b.GetId(), err))
				continue
			}
			deleted = append(deleted, "build "+b.GetId())
		}
	}
	filter := fmt.Sprintf(`labels.%s="%s"`, LabelJob, jobID)
	snaps, err := p.listSnapshots(ctx, filter)
	errs = append(errs, err)
	for _, s := range snaps {
		if err := p.deleteSnapshot(ctx, c, s.GetName()); err != nil {
			errs = append(errs, err)
			continue
		}
		deleted = append(deleted, "snapshot "+s.GetName())
	}
	images, err := p.listImages(ctx, filter)
	errs = append(errs, err)
	for _, im := range images {
		if _, err := c.images.Delete(ctx, &computepb.DeleteImageRequest{Project: p.cfg.Project, Image: im.GetName()}); err != nil && !isNotFound(err) {
			errs = append(errs, p.apiError("delete image "+im.GetName(), err))
			continue
		}
		deleted = append(deleted, "image "+im.GetName())
	}
	for _, z := range p.cfg.Zones {
		// The builder's worker VMs (a cancelled build's are never
		// deleted by the builder), recognised by both its own label and
		// the job's — never an instance of the user's.
		workers, err := p.listWorkers(ctx, z, filter)
		errs = append(errs, err)
		for _, in := range workers {
			op, err := c.instances.Delete(ctx, &computepb.DeleteInstanceRequest{Project: p.cfg.Project, Zone: z, Instance: in.GetName()})
			if err != nil && !isNotFound(err) {
				errs = append(errs, p.apiError("delete the builder's instance "+in.GetName(), err))
				continue
			}
			if err == nil {
				if err := p.waitZoneOperation(ctx, z, op.Proto(), "delete the builder's instance "+in.GetName()); err != nil {
					errs = append(errs, err)
					continue
				}
			}
			deleted = append(deleted, "instance "+z+"/"+in.GetName())
		}
		disks, err := p.listDisks(ctx, z, filter)
		errs = append(errs, err)
		for _, d := range disks {
			if len(d.GetUsers()) > 0 {
				// The builder's worker still holds it: deleted once the
				// worker is gone, by the next sweep.
				errs = append(errs, fmt.Errorf("gcp %s: disk %s is still attached to %v", p.name, d.GetName(), d.GetUsers()))
				continue
			}
			if _, err := c.disks.Delete(ctx, &computepb.DeleteDiskRequest{Project: p.cfg.Project, Zone: z, Disk: d.GetName()}); err != nil && !isNotFound(err) {
				errs = append(errs, p.apiError("delete disk "+d.GetName(), err))
				continue
			}
			deleted = append(deleted, "disk "+z+"/"+d.GetName())
		}
	}
	n, err := p.deleteObjects(ctx, p.cfg.prefix()+"/"+jobID+"/")
	errs = append(errs, err)
	if n > 0 {
		deleted = append(deleted, fmt.Sprintf("%d objects under gs://%s/%s/%s/", n, p.cfg.StagingBucket, p.cfg.prefix(), jobID))
	}
	return deleted, errors.Join(errs...)
}

func (p *Provider) deleteSnapshot(ctx context.Context, c *clients, name string) error {
	if _, err := c.snapshots.Delete(ctx, &computepb.DeleteSnapshotRequest{Project: p.cfg.Project, Snapshot: name}); err != nil && !isNotFound(err) {
		return p.apiError("delete snapshot "+name, err)
	}
	return nil
}

// deleteObjects deletes every object under prefix and returns how many.
func (p *Provider) deleteObjects(ctx context.Context, prefix string) (int, error) {
	c, err := p.clients()
	if err != nil {
		return 0, err
	}
	bkt := c.storage.Bucket(p.cfg.StagingBucket)
	it := bkt.Objects(ctx, &storage.Query{Prefix: prefix, Projection: storage.ProjectionNoACL})
	n := 0
	var errs []error
	for {
		o, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			errs = append(errs, p.apiError("list gs://"+p.cfg.StagingBucket+"/"+prefix, err))
			break
		}
		if err := bkt.Object(o.Name).Delete(ctx); err != nil && !errors.Is(err, storage.ErrObjectNotExist) {
			errs = append(errs, p.apiError("delete gs://"+p.cfg.StagingBucket+"/"+o.Name, err))
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

func (p *Provider) listSnapshots(ctx context.Context, filter string) ([]*computepb.Snapshot, error) {
	c, err := p.clients()
	if err != nil {
		return nil, err
	}
	it := c.snapshots.List(ctx, &computepb.ListSnapshotsRequest{Project: p.cfg.Project, Filter: proto.String(filter), MaxResults: proto.Uint32(p.tune.pageSize)})
	var out []*computepb.Snapshot
	for {
		s, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return out, nil
		}
		if err != nil {
			return nil, p.apiError("list snapshots", err)
		}
		out = append(out, s)
	}
}

func (p *Provider) listImages(ctx context.Context, filter string) ([]*computepb.Image, error) {
	c, err := p.clients()
	if err != nil {
		return nil, err
	}
	it := c.images.List(ctx, &computepb.ListImagesRequest{Project: p.cfg.Project, Filter: proto.String(filter), MaxResults: proto.Uint32(p.tune.pageSize)})
	var out []*computepb.Image
	for {
		im, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return out, nil
		}
		if err != nil {
			return nil, p.apiError("list images", err)
		}
		out = append(out, im)
	}
}

// builderLabel is the label the image export builder puts on the VMs and
// disks it creates.
const builderLabel = "gce-image-export-tmp"

// listWorkers lists the image export builder's VMs of zone matching filter.
func (p *Provider) listWorkers(ctx context.Context, zone, filter string) ([]*computepb.Instance, error) {
	c, err := p.clients()
	if err != nil {
		return nil, err
	}
	it := c.instances.List(ctx, &computepb.ListInstancesRequest{Project: p.cfg.Project, Zone: zone, Filter: proto.String(filter), MaxResults: proto.Uint32(p.tune.pageSize)})
	var out []*computepb.Instance
	for {
		in, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return out, nil
		}
		if err != nil {
			return nil, p.apiError("list instances of "+zone, err)
		}
		if _, ok := in.GetLabels()[builderLabel]; ok {
			out = append(out, in)
		}
	}
}

// waitZoneOperation polls a zonal operation until it is DONE.
func (p *Provider) waitZoneOperation(ctx context.Context, zone string, op *computepb.Operation, what string) error {
	c, err := p.clients()
	if err != nil {
		return err
	}
	for attempt := 1; op.GetStatus() != computepb.Operation_DONE; attempt++ {
		if err := backoff.Wait(ctx, p.poll(attempt)); err != nil {
			return fmt.Errorf("gcp %s: %s: %w", p.name, what, context.Cause(ctx))
		}
		op, err = c.zoneOps.Get(ctx, &computepb.GetZoneOperationRequest{Project: p.cfg.Project, Zone: zone, Operation: op.GetName()})
		if err != nil {
			return p.apiError(what, err)
		}
	}
	return opError(p.name, what, op)
}

func (p *Provider) listDisks(ctx context.Context, zone, filter string) ([]*computepb.Disk, error) {
	c, err := p.clients()
	if err != nil {
		return nil, err
	}
	it := c.disks.List(ctx, &computepb.ListDisksRequest{Project: p.cfg.Project, Zone: zone, Filter: proto.String(filter), MaxResults: proto.Uint32(p.tune.pageSize)})
	var out []*computepb.Disk
	for {
		d, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return out, nil
		}
		if err != nil {
			return nil, p.apiError("list disks of "+zone, err)
		}
		out = append(out, d)
	}
}

// cloneVM copies vm deeply enough to change its disks.
func cloneVM(vm *providers.VMInfo) *providers.VMInfo {
	c := *vm
	c.Disks = slices.Clone(vm.Disks)
	c.NICs = slices.Clone(vm.NICs)
	return &c
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return hex.EncodeToString(b)
}
