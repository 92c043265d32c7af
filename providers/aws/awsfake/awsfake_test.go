package awsfake

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ebs"
	ebstypes "github.com/aws/aws-sdk-go-v2/service/ebs/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
)

const (
	testKeyID  = "AKIAFAKEFAKEFAKE0001"
	testSecret = "s3cr3t/never+in+a+log+line+0123456789abc"
	testRegion = "eu-west-3"
)

// fixture is a started fake with real SDK clients pointed at it.
type fixture struct {
	srv  *Server
	ec2  *ec2.Client
	ebs  *ebs.Client
	logs *bytes.Buffer
}

// testSpec: 12 instances (more than two DescribeInstances pages of 5);
// i-0000000000000000a has two sample volumes, the others one small volume
// each.
func testSpec(t *testing.T) Spec {
	t.Helper()
	root, err := NewSampleVolume("vol-0000000000000000a", 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	data, err := NewSampleVolume("vol-0000000000000000b", 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	data.Tags = map[string]string{"Name": "data", "team": "storage"}
	spec := Spec{
		Volumes: []*Volume{root, data},
		Instances: []Instance{{
			ID: "i-0000000000000000a", Type: "m5.large", BootMode: "uefi",
			Tags:    map[string]string{"Name": "web-1", "env": "prod"},
			Devices: []Device{{"/dev/xvda", root.ID}, {"/dev/sdf", data.ID}},
		}},
	}
	for i := 1; i <= 11; i++ {
		v := NewVolume(fmt.Sprintf("vol-1%016x", i), 1)
		if err := v.WriteRandom(0, BlockSize, uint64(i)); err != nil {
			t.Fatal(err)
		}
		state := "running"
		if i%3 == 0 {
			state = "stopped"
		}
		spec.Volumes = append(spec.Volumes, v)
		spec.Instances = append(spec.Instances, Instance{
			ID: fmt.Sprintf("i-1%016x", i), Type: "t3.micro", State: state,
			Tags:    map[string]string{"Name": fmt.Sprintf("batch-%02d", i)},
			Devices: []Device{{"/dev/xvda", v.ID}},
		})
	}
	return spec
}

func newFixture(t *testing.T, opts Options) *fixture {
	t.Helper()
	logs := &bytes.Buffer{}
	opts.AccessKeyID, opts.SecretAccessKey, opts.Region = testKeyID, testSecret, testRegion
	opts.Log = slog.New(slog.NewTextHandler(&lockedWriter{w: logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(srv.Close)
	cfg := sdkConfig(testKeyID, testSecret)
	return &fixture{
		srv:  srv,
		ec2:  ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = aws.String(srv.URL()) }),
		ebs:  ebs.NewFromConfig(cfg, func(o *ebs.Options) { o.BaseEndpoint = aws.String(srv.URL()) }),
		logs: logs,
	}
}

// sdkConfig is an aws.Config with static keys and a retryer that retries
// quickly and without a retry quota, so throttling tests stay fast.
func sdkConfig(keyID, secret string) aws.Config {
	return aws.Config{
		Region:      testRegion,
		Credentials: credentials.NewStaticCredentialsProvider(keyID, secret, ""),
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = 12
				o.RateLimiter = ratelimit.None
				o.Backoff = retry.NewExponentialJitterBackoff(5 * time.Millisecond)
			})
		},
	}
}

