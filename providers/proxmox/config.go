package proxmox

import (
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/hypersdk/hypersdk/config"
	"github.com/hypersdk/hypersdk/internal/netguard"
)

// Export methods (Config.ExportMethod, and the per-export override).
const (
	// MethodVzdump runs `vzdump --stdout` on the node over SSH and reads
	// the archive as it streams: one pass, every disk at once.
	MethodVzdump = "vzdump"
	// MethodPvesm exports each disk with `pvesm export … raw+size -` over
	// SSH, from a temporary snapshot when the VM runs.
	MethodPvesm = "pvesm"
	// MethodAPI asks the API for a backup (POST /nodes/{node}/vzdump) into
	// a storage, fetches the archive over SFTP and deletes it.
	MethodAPI = "api"
)

// Methods are the export methods, the default first.
func Methods() []string { return []string{MethodVzdump, MethodPvesm, MethodAPI} }

// Config is the settings of one Proxmox VE cluster (or single node): an
// item of `providers:` with type proxmox.
//
//	providers:
//	  - name: pve1
//	    type: proxmox
//	    url: https://pve1.example.com:8006
//	    token_id: hypersdk@pve!export            # API token (or username/password)
//	    token_secret: {env: PVE1_TOKEN_SECRET}
//	    thumbprint: "AB:CD:…"                    # pveproxy's self-signed certificate (SHA-256)
//	    export_method: vzdump                    # vzdump (default), pvesm or api
//	    vzdump: {mode: snapshot, compress: zstd, storage: local}
//	    ssh:
//	      user: root
//	      private_key: {file: /etc/hypersdk/pve_ed25519}
//	      nodes:
//	        pve1: {host: 10.0.0.11, host_key_fingerprint: "SHA256:…"}
//	        pve2: {known_hosts: "10.0.0.12 ssh-ed25519 AAAA…", host: 10.0.0.12}
type Config struct {
	// URL is the API's address: https://host:8006 (the /api2/json path
	// is added when missing).
	URL string `yaml:"url"`
	// TokenID and TokenSecret are an API token ("USER@REALM!TOKENID" and
	// its secret), sent as "Authorization: PVEAPIToken=ID=SECRET".
	TokenID     string        `yaml:"token_id"`
	TokenSecret config.Secret `yaml:"token_secret"`
	// Username ("root@pam") and Password log in for a ticket instead
	// (POST /access/ticket), renewed before it expires.
	Username string        `yaml:"username"`
	Password config.Secret `yaml:"password"`
	// Thumbprint pins pveproxy's certificate by its SHA-256 (or SHA-1)
	// fingerprint, as the node's web interface shows it; CAFile trusts a
	// CA bundle (PEM) instead of the system roots. With neither, the
	// certificate must chain to a system root.
	Thumbprint string `yaml:"thumbprint"`
	CAFile     string `yaml:"ca_file"`
	// ExportMethod is the default export method: vzdump, pvesm or api.
	ExportMethod string       `yaml:"export_method"`
	Vzdump       VzdumpConfig `yaml:"vzdump"`
	SSH          SSHConfig    `yaml:"ssh"`
}

// VzdumpConfig are the options of the vzdump runs.
type VzdumpConfig struct {
	// Mode is vzdump's --mode: snapshot (default: the VM keeps running),
	// suspend or stop.
	Mode string `yaml:"mode"`
	// Compress is vzdump's --compress: zstd (default), gzip, lzo or none.
	Compress string `yaml:"compress"`
	// Storage is the backup storage the api method dumps into (vzdump's
	// --storage); required for that method. The archive is deleted once
	// fetched.
	Storage string `yaml:"storage"`
}

// SSHConfig is how to log in to the nodes (methods vzdump, pvesm and
// api's SFTP fetch). Every node the exports reach needs its host key
// trusted, here or under nodes.
type SSHConfig struct {
	// User logs in (default root: vzdump and pvesm need it or sudo-less
	// equivalents).
	User string `yaml:"user"`
	// Port is the SSH port (default 22).
	Port int `yaml:"port"`
	// PrivateKey is a PEM private key; PrivateKeyPassphrase decrypts it.
	PrivateKey           config.Secret `yaml:"private_key"`
	PrivateKeyPassphrase config.Secret `yaml:"private_key_passphrase"`
	// Password logs in where no key is set (or the key is refused).
	Password config.Secret `yaml:"password"`
	// KnownHosts are known_hosts lines trusted for every node.
	KnownHosts string `yaml:"known_hosts"`
	// Nodes are per-node settings, by node name.
	Nodes map[string]SSHNode `yaml:"nodes"`
}

// SSHNode are the SSH settings of one node.
type SSHNode struct {
	// Host is the address to connect to (default: the node's name).
	Host string `yaml:"host"`
	// Port and User override the defaults.
	Port int    `yaml:"port"`
	User string `yaml:"user"`
	// KnownHosts are known_hosts lines for this node; HostKeyFingerprint
	// trusts its host key by SHA256 fingerprint ("SHA256:…", as
	// `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` prints it).
	KnownHosts         string `yaml:"known_hosts"`
	HostKeyFingerprint string `yaml:"host_key_fingerprint"`
}

