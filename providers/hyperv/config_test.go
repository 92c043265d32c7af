package hyperv

import (
	"strings"
	"testing"

	"github.com/hypersdk/hypersdk/config"
)

func TestConfigValidate(t *testing.T) {
	good := func() Config {
		return Config{Host: "hv1.example.com", Username: `LAB\x`, Password: config.NewSecret("s3cret-value"), StagingPath: `D:\HyperSDK`,
			Files: Files{Method: "smb", SMB: SMBFiles{Share: "HyperSDK", Username: "x"}}}
	}
	if err := func() *Config { c := good(); return &c }().Validate(); err != nil {
		t.Fatalf("good config refused: %v", err)
	}
	for _, tc := range []struct {
		change func(*Config)
		key    string
	}{
		{func(c *Config) { c.Host = "" }, "host:"},
		{func(c *Config) { c.Host = "https://x" }, "host:"},
		{func(c *Config) { c.Transport = "ftp" }, "transport:"},
		{func(c *Config) { c.Transport, c.Auth = "http", "basic" }, "auth: basic"},
		{func(c *Config) { c.Auth = "digest" }, "auth:"},
		{func(c *Config) { c.Password = config.Secret{} }, "password:"},
		{func(c *Config) { c.StagingPath = `relative\dir` }, "staging_path:"},
		{func(c *Config) { c.StagingPath = `D:\a\..\Windows` }, "staging_path:"},
		{func(c *Config) { c.Files.Method = "winrm" }, "files.method:"},
		{func(c *Config) { c.Files.SMB.Share = `a\b` }, "files.smb.share:"},
		{func(c *Config) { c.Files.SMB.Dir = "../x" }, "files.smb.dir:"},
		{func(c *Config) {
			c.Files = Files{Method: "sftp", SFTP: SFTPFiles{Username: "u", Password: config.NewSecret("p"), Dir: "/D:/x"}}
		}, "host_key_fingerprints"},
		{func(c *Config) {
			c.Files = Files{Method: "sftp", SFTP: SFTPFiles{Username: "u", Password: config.NewSecret("p"), KnownHosts: "x", Dir: "D:/x"}}
		}, "files.sftp.dir:"},
	} {
		c := good()
		tc.change(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("want a problem naming %q, got %v", tc.key, err)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret-value") {
			t.Errorf("the password is quoted: %v", err)
		}
	}
}
