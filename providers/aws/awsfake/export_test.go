package awsfake

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/hypersdk/hypersdk/disk/formats"
	"github.com/hypersdk/hypersdk/internal/s3test"
)

// exportFixture: "solo" (one sample volume), "pair" (two volumes),
// "win" (Windows), "market" (launched from a Marketplace AMI), "crypt"
// (an encrypted volume), "huge" (a 2 TiB volume), "twonics" (two network
// interfaces), with an S3 bucket "exports" on versitygw.
type exportFixture struct {
	*fixture
	s3  *s3test.Server
	vol *Volume
}

func newExportFixture(t *testing.T, faults Faults, partSize int64) *exportFixture {
	t.Helper()
	s3srv := s3test.Start(t, s3test.Options{Region: testRegion, AccessKeyID: testKeyID, SecretAccessKey: testSecret})
	s3srv.CreateBucket(t, "exports")
	solo, err := NewSampleVolume("vol-0e0000000000000a1", 1, 5)
	if err != nil {
		t.Fatal(err)
	}
	one := func(id string) *Volume {
		v := NewVolume(id, 1)
		if err := v.WriteRandom(0, BlockSize, 9); err != nil {
			t.Fatal(err)
		}
		return v
	}
	v2, v3, vw, vm, vn := one("vol-0e0000000000000a2"), one("vol-0e0000000000000a3"), one("vol-0e0000000000000a4"), one("vol-0e0000000000000a5"), one("vol-0e0000000000000a8")
	crypt := one("vol-0e0000000000000a6")
	crypt.Encrypted = true
	huge := NewVolume("vol-0e0000000000000a7", 2048)
	spec := Spec{
		Volumes: []*Volume{solo, v2, v3, vw, vm, crypt, huge, vn},
		Images: []Image{
			{ID: "ami-0000000000000linux", Name: "al2023"},
			{ID: "ami-00000000000market", Name: "vendor-appliance", ProductCodes: []ProductCode{{ID: "abcdefghijklmnop0123456789", Type: "marketplace"}}},
		},
		Instances: []Instance{
			{ID: "i-0e00000000000000a", Type: "t3.micro", ImageID: "ami-0000000000000linux", NetworkInterfaces: 1, Tags: map[string]string{"Name": "solo"}, Devices: []Device{{"/dev/xvda", solo.ID}}},
			{ID: "i-0e00000000000000b", Type: "t3.micro", Tags: map[string]string{"Name": "pair"}, Devices: []Device{{"/dev/xvda", v2.ID}, {"/dev/sdf", v3.ID}}},
			{ID: "i-0e00000000000000c", Type: "t3.micro", Platform: "windows", PlatformDetails: "Windows", UsageOperation: "RunInstances:0002", Devices: []Device{{"/dev/sda1", vw.ID}}},
			{ID: "i-0e00000000000000d", Type: "t3.micro", ImageID: "ami-00000000000market", Devices: []Device{{"/dev/xvda", vm.ID}}},
			{ID: "i-0e00000000000000e", Type: "t3.micro", Devices: []Device{{"/dev/xvda", crypt.ID}}},
			{ID: "i-0e00000000000000f", Type: "t3.micro", Devices: []Device{{"/dev/xvda", huge.ID}}},
			{ID: "i-0e000000000000010", Type: "t3.micro", NetworkInterfaces: 2, Devices: []Device{{"/dev/xvda", vn.ID}}},
		},
	}
	f := newFixture(t, Options{Spec: spec, Faults: faults, S3: S3Options{
		Endpoint: s3srv.URL, AccessKeyID: s3srv.AccessKeyID, SecretAccessKey: s3srv.SecretAccessKey, Region: s3srv.Region, PartSize: partSize,
	}})
	return &exportFixture{fixture: f, s3: s3srv, vol: solo}
}

