package aws

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/hypersdk/hypersdk/config"
	"github.com/hypersdk/hypersdk/disk/disktest"
	"github.com/hypersdk/hypersdk/internal/backoff"
	"github.com/hypersdk/hypersdk/internal/s3test"
	"github.com/hypersdk/hypersdk/pipeline"
	"github.com/hypersdk/hypersdk/progress"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/providers/aws/awsfake"
	"github.com/hypersdk/hypersdk/providers/providertest"
)

const exportBucket = "exports"

// taskFixture is awsfake with its export tasks writing to versitygw.
type taskFixture struct {
	*fixture
	s3   *s3test.Server
	solo *awsfake.Volume
}

// taskSpec: "solo", one 1 GiB volume laid out like a real disk (holes,
// random regions, a written zero block, data ending unaligned) with 16 MiB
// more of random data (so that its VMDK spans several 8 MiB ranges); and
// one instance for each refusal VM Export documents.
func taskSpec(t *testing.T) (awsfake.Spec, *awsfake.Volume) {
	t.Helper()
	solo, err := awsfake.NewSampleVolume("vol-0f0000000000000a1", 1, 21)
	if err != nil {
		t.Fatal(err)
	}
	if err := solo.WriteRandom(300*awsfake.BlockSize+777, 16<<20, 22); err != nil {
		t.Fatal(err)
	}
	small := func(id string) *awsfake.Volume {
		v := awsfake.NewVolume(id, 1)
		if err := v.WriteRandom(0, awsfake.BlockSize, 23); err != nil {
			t.Fatal(err)
		}
		return v
	}
	p1, p2, win, sql, mkt, nics := small("vol-0f0000000000000b1"), small("vol-0f0000000000000b2"), small("vol-0f0000000000000c1"),
		small("vol-0f0000000000000c2"), small("vol-0f0000000000000d1"), small("vol-0f0000000000000f1")
	crypt := small("vol-0f0000000000000e1")
	crypt.Encrypted = true
	huge := awsfake.NewVolume("vol-0f0000000000000e2", 2048)
	return awsfake.Spec{
		Volumes: []*awsfake.Volume{solo, p1, p2, win, sql, mkt, crypt, huge, nics},
		Images: []awsfake.Image{
			{ID: "ami-0f000000000000linux", Name: "al2023"},
			{ID: "ami-0f0000000000market", Name: "appliance", ProductCodes: []awsfake.ProductCode{{ID: "8fdd0d0f1example", Type: "marketplace"}}},
		},
		Instances: []awsfake.Instance{
			{ID: "i-0f00000000000000a", Type: "t3.medium", State: "stopped", BootMode: "legacy-bios", ImageID: "ami-0f000000000000linux", NetworkInterfaces: 1,
				Tags: map[string]string{"Name": "solo"}, Devices: []awsfake.Device{{Name: "/dev/xvda", VolumeID: solo.ID}}},
			{ID: "i-0f00000000000000b", Type: "t3.micro", Tags: map[string]string{"Name": "pair"},
				Devices: []awsfake.Device{{Name: "/dev/xvda", VolumeID: p1.ID}, {Name: "/dev/sdf", VolumeID: p2.ID}}},
			{ID: "i-0f00000000000000c", Type: "t3.micro", Platform: "windows", PlatformDetails: "Windows", UsageOperation: "RunInstances:0002",
				Tags: map[string]string{"Name": "win"}, Devices: []awsfake.Device{{Name: "/dev/sda1", VolumeID: win.ID}}},
			{ID: "i-0f00000000000000d", Type: "t3.micro", PlatformDetails: "Linux/UNIX", UsageOperation: "RunInstances:0004",
				Tags: map[string]string{"Name": "sql"}, Devices: []awsfake.Device{{Name: "/dev/xvda", VolumeID: sql.ID}}},
			{ID: "i-0f00000000000000e", Type: "t3.micro", ImageID: "ami-0f0000000000market",
				Tags: map[string]string{"Name": "market"}, Devices: []awsfake.Device{{Name: "/dev/xvda", VolumeID: mkt.ID}}},
			{ID: "i-0f00000000000000f", Type: "t3.micro", Tags: map[string]string{"Name": "crypt"}, Devices: []awsfake.Device{{Name: "/dev/xvda", VolumeID: crypt.ID}}},
			{ID: "i-0f000000000000010", Type: "t3.micro", Tags: map[string]string{"Name": "huge"}, Devices: []awsfake.Device{{Name: "/dev/xvda", VolumeID: huge.ID}}},
			{ID: "i-0f000000000000011", Type: "t3.micro", NetworkInterfaces: 2, Tags: map[string]string{"Name": "nics"}, Devices: []awsfake.Device{{Name: "/dev/xvda", VolumeID: nics.ID}}},
		},
	}, solo
}

