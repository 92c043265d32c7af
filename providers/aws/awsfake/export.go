package awsfake

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/hypersdk/hypersdk/disk"
	"github.com/hypersdk/hypersdk/disk/formats"
	"github.com/hypersdk/hypersdk/vmdk"
)

// S3Options is where export tasks write their objects: an S3 endpoint
// (versitygw in tests, gofakes3 in the demo) reached with the real S3
// client, path-style.
type S3Options struct {
	Endpoint        string
	Region          string // the Server's region when empty
	AccessKeyID     string
	SecretAccessKey string
	// PartSize > 0 uploads objects larger than it as multipart uploads of
	// parts that size, with a full-object CRC64NVME checksum, as S3 holds
	// large objects (whose ETag is then no MD5); 0 uploads every object
	// with one PutObject.
	PartSize int64
	// HTTPClient, when set, is the S3 client's HTTP client (an in-process
	// S3 server's).
	HTTPClient *http.Client
}

// maxExportVolumeGiB is the largest volume an instance export takes
// (VM Import/Export: "VMs with volumes larger than 1 TiB are not
// supported").
const maxExportVolumeGiB = 1024

// Export task states (ExportTask.State).
const (
	taskActive     = "active"
	taskCancelling = "cancelling"
	taskCancelled  = "cancelled"
	taskCompleted  = "completed"
)

// exportTask is one CreateInstanceExportTask: the instance's volume as it
// was at creation, turned into the requested image and written to S3 by a
// goroutine of its own.
type exportTask struct {
	id, instanceID, description, environment string
	diskFormat, container                    string // lower case: vmdk|raw|vhd, ova|""
	bucket, prefix, key                      string

	state, status string
	polls         int // DescribeExportTasks answers that reported it active
	pendingPolls  int
	written       bool // the object is in S3
	cancel        context.CancelFunc
	done          chan struct{}
}

func (t *exportTask) ext() string {
	if t.container == "ova" {
		return "ova"
	}
	return t.diskFormat
}

// exportRefusal is why VM Import/Export refuses to export an instance
// (VM Import/Export User Guide, "Considerations for instance export"),
// "" when it does not; callers hold s.mu.
func (s *Server) exportRefusal(in *Instance) string {
	im := s.image(in.ImageID)
	switch {
	case in.Platform == "windows" || strings.Contains(in.platformDetails(), "Windows") || (im != nil && im.Platform == "windows"):
		return "Windows instances contain third-party software provided by AWS and cannot be exported."
	case strings.Contains(in.platformDetails(), "SQL Server"):
		return "Instances with SQL Server contain third-party software provided by AWS and cannot be exported."
	case hasMarketplace(in.ProductCodes) || (im != nil && hasMarketplace(im.ProductCodes)):
		return "Instances created from an AWS Marketplace image cannot be exported."
	case len(in.Devices) != 1:
		return fmt.Sprintf("Only instances with one volume can be exported; %s has %d.", in.ID, len(in.Devices))
	case in.NetworkInterfaces > 1:
		return fmt.Sprintf("Only instances with one network interface can be exported; %s has %d.", in.ID, in.NetworkInterfaces)
	}
	v := s.volumes[in.Devices[0].VolumeID]
	switch {
	case v.Encrypted:
		return fmt.Sprintf("Instances with encrypted EBS volumes cannot be exported; %s is encrypted.", v.ID)
	case v.SizeGiB > maxExportVolumeGiB:
		return fmt.Sprintf("Volumes larger than 1 TiB cannot be exported; %s is %d GiB.", v.ID, v.SizeGiB)
	}
	return ""
}

func hasMarketplace(codes []ProductCode) bool {
	return slices.ContainsFunc(codes, func(c ProductCode) bool { return c.Type == "marketplace" })
}

func (s *Server) image(id string) *Image {
	for i := range s.opts.Spec.Images {
		if s.opts.Spec.Images[i].ID == id {
			return &s.opts.Spec.Images[i]
		}
	}
	return nil
}

