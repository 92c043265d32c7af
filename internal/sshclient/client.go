package sshclient

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/hypersdk/hypersdk/transfer"
)

var (
	// ErrAuth: the server refused every credential offered.
	ErrAuth = errors.New("SSH authentication refused")
	// ErrHostKey: the server's host key is not trusted (unknown, changed or
	// revoked).
	ErrHostKey = errors.New("SSH host key not trusted")
)

// Config is how to reach and log in to one SSH server.
type Config struct {
	// Addr is "host" or "host:port" (port 22 by default).
	Addr string
	// User is the login name.
	User string
	// Password is sent for password and keyboard-interactive
	// authentication. Never logged.
	Password string
	// PrivateKey is a PEM private key (OpenSSH, PKCS#1, PKCS#8), encrypted
	// with PrivateKeyPassphrase when that is set. Never logged.
	PrivateKey           []byte
	PrivateKeyPassphrase string

	// KnownHosts is known_hosts content trusted for this server: lines as
	// OpenSSH writes them ("[host]:port ssh-ed25519 AAAA…", hashed
	// "|1|…" names, "@cert-authority *.example.com ssh-ed25519 AAAA…" to
	// trust host certificates signed by a CA, "@revoked …").
	KnownHosts string
	// HostKeyFingerprints trusts host keys by their SHA256 fingerprint
	// ("SHA256:…", as ssh-keygen -l prints it), whatever the host name.
	HostKeyFingerprints []string

	// DialTimeout bounds connecting, the SSH handshake and logging in.
	// Default 30s.
	DialTimeout time.Duration
	// KeepAlive is the interval between keepalives; a connection that
	// leaves three unanswered is closed. Default 15s; negative disables.
	KeepAlive time.Duration
}

// Client is a lazily (re)connected SSH client for one server. It is safe for
// concurrent use.
type Client struct {
	cfg      Config
	addr     string // host:port
	auth     []ssh.AuthMethod
	hostKeys ssh.HostKeyCallback
	algos    []string

	mu   sync.Mutex
	conn *ssh.Client
	gen  uint64 // counts connections made, so callers can tell them apart
	// dialing is closed when the dial in progress ends; nil when none is.
	dialing chan struct{}
	dialErr error
	closed  bool
}

// New checks cfg and returns a Client; nothing is dialed yet. A bad
// configuration (no user, no credential, nothing to verify host keys with,
// an unreadable key) is an error wrapping transfer.ErrPermanent.
func New(cfg Config) (*Client, error) {
	c := &Client{cfg: cfg}
	if cfg.Addr == "" {
		return nil, invalid("no address")
	}
	c.addr = cfg.Addr
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		c.addr = net.JoinHostPort(strings.Trim(cfg.Addr, "[]"), "22")
	}
	if cfg.User == "" {
		return nil, invalid("no user")
	}
	if len(cfg.PrivateKey) > 0 {
		var signer ssh.Signer
		var err error
		if cfg.PrivateKeyPassphrase != "" {
			signer, err = ssh.ParsePrivateKeyWithPassphrase(cfg.PrivateKey, []byte(cfg.PrivateKeyPassphrase))
		} else {
			signer, err = ssh.ParsePrivateKey(cfg.PrivateKey)
		}
		if err != nil {
			// The parser's message names the format problem, never the key.
			return nil, invalid("private key: " + err.Error())
		}
		c.auth = append(c.auth, ssh.PublicKeys(signer))
	}
	if cfg.Password != "" {
		pw := cfg.Password
		c.auth = append(c.auth, ssh.Password(pw),
			ssh.KeyboardInteractive(func(_, _ string, questions []string, echos []bool) ([]string, error) {
				switch {
				case len(questions) == 0:
					return nil, nil // an informational round
				case len(questions) == 1 && !echos[0]:
					return []string{pw}, nil
				default:
					return nil, fmt.Errorf("keyboard-interactive asks %d questions; only a single password prompt is answered", len(questions))
				}
			}))
	}
	if len(c.auth) == 0 {
		return nil, invalid("no password and no private key")
	}
	var err error
	if c.hostKeys, c.algos, err = hostKeyCallback(cfg); err != nil {
		return nil, err
	}
	return c, nil
}

func invalid(msg string) error {
	return fmt.Errorf("ssh configuration: %s: %w", msg, transfer.ErrPermanent)
}

// String is "ssh://user@host:port", for messages.
func (c *Client) String() string { return "ssh://" + c.cfg.User + "@" + c.addr }