func newTaskFixture(t *testing.T, faults awsfake.Faults, partSize int64) *taskFixture {
	t.Helper()
	s3srv := s3test.Start(t, s3test.Options{Region: testRegion, AccessKeyID: testKeyID, SecretAccessKey: testSecret})
	s3srv.CreateBucket(t, exportBucket)
	spec, solo := taskSpec(t)
	logs := &syncBuffer{}
	log := testLogger(logs)
	srv, err := awsfake.New(awsfake.Options{
		AccessKeyID: testKeyID, SecretAccessKey: testSecret, Region: testRegion, Spec: spec, Faults: faults, Log: log.With("component", "awsfake"),
		S3: awsfake.S3Options{Endpoint: s3srv.URL, Region: s3srv.Region, AccessKeyID: s3srv.AccessKeyID, SecretAccessKey: s3srv.SecretAccessKey, PartSize: partSize},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return &taskFixture{fixture: &fixture{srv: srv, spec: spec, logs: logs, log: log}, s3: s3srv, solo: solo}
}

// taskProvider is a connected provider whose export tasks write to the
// fixture's bucket as et says (bucket filled in), its polls shortened.
func (f *taskFixture) taskProvider(t *testing.T, et ExportTaskConfig) *Provider {
	t.Helper()
	if et.Bucket == "" {
		et.Bucket = exportBucket
	}
	cfg := Config{
		Region: testRegion, AccessKeyID: testKeyID, SecretAccessKey: config.NewSecret(testSecret),
		Endpoints:  Endpoints{EC2: f.srv.URL(), EBS: f.srv.URL(), S3: f.s3.URL},
		ExportTask: et,
	}
	p, err := NewProvider("aws-test", cfg, f.log.With("provider", "aws-test"))
	if err != nil {
		t.Fatal(err)
	}
	p.tune.retry = backoff.Policy{Base: time.Millisecond, Max: 20 * time.Millisecond, Jitter: 1}
	p.tune.exportPoll = backoff.Policy{Base: 5 * time.Millisecond, Max: 20 * time.Millisecond}
	p.tune.snapshotPollMin, p.tune.snapshotPollMax = 5*time.Millisecond, 20*time.Millisecond
	if err := p.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Disconnect() })
	return p
}

// leftovers is what the platform holds after an export: export tasks
// still running, objects in the bucket (when the export deletes them),
// snapshots.
func (f *taskFixture) leftovers(t *testing.T, objectsToo bool) []string {
	t.Helper()
	var out []string
	for _, tk := range f.srv.LiveExportTasks() {
		out = append(out, "task "+tk.ID+" "+tk.State)
	}
	if objectsToo {
		for _, k := range f.s3.Keys(t, exportBucket) {
			out = append(out, "object "+k)
		}
	}
	return append(out, aliveIDs(f.srv)...)
}

