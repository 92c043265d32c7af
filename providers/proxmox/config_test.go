package proxmox

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/hypersdk/hypersdk/config"
	"github.com/hypersdk/hypersdk/internal/sshclient"
	"github.com/hypersdk/hypersdk/pipeline"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/providers/proxmox/pvefake"
)

const testFingerprint = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"

func TestConfigValidate(t *testing.T) {
	secret, pass, key := config.NewSecret(testSecret), config.NewSecret(testPass), config.NewSecret("-----BEGIN OPENSSH PRIVATE KEY-----")
	ssh := SSHConfig{PrivateKey: key, Nodes: map[string]SSHNode{"pve1": {HostKeyFingerprint: testFingerprint}}}
	ok := Config{URL: "https://pve1.example.com:8006", TokenID: testTokenID, TokenSecret: secret, SSH: ssh}
	with := func(change func(*Config)) Config {
		c := ok
		c.SSH.Nodes = map[string]SSHNode{"pve1": {HostKeyFingerprint: testFingerprint}}
		change(&c)
		return c
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // "" for valid
	}{
		{"token", ok, ""},
		{"ticket", with(func(c *Config) {
			c.TokenID, c.TokenSecret, c.Username, c.Password = "", config.Secret{}, testUser, pass
		}), ""},
		{"pinned, private address", with(func(c *Config) { c.URL, c.Thumbprint = "https://10.0.0.11:8006/", strings.Repeat("ab:", 31)+"ab" }), ""},
		{"api with storage", with(func(c *Config) { c.ExportMethod, c.Vzdump.Storage = MethodAPI, "pbs-local" }), ""},
		{"no url", with(func(c *Config) { c.URL = "" }), "url: required"},
		{"url with a password", with(func(c *Config) { c.URL = "https://root:" + testSecret + "@pve1:8006" }), "url: must not contain credentials"},
		{"url unparsable with a password", with(func(c *Config) { c.URL = "https://root:pa/ss:" + testSecret + "@pve1:8006" }), "url: must be an absolute"},
		{"url zone id", with(func(c *Config) { c.URL = "https://[fe80::1%25eth0]:8006" }), "url:"},
		{"url odd IPv4", with(func(c *Config) { c.URL = "https://2130706433:8006" }), "url:"},
		{"no credentials", with(func(c *Config) { c.TokenID, c.TokenSecret = "", config.Secret{} }), "token_id: required"},
		{"token and password", with(func(c *Config) { c.Username, c.Password = testUser, pass }), "not both"},
		{"token id shape", with(func(c *Config) { c.TokenID = "root@pam" }), "token_id: \"root@pam\" is not USER@REALM!TOKENID"},
		{"token without secret", with(func(c *Config) { c.TokenSecret = config.Secret{} }), "token_secret: required"},
		{"user without realm", with(func(c *Config) { c.TokenID, c.TokenSecret, c.Username, c.Password = "", config.Secret{}, "root", pass }), "username:"},
		{"bad thumbprint", with(func(c *Config) { c.Thumbprint = "abc" }), "thumbprint:"},
		{"thumbprint and CA", with(func(c *Config) { c.Thumbprint, c.CAFile = strings.Repeat("ab", 32), "/x.pem" }), "not both"},
		{"missing CA file", with(func(c *Config) { c.CAFile = "/nonexistent/ca.pem" }), "ca_file:"},
		{"method", with(func(c *Config) { c.ExportMethod = "rsync" }), "export_method: must be one of vzdump, pvesm, api"},
		{"api without storage", with(func(c *Config) { c.ExportMethod = MethodAPI }), "vzdump.storage: required"},
		{"mode", with(func(c *Config) { c.Vzdump.Mode = "live" }), "vzdump.mode:"},
		{"compress", with(func(c *Config) { c.Vzdump.Compress = "xz" }), "vzdump.compress:"},
		{"no ssh credential", with(func(c *Config) { c.SSH.PrivateKey = config.Secret{} }), "ssh.private_key: required"},
		{"node without host key", with(func(c *Config) { c.SSH.Nodes["pve2"] = SSHNode{Host: "10.0.0.12"} }), "ssh.nodes.pve2: no known_hosts line"},
		{"node fingerprint shape", with(func(c *Config) { c.SSH.Nodes["pve2"] = SSHNode{HostKeyFingerprint: "MD5:aa"} }), "ssh.nodes.pve2.host_key_fingerprint:"},
		{"node host", with(func(c *Config) {
			c.SSH.Nodes["pve2"] = SSHNode{Host: "0x7f.1", HostKeyFingerprint: testFingerprint}
		}), "ssh.nodes.pve2.host:"},
	} {
		err := tc.cfg.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		case err != nil && (strings.Contains(err.Error(), testSecret) || strings.Contains(err.Error(), testPass)):
			t.Errorf("%s: the error quotes a secret: %v", tc.name, err)
		}
	}
}

