// Package sshdtest runs a real OpenSSH sshd (Debian openssh-server) for
// tests: Start launches it on a free loopback port as the current user,
// with a private configuration, a fresh ed25519 host key and one
// authorized client key, all in a temporary directory, and stops it when the
// test ends. Nothing outside that directory is written, except /run/sshd
// when the tests run as root and it is missing: sshd insists on that empty
// privilege-separation directory (Debian's service creates it at boot).
//
// The server offers the SFTP subsystem (internal-sftp, or OpenSSH's
// sftp-server when a Command is forced) and, when Options.Command is set,
// runs that program for every exec request instead of the client's command,
// which it finds in $SSH_ORIGINAL_COMMAND: a test makes sshd play
// `vzdump --stdout` or `pvesm export` that way.
//
// Password authentication is enabled but never succeeds: sshd checks
// passwords against the system's accounts, which a test must not change.
// Tests of a wrong password use it; logging in uses ClientKey.
//
// A missing sshd fails the test with the command that installs it; it is
// never skipped.
package sshdtest

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// InstallHint says how to get sshd.
const InstallHint = "install Debian's openssh-server (apt-get install openssh-server), or run `make test-deps` as root"

// Options shapes a server.
type Options struct {
	// Command, when set, is an executable run (through the user's shell,
	// as sshd does) for every exec request instead of the client's command,
	// which it finds in $SSH_ORIGINAL_COMMAND (sshd's ForceCommand). SFTP
	// keeps working.
	Command string
	// SFTPDir is the SFTP subsystem's start directory, against which
	// relative paths resolve. Default: the server's Dir.
	SFTPDir string
	// HostCertificate makes the server present its host key as a
	// certificate signed by a fresh CA (Server.CA, Server.CAKnownHosts).
	HostCertificate bool
}

// Server is a running sshd.
type Server struct {
	// Addr is host:port, Host and Port its parts (Host is 127.0.0.1).
	Addr string
	Host string
	Port int
	// User is the account to log in as: the user running the test.
	User string
	// HostKey is the server's public host key; KnownHosts a known_hosts
	// line for it ("[127.0.0.1]:PORT ssh-ed25519 AAAA…") and Fingerprint
	// its SHA256 fingerprint ("SHA256:…").
	HostKey     ssh.PublicKey
	KnownHosts  string
	Fingerprint string
	// CA is the host certificate authority's key and CAKnownHosts the
	// "@cert-authority" known_hosts line that trusts it for this server
	// (Options.HostCertificate only).
	CA           ssh.PublicKey
	CAKnownHosts string
	// ClientKey is an authorized private key (OpenSSH PEM) and ClientKeyFile
	// where it is stored (mode 0600), for command-line clients.
	ClientKey     []byte
	ClientKeyFile string
	// KnownHostsFile holds KnownHosts, for command-line clients.
	KnownHostsFile string
	// Dir is the server's private directory (configuration, keys, PID).
	Dir string

	log      *logBuffer
	hostCert []byte
}

// Log returns what sshd has logged so far.
func (s *Server) Log() string { return s.log.String() }