// rangedGETs counts the pre-signed ranged GETs of key that reached S3.
func (f *taskFixture) rangedGETs(key string) int {
	n := 0
	for _, r := range f.s3.Requests() {
		if r.Method == "GET" && r.Presigned && r.Range != "" && r.Path == "/"+exportBucket+"/"+key {
			n++
		}
	}
	return n
}

// noSecrets fails when a log line or an error holds the secret key or a
// pre-signed URL's signature.
func noSecrets(t *testing.T, texts ...string) {
	t.Helper()
	for _, s := range texts {
		for _, bad := range []string{testSecret, "X-Amz-Signature", "X-Amz-Credential"} {
			if strings.Contains(s, bad) {
				t.Errorf("%q shown in:\n%s", bad, s)
			}
		}
	}
}

// The must-show case: one volume exported through VM Export as an OVA, a
// plain VMDK, a raw image and a VHD, into plain raw disks and into an OVA;
// each disk qemu-img-identical to the volume, the manifest checked by
// sha256sum, the object fetched in parallel ranges, and deleted exactly
// when delete_object says so.
func TestExportTaskIntoEveryOutput(t *testing.T) {
	disktest.QemuImg(t)
	sha256sum, err := exec.LookPath("sha256sum")
	if err != nil {
		t.Fatal("sha256sum not found: install coreutils")
	}
	f := newTaskFixture(t, awsfake.Faults{ExportPolls: 2}, 0)
	want := filepath.Join(t.TempDir(), "volume.raw")
	if err := f.solo.WriteRawImage(want); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		diskFormat, container string
		format                providers.Format
		deleteObject, ranged  bool
	}{
		{"vmdk", "ova", providers.FormatDisks, true, true},
		{"vmdk", "", providers.FormatOVA, false, true},
		{"raw", "", providers.FormatDisks, false, true},
		{"vhd", "", providers.FormatDisks, true, false}, // a VHD of mostly zeros is small: one range
	} {
		name := fmt.Sprintf("%s-%s-into-%s", tc.diskFormat, cmpOr(tc.container, "plain"), tc.format)
		t.Run(name, func(t *testing.T) {
			p := f.taskProvider(t, ExportTaskConfig{DiskImageFormat: tc.diskFormat, Container: tc.container, DeleteObject: tc.deleteObject})
			dir := t.TempDir()
			var phases sync.Map
			res, err := pipeline.Export(context.Background(), p, "solo", providers.ExportOptions{
				OutputDir: dir, Format: tc.format, DiskFormat: map[providers.Format]providers.DiskFormat{providers.FormatDisks: providers.DiskRaw}[tc.format],
				Method: MethodExportTask, JobID: "job-" + name, Logger: f.log,
				Progress: func(r progress.Report) { phases.Store(r.Phase, true) },
			})
			if err != nil {
				t.Fatal(err)
			}
			tasks := f.srv.ExportTasks()
			task := tasks[len(tasks)-1]
			if task.Tags[TagJob] != "job-"+name || task.State != "completed" || task.DiskImageFormat != tc.diskFormat || task.ContainerFormat != tc.container {
				t.Fatalf("task %+v", task)
			}
			if _, ok := phases.Load(progress.PhasePreparing); !ok {
				t.Error("no preparing progress while the task ran")
			}
			got := filepath.Join(dir, "solo-disk-0.raw")
			if tc.format == providers.FormatOVA {
				got = vmdkFromOVA(t, filepath.Join(dir, res.OVAPath))
				disktest.Compare(t, got, "vmdk", want, "raw")
			} else {
				disktest.Compare(t, got, "raw", want, "raw")
				if a, data := disktest.Allocated(t, got), int64(len(f.solo.WrittenBlocks()))*awsfake.BlockSize; a > data+(1<<20) {
					t.Errorf("raw disk allocates %d bytes for %d of data: holes filled", a, data)
				}
				check := exec.Command(sha256sum, "--strict", "-c", res.Manifest)
				check.Dir = dir
				if out, err := check.CombinedOutput(); err != nil {
					t.Errorf("sha256sum -c: %v\n%s", err, out)
				}
			}
			if n := f.rangedGETs(task.Key); tc.ranged && n < 2 {
				t.Errorf("%d ranged GETs of %s: want several in parallel", n, task.Key)
			}
			keys := f.s3.Keys(t, exportBucket)
			if kept := slices.Contains(keys, task.Key); kept == tc.deleteObject {
				t.Errorf("object %s kept %v with delete_object %v (bucket holds %v)", task.Key, kept, tc.deleteObject, keys)
			}
			if entries, _ := os.ReadDir(dir); slices.ContainsFunc(entries, func(e os.DirEntry) bool {
				return strings.HasSuffix(e.Name(), ".part") || strings.HasSuffix(e.Name(), ".src")
			}) {
				t.Errorf("staging files left: %v", entries)
			}
			if left := f.leftovers(t, false); len(left) != 0 {
				t.Errorf("left on the platform: %v", left)
			}
		})
	}
	if n := f.srv.Stats().Requests["CreateSnapshots"]; n != 0 {
		t.Errorf("the export-task method took %d snapshot sets", n)
	}
	noSecrets(t, f.logs.String())
}

