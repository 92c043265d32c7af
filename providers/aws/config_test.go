package aws

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/hypersdk/hypersdk/config"
	"github.com/hypersdk/hypersdk/pipeline"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/providers/aws/awsfake"
)

func TestConfigValidate(t *testing.T) {
	secret := config.NewSecret(testSecret)
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // "" for valid
	}{
		{"keys", Config{Region: "us-east-1", AccessKeyID: testKeyID, SecretAccessKey: secret}, ""},
		{"default chain", Config{Region: "eu-central-1"}, ""},
		{"profile carries the region", Config{Profile: "exporter"}, ""},
		{"loopback endpoints (tests, demo)", Config{Region: "us-east-1", Endpoints: Endpoints{EC2: "http://127.0.0.1:4566", EBS: "http://[::1]:4566/", S3: "https://minio.internal:9000"}}, ""},
		{"no region", Config{}, "region: required"},
		{"bad region", Config{Region: "US East"}, "region:"},
		{"key without secret", Config{Region: "us-east-1", AccessKeyID: testKeyID}, "secret_access_key: required"},
		{"secret without key", Config{Region: "us-east-1", SecretAccessKey: secret}, "access_key_id: required"},
		{"keys and profile", Config{Region: "us-east-1", AccessKeyID: testKeyID, SecretAccessKey: secret, Profile: "p"}, "profile:"},
		{"endpoint zone id", Config{Region: "us-east-1", Endpoints: Endpoints{EC2: "http://[fe80::1%25eth0]:80"}}, "endpoints.ec2:"},
		{"endpoint odd IPv4", Config{Region: "us-east-1", Endpoints: Endpoints{EBS: "http://2130706433/"}}, "endpoints.ebs:"},
		{"endpoint credentials", Config{Region: "us-east-1", Endpoints: Endpoints{EC2: "https://u:" + strings.ReplaceAll(testSecret, "/", "_") + "@ec2.example.com"}}, "endpoints.ec2: must not contain credentials"},
		{"endpoint with a password that breaks parsing", Config{Region: "us-east-1", Endpoints: Endpoints{EC2: "https://u:pa/ss:" + testSecret + "@ec2.example.com"}}, "endpoints.ec2: must be an absolute"},
		{"endpoint scheme", Config{Region: "us-east-1", Endpoints: Endpoints{S3: "ftp://s3.example.com"}}, "endpoints.s3:"},
		{"export task", Config{Region: "us-east-1", ExportTask: ExportTaskConfig{Bucket: "my-exports", Prefix: "vms/", DiskImageFormat: "VHD", Container: "ova", DeleteObject: true}}, ""},
		{"export task without a bucket", Config{Region: "us-east-1", ExportTask: ExportTaskConfig{DiskImageFormat: "vmdk"}}, "export_task.bucket: required"},
		{"bucket name", Config{Region: "us-east-1", ExportTask: ExportTaskConfig{Bucket: "My_Exports"}}, "export_task.bucket: \"My_Exports\" is not an S3 bucket name"},
		{"bucket as an address", Config{Region: "us-east-1", ExportTask: ExportTaskConfig{Bucket: "192.168.1.10"}}, "export_task.bucket:"},
		{"disk image format", Config{Region: "us-east-1", ExportTask: ExportTaskConfig{Bucket: "b-1", DiskImageFormat: "qcow2"}}, "export_task.disk_image_format: must be vmdk, raw or vhd"},
		{"container", Config{Region: "us-east-1", ExportTask: ExportTaskConfig{Bucket: "b-1", Container: "zip"}}, "export_task.container: must be ova"},
		{"target environment", Config{Region: "us-east-1", ExportTask: ExportTaskConfig{Bucket: "b-1", TargetEnvironment: "kvm"}}, "export_task.target_environment:"},
		{"prefix", Config{Region: "us-east-1", ExportTask: ExportTaskConfig{Bucket: "b-1", Prefix: "a\nb"}}, "export_task.prefix:"},
	} {
		err := tc.cfg.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		case err != nil && (strings.Contains(err.Error(), testSecret) || strings.Contains(err.Error(), "CiYzzSECRETzz")):
			t.Errorf("%s: the error quotes the secret: %v", tc.name, err)
		}
	}
}

func TestDecodeStrict(t *testing.T) {
	var n yaml.Node
	src := "region: us-east-1\naccess_key_id: " + testKeyID + "\nsecret_access_key: " + testSecret + "\nendpoints: {ec2: http://127.0.0.1:1}\nbogus: 1\n"
	if err := yaml.Unmarshal([]byte(src), &n); err != nil {
		t.Fatal(err)
	}
	_, err := Decode(&config.ProviderSettings{Name: "aws1", Type: "aws", Path: "providers[0]", Node: n.Content[0]})
	if err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Fatalf("unknown key: %v", err)
	}
	n.Content[0].Content = n.Content[0].Content[:len(n.Content[0].Content)-2]
	c, err := Decode(&config.ProviderSettings{Name: "aws1", Type: "aws", Path: "providers[0]", Node: n.Content[0]})
	if err != nil {
		t.Fatal(err)
	}
	if c.SecretAccessKey.Reveal() != testSecret || c.Endpoints.EC2 != "http://127.0.0.1:1" {
		t.Errorf("decoded %+v", c)
	}
}