// Binary finds sshd: in PATH, or in /usr/sbin, which a normal user's PATH
// often lacks.
func Binary() (string, error) {
	if p, err := exec.LookPath("sshd"); err == nil {
		return filepath.Abs(p) // sshd re-executes itself and needs an absolute path
	}
	for _, p := range []string{"/usr/sbin/sshd", "/sbin/sshd"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("sshd not found")
}

// sftpServer is OpenSSH's SFTP server program, used when Command forces
// every request through a script (internal-sftp cannot be exec'ed).
const sftpServer = "/usr/lib/openssh/sftp-server"

// Start launches sshd for the test and stops it at cleanup.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatalf("sshdtest: %v; %s", err, InstallHint)
	}
	u, err := user.Current()
	if err != nil {
		t.Fatalf("sshdtest: current user: %v", err)
	}
	dir := t.TempDir()
	s := &Server{Host: "127.0.0.1", User: u.Username, Dir: dir, log: &logBuffer{}}
	if err := s.writeKeys(opts.HostCertificate); err != nil {
		t.Fatalf("sshdtest: %v", err)
	}
	if os.Geteuid() == 0 {
		// sshd running as root chroots its pre-authentication child there.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatalf("sshdtest: privilege separation directory: %v", err)
		}
	}
	if opts.SFTPDir == "" {
		opts.SFTPDir = dir
	}
	subsystem := "internal-sftp -d " + quote(opts.SFTPDir)
	force := ""
	if opts.Command != "" {
		if _, err := os.Stat(sftpServer); err != nil {
			t.Fatalf("sshdtest: %s is missing; %s", sftpServer, InstallHint)
		}
		subsystem = sftpServer + " -d " + quote(opts.SFTPDir)
		dispatch := filepath.Join(dir, "dispatch.sh")
		script := "#!/bin/sh\n# SFTP through its server, everything else through the test's command.\n" +
			"case \"$SSH_ORIGINAL_COMMAND\" in\n" +
			sftpServer + "*) exec " + subsystem + " ;;\n" +
			"esac\nexec " + quote(opts.Command) + "\n"
		if err := os.WriteFile(dispatch, []byte(script), 0o755); err != nil {
			t.Fatalf("sshdtest: %v", err)
		}
		force = "ForceCommand " + dispatch + "\n"
	}

	// A port picked now may be taken before sshd binds it: try again then.
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("sshdtest: %v", err)
		}
		s.Port, s.Addr = port, net.JoinHostPort(s.Host, strconv.Itoa(port))
		if err := s.writeConfig(subsystem, force); err != nil {
			t.Fatalf("sshdtest: %v", err)
		}
		err = s.run(t, bin)
		if err == nil {
			return s
		}
		if !errors.Is(err, errPortTaken) || attempt == 5 {
			t.Fatalf("sshdtest: %v\nsshd log:\n%s", err, s.Log())
		}
	}
}

var errPortTaken = errors.New("port taken")

func (s *Server) writeKeys(withCert bool) error {
	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	s.hostCert = nil
	hostPEM, err := ssh.MarshalPrivateKey(hostPriv, "")
	if err != nil {
		return err
	}
	hostSigner, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		return err
	}
	_, clientPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	clientPEM, err := ssh.MarshalPrivateKey(clientPriv, "")
	if err != nil {
		return err
	}
	clientSigner, err := ssh.NewSignerFromKey(clientPriv)
	if err != nil {
		return err
	}
	s.HostKey = hostSigner.PublicKey()
	s.Fingerprint = ssh.FingerprintSHA256(s.HostKey)
	if withCert {
		_, caPriv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return err
		}
		ca, err := ssh.NewSignerFromKey(caPriv)
		if err != nil {
			return err
		}
		cert := &ssh.Certificate{Key: s.HostKey, Serial: 1, CertType: ssh.HostCert, KeyId: "sshdtest",
			ValidPrincipals: []string{s.Host}, ValidBefore: ssh.CertTimeInfinity}
		if err := cert.SignCert(rand.Reader, ca); err != nil {
			return err
		}
		s.CA, s.hostCert = ca.PublicKey(), ssh.MarshalAuthorizedKey(cert)
	}
	s.ClientKey = pem.EncodeToMemory(clientPEM)
	s.ClientKeyFile = filepath.Join(s.Dir, "client_ed25519")
	files := map[string][]byte{
		"host_ed25519":    pem.EncodeToMemory(hostPEM),
		"client_ed25519":  s.ClientKey,
		"authorized_keys": ssh.MarshalAuthorizedKey(clientSigner.PublicKey()),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(s.Dir, name), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) writeConfig(subsystem, force string) error {
	s.KnownHosts = fmt.Sprintf("[%s]:%d %s", s.Host, s.Port, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.HostKey))))
	s.KnownHostsFile = filepath.Join(s.Dir, "known_hosts")
	if err := os.WriteFile(s.KnownHostsFile, []byte(s.KnownHosts+"\n"), 0o600); err != nil {
		return err
	}
	certLine := ""
	if s.hostCert != nil {
		s.CAKnownHosts = fmt.Sprintf("@cert-authority [%s]:%d %s", s.Host, s.Port, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.CA))))
		certFile := filepath.Join(s.Dir, "host_ed25519-cert.pub")
		if err := os.WriteFile(certFile, s.hostCert, 0o600); err != nil {
			return err
		}
		certLine = "HostCertificate " + certFile + "\n"
	}
	// SHLVL=1: bash sources ~/.bashrc for commands sshd runs only when it
	// is a top-level shell (SHLVL unset); the user's interactive set-up
	// (version managers that rehash under a lock…) must not run, or slow
	// and serialise, every command of a test.
	conf := fmt.Sprintf(`Port %d
ListenAddress %s
AddressFamily inet
HostKey %s
PidFile %s
AuthorizedKeysFile %s
AllowUsers %s
PermitRootLogin yes
StrictModes no
UsePAM no
PubkeyAuthentication yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
PermitEmptyPasswords no
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
AllowAgentForwarding no
AllowTcpForwarding no
PermitTunnel no
PermitUserEnvironment no
MaxSessions 128
MaxStartups 64
LoginGraceTime 30
LogLevel VERBOSE
SetEnv SHLVL=1
Subsystem sftp %s
%s%s`, s.Port, s.Host, filepath.Join(s.Dir, "host_ed25519"), filepath.Join(s.Dir, "sshd.pid"),
		filepath.Join(s.Dir, "authorized_keys"), s.User, subsystem, certLine, force)
	return os.WriteFile(filepath.Join(s.Dir, "sshd_config"), []byte(conf), 0o600)
}