func TestDecodeStrict(t *testing.T) {
	src := `url: https://pve1:8006
token_id: hypersdk@pve!export
token_secret: ` + testSecret + `
export_method: pvesm
vzdump: {mode: stop, compress: gzip}
ssh:
  user: root
  private_key: "-----BEGIN OPENSSH PRIVATE KEY-----"
  nodes:
    pve1: {host: 10.0.0.11, host_key_fingerprint: "` + testFingerprint + `"}
`
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(src+"bogus: 1\n"), &n); err != nil {
		t.Fatal(err)
	}
	if _, err := Decode(&config.ProviderSettings{Name: "pve1", Type: "proxmox", Path: "providers[0]", Node: n.Content[0]}); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Fatalf("unknown key: %v", err)
	}
	if err := yaml.Unmarshal([]byte(src), &n); err != nil {
		t.Fatal(err)
	}
	c, err := Decode(&config.ProviderSettings{Name: "pve1", Type: "proxmox", Path: "providers[0]", Node: n.Content[0]})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.TokenSecret.Reveal() != testSecret || c.SSH.Nodes["pve1"].Host != "10.0.0.11" || c.Vzdump.Mode != "stop" || c.method() != MethodPvesm {
		t.Errorf("decoded %+v", c)
	}
	if s := fmt.Sprintf("%+v %#v", c, c); strings.Contains(s, testSecret) || strings.Contains(s, "BEGIN OPENSSH") {
		t.Errorf("printing the configuration shows a secret: %s", s)
	}
}

// Ticket auth: the password logs in once (POST /access/ticket), every
// call carries the cookie, writes the CSRF token (the fake refuses them
// without); an export works with it. A wrong password or token is
// ErrAuth, permanent, and quotes no secret.
func TestTicketAuthAndRefusedCredentials(t *testing.T) {
	f := newFixture(t, pvefake.SampleOptions{})
	cfg := f.config()
	cfg.TokenID, cfg.TokenSecret, cfg.Username, cfg.Password = "", config.Secret{}, testUser, config.NewSecret(testPass)
	cfg.ExportMethod = MethodAPI // writes: POST vzdump, DELETE the archive
	p := f.provider(t, cfg)
	exportRaw(t, f, p, "db-1", "job-ticket", []string{"local-lvm:vm-101-disk-0"})
	logins := 0
	for _, r := range f.srv.Requests() {
		switch {
		case r.Path == "/access/ticket":
			logins++
		case r.Auth != "ticket" || r.Status >= 300:
			t.Errorf("%s %s: auth %q, status %d", r.Method, r.Path, r.Auth, r.Status)
		}
	}
	if logins != 1 {
		t.Errorf("%d logins, want 1", logins)
	}

	for name, c := range map[string]Config{
		"password": func() Config { c := cfg; c.Password = config.NewSecret("wrong-" + testPass); return c }(),
		"token": func() Config {
			c := f.config()
			c.TokenSecret = config.NewSecret("00000000-" + testSecret[9:])
			return c
		}(),
	} {
		bad, err := NewProvider("pve-bad", c, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = bad.Connect(context.Background())
		if !errors.Is(err, providers.ErrAuth) || !providers.IsPermanent(err) {
			t.Errorf("%s: refused credentials: %v, want a permanent ErrAuth", name, err)
		}
		if err != nil && (strings.Contains(err.Error(), testPass) || strings.Contains(err.Error(), testSecret[9:])) {
			t.Errorf("%s: the error quotes the secret: %v", name, err)
		}
	}
}

// TLS: a certificate that does not match the pinned fingerprint, or is
// not trusted without one, is refused; an SSH host key that is not
// trusted fails the export for good, naming the key it saw.
func TestUntrustedServersRefused(t *testing.T) {
	f := newFixture(t, pvefake.SampleOptions{})
	for name, change := range map[string]func(*Config){
		"other pin": func(c *Config) { c.Thumbprint = strings.Repeat("0", 64) },
		"no pin":    func(c *Config) { c.Thumbprint = "" },
	} {
		c := f.config()
		change(&c)
		p, err := NewProvider("pve-tls", c, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Connect(context.Background()); err == nil || !providers.IsPermanent(err) {
			t.Errorf("%s: connecting to an untrusted certificate: %v, want a permanent refusal", name, err)
		}
	}
	c := f.config()
	c.SSH.KnownHosts = ""
	for node := range c.SSH.Nodes {
		n := c.SSH.Nodes[node]
		n.HostKeyFingerprint = testFingerprint // not the server's
		c.SSH.Nodes[node] = n
	}
	p := f.provider(t, c)
	_, err := pipeline.Export(context.Background(), p, "db-1", providers.ExportOptions{OutputDir: t.TempDir(), JobID: "job-hostkey"})
	if !errors.Is(err, sshclient.ErrHostKey) || !providers.IsPermanent(err) || !strings.Contains(err.Error(), f.sshd.Fingerprint) {
		t.Errorf("untrusted host key: %v", err)
	}
}