// urlGuard checks the API URL and SSH hosts with the project's SSRF
// guard. They are set by the operator in the configuration file, never
// through the API, and Proxmox nodes live on private networks: the same
// trust as the vSphere URL. What the guard refuses whatever the settings
// (zone ids, odd IPv4 spellings, bad host names) stays refused.
var urlGuard = netguard.Guard{AllowPrivate: true}

var (
	tokenIDPattern  = regexp.MustCompile(`^[^\s@!=]+@[A-Za-z][A-Za-z0-9.\-_]+![A-Za-z][A-Za-z0-9.\-_]+$`)
	userPattern     = regexp.MustCompile(`^[^\s@!=:]+@[A-Za-z][A-Za-z0-9.\-_]+$`)
	nodeNamePattern = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9\-]*[A-Za-z0-9])?$`)
	storagePattern  = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9\-_.]*[A-Za-z0-9]$`)
)

// Decode is the configuration decoder of type proxmox: strict, every
// problem with its key and line.
func Decode(s *config.ProviderSettings) (*Config, error) {
	var c Config
	if err := s.Decode(&c); err != nil {
		return nil, err
	}
	return &c, nil
}

// Validate checks the settings; each problem names its key (config.Validate
// prefixes the instance's path). It never quotes a secret.
func (c *Config) Validate() error {
	var errs []error
	add := func(f string, args ...any) { errs = append(errs, fmt.Errorf(f, args...)) }
	if _, err := c.apiURL(); err != nil {
		add("url: %w", err)
	}
	hasToken, hasLogin := c.TokenID != "" || c.TokenSecret.IsSet(), c.Username != "" || c.Password.IsSet()
	switch {
	case hasToken && hasLogin:
		add("token_id: set either an API token (token_id, token_secret) or username/password, not both")
	case hasToken && c.TokenID == "":
		add("token_id: required with token_secret (USER@REALM!TOKENID)")
	case hasToken && !c.TokenSecret.IsSet():
		add("token_secret: required with token_id")
	case hasToken && !tokenIDPattern.MatchString(c.TokenID):
		add("token_id: %q is not USER@REALM!TOKENID (e.g. hypersdk@pve!export)", c.TokenID)
	case hasLogin && c.Username == "":
		add("username: required with password (USER@REALM, e.g. root@pam)")
	case hasLogin && !c.Password.IsSet():
		add("password: required with username")
	case hasLogin && !userPattern.MatchString(c.Username):
		add("username: %q is not USER@REALM (e.g. root@pam)", c.Username)
	case !hasToken && !hasLogin:
		add("token_id: required: an API token (token_id, token_secret) or username and password")
	}
	if c.Thumbprint != "" && c.CAFile != "" {
		add("thumbprint: set either thumbprint or ca_file, not both")
	}
	if c.Thumbprint != "" && !validThumbprint(c.Thumbprint) {
		add("thumbprint: must be a SHA-256 (64 hex digits) or SHA-1 (40 hex digits) fingerprint, colons allowed")
	}
	if c.CAFile != "" {
		if _, err := c.caPool(); err != nil {
			add("ca_file: %w", err)
		}
	}
	if m := c.ExportMethod; m != "" && !slices.Contains(Methods(), m) {
		add("export_method: must be one of %s, got %q", strings.Join(Methods(), ", "), m)
	}
	switch c.Vzdump.Mode {
	case "", "snapshot", "suspend", "stop":
	default:
		add("vzdump.mode: must be snapshot, suspend or stop, got %q", c.Vzdump.Mode)
	}
	switch c.Vzdump.Compress {
	case "", "zstd", "gzip", "lzo", "none":
	default:
		add("vzdump.compress: must be zstd, gzip, lzo or none, got %q", c.Vzdump.Compress)
	}
	if s := c.Vzdump.Storage; s != "" && !storagePattern.MatchString(s) {
		add("vzdump.storage: %q is not a storage id", s)
	}
	if c.method() == MethodAPI && c.Vzdump.Storage == "" {
		add("vzdump.storage: required with export_method api (the backup storage the dump is written to, then deleted from)")
	}
	errs = append(errs, c.SSH.validate()...)
	return errors.Join(errs...)
}