// Conn returns the client's connection, dialing it first if there is none
// (or the last one died). gen identifies the connection: a caller that
// keeps per-connection state (an SFTP session) compares it. Concurrent
// callers share one dial.
func (c *Client) Conn(ctx context.Context) (conn *ssh.Client, gen uint64, err error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, 0, fmt.Errorf("%s: client closed", c)
		}
		if c.conn != nil {
			conn, gen := c.conn, c.gen
			c.mu.Unlock()
			return conn, gen, nil
		}
		if wait := c.dialing; wait != nil {
			c.mu.Unlock()
			select {
			case <-wait:
			case <-ctx.Done():
				return nil, 0, context.Cause(ctx)
			}
			c.mu.Lock()
			err := c.dialErr
			ok := c.conn != nil
			c.mu.Unlock()
			if !ok && err != nil {
				return nil, 0, err
			}
			continue
		}
		done := make(chan struct{})
		c.dialing = done
		c.mu.Unlock()

		conn, err := c.dial(ctx)
		c.mu.Lock()
		c.dialing, c.dialErr = nil, err
		if err == nil {
			if c.closed {
				conn.Close()
				err = fmt.Errorf("%s: client closed", c)
			} else {
				c.conn = conn
				c.gen++
				gen := c.gen
				go c.watch(conn, gen)
				c.mu.Unlock()
				close(done)
				return conn, gen, nil
			}
		}
		c.mu.Unlock()
		close(done)
		return nil, 0, err
	}
}

// Drop closes connection gen if it is still the current one, so that the
// next Conn dials again: for callers that found it broken (a stalled read).
func (c *Client) Drop(gen uint64) {
	c.mu.Lock()
	conn := c.conn
	if conn == nil || c.gen != gen {
		c.mu.Unlock()
		return
	}
	c.conn = nil
	c.mu.Unlock()
	conn.Close()
}

// Close closes the connection; the Client cannot be used afterwards.
func (c *Client) Close() error {
	c.mu.Lock()
	conn := c.conn
	c.conn, c.closed = nil, true
	c.mu.Unlock()
	if conn != nil {
		return conn.Close()
	}
	return nil
}

// watch forgets conn once it ends and sends keepalives meanwhile.
func (c *Client) watch(conn *ssh.Client, gen uint64) {
	ended := make(chan struct{})
	go func() {
		_ = conn.Wait()
		close(ended)
	}()
	interval := c.cfg.KeepAlive
	if interval == 0 {
		interval = 15 * time.Second
	}
	if interval > 0 {
		go keepAlive(conn, interval, ended)
	}
	<-ended
	c.mu.Lock()
	if c.gen == gen && c.conn == conn {
		c.conn = nil
	}
	c.mu.Unlock()
}

// keepAlive sends a keepalive@openssh.com request every interval and closes
// the connection when three in a row are not answered (any answer counts:
// servers refuse the request they do not know, and that is an answer).
func keepAlive(conn *ssh.Client, interval time.Duration, ended <-chan struct{}) {
	const allowed = 3
	t := time.NewTicker(interval)
	defer t.Stop()
	answered := make(chan struct{}, 1)
	pending := 0
	for {
		select {
		case <-ended:
			return
		case <-answered:
			pending = 0
		case <-t.C:
			if pending >= allowed {
				conn.Close()
				return
			}
			pending++
			go func() {
				if _, _, err := conn.SendRequest("keepalive@openssh.com", true, nil); err == nil {
					select {
					case answered <- struct{}{}:
					default:
					}
				}
			}()
		}
	}
}

// dial connects, verifies the host key and logs in, within DialTimeout and
// ctx.
func (c *Client) dial(ctx context.Context) (*ssh.Client, error) {
	timeout := c.cfg.DialTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	nc, err := (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext(dctx, "tcp", c.addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c, err)
	}
	// The handshake is not context-aware: the deadline bounds it and a
	// cancelled ctx closes the socket under it.
	if dl, ok := dctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(dctx, func() { nc.Close() })
	defer stop()

	var keyErr error
	conf := &ssh.ClientConfig{
		User: c.cfg.User,
		Auth: c.auth,
		HostKeyCallback: func(host string, remote net.Addr, key ssh.PublicKey) error {
			keyErr = c.hostKeys(host, remote, key)
			return keyErr
		},
		HostKeyAlgorithms: c.algos,
		Timeout:           timeout,
	}
	sc, chans, reqs, err := ssh.NewClientConn(nc, c.addr, conf)
	if err != nil {
		nc.Close()
		switch {
		case keyErr != nil:
			return nil, fmt.Errorf("%s: %w", c, keyErr)
		case strings.Contains(err.Error(), "unable to authenticate"):
			return nil, fmt.Errorf("%s: %w: the server accepted none of the credentials (%s): %w",
				c, ErrAuth, c.methods(), transfer.ErrPermanent)
		case strings.Contains(err.Error(), "no common algorithm"):
			return nil, fmt.Errorf("%s: %w: %w", c, err, transfer.ErrPermanent)
		case dctx.Err() != nil && ctx.Err() == nil:
			return nil, fmt.Errorf("%s: no SSH session within %v: %w", c, timeout, err)
		case ctx.Err() != nil:
			return nil, context.Cause(ctx)
		}
		return nil, fmt.Errorf("%s: %w", c, err)
	}
	_ = nc.SetDeadline(time.Time{})
	return ssh.NewClient(sc, chans, reqs), nil
}

// methods names the kinds of credential configured, for messages.
func (c *Client) methods() string {
	var m []string
	if len(c.cfg.PrivateKey) > 0 {
		m = append(m, "private key")
	}
	if c.cfg.Password != "" {
		m = append(m, "password")
	}
	return strings.Join(m, ", ")
}

