package aws

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/config"
	"github.com/hypersdk/hypersdk/internal/backoff"
	"github.com/hypersdk/hypersdk/providers/aws/awsfake"
)

const (
	testKeyID  = "AKIATESTTESTTEST0001"
	testSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYzzSECRETzz"
	testRegion = "eu-west-3"
)

// syncBuffer is a log destination safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fixture is an awsfake server and what reaches it.
type fixture struct {
	srv  *awsfake.Server
	spec awsfake.Spec
	logs *syncBuffer // the provider's and the server's log lines
	log  *slog.Logger
}

// testSpec: web-1 with two sample volumes (1 and 2 GiB), twelve batch
// instances of one small volume (more than two DescribeInstances pages of
// five), two instances both named "twin", and a terminated one.
func testSpec(t *testing.T) awsfake.Spec {
	t.Helper()
	root, err := awsfake.NewSampleVolume("vol-0000000000000000a", 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	data, err := awsfake.NewSampleVolume("vol-0000000000000000b", 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	spec := awsfake.Spec{
		Volumes: []*awsfake.Volume{root, data},
		Instances: []awsfake.Instance{{
			ID: "i-0000000000000000a", Type: "m5.xlarge", BootMode: "uefi",
			Tags:           map[string]string{"Name": "web-1", "env": "prod"},
			Devices:        []awsfake.Device{{Name: "/dev/sdf", VolumeID: data.ID}, {Name: "/dev/xvda", VolumeID: root.ID}},
			RootDeviceName: "/dev/xvda",
		}},
	}
	add := func(id, name, typ, state string) {
		arch := ""
		if typ == "t4g.small" {
			arch = "arm64"
		}
		v := awsfake.NewVolume("vol-"+id[2:], 1)
		if err := v.WriteRandom(0, awsfake.BlockSize, uint64(len(spec.Volumes))); err != nil {
			t.Fatal(err)
		}
		spec.Volumes = append(spec.Volumes, v)
		in := awsfake.Instance{ID: id, Type: typ, State: state, Architecture: arch, Devices: []awsfake.Device{{Name: "/dev/xvda", VolumeID: v.ID}}}
		if name != "" {
			in.Tags = map[string]string{"Name": name}
		}
		spec.Instances = append(spec.Instances, in)
	}
	for i := 1; i <= 12; i++ {
		state := "running"
		if i%3 == 0 {
			state = "stopped"
		}
		add(fmt.Sprintf("i-1%016x", i), fmt.Sprintf("batch-%02d", i), "t3.micro", state)
	}
	add("i-20000000000000001", "twin", "t4g.small", "running")
	add("i-20000000000000002", "twin", "t4g.small", "stopped")
	add("i-30000000000000001", "gone", "t3.micro", "terminated")
	return spec
}

func newFixture(t *testing.T, spec awsfake.Spec, faults awsfake.Faults, maxBlocksPerPage int) *fixture {
	t.Helper()
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := awsfake.New(awsfake.Options{
		AccessKeyID: testKeyID, SecretAccessKey: testSecret, Region: testRegion,
		Spec: spec, Faults: faults, MaxBlocksPerPage: maxBlocksPerPage, Log: log.With("component", "awsfake"),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return &fixture{srv: srv, spec: spec, logs: logs, log: log}
}

func (f *fixture) config(secret string) Config {
	return Config{
		Region: testRegion, AccessKeyID: testKeyID, SecretAccessKey: config.NewSecret(secret),
		Endpoints: Endpoints{EC2: f.srv.URL(), EBS: f.srv.URL()},
	}
}

// provider returns an unconnected provider for the fixture, its timings
// shortened for tests.
func (f *fixture) provider(t *testing.T, secret string) *Provider {
	t.Helper()
	p, err := NewProvider("aws-test", f.config(secret), f.log.With("provider", "aws-test"))
	if err != nil {
		t.Fatal(err)
	}
	p.tune.retry = backoff.Policy{Base: time.Millisecond, Max: 20 * time.Millisecond, Jitter: 1}
	p.tune.maxAttempts = 20
	p.tune.snapshotPollMin, p.tune.snapshotPollMax = 5*time.Millisecond, 20*time.Millisecond
	p.tune.pageSize = 5
	return p
}

// connected returns a connected provider with the right secret.
func (f *fixture) connected(t *testing.T) *Provider {
	t.Helper()
	p := f.provider(t, testSecret)
	if err := p.Connect(context.Background()); err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() { p.Disconnect() })
	return p
}

func testLogger(w *syncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
