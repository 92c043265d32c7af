package sshclient

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/hypersdk/hypersdk/internal/sshdtest"
	"github.com/hypersdk/hypersdk/transfer"
)

func keyConfig(s *sshdtest.Server) Config {
	return Config{Addr: s.Addr, User: s.User, PrivateKey: s.ClientKey, KnownHosts: s.KnownHosts}
}

func newClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// commandScript writes the forced command: it plays a remote tool whose
// output streams (a dump of `size` bytes, as vzdump --stdout does) or that
// fails with a message on standard error.
func commandScript(t *testing.T) string {
	t.Helper()
	script := filepath.Join(t.TempDir(), "cmd.sh")
	body := `#!/bin/sh
set -- $SSH_ORIGINAL_COMMAND
case "$1" in
dump) exec head -c "$2" /dev/zero ;;
fail) echo "ERROR: VM $2 not found" >&2; exit 2 ;;
sleep) exec sleep "$2" ;;
*) echo "unknown command $1" >&2; exit 127 ;;
esac
`
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return script
}

func TestRunStreamsOutputAndReportsFailure(t *testing.T) {
	s := sshdtest.Start(t, sshdtest.Options{Command: commandScript(t)})
	c := newClient(t, keyConfig(s))
	ctx := context.Background()

	const size = 8<<20 + 3
	h := sha256.New()
	if err := c.Run(ctx, fmt.Sprintf("dump %d", size), h); err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(make([]byte, size))
	if got := hex.EncodeToString(h.Sum(nil)); got != hex.EncodeToString(want[:]) {
		t.Fatalf("streamed output sha256 %s, want %x", got, want)
	}

	err := c.Run(ctx, "fail 101", io.Discard)
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Status != 2 || ee.Stderr != "ERROR: VM 101 not found" {
		t.Fatalf("failing command: %v", err)
	}

	// A consumer reading the output sees the failure instead of an EOF.
	rc, err := c.Start(ctx, "fail 102")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(rc); !errors.As(err, &ee) || ee.Status != 2 {
		t.Fatalf("read of a failing command: %v", err)
	}
	rc.Close()

	// Ending ctx releases a reader blocked on a running command at once,
	// even one that neither writes nor takes the signal (sshd refuses
	// signals to forced commands); the connection stays usable.
	_, gen, _ := c.Conn(ctx)
	cctx, cancel := context.WithCancel(ctx)
	rc, err = c.Start(cctx, "sleep 60")
	if err != nil {
		t.Fatal(err)
	}
	read := make(chan error, 1)
	go func() { _, err := rc.Read(make([]byte, 1)); read <- err }()
	cancel()
	if err := <-read; !errors.Is(err, context.Canceled) {
		t.Fatalf("read of a cancelled command: %v", err)
	}
	if err := rc.Wait(); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait of a cancelled command: %v", err)
	}
	rc.Close()
	h.Reset()
	if err := c.Run(ctx, "dump 10", h); err != nil {
		t.Fatalf("command after a cancelled one: %v", err)
	}
	if _, gen2, _ := c.Conn(ctx); gen2 != gen {
		t.Errorf("a cancelled command cost its connection")
	}
}

func TestHostKeyVerification(t *testing.T) {
	s := sshdtest.Start(t, sshdtest.Options{HostCertificate: true})
	ctx := context.Background()
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	otherKey, _ := ssh.NewSignerFromKey(other)
	otherLine := fmt.Sprintf("[%s]:%d %s", s.Host, s.Port, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(otherKey.PublicKey()))))
	elsewhere := "[198.51.100.7]:22 " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.HostKey)))

	for _, tc := range []struct {
		name    string
		known   string
		fps     []string
		wantErr string // "" = trusted
	}{
		{name: "known_hosts", known: s.KnownHosts},
		{name: "fingerprint", fps: []string{s.Fingerprint}},
		{name: "cert-authority", known: s.CAKnownHosts},
		{name: "unknown host", known: elsewhere, wantErr: "is not trusted"},
		{name: "changed key", known: otherLine, wantErr: "holds another key"},
		{name: "other fingerprint", fps: []string{ssh.FingerprintSHA256(otherKey.PublicKey())}, wantErr: "is not trusted"},
		{name: "revoked", known: s.KnownHosts + "\n@revoked * " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.HostKey))), wantErr: "revokes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := keyConfig(s)
			cfg.KnownHosts, cfg.HostKeyFingerprints = tc.known, tc.fps
			c := newClient(t, cfg)
			_, _, err := c.Conn(ctx)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrHostKey) || !errors.Is(err, transfer.ErrPermanent) ||
				!strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), s.Fingerprint) {
				t.Fatalf("err %v; want ErrHostKey, permanent, %q and the offered fingerprint %s", err, tc.wantErr, s.Fingerprint)
			}
		})
	}
}