// --- CreateInstanceExportTask ---

type createInstanceExportTaskResponse struct {
	XMLName xml.Name `xml:"CreateInstanceExportTaskResponse"`
	ec2Meta
	ExportTask xmlExportTask `xml:"exportTask"`
}

type xmlExportTask struct {
	ExportTaskID   string `xml:"exportTaskId"`
	Description    string `xml:"description"`
	State          string `xml:"state"`
	StatusMessage  string `xml:"statusMessage"`
	InstanceExport struct {
		InstanceID        string `xml:"instanceId"`
		TargetEnvironment string `xml:"targetEnvironment"`
	} `xml:"instanceExport"`
	ExportToS3 struct {
		DiskImageFormat string `xml:"diskImageFormat"`
		ContainerFormat string `xml:"containerFormat,omitempty"`
		S3Bucket        string `xml:"s3Bucket"`
		S3Key           string `xml:"s3Key"`
	} `xml:"exportToS3"`
	TagSet set[ec2Tag] `xml:"tagSet"`
}

func (s *Server) createInstanceExportTask(q query) (ec2Response, error) {
	instanceID := q.get("InstanceId")
	env := q.get("TargetEnvironment")
	diskFormat := strings.ToLower(q.get("ExportToS3.DiskImageFormat"))
	container := strings.ToLower(q.get("ExportToS3.ContainerFormat"))
	bucket, prefix := q.get("ExportToS3.S3Bucket"), q.get("ExportToS3.S3Prefix")
	switch {
	case instanceID == "":
		return nil, missing("InstanceId")
	case env == "":
		return nil, missing("TargetEnvironment")
	case bucket == "":
		return nil, missing("ExportToS3.S3Bucket")
	case !slices.Contains([]string{"citrix", "vmware", "microsoft"}, env):
		return nil, invalidValue(env, "targetEnvironment")
	case !slices.Contains([]string{"vmdk", "raw", "vhd"}, diskFormat):
		return nil, invalidValue(q.get("ExportToS3.DiskImageFormat"), "diskImageFormat")
	case container != "" && container != "ova":
		return nil, invalidValue(q.get("ExportToS3.ContainerFormat"), "containerFormat")
	case len(q.get("Description")) > 255:
		return nil, &apiError{http.StatusBadRequest, "InvalidParameterValue", "The description is longer than 255 characters."}
	}
	tags := map[string]string{}
	for i := 1; ; i++ {
		p := fmt.Sprintf("TagSpecification.%d", i)
		rt, ok := q[p+".ResourceType"]
		if !ok {
			break
		}
		if len(rt) == 0 || rt[0] != "export-instance-task" {
			return nil, &apiError{http.StatusBadRequest, "InvalidParameterValue",
				fmt.Sprintf("'%s' is not a valid taggable resource type for this operation.", q.get(p+".ResourceType"))}
		}
		for _, t := range q.tags(p + ".Tag") {
			tags[t.Key] = t.Value
		}
	}
	s3c, err := s.s3Client()
	if err != nil {
		return nil, err
	}
	// The bucket must exist, in this account, before anything starts.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	_, herr := s3c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)})
	cancel()
	if herr != nil {
		return nil, &apiError{http.StatusBadRequest, "InvalidParameterValue", fmt.Sprintf("The given S3 bucket (%s) does not exist or is not accessible.", bucket)}
	}
	faults := s.currentFaults()

	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.instance(instanceID)
	if in == nil || in.state() == "terminated" {
		return nil, &apiError{http.StatusBadRequest, "InvalidInstanceID.NotFound", fmt.Sprintf("The instance ID '%s' does not exist", instanceID)}
	}
	if why := s.exportRefusal(in); why != "" {
		return nil, &apiError{http.StatusBadRequest, "NotExportable", why}
	}
	v := s.volumes[in.Devices[0].VolumeID]
	t := &exportTask{
		id: "export-i-" + newID(""), instanceID: in.ID, description: q.get("Description"), environment: env,
		diskFormat: diskFormat, container: container, bucket: bucket, prefix: prefix,
		state: taskActive, status: "Running", pendingPolls: faults.ExportPolls, done: make(chan struct{}),
	}
	t.key = prefix + t.id + "." + t.ext()
	s.exportTasks[t.id] = t
	s.exportOrder = append(s.exportOrder, t.id)
	if len(tags) > 0 {
		s.tags[t.id] = tags
	}
	frozen := &frozenVolume{blocks: v.snapshotBlocks(), size: v.Size()}
	tctx, tcancel := context.WithCancel(context.Background())
	t.cancel = tcancel
	s.taskWG.Add(1)
	go func() {
		defer s.taskWG.Done()
		defer close(t.done)
		s.runExport(tctx, t, frozen, faults, s3c)
	}()
	return &createInstanceExportTaskResponse{ExportTask: s.xmlExportTask(t)}, nil
}