// The secret access key appears in no log line (the provider's, the SDK's
// or the server's), no error, no VMInfo and no dump of the configuration,
// through a connect, discovery, snapshots, block fetches, throttling and a
// refused connect.
func TestSecretNeverShown(t *testing.T) {
	f := newFixture(t, testSpec(t), awsfake.Faults{ThrottleEC2: 0.2, ThrottleEBS: 0.2, Seed: 3}, 0)
	p := f.connected(t)
	ctx := context.Background()
	var shown []string
	vms, err := p.ListVMs(ctx, providers.VMFilter{})
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(vms)
	shown = append(shown, string(js))
	set, err := p.createSnapshotSet(ctx, "i-0000000000000000a", "job-secret")
	if err != nil {
		t.Fatal(err)
	}
	list, err := p.listSnapshotBlocks(ctx, set.snapshots[0].id)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.fetchBlock(ctx, set.snapshots[0].id, list.blockSize, list.blocks[0], make([]byte, list.blockSize)); err != nil {
		t.Fatal(err)
	}
	if err := p.deleteSnapshotSet(set); err != nil {
		t.Fatal(err)
	}
	// A refused secret: neither it nor the right one shows.
	bad := f.provider(t, testSecret+"-wrong")
	if err := bad.Connect(ctx); err == nil {
		t.Fatal("wrong secret accepted")
	} else {
		shown = append(shown, err.Error())
	}
	if _, err := NewProvider("x", Config{Region: "us-east-1", SecretAccessKey: config.NewSecret(testSecret)}, nil); err != nil {
		shown = append(shown, err.Error())
	}
	cfg := f.config(testSecret)
	y, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	shown = append(shown, f.logs.String(), string(y), string(j),
		fmt.Sprintf("%v %+v %#v %s", cfg, cfg, cfg, cfg), fmt.Sprintf("%+v", p))
	if !strings.Contains(f.logs.String(), "snapshot deleted") {
		t.Errorf("the logs were not captured: %q", f.logs.String())
	}
	for _, s := range shown {
		if strings.Contains(s, testSecret) {
			t.Errorf("the secret access key is shown:\n%s", s)
		}
	}
}

func TestDemo(t *testing.T) {
	logs := &syncBuffer{}
	cfg, stop, err := StartDemo(context.Background(), testLogger(logs))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := NewProvider("demo-aws", *cfg, testLogger(logs))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer p.Disconnect()
	vms, err := p.ListVMs(context.Background(), providers.VMFilter{})
	if err != nil || len(vms) != 4 {
		t.Fatalf("demo lists %d instances, %v", len(vms), err)
	}
	web, err := p.GetVM(context.Background(), "web-1")
	if err != nil || len(web.Disks) != 2 || web.CPUs != 2 {
		t.Errorf("demo web-1: %+v, %v", web, err)
	}
	// The demo's S3 (gofakes3, in process) serves export tasks.
	dir := t.TempDir()
	res, err := pipeline.Export(context.Background(), p, "db-1", providers.ExportOptions{
		OutputDir: dir, Format: providers.FormatDisks, DiskFormat: providers.DiskRaw, Method: MethodExportTask, JobID: "demo-job",
	})
	if err != nil {
		t.Fatalf("demo export-task export: %v", err)
	}
	if len(res.Files) != 3 || res.Files[0].Size != 1<<30 {
		t.Errorf("demo export-task export wrote %+v", res.Files)
	}
	if strings.Contains(logs.String(), cfg.SecretAccessKey.Reveal()) {
		t.Error("the demo's secret is logged")
	}
}

func TestDecodeExportTask(t *testing.T) {
	decode := func(src string) (*Config, error) {
		var n yaml.Node
		if err := yaml.Unmarshal([]byte(src), &n); err != nil {
			t.Fatal(err)
		}
		return Decode(&config.ProviderSettings{Name: "aws1", Type: "aws", Path: "providers[0]", Node: n.Content[0]})
	}
	c, err := decode("region: us-east-1\nexport_task: {bucket: my-exports, container: ova, delete_object: true}\n")
	if err != nil {
		t.Fatal(err)
	}
	if et := c.ExportTask; et.Bucket != "my-exports" || et.prefix() != DefaultExportPrefix || et.diskFormat() != "vmdk" || et.extension() != "ova" ||
		!et.DeleteObject || et.targetEnvironment() != "vmware" {
		t.Errorf("decoded %s", et)
	}
	if _, err := decode("region: us-east-1\nexport_task: {bucket: my-exports, delete: true}\n"); err == nil || !strings.Contains(err.Error(), "export_task.delete") {
		t.Errorf("unknown key in export_task: %v", err)
	}
	if _, err := decode("region: us-east-1\nexport_task: {bucket: my-exports, delete_object: sometimes}\n"); err == nil || !strings.Contains(err.Error(), "delete_object") {
		t.Errorf("a delete_object that is no boolean: %v", err)
	}
}