// hostKeyCallback builds the host key check of cfg and the host key
// algorithms to ask for: those of the keys trusted, so that a server with
// several keys presents one we know.
func hostKeyCallback(cfg Config) (ssh.HostKeyCallback, []string, error) {
	var fps []string
	for _, fp := range cfg.HostKeyFingerprints {
		fp = strings.TrimSpace(fp)
		raw, ok := strings.CutPrefix(fp, "SHA256:")
		if b, err := base64.RawStdEncoding.DecodeString(raw); !ok || err != nil || len(b) != 32 {
			return nil, nil, invalid(fmt.Sprintf("host key fingerprint %q is not SHA256:<43 base64 characters> as ssh-keygen -l prints it", fp))
		}
		fps = append(fps, fp)
	}
	var known ssh.HostKeyCallback
	var algos []string
	if strings.TrimSpace(cfg.KnownHosts) != "" {
		var err error
		if known, algos, err = parseKnownHosts(cfg.KnownHosts); err != nil {
			return nil, nil, err
		}
	}
	if known == nil && len(fps) == 0 {
		return nil, nil, invalid("no known_hosts line and no host key fingerprint: the server's host key cannot be verified")
	}
	if len(fps) > 0 {
		algos = nil // a fingerprint may be of any key type the server has
	}
	return func(host string, remote net.Addr, key ssh.PublicKey) error {
		// A fingerprint names a key; a host certificate carries one, and that
		// is what `ssh-keygen -l` on the server prints and messages show.
		offered, kind := ssh.FingerprintSHA256(key), key.Type()
		if cert, ok := key.(*ssh.Certificate); ok {
			offered, kind = ssh.FingerprintSHA256(cert.Key), cert.Key.Type()+" (in a host certificate)"
		}
		for _, fp := range fps {
			if fp == offered {
				return nil
			}
		}
		if known != nil {
			err := known(host, remote, key)
			if err == nil {
				return nil
			}
			var kerr *knownhosts.KeyError
			var rerr *knownhosts.RevokedError
			switch {
			case errors.As(err, &rerr):
				return fmt.Errorf("%w: the server offered %s key %s, which known_hosts revokes: %w",
					ErrHostKey, kind, offered, transfer.ErrPermanent)
			case errors.As(err, &kerr) && len(kerr.Want) > 0:
				return fmt.Errorf("%w: the server offered %s key %s, but known_hosts holds another key for %s (the host key changed, or someone is in the middle): %w",
					ErrHostKey, kind, offered, host, transfer.ErrPermanent)
			case !errors.As(err, &kerr):
				// Certificates that do not verify, and the like.
				return fmt.Errorf("%w: %v (the server offered %s key %s): %w",
					ErrHostKey, err, kind, offered, transfer.ErrPermanent)
			}
		}
		return fmt.Errorf("%w: the server offered %s key %s, which is not trusted; check it out of band, then add it to the known hosts or the host key fingerprints: %w",
			ErrHostKey, kind, offered, transfer.ErrPermanent)
	}, algos, nil
}

// parseKnownHosts reads known_hosts content through x/crypto's knownhosts
// (its matching of patterns, hashed names and CA lines is OpenSSH's), which
// reads only files: the content goes through a private temporary file,
// removed at once. It also returns the host key algorithms of the keys.
func parseKnownHosts(content string) (ssh.HostKeyCallback, []string, error) {
	var algos []string
	add := func(a ...string) {
		for _, x := range a {
			if !slices.Contains(algos, x) {
				algos = append(algos, x)
			}
		}
	}
	rest := []byte(content)
	for n := 1; len(strings.TrimSpace(string(rest))) > 0; n++ {
		marker, _, key, _, next, err := ssh.ParseKnownHosts(rest)
		if err != nil {
			if err == io.EOF {
				break
			}
			return nil, nil, invalid("known hosts: " + err.Error())
		}
		rest = next
		switch marker {
		case "cert-authority":
			add(ssh.CertAlgoED25519v01, ssh.CertAlgoECDSA256v01, ssh.CertAlgoECDSA384v01, ssh.CertAlgoECDSA521v01,
				ssh.CertAlgoRSASHA512v01, ssh.CertAlgoRSASHA256v01)
		case "revoked":
		default:
			if key.Type() == ssh.KeyAlgoRSA {
				add(ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256)
			} else {
				add(key.Type())
			}
		}
	}
	f, err := os.CreateTemp("", "hypersdk-known-hosts-")
	if err != nil {
		return nil, nil, fmt.Errorf("known hosts: %w", err)
	}
	defer os.Remove(f.Name())
	_, werr := f.WriteString(content + "\n")
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return nil, nil, fmt.Errorf("known hosts: %w", werr)
	}
	cb, err := knownhosts.New(f.Name())
	if err != nil {
		return nil, nil, invalid("known hosts: " + strings.ReplaceAll(err.Error(), f.Name(), "line"))
	}
	if len(algos) == 0 {
		algos = nil
	}
	return cb, algos, nil
}

// Addr is the server's "host:port".
func (c *Client) Addr() string { return c.addr }