// vmdkFromOVA extracts the VMDK of an OVA the pipeline wrote.
func vmdkFromOVA(t *testing.T, ova string) string {
	t.Helper()
	fh, err := os.Open(ova)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	tr := tar.NewReader(fh)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("no VMDK in %s: %v", ova, err)
		}
		if strings.HasSuffix(h.Name, ".vmdk") {
			out := filepath.Join(t.TempDir(), "disk.vmdk")
			w, err := os.Create(out)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(w, tr); err != nil {
				t.Fatal(err)
			}
			w.Close()
			return out
		}
	}
}

// A multipart object's ETag is no MD5: the full-object CRC64NVME S3
// keeps checks it instead.
func TestExportTaskMultipartObjectVerifiedByCRC64(t *testing.T) {
	disktest.QemuImg(t)
	f := newTaskFixture(t, awsfake.Faults{}, 8<<20)
	p := f.taskProvider(t, ExportTaskConfig{})
	dir := t.TempDir()
	if _, err := pipeline.Export(context.Background(), p, "solo", providers.ExportOptions{
		OutputDir: dir, Format: providers.FormatDisks, DiskFormat: providers.DiskRaw, Method: MethodExportTask, JobID: "job-multipart", Logger: f.log,
	}); err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(t.TempDir(), "volume.raw")
	if err := f.solo.WriteRawImage(want); err != nil {
		t.Fatal(err)
	}
	disktest.Compare(t, filepath.Join(dir, "solo-disk-0.raw"), "raw", want, "raw")
	if !strings.Contains(f.logs.String(), `verified_by="crc64nvme, size, ETag"`) {
		t.Errorf("the multipart object was not checked by its CRC64NVME alone:\n%s", f.logs.String())
	}
}

