package providers_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/config"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/providers/providertest"
)

// cloudConfig is a second provider type's own settings, decoded by its own
// decoder: nothing about it is known to the config package.
type cloudConfig struct {
	Region  string        `yaml:"region"`
	Key     config.Secret `yaml:"key"`
	Timeout time.Duration `yaml:"timeout"`
}

func decodeCloud(s *config.ProviderSettings) (*cloudConfig, error) {
	var c cloudConfig
	if err := s.Decode(&c); err != nil {
		return nil, err
	}
	return &c, nil
}

func testRegistry(created *[]string) *providers.Registry {
	r := providers.NewRegistry()
	providers.Register(r, "testcloud", providers.Registration[cloudConfig]{
		Decode: decodeCloud,
		New: func(name string, c *cloudConfig, _ providers.Deps) (providers.Provider, error) {
			*created = append(*created, name+" "+c.Region+" "+c.Key.Reveal())
			return providertest.NewFake(name), nil
		},
		Demo: func(context.Context, *slog.Logger, providers.DemoOptions) (*cloudConfig, func(), error) {
			return &cloudConfig{Region: "demo-region"}, func() {}, nil
		},
	})
	providers.Register(r, "other", providers.Registration[struct{}]{
		Decode: func(s *config.ProviderSettings) (*struct{}, error) { return &struct{}{}, s.Decode(&struct{}{}) },
		New:    func(string, *struct{}, providers.Deps) (providers.Provider, error) { return nil, nil },
	})
	return r
}

func TestRegisteredTypeDecodesItsOwnSettings(t *testing.T) {
	t.Setenv("TEST_CLOUD_KEY", "k3y")
	var created []string
	r := testRegistry(&created)
	cfg, err := loadConfig(t, `
providers:
  - name: eu
    type: testcloud
    max_concurrent: 3
    region: eu-west-1
    key: {env: TEST_CLOUD_KEY}
    timeout: 90s
`, func(string) (string, bool) { return "", false }, r.Decoders())
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	inst := cfg.ProviderInstances()
	c, ok := inst[0].Settings.(*cloudConfig)
	if len(inst) != 1 || !ok || c.Region != "eu-west-1" || c.Timeout != 90*time.Second || inst[0].MaxConcurrent != 3 {
		t.Fatalf("instances %+v, settings %+v", inst, inst[0].Settings)
	}
	if _, err := r.Create(inst[0], providers.Deps{}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(created, ",") != "eu eu-west-1 k3y" {
		t.Errorf("factory got %q", created)
	}
}

// Every problem in a registered type's block is reported at once, with its
// key path and line, next to problems elsewhere in the file.
func TestRegisteredTypeReportsUnknownKeysWithLines(t *testing.T) {
	var created []string
	_, err := loadConfig(t, `providers:
  - name: eu
    type: testcloud
    regoin: eu-west-1
    timeout: soon
  - name: x
    type: other
    url: https://h/sdk
bogus: 1
`, nil, testRegistry(&created).Decoders())
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		"line 4: providers[0].regoin: unknown key (known keys here: key, max_concurrent, name, region, timeout, type)",
		`line 5: providers[0].timeout: invalid duration "soon"`,
		"line 8: providers[1].url: unknown key",
		"line 9: bogus: unknown key",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestUnknownTypeNamesTheRegisteredOnes(t *testing.T) {
	var created []string
	_, err := loadConfig(t, "providers:\n  - name: a\n    type: vsphere\n    url: https://h/sdk\n  - name: b\n", nil, testRegistry(&created).Decoders())
	for _, want := range []string{
		`line 2: providers[0].type: unknown provider type "vsphere" (available in this build: other, testcloud)`,
		"line 5: providers[1].type: required (one of other, testcloud)",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not contain %q", err, want)
		}
	}
	_, err = providers.NewRegistry().Create(config.ProviderInstance{Name: "a", Type: "aws"}, providers.Deps{})
	if err == nil || !strings.Contains(err.Error(), `provider a: type "aws" is not available in this build`) {
		t.Errorf("Create of an unregistered type: %v", err)
	}
}

func TestStartDemosUsesTheRegisteredBackends(t *testing.T) {
	var created []string
	r := testRegistry(&created)
	demos, stop, err := r.StartDemos(context.Background(), slog.New(slog.NewTextHandler(io.Discard, nil)), providers.DemoOptions{MaxConcurrent: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if len(demos) != 1 || demos[0].Name != providers.DemoInstanceName || demos[0].Type != "testcloud" {
		t.Fatalf("demos %+v", demos)
	}
	if _, err := r.Create(demos[0], providers.Deps{}); err != nil || created[0] != "demo demo-region " {
		t.Errorf("demo instance: %v %q", err, created)
	}
	if _, _, err := providers.NewRegistry().StartDemos(context.Background(), slog.Default(), providers.DemoOptions{}); err == nil {
		t.Error("StartDemos without any demo backend succeeded")
	}
}

// The first registered type's demo keeps the plain name, whatever the
// alphabet says; the others are demo-<type>.
func TestStartDemosNamesAfterTheFirst(t *testing.T) {
	var created []string
	r := testRegistry(&created)
	providers.Register(r, "acloud", providers.Registration[cloudConfig]{
		Decode: decodeCloud,
		New:    func(string, *cloudConfig, providers.Deps) (providers.Provider, error) { return nil, nil },
		Demo: func(context.Context, *slog.Logger, providers.DemoOptions) (*cloudConfig, func(), error) {
			return &cloudConfig{Region: "a-region"}, func() {}, nil
		},
	})
	demos, stop, err := r.StartDemos(context.Background(), slog.New(slog.NewTextHandler(io.Discard, nil)), providers.DemoOptions{MaxConcurrent: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if len(demos) != 2 || demos[0].Name != "demo" || demos[0].Type != "testcloud" || demos[1].Name != "demo-acloud" || demos[1].Type != "acloud" {
		t.Fatalf("demos %+v", demos)
	}
}

// loadConfig is config.Load of text written to a configuration file.
func loadConfig(t *testing.T, text string, lookupEnv func(string) (string, bool), decoders config.Decoders) (*config.Config, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hypersdk.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return config.Load(path, lookupEnv, decoders)
}