func (f *exportFixture) create(t *testing.T, instance, diskFormat, container string) (*ec2.CreateInstanceExportTaskOutput, error) {
	t.Helper()
	return f.ec2.CreateInstanceExportTask(context.Background(), &ec2.CreateInstanceExportTaskInput{
		InstanceId: aws.String(instance), TargetEnvironment: ec2types.ExportEnvironmentVmware, Description: aws.String("test"),
		ExportToS3Task: &ec2types.ExportToS3TaskSpecification{
			DiskImageFormat: ec2types.DiskImageFormat(diskFormat), ContainerFormat: ec2types.ContainerFormat(container),
			S3Bucket: aws.String("exports"), S3Prefix: aws.String("vms/"),
		},
		TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeExportInstanceTask,
			Tags: []ec2types.Tag{{Key: aws.String("hypersdk:job"), Value: aws.String("job-1")}}}},
	})
}

func (f *exportFixture) object(t *testing.T, key string) []byte {
	t.Helper()
	out, err := f.s3.Client().GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("exports"), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (f *exportFixture) volumeSHA() [32]byte { return f.vol.SHA256() }

// decoded returns the SHA-256 of the virtual disk an image holds.
func decoded(t *testing.T, format string, image []byte) [32]byte {
	t.Helper()
	if format == "raw" {
		return sha256.Sum256(image)
	}
	path := filepath.Join(t.TempDir(), "image."+format)
	if err := os.WriteFile(path, image, 0o644); err != nil {
		t.Fatal(err)
	}
	img, file, err := formats.Open(path, "")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	defer img.Close()
	if want := map[string]string{"vmdk": "vmdk", "vhd": "vhd"}[format]; string(img.Info().Format) != want {
		t.Fatalf("image is %s, want %s", img.Info().Format, want)
	}
	if format == "vmdk" && img.Info().Subformat != "streamOptimized" {
		t.Fatalf("VMDK subformat %q, want streamOptimized", img.Info().Subformat)
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(img, 0, img.Info().VirtualSize)); err != nil {
		t.Fatal(err)
	}
	return [32]byte(h.Sum(nil))
}

func TestExportTaskWritesEveryFormatToS3(t *testing.T) {
	f := newExportFixture(t, Faults{ExportPolls: 2}, 0)
	ctx := context.Background()
	// RAW is TestExportTaskMultipartObjectHasAFullObjectCRC64's: a raw
	// object is the whole volume, 1 GiB, and costs its upload once.
	for _, tc := range []struct{ disk, container string }{{"VMDK", "ova"}, {"VMDK", ""}, {"VHD", ""}} {
		t.Run(tc.disk+"-"+tc.container, func(t *testing.T) {
			out, err := f.create(t, "solo-ignored-name", tc.disk, tc.container)
			var ae smithy.APIError
			if !errors.As(err, &ae) || ae.ErrorCode() != "InvalidInstanceID.NotFound" {
				t.Fatalf("export of an unknown instance: %v", err)
			}
			out, err = f.create(t, "i-0e00000000000000a", tc.disk, tc.container)
			if err != nil {
				t.Fatal(err)
			}
			task := out.ExportTask
			id := aws.ToString(task.ExportTaskId)
			ext := strings.ToLower(tc.disk)
			if tc.container != "" {
				ext = "ova"
			}
			if !strings.HasPrefix(id, "export-i-") || task.State != ec2types.ExportTaskStateActive ||
				aws.ToString(task.ExportToS3Task.S3Key) != "vms/"+id+"."+ext || len(task.Tags) != 1 {
				t.Fatalf("created %+v / %+v", task, task.ExportToS3Task)
			}
			// The SDK's own waiter runs against the fake.
			if err := ec2.NewExportTaskCompletedWaiter(f.ec2, func(o *ec2.ExportTaskCompletedWaiterOptions) {
				o.MinDelay, o.MaxDelay = 5*time.Millisecond, 20*time.Millisecond
			}).Wait(ctx, &ec2.DescribeExportTasksInput{ExportTaskIds: []string{id}}, time.Minute); err != nil {
				t.Fatal(err)
			}
			obj := f.object(t, "vms/"+id+"."+ext)
			image := obj
			if tc.container == "ova" {
				tr := tar.NewReader(bytes.NewReader(obj))
				var names []string
				for {
					h, err := tr.Next()
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
					names = append(names, h.Name)
					if strings.HasSuffix(h.Name, "."+strings.ToLower(tc.disk)) {
						image, _ = io.ReadAll(tr)
					}
				}
				if len(names) != 2 || !strings.HasSuffix(names[0], ".ovf") {
					t.Fatalf("OVA members %v: want the .ovf first, then the disk", names)
				}
			}
			if decoded(t, strings.ToLower(tc.disk), image) != f.volumeSHA() {
				t.Fatalf("the %s image does not hold the volume", tc.disk)
			}
		})
	}
	// Filters: by the job's tag, by id; an unknown id is refused.
	res, err := f.ec2.DescribeExportTasks(ctx, &ec2.DescribeExportTasksInput{Filters: []ec2types.Filter{{Name: aws.String("tag:hypersdk:job"), Values: []string{"job-1"}}}})
	if err != nil || len(res.ExportTasks) != 3 {
		t.Fatalf("by tag: %d tasks, %v", len(res.ExportTasks), err)
	}
	res, err = f.ec2.DescribeExportTasks(ctx, &ec2.DescribeExportTasksInput{Filters: []ec2types.Filter{{Name: aws.String("tag:hypersdk:job"), Values: []string{"job-2"}}}})
	if err != nil || len(res.ExportTasks) != 0 {
		t.Fatalf("by another tag: %d tasks, %v", len(res.ExportTasks), err)
	}
	_, err = f.ec2.DescribeExportTasks(ctx, &ec2.DescribeExportTasksInput{ExportTaskIds: []string{"export-i-0123456789abcdef0"}})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "InvalidExportTaskID.NotFound" {
		t.Fatalf("unknown id: %v", err)
	}
	// A completed task cannot be cancelled.
	_, err = f.ec2.CancelExportTask(ctx, &ec2.CancelExportTaskInput{ExportTaskId: res2id(t, f)})
	if !errors.As(err, &ae) || ae.ErrorCode() != "IncorrectState" {
		t.Fatalf("cancel of a completed task: %v", err)
	}
}

func res2id(t *testing.T, f *exportFixture) *string {
	t.Helper()
	tasks := f.srv.ExportTasks()
	if len(tasks) == 0 {
		t.Fatal("no task")
	}
	return aws.String(tasks[0].ID)
}

func TestExportTaskMultipartObjectHasAFullObjectCRC64(t *testing.T) {
	f := newExportFixture(t, Faults{}, 5<<20)
	out, err := f.create(t, "i-0e00000000000000a", "RAW", "")
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(out.ExportTask.ExportTaskId)
	if err := ec2.NewExportTaskCompletedWaiter(f.ec2, func(o *ec2.ExportTaskCompletedWaiterOptions) {
		o.MinDelay, o.MaxDelay = 10*time.Millisecond, 50*time.Millisecond
	}).
		Wait(context.Background(), &ec2.DescribeExportTasksInput{ExportTaskIds: []string{id}}, time.Minute); err != nil {
		t.Fatal(err)
	}
	head, err := f.s3.Client().HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String("exports"), Key: aws.String("vms/" + id + ".raw"),
		ChecksumMode: s3types.ChecksumModeEnabled})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(aws.ToString(head.ETag), "-") || aws.ToString(head.ChecksumCRC64NVME) == "" || head.ChecksumType != s3types.ChecksumTypeFullObject {
		t.Fatalf("multipart object: ETag %s, crc64nvme %q, type %q", aws.ToString(head.ETag), aws.ToString(head.ChecksumCRC64NVME), head.ChecksumType)
	}
	if sha256.Sum256(f.object(t, "vms/"+id+".raw")) != f.volumeSHA() {
		t.Fatal("the multipart object does not hold the volume")
	}
}