func TestExportTaskRefusedUpFront(t *testing.T) {
	f := newTaskFixture(t, awsfake.Faults{}, 0)
	p := f.taskProvider(t, ExportTaskConfig{Container: "ova"})
	for vm, want := range map[string]string{
		"pair":   "2 EBS volumes",
		"win":    "Windows",
		"sql":    "Linux with SQL Server Standard",
		"market": "Marketplace",
		"crypt":  "encrypted",
		"huge":   "at most 1 TiB",
		"nics":   "2 network interfaces",
	} {
		_, err := pipeline.Export(context.Background(), p, vm, providers.ExportOptions{
			OutputDir: t.TempDir(), Format: providers.FormatOVA, Method: MethodExportTask, JobID: "job-refused-" + vm,
		})
		if err == nil || !providers.IsPermanent(err) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "--method ebs-direct") {
			t.Errorf("%s: %v; want a permanent refusal naming %q and suggesting --method ebs-direct", vm, err, want)
		}
	}
	if n := f.srv.Stats().Requests["CreateInstanceExportTask"]; n != 0 || len(f.srv.ExportTasks()) != 0 {
		t.Errorf("refused exports reached CreateInstanceExportTask %d times, tasks %v", n, f.srv.ExportTasks())
	}
	if left := f.leftovers(t, true); len(left) != 0 {
		t.Errorf("refused exports left %v", left)
	}
	// Without a bucket the method is refused before anything is asked.
	bare, err := NewProvider("bare", Config{Region: testRegion, AccessKeyID: testKeyID, SecretAccessKey: config.NewSecret(testSecret),
		Endpoints: Endpoints{EC2: f.srv.URL(), EBS: f.srv.URL()}}, f.log)
	if err != nil {
		t.Fatal(err)
	}
	if err := bare.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, err = pipeline.Export(context.Background(), bare, "solo", providers.ExportOptions{OutputDir: t.TempDir(), Method: MethodExportTask})
	if !errors.Is(err, providers.ErrInvalidArgument) || !strings.Contains(err.Error(), "export_task.bucket") {
		t.Errorf("export-task without a bucket: %v", err)
	}
	_, err = pipeline.Export(context.Background(), bare, "solo", providers.ExportOptions{OutputDir: t.TempDir(), Method: "vm-import"})
	if !errors.Is(err, providers.ErrInvalidArgument) || !strings.Contains(err.Error(), "ebs-direct, export-task") {
		t.Errorf("unknown method: %v", err)
	}
	if n := f.srv.Stats().Requests["CreateInstanceExportTask"]; n != 0 {
		t.Errorf("CreateInstanceExportTask called %d times", n)
	}
}

// A task AWS ends cancelled fails the export for good with AWS's reason;
// a cancel while the task runs cancels it; a download that fails (the
// object corrupted in S3 after the task wrote it) ends with the object
// deleted. Nothing is left on the platform in any case.
func TestExportTaskFailuresLeaveNothing(t *testing.T) {
	f := newTaskFixture(t, awsfake.Faults{ExportFail: "ClientError: the volume could not be read"}, 0)
	p := f.taskProvider(t, ExportTaskConfig{DeleteObject: true})
	var errs []string
	_, err := pipeline.Export(context.Background(), p, "solo", providers.ExportOptions{OutputDir: t.TempDir(), Method: MethodExportTask, JobID: "job-failed", Logger: f.log})
	if err == nil || !providers.IsPermanent(err) || !strings.Contains(err.Error(), "the volume could not be read") {
		t.Fatalf("failed task: %v, want a permanent failure with AWS's reason", err)
	}
	errs = append(errs, err.Error())

	f.srv.SetFaults(awsfake.Faults{ExportFor: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for len(f.srv.LiveExportTasks()) == 0 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	_, err = pipeline.Export(ctx, p, "solo", providers.ExportOptions{OutputDir: t.TempDir(), Method: MethodExportTask, JobID: "job-cancelled", Logger: f.log})
	if !errors.Is(err, context.Canceled) || providers.IsPermanent(err) {
		t.Fatalf("cancelled export: %v", err)
	}
	errs = append(errs, err.Error())
	if err := f.srv.WaitCancels(context.Background()); err != nil {
		t.Fatal(err)
	}
	tasks := f.srv.ExportTasks()
	if last := tasks[len(tasks)-1]; last.State != "cancelled" || last.Tags[TagJob] != "job-cancelled" {
		t.Errorf("the cancelled export's task: %+v", last)
	}

	// Corrupt the object once the task has written it: the download's
	// MD5/CRC check fails, and the object is deleted all the same.
	f.srv.SetFaults(awsfake.Faults{})
	var once sync.Once
	dir := t.TempDir()
	_, err = pipeline.Export(context.Background(), p, "solo", providers.ExportOptions{
		OutputDir: dir, Format: providers.FormatDisks, DiskFormat: providers.DiskRaw, Method: MethodExportTask, JobID: "job-corrupt", Logger: f.log,
		Progress: func(r progress.Report) {
			if strings.Contains(r.Item, "completed") {
				once.Do(func() { corruptObject(t, f) })
			}
		},
	})
	if err == nil || !strings.Contains(err.Error(), "mismatch") {
		t.Fatalf("export of a corrupted object: %v, want a digest mismatch", err)
	}
	errs = append(errs, err.Error())
	if left := f.leftovers(t, true); len(left) != 0 {
		t.Errorf("left on the platform: %v", left)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("the failed export left %v", entries)
	}
	noSecrets(t, append(errs, f.logs.String())...)
}

// corruptObject flips a byte in the middle of the only object in the
// bucket, on versitygw's disk, behind S3's back (its ETag and checksums
// stay the originals).
func corruptObject(t *testing.T, f *taskFixture) {
	t.Helper()
	var path string
	_ = filepath.WalkDir(filepath.Join(f.s3.Dir, exportBucket), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			path = p
		}
		return nil
	})
	fh, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Errorf("corrupt the object: %v", err)
		return
	}
	defer fh.Close()
	st, _ := fh.Stat()
	b := make([]byte, 1)
	off := st.Size() / 2
	if _, err := fh.ReadAt(b, off); err != nil {
		t.Error(err)
	}
	b[0] ^= 0x20
	if _, err := fh.WriteAt(b, off); err != nil {
		t.Error(err)
	}
}