func TestDescribeInstancesPaginatesAndFilters(t *testing.T) {
	f := newFixture(t, Options{Spec: testSpec(t)})
	ctx := context.Background()

	var ids []string
	pages := 0
	p := ec2.NewDescribeInstancesPaginator(f.ec2, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(5)})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, r := range out.Reservations {
			for _, in := range r.Instances {
				ids = append(ids, aws.ToString(in.InstanceId))
			}
		}
	}
	if pages != 3 || len(ids) != 12 || len(slices.Compact(slices.Sorted(slices.Values(ids)))) != 12 {
		t.Fatalf("paginator: %d pages, %d ids %v; want 3 pages of 12 distinct instances", pages, len(ids), ids)
	}

	out, err := f.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{
		Filters: []ec2types.Filter{{Name: aws.String("tag:Name"), Values: []string{"web-*"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Reservations) != 1 || len(out.Reservations[0].Instances) != 1 {
		t.Fatalf("tag:Name=web-* matched %d reservations", len(out.Reservations))
	}
	in := out.Reservations[0].Instances[0]
	if aws.ToString(in.InstanceId) != "i-0000000000000000a" || in.InstanceType != "m5.large" ||
		in.State.Name != ec2types.InstanceStateNameRunning || aws.ToInt32(in.State.Code) != 16 ||
		in.Architecture != ec2types.ArchitectureValuesX8664 || in.BootMode != ec2types.BootModeValuesUefi ||
		aws.ToString(in.PlatformDetails) != "Linux/UNIX" || aws.ToString(in.RootDeviceName) != "/dev/xvda" {
		t.Fatalf("instance decoded wrong: %+v", in)
	}
	if len(in.BlockDeviceMappings) != 2 || aws.ToString(in.BlockDeviceMappings[1].DeviceName) != "/dev/sdf" ||
		aws.ToString(in.BlockDeviceMappings[1].Ebs.VolumeId) != "vol-0000000000000000b" {
		t.Fatalf("block device mappings: %+v", in.BlockDeviceMappings)
	}
	if tagValue(in.Tags, "Name") != "web-1" || tagValue(in.Tags, "env") != "prod" {
		t.Fatalf("tags: %+v", in.Tags)
	}

	out, err = f.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{
		Filters: []ec2types.Filter{{Name: aws.String("instance-state-name"), Values: []string{"stopped"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := countInstances(out); n != 3 {
		t.Fatalf("instance-state-name=stopped matched %d instances, want 3", n)
	}
	out, err = f.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{"i-10000000000000002"}})
	if err != nil || countInstances(out) != 1 {
		t.Fatalf("by id: %v, %d instances", err, countInstances(out))
	}
	_, err = f.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{"i-0123456789abcdef0"}})
	requireAPIError(t, err, "InvalidInstanceID.NotFound", http.StatusBadRequest)
	_, err = f.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{
		Filters: []ec2types.Filter{{Name: aws.String("no-such-filter"), Values: []string{"x"}}},
	})
	requireAPIError(t, err, "InvalidParameterValue", http.StatusBadRequest)
}

func TestDescribeInstanceTypesAndVolumes(t *testing.T) {
	f := newFixture(t, Options{Spec: testSpec(t)})
	ctx := context.Background()

	types, err := f.ec2.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{
		InstanceTypes: []ec2types.InstanceType{"m5.large", "t3.micro"},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := map[ec2types.InstanceType][2]int64{}
	for _, it := range types.InstanceTypes {
		got[it.InstanceType] = [2]int64{int64(aws.ToInt32(it.VCpuInfo.DefaultVCpus)), aws.ToInt64(it.MemoryInfo.SizeInMiB)}
	}
	if got["m5.large"] != [2]int64{2, 8192} || got["t3.micro"] != [2]int64{2, 1024} || len(got) != 2 {
		t.Fatalf("instance types: %v", got)
	}
	_, err = f.ec2.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{InstanceTypes: []ec2types.InstanceType{"x9.huge"}})
	requireAPIError(t, err, "InvalidInstanceType", http.StatusBadRequest)

	vols, err := f.ec2.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{
		Filters: []ec2types.Filter{{Name: aws.String("attachment.instance-id"), Values: []string{"i-0000000000000000a"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(vols.Volumes) != 2 {
		t.Fatalf("volumes of i-…a: %d", len(vols.Volumes))
	}
	data := vols.Volumes[1]
	if aws.ToString(data.VolumeId) != "vol-0000000000000000b" || aws.ToInt32(data.Size) != 2 ||
		data.State != ec2types.VolumeStateInUse || len(data.Attachments) != 1 ||
		aws.ToString(data.Attachments[0].Device) != "/dev/sdf" || tagValue(data.Tags, "team") != "storage" {
		t.Fatalf("volume decoded wrong: %+v", data)
	}

	n, pages := 0, 0
	vp := ec2.NewDescribeVolumesPaginator(f.ec2, &ec2.DescribeVolumesInput{MaxResults: aws.Int32(5)})
	for vp.HasMorePages() {
		out, err := vp.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n += len(out.Volumes)
		pages++
	}
	if n != 13 || pages != 3 {
		t.Fatalf("volume paginator: %d volumes in %d pages, want 13 in 3", n, pages)
	}
}

func TestSnapshotLifecycleThroughWaiter(t *testing.T) {
	f := newFixture(t, Options{Spec: testSpec(t), Faults: Faults{PendingPolls: 3}})
	ctx := context.Background()

	created, err := f.ec2.CreateSnapshots(ctx, &ec2.CreateSnapshotsInput{
		InstanceSpecification: &ec2types.InstanceSpecification{InstanceId: aws.String("i-0000000000000000a")},
		CopyTagsFromSource:    ec2types.CopyTagsFromSourceVolume,
		TagSpecifications: []ec2types.TagSpecification{{
			ResourceType: ec2types.ResourceTypeSnapshot,
			Tags:         []ec2types.Tag{{Key: aws.String("hypersdk:job"), Value: aws.String("job-42")}},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(created.Snapshots) != 2 {
		t.Fatalf("CreateSnapshots made %d snapshots, want one per volume", len(created.Snapshots))
	}
	var ids []string
	for _, sn := range created.Snapshots {
		ids = append(ids, aws.ToString(sn.SnapshotId))
		if sn.State != ec2types.SnapshotStatePending || tagValue(sn.Tags, "hypersdk:job") != "job-42" || !strings.HasPrefix(ids[len(ids)-1], "snap-") {
			t.Fatalf("created snapshot: %+v", sn)
		}
	}
	if created.Snapshots[1].VolumeId == nil || *created.Snapshots[1].VolumeId != "vol-0000000000000000b" ||
		aws.ToInt32(created.Snapshots[1].VolumeSize) != 2 || tagValue(created.Snapshots[1].Tags, "team") != "storage" {
		t.Fatalf("second snapshot: %+v", created.Snapshots[1])
	}

	before := f.srv.Stats().Requests["DescribeSnapshots"]
	w := ec2.NewSnapshotCompletedWaiter(f.ec2, func(o *ec2.SnapshotCompletedWaiterOptions) {
		o.MinDelay, o.MaxDelay = 10*time.Millisecond, 20*time.Millisecond
	})
	if err := w.Wait(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: ids}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if polls := f.srv.Stats().Requests["DescribeSnapshots"] - before; polls != 4 {
		t.Fatalf("waiter polled %d times; 3 pending answers then completed means 4", polls)
	}

	byTag, err := f.ec2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{
		OwnerIds: []string{"self"},
		Filters:  []ec2types.Filter{{Name: aws.String("tag:hypersdk:job"), Values: []string{"job-42"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(byTag.Snapshots) != 2 || byTag.Snapshots[0].State != ec2types.SnapshotStateCompleted || aws.ToString(byTag.Snapshots[0].Progress) != "100%" {
		t.Fatalf("by tag: %+v", byTag.Snapshots)
	}

	if _, err := f.ec2.CreateTags(ctx, &ec2.CreateTagsInput{
		Resources: ids[:1], Tags: []ec2types.Tag{{Key: aws.String("phase"), Value: aws.String("copying")}},
	}); err != nil {
		t.Fatal(err)
	}
	alive := f.srv.AliveSnapshots()
	if len(alive) != 2 || alive[0].Tags["phase"] != "copying" || alive[0].Tags["hypersdk:job"] != "job-42" {
		t.Fatalf("alive: %+v", alive)
	}

	for _, id := range ids {
		if _, err := f.ec2.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(id)}); err != nil {
			t.Fatal(err)
		}
	}
	if alive := f.srv.AliveSnapshots(); len(alive) != 0 {
		t.Fatalf("after DeleteSnapshot: %+v still alive", alive)
	}
	_, err = f.ec2.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(ids[0])})
	requireAPIError(t, err, "InvalidSnapshot.NotFound", http.StatusBadRequest)
	_, err = f.ec2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: ids})
	requireAPIError(t, err, "InvalidSnapshot.NotFound", http.StatusBadRequest)
}

// snapshotOf creates a snapshot set of an instance and waits for it.
func (f *fixture) snapshotOf(t *testing.T, instanceID string) []ec2types.SnapshotInfo {
	t.Helper()
	ctx := context.Background()
	created, err := f.ec2.CreateSnapshots(ctx, &ec2.CreateSnapshotsInput{
		InstanceSpecification: &ec2types.InstanceSpecification{InstanceId: aws.String(instanceID)},
	})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, sn := range created.Snapshots {
		ids = append(ids, aws.ToString(sn.SnapshotId))
	}
	w := ec2.NewSnapshotCompletedWaiter(f.ec2, func(o *ec2.SnapshotCompletedWaiterOptions) {
		o.MinDelay, o.MaxDelay = 5*time.Millisecond, 10*time.Millisecond
	})
	if err := w.Wait(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: ids}, time.Minute); err != nil {
		t.Fatal(err)
	}
	return created.Snapshots
}

// listBlocks runs the SDK's ListSnapshotBlocks paginator to the end.
func (f *fixture) listBlocks(t *testing.T, snapshotID string) (blocks []ebstypes.Block, pages int, last *ebs.ListSnapshotBlocksOutput) {
	t.Helper()
	p := ebs.NewListSnapshotBlocksPaginator(f.ebs, &ebs.ListSnapshotBlocksInput{SnapshotId: aws.String(snapshotID), MaxResults: aws.Int32(100)})
	for p.HasMorePages() {
		out, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		blocks = append(blocks, out.Blocks...)
		pages++
		last = out
	}
	return blocks, pages, last
}

// fetchBlock returns a block's body and whether it matches x-amz-Checksum.
func (f *fixture) fetchBlock(t *testing.T, snapshotID string, b ebstypes.Block) ([]byte, bool) {
	t.Helper()
	out, err := f.ebs.GetSnapshotBlock(context.Background(), &ebs.GetSnapshotBlockInput{
		SnapshotId: aws.String(snapshotID), BlockIndex: b.BlockIndex, BlockToken: b.BlockToken,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer out.BlockData.Close()
	data, err := io.ReadAll(out.BlockData)
	if err != nil {
		t.Fatal(err)
	}
	if out.ChecksumAlgorithm != ebstypes.ChecksumAlgorithmChecksumAlgorithmSha256 || aws.ToInt32(out.DataLength) != BlockSize || len(data) != BlockSize {
		t.Fatalf("block %d: algorithm %q, data length %d, body %d bytes", aws.ToInt32(b.BlockIndex), out.ChecksumAlgorithm, aws.ToInt32(out.DataLength), len(data))
	}
	sum := sha256.Sum256(data)
	return data, base64.StdEncoding.EncodeToString(sum[:]) == aws.ToString(out.Checksum)
}

func TestEBSDirectReadsExactlyTheSnapshot(t *testing.T) {
	spec := testSpec(t)
	f := newFixture(t, Options{Spec: spec, MaxBlocksPerPage: 4})
	snaps := f.snapshotOf(t, "i-0000000000000000a")
	data := spec.Volumes[1]
	snapID := aws.ToString(snaps[1].SnapshotId)
	want := data.WrittenBlocks()
	wantSum := data.SHA256()

	// Writes after the snapshot must not show through it.
	if err := data.WriteRandom(0, 3*BlockSize, 99); err != nil {
		t.Fatal(err)
	}
	if err := data.WriteRandom(30*BlockSize, 10, 99); err != nil {
		t.Fatal(err)
	}

	blocks, pages, last := f.listBlocks(t, snapID)
	var got []int64
	for _, b := range blocks {
		got = append(got, int64(aws.ToInt32(b.BlockIndex)))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("listed blocks %v, want the blocks written at snapshot time %v", got, want)
	}
	if wantPages := (len(want) + 3) / 4; pages != wantPages {
		t.Fatalf("%d pages, want %d", pages, wantPages)
	}
	if aws.ToInt64(last.VolumeSize) != 2 || aws.ToInt32(last.BlockSize) != BlockSize || last.ExpiryTime == nil || !last.ExpiryTime.After(time.Now()) {
		t.Fatalf("list output: volume %d GiB, block size %d, expiry %v", aws.ToInt64(last.VolumeSize), aws.ToInt32(last.BlockSize), last.ExpiryTime)
	}

	// Rebuild the volume from its blocks, as the provider will.
	image := make(map[int64][]byte)
	for _, b := range blocks {
		body, ok := f.fetchBlock(t, snapID, b)
		if !ok {
			t.Fatalf("block %d: checksum mismatch without corruption injected", aws.ToInt32(b.BlockIndex))
		}
		image[int64(aws.ToInt32(b.BlockIndex))] = body
	}
	if zero := image[64]; zero == nil || !bytes.Equal(zero, make([]byte, BlockSize)) {
		t.Fatal("the explicitly written zero block is not listed as zeros")
	}
	h := sha256.New()
	for i := range int64(2 * gib / BlockSize) {
		if b, ok := image[i]; ok {
			h.Write(b)
		} else {
			h.Write(make([]byte, BlockSize))
		}
	}
	if [32]byte(h.Sum(nil)) != wantSum {
		t.Fatal("volume rebuilt from GetSnapshotBlock differs from the volume at snapshot time")
	}

	// A later snapshot sees the later writes.
	again := f.snapshotOf(t, "i-0000000000000000a")
	later, _, _ := f.listBlocks(t, aws.ToString(again[1].SnapshotId))
	if !slices.ContainsFunc(later, func(b ebstypes.Block) bool { return aws.ToInt32(b.BlockIndex) == 30 }) {
		t.Fatal("block 30, written after the first snapshot, is missing from the second")
	}

	ctx := context.Background()
	_, err := f.ebs.GetSnapshotBlock(ctx, &ebs.GetSnapshotBlockInput{
		SnapshotId: aws.String(snapID), BlockIndex: aws.Int32(0), BlockToken: blocks[1].BlockToken,
	})
	var ve *ebstypes.ValidationException
	if !errors.As(err, &ve) || ve.Reason != ebstypes.ValidationExceptionReasonInvalidBlockToken {
		t.Fatalf("another block's token: %v, want ValidationException INVALID_BLOCK_TOKEN", err)
	}
	requireStatus(t, err, http.StatusBadRequest)
	_, err = f.ebs.ListSnapshotBlocks(ctx, &ebs.ListSnapshotBlocksInput{SnapshotId: aws.String("snap-0123456789abcdef0")})
	var nf *ebstypes.ResourceNotFoundException
	if !errors.As(err, &nf) {
		t.Fatalf("unknown snapshot: %v, want ResourceNotFoundException", err)
	}
	requireStatus(t, err, http.StatusNotFound)
}

func TestPendingSnapshotIsNotReadable(t *testing.T) {
	f := newFixture(t, Options{Spec: testSpec(t), Faults: Faults{PendingPolls: 100}})
	created, err := f.ec2.CreateSnapshots(context.Background(), &ec2.CreateSnapshotsInput{
		InstanceSpecification: &ec2types.InstanceSpecification{InstanceId: aws.String("i-10000000000000001")},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.ebs.ListSnapshotBlocks(context.Background(), &ebs.ListSnapshotBlocksInput{SnapshotId: created.Snapshots[0].SnapshotId})
	var ve *ebstypes.ValidationException
	if !errors.As(err, &ve) {
		t.Fatalf("listing a pending snapshot: %v, want ValidationException", err)
	}
}

func TestThrottlingIsRetriedBySDK(t *testing.T) {
	spec := testSpec(t)
	f := newFixture(t, Options{Spec: spec, Faults: Faults{ThrottleEC2: 0.3, ThrottleEBS: 0.3, Seed: 7}})
	ctx := context.Background()
	for range 20 {
		if _, err := f.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{}); err != nil {
			t.Fatalf("DescribeInstances through 30%% throttling: %v", err)
		}
	}
	snaps := f.snapshotOf(t, "i-0000000000000000a")
	fetched := 0
	for _, sn := range snaps {
		blocks, _, _ := f.listBlocks(t, aws.ToString(sn.SnapshotId))
		for _, b := range blocks {
			f.fetchBlock(t, aws.ToString(sn.SnapshotId), b)
			fetched++
		}
	}
	st := f.srv.Stats()
	for _, action := range []string{"DescribeInstances", "GetSnapshotBlock"} {
		if st.Throttled[action] == 0 {
			t.Fatalf("%s: nothing throttled in %d requests", action, st.Requests[action])
		}
	}
	// At least one retry per throttle: more happen when the SDK's transport
	// drops a POST's connection under load (aws-sdk-go-v2 #1825/#2737) and
	// retries that too.
	if st.Requests["DescribeInstances"] < 20+st.Throttled["DescribeInstances"] {
		t.Fatalf("DescribeInstances: %d requests, %d throttled, 20 succeeded: the SDK did not retry each throttle",
			st.Requests["DescribeInstances"], st.Throttled["DescribeInstances"])
	}
	if st.Requests["GetSnapshotBlock"] != fetched+st.Throttled["GetSnapshotBlock"] {
		t.Fatalf("GetSnapshotBlock: %d requests, %d throttled, %d fetched", st.Requests["GetSnapshotBlock"], st.Throttled["GetSnapshotBlock"], fetched)
	}

	// Without retries the throttling surfaces with AWS's codes and statuses.
	f.srv.SetFaults(Faults{ThrottleEC2: 1, ThrottleEBS: 1})
	_, err := f.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{}, func(o *ec2.Options) { o.RetryMaxAttempts = 1 })
	requireAPIError(t, err, "RequestLimitExceeded", http.StatusServiceUnavailable)
	blocks, _, _ := func() ([]ebstypes.Block, int, *ebs.ListSnapshotBlocksOutput) {
		f.srv.SetFaults(Faults{})
		return f.listBlocks(t, aws.ToString(snaps[0].SnapshotId))
	}()
	f.srv.SetFaults(Faults{ThrottleEBS: 1})
	_, err = f.ebs.GetSnapshotBlock(ctx, &ebs.GetSnapshotBlockInput{
		SnapshotId: snaps[0].SnapshotId, BlockIndex: blocks[0].BlockIndex, BlockToken: blocks[0].BlockToken,
	}, func(o *ebs.Options) { o.RetryMaxAttempts = 1 })
	var te *ebstypes.RequestThrottledException
	if !errors.As(err, &te) {
		t.Fatalf("throttled GetSnapshotBlock: %v, want RequestThrottledException", err)
	}
	requireStatus(t, err, http.StatusBadRequest)
}

func TestCorruptionIsDetectableOnceThenClean(t *testing.T) {
	f := newFixture(t, Options{Spec: testSpec(t), Faults: Faults{CorruptBlocks: 0.3, Seed: 3}})
	snaps := f.snapshotOf(t, "i-0000000000000000a")
	id := aws.ToString(snaps[1].SnapshotId)
	blocks, _, _ := f.listBlocks(t, id)
	var bad []ebstypes.Block
	for _, b := range blocks {
		if _, ok := f.fetchBlock(t, id, b); !ok {
			bad = append(bad, b)
		}
	}
	if len(bad) == 0 || len(bad) == len(blocks) {
		t.Fatalf("%d of %d blocks corrupted with a 30%% share", len(bad), len(blocks))
	}
	if got := f.srv.Stats().Corrupted; got != len(bad) {
		t.Fatalf("server says %d corrupted, client detected %d", got, len(bad))
	}
	for _, b := range bad {
		if _, ok := f.fetchBlock(t, id, b); !ok {
			t.Fatalf("block %d corrupted a second time", aws.ToInt32(b.BlockIndex))
		}
	}
	fetches := f.srv.BlockFetches(id)
	for _, b := range blocks {
		want := 1
		if slices.Contains(bad, b) {
			want = 2
		}
		if got := fetches[int64(aws.ToInt32(b.BlockIndex))]; got != want {
			t.Fatalf("block %d fetched %d times, want %d", aws.ToInt32(b.BlockIndex), got, want)
		}
	}
}

func TestSignaturesAreChecked(t *testing.T) {
	f := newFixture(t, Options{Spec: testSpec(t)})
	ctx := context.Background()
	snaps := f.snapshotOf(t, "i-10000000000000001")

	cases := []struct {
		name            string
		cfg             aws.Config
		ec2Code, ebsErr string
		ec2Status       int
	}{
		{"wrong secret", sdkConfig(testKeyID, "not-the-secret"), "AuthFailure", "InvalidSignatureException", http.StatusUnauthorized},
		{"unknown key", sdkConfig("AKIAUNKNOWNUNKNOWN00", testSecret), "AuthFailure", "UnrecognizedClientException", http.StatusUnauthorized},
		{"unsigned", aws.Config{Region: testRegion, Credentials: aws.AnonymousCredentials{}}, "MissingAuthenticationToken", "MissingAuthenticationTokenException", http.StatusUnauthorized},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := ec2.NewFromConfig(c.cfg, func(o *ec2.Options) { o.BaseEndpoint = aws.String(f.srv.URL()) })
			_, err := e.DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
			requireAPIError(t, err, c.ec2Code, c.ec2Status)

			b := ebs.NewFromConfig(c.cfg, func(o *ebs.Options) { o.BaseEndpoint = aws.String(f.srv.URL()) })
			_, err = b.ListSnapshotBlocks(ctx, &ebs.ListSnapshotBlocksInput{SnapshotId: snaps[0].SnapshotId})
			requireAPIError(t, err, c.ebsErr, http.StatusForbidden)
			if strings.Contains(err.Error(), testSecret) {
				t.Fatal("the secret appears in an error")
			}
		})
	}
	// A signature for another region or service does not pass either.
	other := sdkConfig(testKeyID, testSecret)
	other.Region = "us-west-2"
	_, err := ec2.NewFromConfig(other, func(o *ec2.Options) { o.BaseEndpoint = aws.String(f.srv.URL()) }).
		DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
	requireAPIError(t, err, "AuthFailure", http.StatusUnauthorized)

	if st := f.srv.Stats(); st.Refused != 7 {
		t.Fatalf("%d requests refused, want 7", st.Refused)
	}
	if strings.Contains(f.logs.String(), testSecret) || !strings.Contains(f.logs.String(), "refused") {
		t.Fatalf("server log holds the secret or no refusals:\n%s", f.logs.String())
	}
}

func tagValue(tags []ec2types.Tag, key string) string {
	for _, t := range tags {
		if aws.ToString(t.Key) == key {
			return aws.ToString(t.Value)
		}
	}
	return ""
}

func countInstances(out *ec2.DescribeInstancesOutput) int {
	if out == nil {
		return 0
	}
	n := 0
	for _, r := range out.Reservations {
		n += len(r.Instances)
	}
	return n
}

func requireAPIError(t *testing.T, err error, code string, status int) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != code {
		t.Fatalf("error %v, want API error %s", err, code)
	}
	requireStatus(t, err, status)
}

func requireStatus(t *testing.T, err error, status int) {
	t.Helper()
	var re *awshttp.ResponseError
	if !errors.As(err, &re) || re.HTTPStatusCode() != status {
		t.Fatalf("error %v, want HTTP status %d", err, status)
	}
}

// With StableSnapshotIDs two servers name the snapshots of the same call
// alike (what lets demo daemons of a cluster agree on a job's snapshots);
// another job's call, or a second call for the same job on one server,
// gets other ids.
func TestStableSnapshotIDs(t *testing.T) {
	a := newFixture(t, Options{Spec: testSpec(t), StableSnapshotIDs: true})
	b := newFixture(t, Options{Spec: testSpec(t), StableSnapshotIDs: true})
	create := func(f *fixture, job string) []string {
		t.Helper()
		out, err := f.ec2.CreateSnapshots(context.Background(), &ec2.CreateSnapshotsInput{
			InstanceSpecification: &ec2types.InstanceSpecification{InstanceId: aws.String("i-0000000000000000a")},
			TagSpecifications: []ec2types.TagSpecification{{
				ResourceType: ec2types.ResourceTypeSnapshot,
				Tags:         []ec2types.Tag{{Key: aws.String("hypersdk:job"), Value: aws.String(job)}},
			}},
		})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, sn := range out.Snapshots {
			id := aws.ToString(sn.SnapshotId)
			if len(id) != len("snap-")+17 || !strings.HasPrefix(id, "snap-") {
				t.Fatalf("snapshot id %q is not in the long EC2 form", id)
			}
			ids = append(ids, id)
		}
		return ids
	}
	onA, onB := create(a, "job-1"), create(b, "job-1")
	if len(onA) != 2 || !slices.Equal(onA, onB) || onA[0] == onA[1] {
		t.Fatalf("the same call on two servers: %v and %v, want the same two ids", onA, onB)
	}
	if again := create(a, "job-1"); slices.ContainsFunc(again, func(id string) bool { return slices.Contains(onA, id) }) {
		t.Fatalf("a second set of job-1 on one server reuses ids: %v then %v", onA, again)
	}
	if other := create(b, "job-2"); slices.ContainsFunc(other, func(id string) bool { return slices.Contains(onA, id) }) {
		t.Fatalf("job-2's snapshots %v share ids with job-1's %v", other, onA)
	}
}
