// Package sambatest runs a real Samba smbd (Debian samba) for tests: Start
// launches it on a free loopback port with a private smb.conf, one share
// over a temporary directory and one user in a private passdb, and stops it
// when the test ends. Every file smbd writes (configuration, passdb,
// private, lock, state, cache and PID directories, logs) lies in a
// temporary directory; the system's Samba configuration is neither read
// nor touched.
//
// It works as root (CI) and as a normal user alike: the SMB user is the
// account running the test, added to the private passdb with pdbedit
// (smbpasswd -a insists on root; pdbedit writes the tdbsam file of the
// private configuration as whoever owns it), and smbd, which needs no
// privileges to serve files its own user owns, runs as that user.
//
// A missing smbd or pdbedit fails the test with the command that installs
// it; it is never skipped.
package sambatest

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
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
)

// InstallHint says how to get Samba.
const InstallHint = "install Debian's samba (apt-get install samba), or run `make test-deps` as root"

// Options shapes a server.
type Options struct {
	// Share is the share's name. Default "export".
	Share string
	// Signing makes the server require signed messages.
	Signing bool
	// Encrypt makes the server require SMB3 encryption of every message.
	Encrypt bool
}

// Server is a running smbd.
type Server struct {
	// Addr is host:port, Host and Port its parts (Host is 127.0.0.1).
	Addr string
	Host string
	Port int
	// User and Password log in; Domain is the server's workgroup.
	User     string
	Password string
	Domain   string
	// Share is the share's name and ShareDir the directory it serves.
	Share    string
	ShareDir string
	// Conf is the private smb.conf, for command-line clients (smbclient
	// -s Conf); Dir holds it and every other file of the server.
	Conf string
	Dir  string

	log *logBuffer
}

// Log returns what smbd has logged so far.
func (s *Server) Log() string { return s.log.String() }

// binary finds a Samba program in PATH or the sbin directories a normal
// user's PATH often lacks.
func binary(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found", name)
}

// Start launches smbd for the test and stops it at cleanup.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	smbd, err := binary("smbd")
	if err != nil {
		t.Fatalf("sambatest: %v; %s", err, InstallHint)
	}
	pdbedit, err := binary("pdbedit")
	if err != nil {
		t.Fatalf("sambatest: %v; %s", err, InstallHint)
	}
	u, err := user.Current()
	if err != nil {
		t.Fatalf("sambatest: current user: %v", err)
	}
	if opts.Share == "" {
		opts.Share = "export"
	}
	dir := t.TempDir()
	pw := make([]byte, 12)
	_, _ = rand.Read(pw)
	s := &Server{Host: "127.0.0.1", User: u.Username, Password: "Pw-" + hex.EncodeToString(pw), Domain: "WORKGROUP",
		Share: opts.Share, ShareDir: filepath.Join(dir, "share"), Conf: filepath.Join(dir, "smb.conf"), Dir: dir,
		log: &logBuffer{}}
	for _, sub := range []string{"share", "private", "lock", "state", "cache", "pid", "ncalrpc", "log"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatalf("sambatest: %v", err)
		}
	}
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("sambatest: %v", err)
		}
		s.Port, s.Addr = port, net.JoinHostPort(s.Host, strconv.Itoa(port))
		if err := os.WriteFile(s.Conf, []byte(s.config(opts)), 0o600); err != nil {
			t.Fatalf("sambatest: %v", err)
		}
		if attempt == 1 {
			if err := s.addUser(pdbedit); err != nil {
				t.Fatalf("sambatest: %v", err)
			}
		}
		err = s.run(t, smbd)
		if err == nil {
			return s
		}
		if !errors.Is(err, errPortTaken) || attempt == 5 {
			t.Fatalf("sambatest: %v\nsmbd log:\n%s", err, s.Log())
		}
	}
}

func (s *Server) config(opts Options) string {
	d := func(sub string) string { return filepath.Join(s.Dir, sub) }
	signing, encrypt := "default", "default"
	if opts.Signing {
		signing = "mandatory"
	}
	if opts.Encrypt {
		encrypt = "required"
	}
	return fmt.Sprintf(`[global]
server role = standalone server
workgroup = %s
netbios name = HYPERSDKTEST
smb ports = %d
interfaces = 127.0.0.1
bind interfaces only = yes
disable netbios = yes
server min protocol = SMB2_10
server signing = %s
server smb encrypt = %s
security = user
passdb backend = tdbsam:%s
map to guest = never
restrict anonymous = 2
private dir = %s
lock directory = %s
state directory = %s
cache directory = %s
pid directory = %s
ncalrpc dir = %s
log file = %s
max log size = 0
log level = 1
load printers = no
printing = bsd
printcap name = /dev/null
disable spoolss = yes
usershare path =
registry shares = no
include system krb5 conf = no

[%s]
path = %s
read only = no
browseable = yes
valid users = %s
create mask = 0600
directory mask = 0700
`, s.Domain, s.Port, signing, encrypt, filepath.Join(d("private"), "passdb.tdb"), d("private"), d("lock"), d("state"),
		d("cache"), d("pid"), d("ncalrpc"), filepath.Join(d("log"), "smbd.log"), s.Share, s.ShareDir, s.User)
}

// addUser puts the test's user into the private passdb.
func (s *Server) addUser(pdbedit string) error {
	cmd := exec.Command(pdbedit, "-s", s.Conf, "-a", "-t", "-u", s.User)
	// -t: the password (twice) on standard input, never in the arguments.
	cmd.Stdin = strings.NewReader(s.Password + "\n" + s.Password + "\n")
	cmd.Env = []string{"PATH=/usr/bin:/bin:/usr/sbin:/sbin", "HOME=" + s.Dir}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pdbedit -a %s: %v: %s", s.User, err, out)
	}
	return nil
}

var errPortTaken = errors.New("port taken")

// run starts smbd and waits until it accepts connections; errPortTaken
// when its port was taken meanwhile.
func (s *Server) run(t testing.TB, smbd string) error {
	cmd := exec.Command(smbd, "--foreground", "--no-process-group", "--debug-stdout", "-s", s.Conf)
	cmd.Dir = s.Dir
	cmd.Env = []string{"PATH=/usr/bin:/bin:/usr/sbin:/sbin", "HOME=" + s.Dir}
	// Its own process group: the cleanup stops smbd and the children it
	// forks per connection together.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w; %s", smbd, err, InstallHint)
	}
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			s.log.add(sc.Text())
		}
		_ = cmd.Wait()
	}()
	stop := func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	}
	deadline := time.After(30 * time.Second)
	for {
		if strings.Contains(s.Log(), "Address already in use") {
			stop()
			return fmt.Errorf("smbd on port %d: %w", s.Port, errPortTaken)
		}
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			c.Close()
			t.Cleanup(func() {
				stop()
				if t.Failed() {
					t.Logf("smbd log:\n%s", s.Log())
				}
			})
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("smbd exited before listening (%v)", cmd.ProcessState)
		case <-deadline:
			stop()
			return errors.New("smbd did not listen within 30s")
		case <-time.After(20 * time.Millisecond):
		}
	}
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

// logBuffer keeps smbd's log lines, bounded.
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