func missing(param string) error {
	return &apiError{http.StatusBadRequest, "MissingParameter", "The request must contain the parameter " + param}
}

func invalidValue(v, param string) error {
	return &apiError{http.StatusBadRequest, "InvalidParameterValue", fmt.Sprintf("Value (%s) for parameter %s is invalid.", v, param)}
}

// runExport waits Faults.ExportFor, writes the task's object and marks it
// written; the task completes once DescribeExportTasks has also reported
// it active Faults.ExportPolls times. A cancelled task's object is
// removed, as CancelExportTask removes "any partially-created Amazon S3
// objects"; Faults.ExportFail ends the task cancelled with that status.
func (s *Server) runExport(ctx context.Context, t *exportTask, vol *frozenVolume, f Faults, c *s3.Client) {
	finish := func(state, status string) {
		s.mu.Lock()
		defer s.mu.Unlock()
		t.state, t.status = state, status
	}
	select {
	case <-time.After(f.ExportFor):
	case <-ctx.Done():
		finish(taskCancelled, "Canceled by the user.")
		return
	}
	if f.ExportFail != "" {
		s.log.Info("awsfake: export task failed by fault", "task", t.id)
		finish(taskCancelled, f.ExportFail)
		return
	}
	s.mu.Lock()
	t.status = "Uploading the image to Amazon S3"
	s.mu.Unlock()
	err := s.writeImage(ctx, t, vol, c)
	if err != nil {
		// Whatever was written goes, with a context of its own.
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, _ = c.DeleteObject(dctx, &s3.DeleteObjectInput{Bucket: aws.String(t.bucket), Key: aws.String(t.key)})
		cancel()
		if ctx.Err() != nil {
			finish(taskCancelled, "Canceled by the user.")
			return
		}
		s.log.Warn("awsfake: export task could not write its object", "task", t.id, "err", err)
		finish(taskCancelled, "The export failed: the image could not be written to Amazon S3.")
		return
	}
	s.mu.Lock()
	t.written = true
	if t.state == taskCancelling {
		// Cancelled while its last bytes went out: the object goes too.
		s.mu.Unlock()
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, _ = c.DeleteObject(dctx, &s3.DeleteObjectInput{Bucket: aws.String(t.bucket), Key: aws.String(t.key)})
		cancel()
		return
	}
	if t.state == taskActive && t.polls >= t.pendingPolls {
		t.state, t.status = taskCompleted, ""
	}
	s.mu.Unlock()
}