// A retried attempt of a job (or one after kill -9, which ran no Cleanup)
// finds the job's completed task by its tag and downloads its object
// without exporting the instance again.
func TestExportTaskRetryReusesTheJobsTask(t *testing.T) {
	f := newTaskFixture(t, awsfake.Faults{ExportPolls: 1}, 0)
	p := f.taskProvider(t, ExportTaskConfig{DeleteObject: true})
	opts := providers.ExportOptions{Format: providers.FormatDisks, DiskFormat: providers.DiskRaw, Method: MethodExportTask, JobID: "job-retried"}
	first, err := p.PrepareExport(context.Background(), "solo", opts)
	if err != nil {
		t.Fatal(err)
	}
	// No Cleanup: the attempt died.
	second, err := p.PrepareExport(context.Background(), "i-0f00000000000000a", opts)
	if err != nil {
		t.Fatal(err)
	}
	if n := f.srv.Stats().Requests["CreateInstanceExportTask"]; n != 1 {
		t.Errorf("CreateInstanceExportTask called %d times, want 1", n)
	}
	d1, d2 := first.Disks[0], second.Disks[0]
	if d1.Format != providers.SourceVMDKStream || d1.Capacity != 1<<30 || d1.HTTP.Validator != d2.HTTP.Validator || d1.Size != d2.Size || !d1.HTTP.Ranged {
		t.Errorf("disk sources %+v / %+v", d1, d2)
	}
	second.Cleanup()
	if left := f.leftovers(t, true); len(left) != 0 {
		t.Errorf("left after Cleanup: %v", left)
	}
}

