package hyperv

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/hypersdk/hypersdk/config"
)

// Config is the settings of one Hyper-V host: an item of `providers:`
// with type hyperv.
//
//	providers:
//	  - name: hv1
//	    type: hyperv
//	    host: hv1.example.com
//	    port: 5986                          # default 5986 (https), 5985 (http)
//	    transport: https                    # https (default) or http
//	    auth: ntlm                          # ntlm (default) or basic (https only)
//	    username: EXAMPLE\exporter
//	    password: {env: HV1_PASSWORD}
//	    ca_file: /etc/hypersdk/hv1-ca.pem   # optional: trust this CA for the host
//	    staging_path: 'D:\HyperSDK'         # on the host; job folders are made in it
//	    files:
//	      method: smb                       # smb or sftp: how staged files come back
//	      smb: {share: HyperSDK, username: EXAMPLE\exporter, password: {env: HV1_PASSWORD}}
//	      sftp: {username: exporter, private_key_file: /etc/hypersdk/hv1.key,
//	             known_hosts_file: /etc/hypersdk/known_hosts, dir: '/D:/HyperSDK'}
type Config struct {
	Host string `yaml:"host"`
	// Port is the WinRM port; 0 means 5986 for https and 5985 for http.
	Port int `yaml:"port"`
	// Transport is https (TLS) or http (NTLM with message encryption: the
	// host needs no AllowUnencrypted).
	Transport string `yaml:"transport"`
	// Auth is ntlm or basic; basic only over https.
	Auth     string        `yaml:"auth"`
	Username string        `yaml:"username"`
	Password config.Secret `yaml:"password"`
	// CAFile is a PEM bundle trusted for the host's certificate instead of
	// the system's roots. TLS verification is never turned off.
	CAFile string `yaml:"ca_file"`
	// CAPEM is the same as PEM text (the demo and tests use it).
	CAPEM string `yaml:"ca_pem"`
	// StagingPath is a folder on the host (a Windows path) in which each
	// export makes its job's folder, hypersdk-<job id>.
	StagingPath string `yaml:"staging_path"`
	Files       Files  `yaml:"files"`
}

// Files says how staged files come back from the host.
type Files struct {
	// Method is smb or sftp.
	Method string    `yaml:"method"`
	SMB    SMBFiles  `yaml:"smb"`
	SFTP   SFTPFiles `yaml:"sftp"`
}

// SMBFiles reaches the staging path as an SMB share.
type SMBFiles struct {
	// Addr is host[:port]; default the WinRM host, port 445.
	Addr     string        `yaml:"addr"`
	Share    string        `yaml:"share"`
	Username string        `yaml:"username"`
	Password config.Secret `yaml:"password"`
	Domain   string        `yaml:"domain"`
	// Dir is the staging path's folder inside the share ("" when the
	// share is the staging path itself), with / separators.
	Dir string `yaml:"dir"`
	// RequireSigning refuses unsigned sessions.
	RequireSigning bool `yaml:"require_signing"`
}

// SFTPFiles reaches the staging path over SFTP (Windows OpenSSH).
type SFTPFiles struct {
	// Addr is host[:port]; default the WinRM host, port 22.
	Addr     string        `yaml:"addr"`
	Username string        `yaml:"username"`
	Password config.Secret `yaml:"password"`
	// PrivateKeyFile or PrivateKey (PEM) log in with a key.
	PrivateKeyFile string        `yaml:"private_key_file"`
	PrivateKey     config.Secret `yaml:"private_key"`
	// KnownHostsFile / KnownHosts / HostKeyFingerprints say which host
	// keys are trusted; one of them is required.
	KnownHostsFile      string   `yaml:"known_hosts_file"`
	KnownHosts          string   `yaml:"known_hosts"`
	HostKeyFingerprints []string `yaml:"host_key_fingerprints"`
	// Dir is the staging path as the SFTP server names it (Windows
	// OpenSSH: "/D:/HyperSDK").
	Dir string `yaml:"dir"`
}

// Decode is the configuration decoder of type hyperv.
func Decode(s *config.ProviderSettings) (*Config, error) {
	var c Config
	if err := s.Decode(&c); err != nil {
		return nil, err
	}
	return &c, nil
}

// transport and auth after defaults.
func (c *Config) transport() string {
	if c.Transport == "" {
		return "https"
	}
	return c.Transport
}

func (c *Config) auth() string {
	if c.Auth == "" {
		return "ntlm"
	}
	return c.Auth
}

