package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/config"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/providers/aws"
	"github.com/hypersdk/hypersdk/providers/aws/awsfake"
)

// A daemon that starts deletes the snapshots of jobs that are over — here
// a finished job of its store, whose set was left as a kill -9 mid-export
// leaves it — and keeps those of a `hyperctl export --local` it cannot ask
// about.
func TestDaemonSweepsOrphanSnapshotsAtStart(t *testing.T) {
	const keyID, secret, region = "AKIASWEEPTEST0000001", "sweep/secret/key/for/the/fake/endpoint00", "eu-west-3"
	vol, err := awsfake.NewSampleVolume("vol-0f00000000000000a", 1, 5)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := awsfake.New(awsfake.Options{
		AccessKeyID: keyID, SecretAccessKey: secret, Region: region,
		Spec: awsfake.Spec{
			Volumes: []*awsfake.Volume{vol},
			Instances: []awsfake.Instance{{
				ID: "i-0f00000000000000a", Type: "t3.micro", State: "stopped",
				Tags: map[string]string{"Name": "sweepme"}, Devices: []awsfake.Device{{Name: "/dev/xvda", VolumeID: vol.ID}},
			}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(srv.Close)

	dmn := newDaemon(t, fmt.Sprintf(`
providers:
  - name: aws1
    type: aws
    region: %s
    access_key_id: %s
    secret_access_key: {env: TEST_AWS_SECRET}
    endpoints: {ec2: %s, ebs: %s}
`, region, keyID, srv.URL(), srv.URL()), "HYPERVISORD_TEST_REAL_PROVIDERS=1", "TEST_AWS_SECRET="+secret)
	dmn.start()
	var j apitypes.Job
	if code := dmn.call("POST", "/api/v1/jobs", map[string]any{"provider": "aws1", "vm": "sweepme", "format": "disks", "disk_format": "raw"}, &j); code != 201 {
		t.Fatalf("submit: %d\n%s", code, dmn.out.String())
	}
	deadline := time.Now().Add(time.Minute)
	for !j.State.Terminal() {
		if time.Now().After(deadline) {
			t.Fatalf("export still %s", j.State)
		}
		time.Sleep(50 * time.Millisecond)
		dmn.call("GET", "/api/v1/jobs/"+j.ID, nil, &j)
	}
	if j.State != apitypes.JobSucceeded {
		t.Fatalf("export %s: %s", j.State, j.Error)
	}
	dmn.kill()

	// What a daemon killed during the job's export would have left, and a
	// local export's set.
	p, err := aws.NewProvider("sweep-test", aws.Config{
		Region: region, AccessKeyID: keyID, SecretAccessKey: config.NewSecret(secret),
		Endpoints: aws.Endpoints{EC2: srv.URL(), EBS: srv.URL()},
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := p.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer p.Disconnect()
	for _, job := range []string{j.ID, "local-0f0f"} {
		if _, err := p.PrepareExport(ctx, "sweepme", providers.ExportOptions{Format: providers.FormatOVF, JobID: job}); err != nil {
			t.Fatal(err)
		}
	}
	jobsAlive := func() []string {
		var out []string
		for _, s := range srv.AliveSnapshots() {
			out = append(out, s.Tags[aws.TagJob])
		}
		return out
	}
	if got := jobsAlive(); !slices.Equal(got, []string{j.ID, "local-0f0f"}) {
		t.Fatalf("snapshots before the restart are of jobs %v", got)
	}

	dmn.start()
	deadline = time.Now().Add(30 * time.Second)
	for slices.Contains(jobsAlive(), j.ID) {
		if time.Now().After(deadline) {
			t.Fatalf("the finished job's snapshot outlived the daemon's start:\n%s", dmn.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := jobsAlive(); !slices.Equal(got, []string{"local-0f0f"}) {
		t.Errorf("after the sweep, snapshots of jobs %v are alive; want the local export's only", got)
	}
}