func TestWrongPasswordIsPermanentAndNotShown(t *testing.T) {
	s := sshdtest.Start(t, sshdtest.Options{})
	const secret = "Sup3r-s3cret-pw!"
	cfg := Config{Addr: s.Addr, User: s.User, Password: secret, KnownHosts: s.KnownHosts}
	c := newClient(t, cfg)
	_, _, err := c.Conn(context.Background())
	if !errors.Is(err, ErrAuth) || !errors.Is(err, transfer.ErrPermanent) {
		t.Fatalf("err %v, want ErrAuth and permanent", err)
	}
	if strings.Contains(err.Error(), secret) || strings.Contains(fmt.Sprintf("%+v %#v", err, err), secret) {
		t.Fatalf("the password appears in the error: %v", err)
	}
	if !strings.Contains(s.Log(), "Failed password for") {
		t.Errorf("sshd did not see a password attempt:\n%s", s.Log())
	}
}

// TestPasswordLogin: sshd checks passwords against the system's accounts,
// which a test must not change, so the successful password logins run
// against x/crypto's SSH server in process (the real protocol, the client
// unmodified): once with "password", once with a keyboard-interactive
// prompt as PAM-backed servers ask.
func TestPasswordLogin(t *testing.T) {
	for _, kbd := range []bool{false, true} {
		t.Run(fmt.Sprintf("keyboard-interactive=%v", kbd), func(t *testing.T) {
			addr, hostKey := passwordServer(t, "operator", "correct horse", kbd)
			c := newClient(t, Config{Addr: addr, User: "operator", Password: "correct horse",
				HostKeyFingerprints: []string{ssh.FingerprintSHA256(hostKey)}})
			if _, _, err := c.Conn(context.Background()); err != nil {
				t.Fatal(err)
			}
			c2 := newClient(t, Config{Addr: addr, User: "operator", Password: "battery staple",
				HostKeyFingerprints: []string{ssh.FingerprintSHA256(hostKey)}})
			if _, _, err := c2.Conn(context.Background()); !errors.Is(err, ErrAuth) {
				t.Fatalf("wrong password: %v", err)
			}
		})
	}
}

func passwordServer(t *testing.T, user, password string, kbd bool) (string, ssh.PublicKey) {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(priv)
	conf := &ssh.ServerConfig{}
	if kbd {
		conf.KeyboardInteractiveCallback = func(c ssh.ConnMetadata, ask ssh.KeyboardInteractiveChallenge) (*ssh.Permissions, error) {
			ans, err := ask(c.User(), "", []string{"Password: "}, []bool{false})
			if err == nil && c.User() == user && len(ans) == 1 && ans[0] == password {
				return nil, nil
			}
			return nil, errors.New("denied")
		}
	} else {
		conf.PasswordCallback = func(c ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
			if c.User() == user && string(pw) == password {
				return nil, nil
			}
			return nil, errors.New("denied")
		}
	}
	conf.AddHostKey(signer)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer nc.Close()
				sc, chans, reqs, err := ssh.NewServerConn(nc, conf)
				if err != nil {
					return
				}
				defer sc.Close()
				go ssh.DiscardRequests(reqs)
				for ch := range chans {
					_ = ch.Reject(ssh.Prohibited, "no channels here")
				}
			})
		}
	})
	return l.Addr().String(), signer.PublicKey()
}

