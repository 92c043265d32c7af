package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func noEnv(string) (string, bool) { return "", false }

// endpoint stands in for a provider type's settings (the real vSphere ones
// live in providers/vsphere, which imports this package): the decoders are
// the composition root's, config only runs them.
type endpoint struct {
	URL      string `yaml:"url"`
	Username string `yaml:"username"`
	Password Secret `yaml:"password"`
	Insecure bool   `yaml:"insecure"`
}

func (e *endpoint) Validate() error {
	if e.URL == "" {
		return errors.New("url: required")
	}
	return nil
}

var testDecoders = Decoders{"vsphere": func(s *ProviderSettings) (any, error) {
	var e endpoint
	return &e, s.Decode(&e)
}}

func settings(t *testing.T, inst *ProviderInstance) *endpoint {
	t.Helper()
	if inst == nil {
		t.Fatal("no instance")
	}
	e, ok := inst.Settings.(*endpoint)
	if !ok {
		t.Fatalf("instance %s has settings %T", inst.Name, inst.Settings)
	}
	return e
}

func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestSeedConfigurationLoadsEveryKey(t *testing.T) {
	cfg, err := Load("testdata/seed.yaml", noEnv, testDecoders)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("seed configuration does not validate: %v", err)
	}
	vc := settings(t, cfg.VCenter)
	if vc.URL != "https://vcenter.example.com" || vc.Username != "admin@vsphere.local" || vc.Password.Reveal() != "password" || !vc.Insecure {
		t.Errorf("vcenter not honoured: %+v", vc)
	}
	p := cfg.ConnectionPool
	if !p.Enabled || p.MaxConnections != 5 || p.IdleTimeout != 5*time.Minute || p.HealthCheckInterval != 30*time.Second {
		t.Errorf("connection_pool not honoured: %+v", p)
	}
	if len(cfg.Webhooks) != 1 {
		t.Fatalf("webhooks: got %d", len(cfg.Webhooks))
	}
	w := cfg.Webhooks[0]
	if w.URL != "https://example.com/webhook" || strings.Join(w.Events, ",") != "job.started,job.completed,job.failed" ||
		w.Headers["Authorization"].Reveal() != "Bearer token123" || w.Timeout != 10*time.Second || w.Retry == nil || *w.Retry != 3 || !w.IsEnabled() {
		t.Errorf("webhook not honoured: %+v", w)
	}
	e := cfg.Export
	if e.Format != "ova" || !e.Compress || e.CompressionLevel != 6 || !e.CleanupOVF || e.ParallelDownloads != 3 {
		t.Errorf("export not honoured: %+v", e)
	}
	abs, _ := filepath.Abs("testdata/hypersdk.db")
	if got, _ := filepath.Abs(cfg.DatabasePath()); got != abs {
		t.Errorf("database.path = %s, want %s (relative to the config file)", got, abs)
	}
	if cfg.Database.EnableWAL == nil || !*cfg.Database.EnableWAL {
		t.Errorf("database.enable_wal not honoured")
	}
	inst := cfg.ProviderInstances()
	if len(inst) != 1 || inst[0].Name != "vcenter" || inst[0].Type != "vsphere" || settings(t, &inst[0]).URL != vc.URL {
		t.Errorf("vcenter block is not a provider instance: %+v", inst)
	}
}

func TestUnknownKeysNameKeyAndLine(t *testing.T) {
	_, err := parse([]byte("api:\n  listen: 127.0.0.1:9\n  listne: x\nexport:\n  formatt: ova\nbogus: 1\n"))
	if err == nil {
		t.Fatal("unknown keys accepted")
	}
	msg := err.Error()
	for _, want := range []string{"line 3: api.listne: unknown key", "line 5: export.formatt: unknown key", "line 6: bogus: unknown key", "known keys here:"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not contain %q", msg, want)
		}
	}
}