func TestExportTaskRefusalsAsVMExportDocumentsThem(t *testing.T) {
	f := newExportFixture(t, Faults{}, 0)
	for id, want := range map[string]string{
		"i-0e00000000000000b": "one volume",
		"i-0e00000000000000c": "Windows",
		"i-0e00000000000000d": "Marketplace",
		"i-0e00000000000000e": "encrypted",
		"i-0e00000000000000f": "1 TiB",
		"i-0e000000000000010": "network interface",
	} {
		_, err := f.create(t, id, "VMDK", "ova")
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorCode() != "NotExportable" || !strings.Contains(ae.ErrorMessage(), want) {
			t.Errorf("%s: %v, want NotExportable naming %q", id, err, want)
		}
	}
	if n := len(f.srv.ExportTasks()); n != 0 {
		t.Fatalf("%d tasks created by refused requests", n)
	}
	// The AMI's billing fields and product codes are what DescribeImages says.
	res, err := f.ec2.DescribeImages(context.Background(), &ec2.DescribeImagesInput{ImageIds: []string{"ami-00000000000market"}})
	if err != nil || len(res.Images) != 1 || len(res.Images[0].ProductCodes) != 1 || res.Images[0].ProductCodes[0].ProductCodeType != ec2types.ProductCodeValuesMarketplace {
		t.Fatalf("DescribeImages: %+v, %v", res, err)
	}
	_, err = f.ec2.DescribeImages(context.Background(), &ec2.DescribeImagesInput{ImageIds: []string{"ami-0000000000000gone"}})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "InvalidAMIID.NotFound" {
		t.Fatalf("deregistered AMI: %v", err)
	}
}