// TestDeadPeerIsDetectedAndRedialed: a connection whose peer stops
// answering (a frozen proxy in between) is closed by the keepalive, and the
// next use dials a new one; Drop does the same on request.
func TestDeadPeerIsDetectedAndRedialed(t *testing.T) {
	s := sshdtest.Start(t, sshdtest.Options{})
	p := newFreezingProxy(t, s.Addr)
	cfg := keyConfig(s)
	cfg.Addr = p.addr
	cfg.KnownHosts = strings.Replace(s.KnownHosts, fmt.Sprintf("[%s]:%d", s.Host, s.Port), "["+strings.Replace(p.addr, ":", "]:", 1), 1)
	cfg.KeepAlive = 20 * time.Millisecond
	c := newClient(t, cfg)
	ctx := context.Background()
	conn, gen, err := c.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p.freeze()
	done := make(chan error, 1)
	go func() { done <- conn.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("a connection to a frozen peer was not closed by the keepalive")
	}
	p.thaw()
	// The client forgets the connection once it has ended, right after.
	var conn2 *ssh.Client
	var gen2 uint64
	for deadline := time.Now().Add(10 * time.Second); ; {
		if conn2, gen2, err = c.Conn(ctx); err != nil || conn2 != conn || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err != nil || conn2 == conn || gen2 == gen {
		t.Fatalf("after the dead connection: %v (same connection %v)", err, conn2 == conn)
	}
	c.Drop(gen2)
	if _, gen3, err := c.Conn(ctx); err != nil || gen3 == gen2 {
		t.Fatalf("after Drop: gen %d, %v", gen3, err)
	}
}

// freezingProxy forwards TCP to a target until frozen, then holds every
// byte (a peer that went silent without closing).
type freezingProxy struct {
	addr   string
	mu     sync.Mutex
	frozen bool
	cond   *sync.Cond
}

func newFreezingProxy(t *testing.T, target string) *freezingProxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezingProxy{addr: l.Addr().String()}
	p.cond = sync.NewCond(&p.mu)
	var conns []net.Conn
	var cmu sync.Mutex
	t.Cleanup(func() {
		l.Close()
		p.thaw()
		cmu.Lock()
		for _, c := range conns {
			c.Close()
		}
		cmu.Unlock()
	})
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			cmu.Lock()
			conns = append(conns, in, out)
			cmu.Unlock()
			go p.pipe(in, out)
			go p.pipe(out, in)
		}
	}()
	return p
}

func (p *freezingProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		p.mu.Lock()
		for p.frozen {
			p.cond.Wait()
		}
		p.mu.Unlock()
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			dst.Close()
			return
		}
	}
}

func (p *freezingProxy) freeze() { p.mu.Lock(); p.frozen = true; p.mu.Unlock() }
func (p *freezingProxy) thaw()   { p.mu.Lock(); p.frozen = false; p.cond.Broadcast(); p.mu.Unlock() }

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{User: "u", Password: "p", HostKeyFingerprints: []string{"SHA256:" + strings.Repeat("A", 43)}}, "no address"},
		{Config{Addr: "h", Password: "p", HostKeyFingerprints: []string{"SHA256:" + strings.Repeat("A", 43)}}, "no user"},
		{Config{Addr: "h", User: "u", HostKeyFingerprints: []string{"SHA256:" + strings.Repeat("A", 43)}}, "no password and no private key"},
		{Config{Addr: "h", User: "u", Password: "p"}, "cannot be verified"},
		{Config{Addr: "h", User: "u", Password: "p", HostKeyFingerprints: []string{"MD5:aa:bb"}}, "is not SHA256"},
		{Config{Addr: "h", User: "u", Password: "p", KnownHosts: "h ssh-ed25519 not-base64!"}, "known hosts"},
		{Config{Addr: "h", User: "u", PrivateKey: []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"),
			HostKeyFingerprints: []string{"SHA256:" + strings.Repeat("A", 43)}}, "private key"},
	} {
		_, err := New(tc.cfg)
		if !errors.Is(err, transfer.ErrPermanent) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.cfg.Addr, err, tc.want)
		}
	}
}