// The daemon's sweep cancels the running task of a job that is over (a
// daemon killed while VM Export ran) and deletes the object of a completed
// one, and leaves a live job's task alone.
func TestSweepEndsTasksOfJobsThatAreOver(t *testing.T) {
	f := newTaskFixture(t, awsfake.Faults{}, 0)
	p := f.taskProvider(t, ExportTaskConfig{DeleteObject: true})
	ctx := context.Background()
	// job-crashed-1 completed its task and died before Cleanup.
	if _, err := p.PrepareExport(ctx, "solo", providers.ExportOptions{Method: MethodExportTask, JobID: "job-crashed-1"}); err != nil {
		t.Fatal(err)
	}
	// job-crashed-2 died while its task ran; job-live's task runs.
	f.srv.SetFaults(awsfake.Faults{ExportFor: time.Hour})
	c, _, _, err := p.s3Clients()
	if err != nil {
		t.Fatal(err)
	}
	for _, job := range []string{"job-crashed-2", "job-live"} {
		if _, err := c.CreateInstanceExportTask(ctx, &ec2.CreateInstanceExportTaskInput{
			InstanceId: aws.String("i-0f00000000000000a"), TargetEnvironment: ec2types.ExportEnvironmentVmware,
			ExportToS3Task: &ec2types.ExportToS3TaskSpecification{DiskImageFormat: ec2types.DiskImageFormatVmdk, S3Bucket: aws.String(exportBucket), S3Prefix: aws.String(DefaultExportPrefix)},
			TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeExportInstanceTask,
				Tags: []ec2types.Tag{{Key: aws.String(TagJob), Value: aws.String(job)}}}},
		}); err != nil {
			t.Fatal(err)
		}
	}
	if keys := f.s3.Keys(t, exportBucket); len(keys) != 1 {
		t.Fatalf("bucket before the sweep: %v", keys)
	}
	swept, err := p.SweepOrphans(ctx, func(job string) bool { return job == "job-live" })
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(swept)
	if len(swept) != 2 || !strings.HasSuffix(swept[0], " (cancelled)") || !strings.HasPrefix(swept[1], "s3://"+exportBucket+"/"+DefaultExportPrefix) {
		t.Errorf("swept %v, want the running task cancelled and the completed one's object deleted", swept)
	}
	if err := f.srv.WaitCancels(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tk := range f.srv.ExportTasks() {
		want := map[string]string{"job-crashed-1": "completed", "job-crashed-2": "cancelled", "job-live": "active"}[tk.Tags[TagJob]]
		if tk.State != want {
			t.Errorf("task of %s is %s, want %s", tk.Tags[TagJob], tk.State, want)
		}
	}
	if keys := f.s3.Keys(t, exportBucket); len(keys) != 0 {
		t.Errorf("objects left after the sweep: %v", keys)
	}
	// A second sweep finds nothing more to do.
	if again, err := p.SweepOrphans(ctx, func(job string) bool { return job == "job-live" }); err != nil || len(again) != 0 {
		t.Errorf("second sweep: %v, %v", again, err)
	}
}

func TestConformanceExportTask(t *testing.T) {
	f := newTaskFixture(t, awsfake.Faults{ExportPolls: 1}, 0)
	providertest.Run(t, providertest.Target{
		New: func(t *testing.T) providers.Provider {
			p, err := NewProvider("aws-tasks", Config{
				Region: testRegion, AccessKeyID: testKeyID, SecretAccessKey: config.NewSecret(testSecret),
				Endpoints:  Endpoints{EC2: f.srv.URL(), EBS: f.srv.URL(), S3: f.s3.URL},
				ExportTask: ExportTaskConfig{Bucket: exportBucket, Container: "ova", DeleteObject: true},
			}, f.log)
			if err != nil {
				t.Fatal(err)
			}
			p.tune.exportPoll = backoff.Policy{Base: 5 * time.Millisecond, Max: 20 * time.Millisecond}
			return p
		},
		ExportVM:    "solo",
		Method:      MethodExportTask,
		RangedParts: true,
		RawDigests: func(*testing.T) map[string]string {
			sum := f.solo.SHA256()
			return map[string]string{"solo-disk-0.raw": fmt.Sprintf("%x", sum)}
		},
		Leftovers: func(t *testing.T) []string { return f.leftovers(t, true) },
	})
}

