package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/disk/disktest"
	"github.com/hypersdk/hypersdk/internal/s3test"
	"github.com/hypersdk/hypersdk/providers/aws/awsfake"
)

// An export with --method export-task through the daemon: the API refuses
// a method the provider does not offer (422 at body.method, naming its
// methods), the job has VM Export write the instance's VMDK to S3 (the
// fake EC2 endpoint and versitygw live in this process), downloads it in
// parallel ranges, verifies it and deletes the object; the daemon's
// orphan sweep at start has cancelled the running task of a job its store
// does not know. No log line holds the secret or a pre-signed URL.
func TestAWSExportTaskThroughTheDaemon(t *testing.T) {
	t.Parallel()
	disktest.QemuImg(t)
	const keyID, secret, region, bucket = "AKIATASKTEST00000001", "export/task/secret/for/the/fake/endpoint0", "eu-west-3", "exports"
	s3srv := s3test.Start(t, s3test.Options{Region: region, AccessKeyID: keyID, SecretAccessKey: secret})
	s3srv.CreateBucket(t, bucket)
	vol, err := awsfake.NewSampleVolume("vol-0f00000000000000c", 1, 31)
	if err != nil {
		t.Fatal(err)
	}
	if err := vol.WriteRandom(300*awsfake.BlockSize, 16<<20, 32); err != nil {
		t.Fatal(err)
	}
	srv, err := awsfake.New(awsfake.Options{
		AccessKeyID: keyID, SecretAccessKey: secret, Region: region,
		Faults: awsfake.Faults{ExportFor: time.Hour}, // until the orphan is made
		S3:     awsfake.S3Options{Endpoint: s3srv.URL, AccessKeyID: keyID, SecretAccessKey: secret},
		Spec: awsfake.Spec{
			Volumes: []*awsfake.Volume{vol},
			Instances: []awsfake.Instance{{
				ID: "i-0f00000000000000c", Type: "t3.micro", State: "stopped", NetworkInterfaces: 1,
				Tags: map[string]string{"Name": "solo"}, Devices: []awsfake.Device{{Name: "/dev/xvda", VolumeID: vol.ID}},
			}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(srv.Close)

	// The task of a job this daemon's store does not hold, still running:
	// left by a daemon that died (or whose store was reset).
	c := ec2.New(ec2.Options{Region: region, BaseEndpoint: aws.String(srv.URL()),
		Credentials: credentials.NewStaticCredentialsProvider(keyID, secret, "")})
	if _, err := c.CreateInstanceExportTask(context.Background(), &ec2.CreateInstanceExportTaskInput{
		InstanceId: aws.String("i-0f00000000000000c"), TargetEnvironment: ec2types.ExportEnvironmentVmware,
		ExportToS3Task: &ec2types.ExportToS3TaskSpecification{DiskImageFormat: ec2types.DiskImageFormatVmdk, S3Bucket: aws.String(bucket), S3Prefix: aws.String("hypersdk/")},
		TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeExportInstanceTask,
			Tags: []ec2types.Tag{{Key: aws.String("hypersdk:job"), Value: aws.String("0190aaaa-dead-7000-8000-000000000000")}}}},
	}); err != nil {
		t.Fatal(err)
	}
	srv.SetFaults(awsfake.Faults{ExportPolls: 1})

	dmn := newDaemon(t, fmt.Sprintf(`
providers:
  - name: aws1
    type: aws
    region: %s
    access_key_id: %s
    secret_access_key: {env: TEST_AWS_SECRET}
    endpoints: {ec2: %s, ebs: %s, s3: %s}
    export_task: {bucket: %s, delete_object: true}
`, region, keyID, srv.URL(), srv.URL(), s3srv.URL, bucket), "HYPERVISORD_TEST_REAL_PROVIDERS=1", "TEST_AWS_SECRET="+secret)
	dmn.start()

	waitUntil(t, "the orphaned task cancelled by the sweep at start", time.Minute, func() bool {
		tasks := srv.ExportTasks()
		return len(tasks) == 1 && tasks[0].State == "cancelled"
	})

	var provs struct{ Items []apitypes.ProviderInfo }
	if code := dmn.call("GET", "/api/v1/providers", nil, &provs); code != 200 || len(provs.Items) != 1 ||
		!slices.Equal(provs.Items[0].Methods, []string{"ebs-direct", "export-task"}) {
		t.Fatalf("providers: %d %+v", code, provs.Items)
	}
	var problem struct {
		Errors []struct{ Location, Message string }
	}
	if code := dmn.call("POST", "/api/v1/jobs", map[string]any{"provider": "aws1", "vm": "solo", "method": "vm-import"}, &problem); code != 422 ||
		len(problem.Errors) != 1 || problem.Errors[0].Location != "body.method" || !strings.Contains(problem.Errors[0].Message, "ebs-direct, export-task") {
		t.Fatalf("unknown method: %d %+v", code, problem)
	}

	var j apitypes.Job
	if code := dmn.call("POST", "/api/v1/jobs", map[string]any{
		"provider": "aws1", "vm": "solo", "method": "export-task", "format": "disks", "disk_format": "vmdk",
	}, &j); code != 201 {
		t.Fatalf("submit: %d\n%s", code, dmn.out.String())
	}
	if j.Spec.Options.Method != "export-task" {
		t.Errorf("stored spec method %q", j.Spec.Options.Method)
	}
	deadline := time.Now().Add(3 * time.Minute)
	for !j.State.Terminal() {
		if time.Now().After(deadline) {
			t.Fatalf("export still %s:\n%s", j.State, dmn.out.String())
		}
		time.Sleep(100 * time.Millisecond)
		dmn.call("GET", "/api/v1/jobs/"+j.ID, nil, &j)
	}
	if j.State != apitypes.JobSucceeded {
		t.Fatalf("export %s: %s\n%s", j.State, j.Error, dmn.out.String())
	}
	tasks := srv.ExportTasks()
	if len(tasks) != 2 || tasks[1].Tags["hypersdk:job"] != j.ID || tasks[1].State != "completed" {
		t.Fatalf("export tasks %+v", tasks)
	}
	if n := srv.Stats().Requests["CreateSnapshots"]; n != 0 {
		t.Errorf("%d snapshot sets taken by an export-task export", n)
	}
	ranged := 0
	for _, r := range s3srv.Requests() {
		if r.Method == "GET" && r.Presigned && r.Range != "" && r.Path == "/"+bucket+"/"+tasks[1].Key {
			ranged++
		}
	}
	if ranged < 2 {
		t.Errorf("%d ranged GETs of the object: want several in parallel", ranged)
	}
	if keys := s3srv.Keys(t, bucket); len(keys) != 0 {
		t.Errorf("objects left (delete_object is set): %v", keys)
	}
	dir := j.Result.OutputDir
	check := exec.Command("sha256sum", "--strict", "-c", j.Result.Manifest)
	check.Dir = dir
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum -c: %v\n%s", err, out)
	}
	want := filepath.Join(t.TempDir(), "volume.raw")
	if err := vol.WriteRawImage(want); err != nil {
		t.Fatal(err)
	}
	disktest.Compare(t, filepath.Join(dir, "solo-disk-0.vmdk"), "vmdk", want, "raw")
	for _, bad := range []string{secret, "X-Amz-Signature", "X-Amz-Credential"} {
		if strings.Contains(dmn.out.String(), bad) {
			t.Errorf("the daemon's output holds %q", bad)
		}
	}
}