// writeImage produces the task's image from the volume and uploads it.
func (s *Server) writeImage(ctx context.Context, t *exportTask, vol *frozenVolume, c *s3.Client) error {
	var body io.ReadSeeker
	var size int64
	switch {
	case t.container == "ova":
		f, n, err := s.ova(ctx, t, vol)
		if err != nil {
			return err
		}
		defer os.Remove(f.Name())
		defer f.Close()
		body, size = f, n
	case t.diskFormat == "raw":
		body, size = io.NewSectionReader(vol, 0, vol.size), vol.size
	default:
		f, n, err := tempImage(ctx, t.diskFormat, vol, t.id+"-disk-1.vmdk")
		if err != nil {
			return err
		}
		defer os.Remove(f.Name())
		defer f.Close()
		body, size = f, n
	}
	return s.upload(ctx, c, t.bucket, t.key, body, size)
}

// tempImage writes vol as a streamOptimized VMDK (the project's vmdk
// writer) or a dynamic VHD (disk/vhd) into a temporary file, rewound. The
// writers read the volume's written blocks only.
func tempImage(ctx context.Context, format string, vol *frozenVolume, name string) (*os.File, int64, error) {
	f, err := os.CreateTemp("", "awsfake-export-*."+format)
	if err != nil {
		return nil, 0, err
	}
	fail := func(err error) (*os.File, int64, error) {
		f.Close()
		os.Remove(f.Name())
		return nil, 0, err
	}
	switch format {
	case "vmdk":
		if err := vmdk.Write(ctx, f, vol.source(), disk.WriteOptions{Name: name, Subformat: "streamOptimized"}); err != nil {
			return fail(err)
		}
	case "vhd":
		spec, err := formats.Lookup("vhd")
		if err != nil {
			return fail(err)
		}
		if err := spec.Write(ctx, f, vol.source(), disk.WriteOptions{Subformat: "dynamic"}); err != nil {
			return fail(err)
		}
	default:
		return fail(fmt.Errorf("awsfake: no writer for %s", format))
	}
	n, err := f.Seek(0, io.SeekEnd)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		return fail(err)
	}
	return f, n, nil
}

// ova packs a descriptor and the disk as VM Export does: a tar holding the
// .ovf first, then the disk image.
func (s *Server) ova(ctx context.Context, t *exportTask, vol *frozenVolume) (*os.File, int64, error) {
	diskName := t.id + "-disk-1." + t.diskFormat
	var img io.Reader
	var imgSize int64
	if t.diskFormat == "raw" {
		img, imgSize = io.NewSectionReader(vol, 0, vol.size), vol.size
	} else {
		f, n, err := tempImage(ctx, t.diskFormat, vol, diskName)
		if err != nil {
			return nil, 0, err
		}
		defer os.Remove(f.Name())
		defer f.Close()
		img, imgSize = f, n
	}
	out, err := os.CreateTemp("", "awsfake-export-*.ova")
	if err != nil {
		return nil, 0, err
	}
	fail := func(err error) (*os.File, int64, error) {
		out.Close()
		os.Remove(out.Name())
		return nil, 0, err
	}
	ovf := ovfDescriptor(t, diskName, imgSize, vol.size)
	tw := tar.NewWriter(out)
	for _, m := range []struct {
		name string
		size int64
		r    io.Reader
	}{{t.id + ".ovf", int64(len(ovf)), bytes.NewReader(ovf)}, {diskName, imgSize, img}} {
		if err := tw.WriteHeader(&tar.Header{Name: m.name, Mode: 0o644, Size: m.size, ModTime: time.Now(), Format: tar.FormatUSTAR}); err != nil {
			return fail(err)
		}
		if _, err := io.Copy(tw, m.r); err != nil {
			return fail(err)
		}
	}
	if err := tw.Close(); err != nil {
		return fail(err)
	}
	n, err := out.Seek(0, io.SeekEnd)
	if err == nil {
		_, err = out.Seek(0, io.SeekStart)
	}
	if err != nil {
		return fail(err)
	}
	return out, n, nil
}