// run starts sshd and waits until it listens; errPortTaken when its port
// was taken meanwhile.
func (s *Server) run(t testing.TB, bin string) error {
	conf := filepath.Join(s.Dir, "sshd_config")
	// -D: stay in the foreground; -e: log to stderr.
	cmd := exec.Command(bin, "-D", "-e", "-f", conf)
	cmd.Dir = s.Dir
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME=" + s.Dir}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w; %s", bin, err, InstallHint)
	}
	listening := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			s.log.add(line)
			if strings.HasPrefix(line, "Server listening on") {
				once.Do(func() { close(listening) })
			}
		}
		_ = cmd.Wait()
	}()
	stop := func() {
		// Sessions run in sessions of their own (setsid), outside sshd's
		// process group: stop every process below sshd, by its PID, first.
		for _, pid := range descendants(cmd.Process.Pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	}
	select {
	case <-listening:
		t.Cleanup(func() {
			stop()
			if t.Failed() {
				t.Logf("sshd log:\n%s", s.Log())
			}
		})
		return nil
	case <-exited:
		if strings.Contains(s.Log(), "Address already in use") {
			return fmt.Errorf("sshd on port %d: %w", s.Port, errPortTaken)
		}
		return fmt.Errorf("sshd exited before listening (%v)", cmd.ProcessState)
	case <-time.After(30 * time.Second):
		stop()
		return errors.New("sshd did not listen within 30s")
	}
}

// descendants lists the processes below pid (children first-found, then
// theirs), read from /proc.
func descendants(pid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// "pid (comm) state ppid …": comm may hold spaces and parentheses.
		rest := stat[bytes.LastIndexByte(stat, ')')+1:]
		f := strings.Fields(string(rest))
		if len(f) < 2 {
			continue
		}
		if ppid, err := strconv.Atoi(f[1]); err == nil {
			children[ppid] = append(children[ppid], p)
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// quote quotes a path for sshd_config and sh alike (no quotes or
// backslashes expected in test paths; refuse them rather than mis-quote).
func quote(p string) string {
	if strings.ContainsAny(p, "\"'\\\n") {
		panic("sshdtest: unsupported character in path " + strconv.Quote(p))
	}
	return `"` + p + `"`
}

// logBuffer keeps sshd's log lines, bounded.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() < 1<<20 {
		l.b.WriteString(line)
		l.b.WriteByte('\n')
	}
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