func TestCancelledAndFailedTasksLeaveNoObject(t *testing.T) {
	f := newExportFixture(t, Faults{ExportFor: time.Hour}, 0)
	ctx := context.Background()
	out, err := f.create(t, "i-0e00000000000000a", "VMDK", "ova")
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(out.ExportTask.ExportTaskId)
	if _, err := f.ec2.CancelExportTask(ctx, &ec2.CancelExportTaskInput{ExportTaskId: aws.String(id)}); err != nil {
		t.Fatal(err)
	}
	if err := ec2.NewExportTaskCancelledWaiter(f.ec2, func(o *ec2.ExportTaskCancelledWaiterOptions) {
		o.MinDelay, o.MaxDelay = 5*time.Millisecond, 20*time.Millisecond
	}).
		Wait(ctx, &ec2.DescribeExportTasksInput{ExportTaskIds: []string{id}}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if keys := f.s3.Keys(t, "exports"); len(keys) != 0 {
		t.Fatalf("objects left after a cancel: %v", keys)
	}
	f.srv.SetFaults(Faults{ExportFail: "ClientError: the instance's disk could not be read"})
	out, err = f.create(t, "i-0e00000000000000a", "RAW", "")
	if err != nil {
		t.Fatal(err)
	}
	id = aws.ToString(out.ExportTask.ExportTaskId)
	for deadline := time.Now().Add(time.Minute); ; {
		res, err := f.ec2.DescribeExportTasks(ctx, &ec2.DescribeExportTasksInput{ExportTaskIds: []string{id}})
		if err != nil {
			t.Fatal(err)
		}
		if et := res.ExportTasks[0]; et.State == ec2types.ExportTaskStateCancelled {
			if !strings.Contains(aws.ToString(et.StatusMessage), "could not be read") {
				t.Fatalf("status %q", aws.ToString(et.StatusMessage))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the failing task never ended")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if keys := f.s3.Keys(t, "exports"); len(keys) != 0 {
		t.Fatalf("objects left by a failed task: %v", keys)
	}
	if strings.Contains(f.logs.String(), testSecret) || strings.Contains(f.logs.String(), f.s3.SecretAccessKey) {
		t.Fatal("a secret reached the log")
	}
}
