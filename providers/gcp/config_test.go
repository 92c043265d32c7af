package gcp

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hypersdk/hypersdk/config"
	"github.com/hypersdk/hypersdk/providers"
)

func TestConfigValidateNamesTheKey(t *testing.T) {
	good := Config{Project: "my-project", Zones: []string{"europe-west1-b"}, StagingBucket: "my-bucket"}
	if err := good.Validate(); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	for _, tc := range []struct {
		edit func(*Config)
		key  string
	}{
		{func(c *Config) { c.Project = "" }, "project:"},
		{func(c *Config) { c.Project = "My Project" }, "project:"},
		{func(c *Config) { c.Zones = nil }, "zones:"},
		{func(c *Config) { c.Zones = []string{"europe-west1"} }, "zones[0]:"},
		{func(c *Config) { c.Zones = []string{"europe-west1-b", "europe-west1-b"} }, "zones[1]:"},
		{func(c *Config) { c.StagingBucket = "gs://my-bucket" }, "staging_bucket:"},
		{func(c *Config) { c.StagingPrefix = "../up" }, "staging_prefix:"},
		{func(c *Config) { c.BuilderImage = "alpine" }, "builder_image:"},
		{func(c *Config) { c.Subnet = "Bad_Subnet" }, "subnet:"},
		{func(c *Config) { c.Endpoints.Compute = "ftp://x" }, "endpoints.compute:"},
		{func(c *Config) { c.Endpoints.Storage = "http://user:pw@127.0.0.1/storage/v1/" }, "endpoints.storage:"},
		{func(c *Config) {
			c.CredentialsFile = "/k.json"
			c.CredentialsJSON = config.NewSecret(`{"private_key":"SECRETKEY"}`)
		}, "credentials_json:"},
	} {
		c := good
		tc.edit(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%+v: %v, want an error naming %s", c, err, tc.key)
		}
		if err != nil && (strings.Contains(err.Error(), "SECRETKEY") || strings.Contains(err.Error(), "pw@")) {
			t.Errorf("error quotes a credential: %v", err)
		}
	}
	// Printing a provider never shows the inline key.
	c := good
	c.CredentialsJSON = config.NewSecret(`{"private_key":"SECRETKEY"}`)
	p, err := NewProvider("p", c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s := fmt.Sprintf("%+v %v", p, *p.cfg); strings.Contains(s, "SECRETKEY") {
		t.Errorf("the key shows in %s", s)
	}
}

// A key the platform does not know is refused as ErrAuth, and the key's
// contents appear in no error or log line.
func TestUnknownKeyIsErrAuth(t *testing.T) {
	f := newFixture(t, testSpec(t), gcpfakeFaultsNone())
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	var key map[string]string
	if err := json.Unmarshal(f.srv.KeyJSON(), &key); err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(other)
	key["private_key"] = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	b, _ := json.Marshal(key)
	path := filepath.Join(t.TempDir(), "other.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := f.config()
	cfg.CredentialsFile = path
	p := f.provider(t, cfg)
	err = p.Connect(context.Background())
	if !errors.Is(err, providers.ErrAuth) || !providers.IsPermanent(err) {
		t.Fatalf("Connect with an unknown key: %v, want ErrAuth", err)
	}
	body := strings.Split(strings.TrimSpace(key["private_key"]), "\n")[1]
	if strings.Contains(err.Error(), body) || strings.Contains(f.logs.String(), body) {
		t.Error("the private key shows in the error or the logs")
	}
}