func TestWrongValueTypesNamed(t *testing.T) {
	_, err := parse([]byte("jobs:\n  max_concurrent: lots\n  retry_backoff: soon\nexport:\n  compress: maybe\n"))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"line 2: jobs.max_concurrent: expected an integer", "line 3: jobs.retry_backoff: invalid duration", "line 5: export.compress: expected true or false"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestValidationNamesKeyAndRange(t *testing.T) {
	cfg, err := parse([]byte("jobs:\n  max_concurrent: 0\nexport:\n  compression_level: 12\n  format: zip\n"))
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.Validate()
	if err == nil {
		t.Fatal("invalid values accepted")
	}
	for _, want := range []string{"jobs.max_concurrent: must be between 1 and 256, got 0", "export.compression_level: must be between 0 and 9, got 12", `export.format: must be one of ovf, ova, disks, got "zip"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestDiskFormatChoicesValidated(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"export:\n  format: ovf\n  disk_format: qcow2\n", "export.disk_format: qcow2 needs export.format disks"},
		{"export:\n  format: disks\n  disk_format: vdi\n", `export.disk_format: must be one of vmdk, raw, qcow2, vhd, vhdx, got "vdi"`},
		{"export:\n  format: disks\n  disk_format: vhd\n  vhd_type: sparse\n", `export.vhd_type: must be one of dynamic, fixed, got "sparse"`},
	} {
		cfg, err := parse([]byte(tc.yaml))
		if err != nil {
			t.Fatal(err)
		}
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.yaml, err, tc.want)
		}
	}
	cfg, err := parse([]byte("export:\n  format: disks\n  disk_format: vhd\n  vhd_type: fixed\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("fixed VHD disks refused: %v", err)
	}
}

func TestNamedProviderInstances(t *testing.T) {
	t.Setenv("VC_WEST_PW", "west-secret")
	cfg, err := parse([]byte(`
vcenter:
  url: https://vc-main/sdk
  username: u
providers:
  - name: vc-east
    type: vsphere
    max_concurrent: 2
    url: https://vc-east/sdk
    username: a
    password: east-secret
  - name: vc-west
    type: vsphere
    url: https://vc-west/sdk
    username: b
    password: {env: VC_WEST_PW}
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	inst := cfg.ProviderInstances()
	if len(inst) != 3 {
		t.Fatalf("got %d instances", len(inst))
	}
	if e := settings(t, &inst[1]); inst[1].Name != "vc-east" || inst[1].MaxConcurrent != 2 || e.URL != "https://vc-east/sdk" || e.Password.Reveal() != "east-secret" {
		t.Errorf("vc-east: %+v %+v", inst[1], e)
	}
	if settings(t, &inst[2]).Password.Reveal() != "west-secret" {
		t.Errorf("env secret not resolved")
	}
}

func TestProviderSettingsCheckedPerType(t *testing.T) {
	_, err := parse([]byte("providers:\n  - name: x\n    type: vsphere\n    url: https://h/sdk\n    region: us-east-1\n  - name: y\n    type: vmware\n"))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"line 5: providers[0].region: unknown key", `providers[1].type: unknown provider type "vmware"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	cfg, err := parse([]byte("providers:\n  - name: a\n    type: vsphere\n    url: https://h/sdk\n  - name: a\n    type: vsphere\n    url: https://h2/sdk\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), `provider name "a" is already used by providers[0]`) {
		t.Errorf("duplicate names: %v", err)
	}
}

func TestEnvironmentOverrides(t *testing.T) {
	cfg, err := Load("testdata/seed.yaml", envMap(map[string]string{
		"HYPERSDK_API_LISTEN":          "0.0.0.0:9999",
		"HYPERSDK_JOBS_MAX_CONCURRENT": "7",
		"HYPERSDK_VCENTER_PASSWORD":    "from-env",
		"HYPERSDK_EXPORT_COMPRESS":     "false",
		"HYPERSDK_JOBS_RETRY_BACKOFF":  "2s",
	}), testDecoders)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.API.Listen != "0.0.0.0:9999" || cfg.Jobs.MaxConcurrent != 7 || settings(t, cfg.VCenter).Password.Reveal() != "from-env" || cfg.Export.Compress || cfg.Jobs.RetryBackoff != 2*time.Second {
		t.Errorf("overrides not applied: %+v %+v", cfg.API, cfg.Jobs)
	}
	_, err = Load("", envMap(map[string]string{"HYPERSDK_JOBS_MAX_ATTEMPTS": "three"}), testDecoders)
	if err == nil || !strings.Contains(err.Error(), "HYPERSDK_JOBS_MAX_ATTEMPTS: expected an integer") {
		t.Errorf("bad env value: %v", err)
	}
	// A nil section is created by its variables.
	cfg, err = Load("", envMap(map[string]string{"HYPERSDK_VCENTER_URL": "https://vc/sdk"}), testDecoders)
	if err != nil || cfg.VCenter == nil || settings(t, cfg.VCenter).URL != "https://vc/sdk" || cfg.ProviderInstances()[0].Name != "vcenter" {
		t.Errorf("vcenter from env: %v %+v", err, cfg.VCenter)
	}
	cfg, _ = Load("", noEnv, testDecoders)
	if cfg.VCenter != nil {
		t.Errorf("vcenter created without variables")
	}
}

func TestSecretsNeverPrint(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "pw")
	if err := os.WriteFile(f, []byte("file-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := parse([]byte(fmt.Sprintf("vcenter:\n  url: https://vc/sdk\n  password: {file: %s}\ndatabase:\n  url: postgres://u:dbpass@h/db\n", f)))
	if err != nil {
		t.Fatal(err)
	}
	vc := settings(t, cfg.VCenter)
	if vc.Password.Reveal() != "file-secret" {
		t.Fatalf("file secret = %q", vc.Password.Reveal())
	}
	j, _ := json.Marshal(cfg)
	for _, s := range []string{fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", *vc), fmt.Sprintf("%#v", *vc), fmt.Sprintf("%+v", cfg.ProviderInstances()), string(j)} {
		if strings.Contains(s, "file-secret") || strings.Contains(s, "dbpass") {
			t.Errorf("secret printed: %s", s)
		}
	}
	if _, err := parse([]byte("vcenter:\n  password: {env: HYPERSDK_TEST_UNSET_VAR}\n")); err == nil || !strings.Contains(err.Error(), "HYPERSDK_TEST_UNSET_VAR is not set") {
		t.Errorf("unset env reference: %v", err)
	}
}

func TestDefaultsValidate(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatal(err)
	}
}

// parse decodes YAML over the defaults without environment overrides.
func parse(data []byte) (*Config, error) {
	cfg := Default()
	if err := decodeStrict(data, cfg, testDecoders); err != nil {
		return nil, err
	}
	return cfg, nil
}

// The demo section: max_concurrent defaults to 2, 0 is no cap, and both
// keys are range-checked by name.
func TestDemoSection(t *testing.T) {
	cfg, err := parse([]byte("demo:\n  extra_vms: 3\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Demo.ExtraVMs != 3 || cfg.Demo.DemoMaxConcurrent() != 2 {
		t.Errorf("demo %+v: max_concurrent %d, want the default 2", cfg.Demo, cfg.Demo.DemoMaxConcurrent())
	}
	if cfg, err = parse([]byte("demo:\n  max_concurrent: 0\n")); err != nil || cfg.Demo.DemoMaxConcurrent() != 0 {
		t.Errorf("max_concurrent 0: %v, %+v", err, cfg)
	}
	cfg, err = parse([]byte("demo:\n  extra_vms: -1\n  max_concurrent: 300\n"))
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.Validate()
	for _, want := range []string{"demo.extra_vms: must be between 0 and 1000, got -1", "demo.max_concurrent: must be between 0 and 256, got 300"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not contain %q", err, want)
		}
	}
}