// ovfDescriptor is a minimal OVF 1.0 envelope naming the disk, as the
// first member of the OVA.
func ovfDescriptor(t *exportTask, diskName string, fileSize, capacity int64) []byte {
	format := "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"
	if t.diskFormat != "vmdk" {
		format = "http://technet.microsoft.com/en-us/library/bb676673.aspx" // VHD; raw has no registered URI
	}
	return fmt.Appendf(nil, `<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References><File ovf:href="%s" ovf:id="file1" ovf:size="%d"/></References>
  <DiskSection><Info>Virtual disk information</Info>
    <Disk ovf:capacity="%d" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="%s"/>
  </DiskSection>
  <VirtualSystem ovf:id="%s"><Info>Exported from Amazon EC2</Info></VirtualSystem>
</Envelope>
`, diskName, fileSize, capacity, format, t.instanceID)
}

// upload writes the object: one PutObject, or a multipart upload with a
// full-object CRC64NVME checksum when S3Options.PartSize asks for it.
func (s *Server) upload(ctx context.Context, c *s3.Client, bucket, key string, body io.ReadSeeker, size int64) error {
	part := s.opts.S3.PartSize
	if part <= 0 || size <= part {
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: body, ContentLength: aws.Int64(size)})
		return err
	}
	up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: aws.String(bucket), Key: aws.String(key),
		ChecksumAlgorithm: s3types.ChecksumAlgorithmCrc64nvme, ChecksumType: s3types.ChecksumTypeFullObject,
	})
	if err != nil {
		return err
	}
	abort := func(err error) error {
		actx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = c.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key), UploadId: up.UploadId})
		return err
	}
	crc := crc64.New(crc64.MakeTable(crc64NVME))
	var parts []s3types.CompletedPart
	for n, off := int32(1), int64(0); off < size; n, off = n+1, off+part {
		l := min(part, size-off)
		sec := io.NewSectionReader(readerAt{body}, off, l)
		if _, err := io.Copy(crc, sec); err != nil {
			return abort(err)
		}
		if _, err := sec.Seek(0, io.SeekStart); err != nil {
			return abort(err)
		}
		res, err := c.UploadPart(ctx, &s3.UploadPartInput{
			Bucket: aws.String(bucket), Key: aws.String(key), UploadId: up.UploadId, PartNumber: aws.Int32(n),
			Body: sec, ContentLength: aws.Int64(l), ChecksumAlgorithm: s3types.ChecksumAlgorithmCrc64nvme,
		})
		if err != nil {
			return abort(err)
		}
		parts = append(parts, s3types.CompletedPart{ETag: res.ETag, PartNumber: aws.Int32(n), ChecksumCRC64NVME: res.ChecksumCRC64NVME})
	}
	var sum [8]byte
	binary.BigEndian.PutUint64(sum[:], crc.Sum64())
	_, err = c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String(bucket), Key: aws.String(key), UploadId: up.UploadId,
		MultipartUpload:   &s3types.CompletedMultipartUpload{Parts: parts},
		ChecksumCRC64NVME: aws.String(base64.StdEncoding.EncodeToString(sum[:])), ChecksumType: s3types.ChecksumTypeFullObject,
	})
	if err != nil {
		return abort(err)
	}
	return nil
}

// crc64NVME is the CRC-64/NVME polynomial, reversed, as S3 computes
// x-amz-checksum-crc64nvme.
const crc64NVME = 0x9a6c9329ac4bc9b5

// readerAt reads an io.ReadSeeker at offsets (one reader at a time: the
// upload's parts are read one after the other).
type readerAt struct{ r io.ReadSeeker }

func (r readerAt) ReadAt(p []byte, off int64) (int, error) {
	if _, err := r.r.Seek(off, io.SeekStart); err != nil {
		return 0, err
	}
	return io.ReadFull(r.r, p)
}