func (c *Config) port() int {
	switch {
	case c.Port != 0:
		return c.Port
	case c.transport() == "http":
		return 5985
	}
	return 5986
}

// Validate checks the settings; each problem names its key. It never
// quotes a secret.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.Host == "" || strings.ContainsAny(c.Host, "/@ \t\r\n") {
		add("host: required, a host name or address (no scheme, path or credentials)")
	}
	if c.Port < 0 || c.Port > 65535 {
		add("port: %d is not a TCP port", c.Port)
	}
	switch c.transport() {
	case "https", "http":
	default:
		add("transport: %q: want https or http", c.Transport)
	}
	switch c.auth() {
	case "ntlm":
	case "basic":
		if c.transport() != "https" {
			add("auth: basic sends the password in the clear; only with transport https")
		}
	default:
		add("auth: %q: want ntlm or basic", c.Auth)
	}
	if c.Username == "" {
		add("username: required")
	}
	if !c.Password.IsSet() {
		add("password: required")
	}
	if c.CAFile != "" && c.CAPEM != "" {
		add("ca_file: set either ca_file or ca_pem, not both")
	}
	if c.CAFile != "" {
		if _, err := os.Stat(c.CAFile); err != nil {
			add("ca_file: %v", err)
		}
	}
	if !windowsAbs(c.StagingPath) {
		add(`staging_path: %q: want an absolute Windows path such as D:\HyperSDK`, c.StagingPath)
	}
	switch c.Files.Method {
	case "smb":
		s := c.Files.SMB
		if s.Share == "" || strings.ContainsAny(s.Share, `/\`) {
			add("files.smb.share: required, a share name such as HyperSDK")
		}
		if s.Username == "" {
			add("files.smb.username: required")
		}
		if strings.Contains(s.Dir, `\`) || hasDotDot(s.Dir) {
			add("files.smb.dir: %q: want a folder inside the share with / separators", s.Dir)
		}
		if s.Addr != "" {
			if err := checkAddr(s.Addr); err != nil {
				add("files.smb.addr: %v", err)
			}
		}
	case "sftp":
		s := c.Files.SFTP
		if s.Username == "" {
			add("files.sftp.username: required")
		}
		if !s.Password.IsSet() && !s.PrivateKey.IsSet() && s.PrivateKeyFile == "" {
			add("files.sftp: one of password, private_key or private_key_file is required")
		}
		if s.PrivateKey.IsSet() && s.PrivateKeyFile != "" {
			add("files.sftp.private_key_file: set either private_key or private_key_file, not both")
		}
		if s.KnownHostsFile == "" && s.KnownHosts == "" && len(s.HostKeyFingerprints) == 0 {
			add("files.sftp: known_hosts_file, known_hosts or host_key_fingerprints is required (host keys are always verified)")
		}
		if !strings.HasPrefix(s.Dir, "/") || hasDotDot(s.Dir) {
			add("files.sftp.dir: %q: want the staging path as the SFTP server names it, such as /D:/HyperSDK", s.Dir)
		}
		if s.Addr != "" {
			if err := checkAddr(s.Addr); err != nil {
				add("files.sftp.addr: %v", err)
			}
		}
	default:
		add("files.method: %q: want smb or sftp", c.Files.Method)
	}
	return errors.Join(errs...)
}

func checkAddr(a string) error {
	if strings.ContainsAny(a, "/@ \t\r\n") {
		return errors.New("want host or host:port")
	}
	if _, _, err := net.SplitHostPort(a); err != nil && strings.Contains(err.Error(), "too many colons") && !strings.HasPrefix(a, "[") {
		return errors.New("want host or host:port (brackets around an IPv6 address)")
	}
	return nil
}

// windowsAbs reports whether p is an absolute Windows path: a drive
// (C:\…) or a UNC path (\\server\share\…), with no . or .. element.
func windowsAbs(p string) bool {
	drive := len(p) >= 3 && (p[0]|0x20) >= 'a' && (p[0]|0x20) <= 'z' && p[1] == ':' && p[2] == '\\'
	unc := strings.HasPrefix(p, `\\`) && len(p) > 2
	if !(drive || unc) || strings.ContainsAny(p, "/\x00\r\n\"*?<>|") {
		return false
	}
	for _, e := range strings.Split(p[2:], `\`) {
		if e == "." || e == ".." {
			return false
		}
	}
	return true
}

func hasDotDot(p string) bool {
	for _, e := range strings.Split(p, "/") {
		if e == ".." || e == "." {
			return true
		}
	}
	return false
}
