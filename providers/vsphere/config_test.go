package vsphere

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hypersdk/hypersdk/config"
)

var vsphereOnly = config.Decoders{"vsphere": func(s *config.ProviderSettings) (any, error) { return Decode(s) }}

// The seed's vcenter block and a providers: item decode into Config, with
// HYPERSDK_VCENTER_* overrides, and Validate names the instance's keys.
func TestConfigFromSeedAndProviders(t *testing.T) {
	env := map[string]string{"HYPERSDK_VCENTER_PASSWORD": "from-env", "HYPERSDK_VCENTER_DATACENTER": "DC1"}
	cfg, err := config.Load("../../config/testdata/seed.yaml", func(k string) (string, bool) { v, ok := env[k]; return v, ok }, vsphereOnly)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	inst := cfg.ProviderInstances()
	vc, ok := inst[0].Settings.(*Config)
	if len(inst) != 1 || !ok || inst[0].Name != "vcenter" || inst[0].Type != "vsphere" ||
		vc.URL != "https://vcenter.example.com" || vc.Username != "admin@vsphere.local" || !vc.Insecure ||
		vc.Password.Reveal() != "from-env" || vc.Datacenter != "DC1" {
		t.Fatalf("vcenter: %+v %+v", inst, inst[0].Settings)
	}

	cfg, err = loadConfig(t, "vcenter:\n  username: u\nproviders:\n  - name: b\n    type: vsphere\n    url: https://u:pw@h/sdk\n", nil, vsphereOnly)
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.Validate()
	for _, want := range []string{"vcenter.url: required", "providers[0].url: must not contain a password"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not contain %q", err, want)
		}
	}
	_, err = loadConfig(t, "vcenter:\n  url: https://h/sdk\n  type: vsphere\n  insecure: maybe\n", nil, vsphereOnly)
	for _, want := range []string{"line 3: vcenter.type: unknown key", "line 4: vcenter.insecure: expected true or false"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not contain %q", err, want)
		}
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