func TestWholeObjectDigestChoice(t *testing.T) {
	md5Tag := `"0123456789abcdef0123456789abcdef"`
	crc64 := "UcJU7uKAiWY="
	for _, tc := range []struct {
		name string
		o    exportObject
		want string // "" for none
	}{
		{"single part: S3's CRC64NVME", exportObject{etag: md5Tag, checksumType: "FULL_OBJECT", checksums: map[string]string{"crc64nvme": crc64}}, "crc64nvme"},
		{"single part, no checksum: the ETag's MD5", exportObject{etag: md5Tag, checksums: map[string]string{}}, "md5 (ETag)"},
		{"multipart with a full-object CRC", exportObject{etag: `"0123456789abcdef0123456789abcdef-3"`, checksumType: "FULL_OBJECT", checksums: map[string]string{"crc64nvme": crc64}}, "crc64nvme"},
		{"multipart, composite checksum", exportObject{etag: `"0123456789abcdef0123456789abcdef-3"`, checksumType: "COMPOSITE", checksums: map[string]string{"crc32c": "AAAAAA==-3"}}, ""},
		{"KMS: the ETag is no MD5", exportObject{etag: md5Tag, sse: "aws:kms", checksums: map[string]string{}}, ""},
		{"SSE-S3: the ETag is the MD5", exportObject{etag: md5Tag, sse: "AES256", checksums: map[string]string{}}, "md5 (ETag)"},
		{"a SHA-256 the uploader asked for", exportObject{etag: md5Tag, checksumType: "FULL_OBJECT", checksums: map[string]string{"sha256": "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", "crc32": "AAAAAA=="}}, "sha256"},
	} {
		d, ok := tc.o.wholeObjectDigest()
		if got := map[bool]string{true: d.name}[ok]; got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// An attempt interrupted mid-download (delete_object off, so the object
// outlives it) is resumed by the job's next attempt: the same task, its
// object's kept part file continued, not fetched from its first byte.
func TestExportTaskDownloadResumes(t *testing.T) {
	disktest.QemuImg(t)
	f := newTaskFixture(t, awsfake.Faults{}, 0)
	p := f.taskProvider(t, ExportTaskConfig{})
	dir := t.TempDir()
	opts := providers.ExportOptions{OutputDir: dir, Format: providers.FormatDisks, DiskFormat: providers.DiskVMDK, Method: MethodExportTask, JobID: "job-resumed", Logger: f.log}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := opts
	first.BandwidthLimit = 16 << 20 // about 1.5 s for the object: the cancel lands mid-way
	first.Progress = func(r progress.Report) {
		if r.Phase == progress.PhaseDownloading && r.BytesTotal > 0 && r.BytesDone > r.BytesTotal/2 {
			cancel()
		}
	}
	if _, err := pipeline.Export(ctx, p, "solo", first); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted attempt: %v", err)
	}
	part := filepath.Join(dir, "solo-disk-0.vmdk.part")
	st, err := os.Stat(part)
	if err != nil || st.Size() == 0 {
		t.Fatalf("no part file kept for the next attempt: %v\n%s", err, f.logs.String())
	}
	before := len(f.s3.Requests())
	if _, err := pipeline.Export(context.Background(), p, "solo", opts); err != nil {
		t.Fatal(err)
	}
	if n := f.srv.Stats().Requests["CreateInstanceExportTask"]; n != 1 {
		t.Errorf("CreateInstanceExportTask called %d times, want 1", n)
	}
	for _, r := range f.s3.Requests()[before:] {
		if r.Presigned && strings.HasPrefix(r.Range, "bytes=0-") {
			t.Errorf("the resumed attempt fetched the object from its first byte (%s) although %d bytes were kept", r.Range, st.Size())
		}
	}
	want := filepath.Join(t.TempDir(), "volume.raw")
	if err := f.solo.WriteRawImage(want); err != nil {
		t.Fatal(err)
	}
	disktest.Compare(t, filepath.Join(dir, "solo-disk-0.vmdk"), "vmdk", want, "raw")
	if entries, _ := os.ReadDir(dir); slices.ContainsFunc(entries, func(e os.DirEntry) bool { return strings.Contains(e.Name(), ".part") }) {
		t.Errorf("part files left after success: %v", entries)
	}
}