func (s *SSHConfig) validate() []error {
	var errs []error
	add := func(f string, args ...any) { errs = append(errs, fmt.Errorf(f, args...)) }
	if !s.PrivateKey.IsSet() && !s.Password.IsSet() {
		add("ssh.private_key: required (or ssh.password): the export methods run commands on the nodes over SSH")
	}
	if s.PrivateKeyPassphrase.IsSet() && !s.PrivateKey.IsSet() {
		add("ssh.private_key_passphrase: only with ssh.private_key")
	}
	if s.Port < 0 || s.Port > 65535 {
		add("ssh.port: must be between 1 and 65535, got %d", s.Port)
	}
	names := make([]string, 0, len(s.Nodes))
	for n := range s.Nodes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		n := s.Nodes[name]
		key := "ssh.nodes." + name
		if !nodeNamePattern.MatchString(name) {
			add("%s: %q is not a node name", key, name)
		}
		if n.Host != "" {
			if err := checkHost(n.Host); err != nil {
				add("%s.host: %w", key, err)
			}
		} else if err := checkHost(name); err != nil {
			add("%s.host: required: the node name %q is not a host to connect to (%v)", key, name, err)
		}
		if n.Port < 0 || n.Port > 65535 {
			add("%s.port: must be between 1 and 65535, got %d", key, n.Port)
		}
		if fp := n.HostKeyFingerprint; fp != "" && !validFingerprint(fp) {
			add("%s.host_key_fingerprint: %q is not SHA256:<43 base64 characters> as ssh-keygen -l prints it", key, fp)
		}
		if n.HostKeyFingerprint == "" && strings.TrimSpace(n.KnownHosts) == "" && strings.TrimSpace(s.KnownHosts) == "" {
			add("%s: no known_hosts line and no host_key_fingerprint: the node's host key cannot be verified", key)
		}
	}
	return errs
}

// checkHost accepts a host name or IP address the guard allows.
func checkHost(host string) error {
	_, err := urlGuard.CheckURL("https://" + net.JoinHostPort(strings.Trim(host, "[]"), "22"))
	return err
}

func validFingerprint(fp string) bool {
	raw, ok := strings.CutPrefix(strings.TrimSpace(fp), "SHA256:")
	b, err := base64.RawStdEncoding.DecodeString(raw)
	return ok && err == nil && len(b) == 32
}

func validThumbprint(s string) bool {
	clean := strings.NewReplacer(":", "", " ", "", "-", "").Replace(strings.TrimSpace(s))
	if len(clean) != 40 && len(clean) != 64 {
		return false
	}
	for _, c := range clean {
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return false
		}
	}
	return true
}

// apiURL is the API's base URL, ending in /api2/json.
func (c *Config) apiURL() (*url.URL, error) {
	if c.URL == "" {
		return nil, errors.New("required (e.g. https://pve1.example.com:8006)")
	}
	// A mistyped URL may hold a credential: refused unquoted.
	u, err := url.Parse(c.URL)
	switch {
	case err != nil || u.Opaque != "":
		return nil, errors.New("must be an absolute https:// URL (it does not parse; not quoted, it may hold a credential)")
	case u.User != nil:
		return nil, errors.New("must not contain credentials; use token_id/token_secret or username/password")
	}
	if u, err = urlGuard.CheckURL(c.URL); err != nil {
		return nil, err
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("must not have a query or fragment")
	}
	p := strings.TrimSuffix(u.Path, "/")
	if !strings.HasSuffix(p, "/api2/json") {
		p += "/api2/json"
	}
	u.Path = p
	return u, nil
}

// caPool reads CAFile.
func (c *Config) caPool() (*x509.CertPool, error) {
	pem, err := os.ReadFile(c.CAFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", c.CAFile)
	}
	return pool, nil
}

// method is the configured default export method.
func (c *Config) method() string {
	if c.ExportMethod == "" {
		return MethodVzdump
	}
	return c.ExportMethod
}

func (c *Config) mode() string {
	if c.Vzdump.Mode == "" {
		return "snapshot"
	}
	return c.Vzdump.Mode
}

func (c *Config) compress() string {
	if c.Vzdump.Compress == "" {
		return "zstd"
	}
	return c.Vzdump.Compress
}

// sshTarget is how to reach one node over SSH.
type sshTarget struct {
	addr, user   string
	knownHosts   string
	fingerprints []string
}

// sshFor resolves the SSH settings of node.
func (c *Config) sshFor(node string) (sshTarget, error) {
	n, ok := c.SSH.Nodes[node]
	t := sshTarget{user: c.SSH.User, knownHosts: c.SSH.KnownHosts}
	if t.user == "" {
		t.user = "root"
	}
	host, port := node, c.SSH.Port
	if ok {
		if n.Host != "" {
			host = n.Host
		}
		if n.Port != 0 {
			port = n.Port
		}
		if n.User != "" {
			t.user = n.User
		}
		if strings.TrimSpace(n.KnownHosts) != "" {
			t.knownHosts = strings.TrimSpace(t.knownHosts + "\n" + n.KnownHosts)
		}
		if n.HostKeyFingerprint != "" {
			t.fingerprints = []string{n.HostKeyFingerprint}
		}
	}
	if port == 0 {
		port = 22
	}
	if err := checkHost(host); err != nil {
		return sshTarget{}, fmt.Errorf("node %s: ssh host: %w (set ssh.nodes.%s.host)", node, err, node)
	}
	if strings.TrimSpace(t.knownHosts) == "" && len(t.fingerprints) == 0 {
		return sshTarget{}, fmt.Errorf("node %s: no trusted SSH host key: set ssh.nodes.%s.host_key_fingerprint or known_hosts", node, node)
	}
	t.addr = net.JoinHostPort(strings.Trim(host, "[]"), strconv.Itoa(port))
	return t, nil
}