// s3Client builds the S3 client of the export tasks.
func (s *Server) s3Client() (*s3.Client, error) {
	o := s.opts.S3
	if o.Endpoint == "" {
		return nil, &apiError{http.StatusBadRequest, "InvalidParameterValue", "This endpoint has no Amazon S3 to export to (awsfake Options.S3)."}
	}
	so := s3.Options{
		Region: orDefault(o.Region, s.opts.Region), BaseEndpoint: aws.String(o.Endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(o.AccessKeyID, o.SecretAccessKey, ""),
	}
	if o.HTTPClient != nil {
		so.HTTPClient = o.HTTPClient
	}
	return s3.New(so), nil
}

// --- DescribeExportTasks ---

type describeExportTasksResponse struct {
	XMLName xml.Name `xml:"DescribeExportTasksResponse"`
	ec2Meta
	ExportTasks set[xmlExportTask] `xml:"exportTaskSet"`
}

// describeExportTasks answers ExportTaskId.N and the filters tag:<key>
// and tag-key. Every look at an active task whose object is written
// counts towards Faults.ExportPolls.
func (s *Server) describeExportTasks(q query) (ec2Response, error) {
	ids := q.list("ExportTaskId")
	fs := q.filters()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		if s.exportTasks[id] == nil {
			return nil, &apiError{http.StatusBadRequest, "InvalidExportTaskID.NotFound", fmt.Sprintf("The export task ID '%s' does not exist", id)}
		}
	}
	resp := &describeExportTasksResponse{}
	for _, id := range s.exportOrder {
		t := s.exportTasks[id]
		if len(ids) > 0 && !slices.Contains(ids, id) {
			continue
		}
		ok, err := matchFilters(fs, func(name string) ([]string, bool) { return tagFilterValues(name, s.tagsOf(id)) })
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		if t.state == taskActive {
			t.polls++
			if t.written && t.polls > t.pendingPolls {
				t.state, t.status = taskCompleted, ""
			}
		}
		resp.ExportTasks.Items = append(resp.ExportTasks.Items, s.xmlExportTask(t))
	}
	return resp, nil
}

// xmlExportTask describes t; callers hold s.mu.
func (s *Server) xmlExportTask(t *exportTask) xmlExportTask {
	x := xmlExportTask{ExportTaskID: t.id, Description: t.description, State: t.state, StatusMessage: t.status, TagSet: tagSet(s.tagsOf(t.id))}
	x.InstanceExport.InstanceID, x.InstanceExport.TargetEnvironment = t.instanceID, t.environment
	x.ExportToS3.DiskImageFormat, x.ExportToS3.ContainerFormat = t.diskFormat, t.container
	x.ExportToS3.S3Bucket, x.ExportToS3.S3Key = t.bucket, t.key
	return x
}

// --- CancelExportTask ---

// cancelExportTask cancels an active task: it is cancelling until its
// writer has stopped and removed what it wrote, then cancelled. A task
// that is no longer active cannot be cancelled (IncorrectState), as EC2
// refuses to cancel a completed export.
func (s *Server) cancelExportTask(q query) (ec2Response, error) {
	id := q.get("ExportTaskId")
	if id == "" {
		return nil, missing("ExportTaskId")
	}
	s.mu.Lock()
	t := s.exportTasks[id]
	switch {
	case t == nil:
		s.mu.Unlock()
		return nil, &apiError{http.StatusBadRequest, "InvalidExportTaskID.NotFound", fmt.Sprintf("The export task ID '%s' does not exist", id)}
	case t.state != taskActive:
		state := t.state
		s.mu.Unlock()
		return nil, &apiError{http.StatusBadRequest, "IncorrectState", fmt.Sprintf("Export task %s is %s and cannot be cancelled.", id, state)}
	}
	t.state, t.status = taskCancelling, "Canceling"
	written := t.written
	t.cancel()
	s.mu.Unlock()
	go func() {
		<-t.done
		if written {
			// The object was complete; the cancel removes it too.
			if c, err := s.s3Client(); err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, _ = c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(t.bucket), Key: aws.String(t.key)})
				cancel()
			}
		}
		s.mu.Lock()
		t.state, t.status = taskCancelled, "Canceled by the user."
		s.mu.Unlock()
	}()
	return &returnResponse{XMLName: xml.Name{Local: "CancelExportTaskResponse"}, Return: true}, nil
}

// frozenVolume is a volume's content at one instant (the blocks are
// shared and immutable, see Volume).
type frozenVolume struct {
	blocks map[int64]*block
	size   int64
}

func (v *frozenVolume) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("awsfake: negative offset")
	}
	if off >= v.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && off+int64(n) < v.size {
		pos := off + int64(n)
		idx, within := pos/BlockSize, pos%BlockSize
		want := min(int64(len(p)-n), BlockSize-within, v.size-pos)
		if b, ok := v.blocks[idx]; ok {
			copy(p[n:int64(n)+want], b.data[within:])
		} else {
			clear(p[n : int64(n)+want])
		}
		n += int(want)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// source is the volume as a disk.Source: its written blocks as extents
// (adjacent ones merged), holes never read.
func (v *frozenVolume) source() disk.Source {
	idx := sortedKeys(v.blocks)
	var extents []disk.Extent
	for _, i := range idx {
		off := i * BlockSize
		if n := len(extents); n > 0 && extents[n-1].End() == off {
			extents[n-1].Length += BlockSize
			continue
		}
		extents = append(extents, disk.Extent{Offset: off, Length: BlockSize})
	}
	return &volumeSource{v: v, extents: extents, cur: -1}
}

// volumeSource implements disk.Source over a frozenVolume.
type volumeSource struct {
	v       *frozenVolume
	extents []disk.Extent
	cur     int
	pos     int64 // next offset to read within the current extent
}

func (s *volumeSource) Size() int64 { return s.v.size }

func (s *volumeSource) NextExtent() (disk.Extent, error) {
	s.cur++
	if s.cur >= len(s.extents) {
		return disk.Extent{}, io.EOF
	}
	s.pos = s.extents[s.cur].Offset
	return s.extents[s.cur], nil
}

func (s *volumeSource) Read(p []byte) (int, error) {
	if s.cur < 0 || s.cur >= len(s.extents) {
		return 0, io.EOF
	}
	end := s.extents[s.cur].End()
	if s.pos >= end {
		return 0, io.EOF
	}
	n, err := s.v.ReadAt(p[:min(int64(len(p)), end-s.pos)], s.pos)
	s.pos += int64(n)
	if errors.Is(err, io.EOF) && s.pos < end {
		return n, io.ErrUnexpectedEOF
	}
	return n, nil
}

// ExportTaskInfo describes an export task.
type ExportTaskInfo struct {
	ID, InstanceID, State, StatusMessage string
	Bucket, Key                          string
	DiskImageFormat, ContainerFormat     string
	Tags                                 map[string]string
}

// ExportTasks returns every export task, in creation order, whatever its
// state.
func (s *Server) ExportTasks() []ExportTaskInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ExportTaskInfo
	for _, id := range s.exportOrder {
		t := s.exportTasks[id]
		out = append(out, ExportTaskInfo{ID: t.id, InstanceID: t.instanceID, State: t.state, StatusMessage: t.status,
			Bucket: t.bucket, Key: t.key, DiskImageFormat: t.diskFormat, ContainerFormat: t.container, Tags: maps.Clone(s.tags[id])})
	}
	return out
}

// LiveExportTasks returns the tasks still active or cancelling.
func (s *Server) LiveExportTasks() []ExportTaskInfo {
	var out []ExportTaskInfo
	for _, t := range s.ExportTasks() {
		if t.State == taskActive || t.State == taskCancelling {
			out = append(out, t)
		}
	}
	return out
}

// WaitCancels waits until no task is cancelling (a cancel settles once
// the task's writer has stopped and its object is removed), or ctx ends.
func (s *Server) WaitCancels(ctx context.Context) error {
	cancelling := func() bool {
		return slices.ContainsFunc(s.ExportTasks(), func(t ExportTaskInfo) bool { return t.State == taskCancelling })
	}
	for cancelling() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}
