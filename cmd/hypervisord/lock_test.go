package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/apitypes"
)

// A second daemon on a data directory in use exits non-zero, naming the
// first one's pid and address, and touches nothing: the first keeps
// serving and its endpoint file still names it. After a SIGKILL of the
// first, the kernel has dropped the lock and a new daemon starts.
func TestSecondDaemonOnDataDirRefused(t *testing.T) {
	a := newDaemon(t, "")
	a.start()
	endpointPath := filepath.Join(a.dataDir, apitypes.EndpointFile)

	b := exec.Command(os.Args[0], "--config", a.config, "--data-dir", a.dataDir, "--listen", "127.0.0.1:0")
	b.Env = append(os.Environ(), childEnv+"=1")
	out := &lockedBuffer{}
	b.Stdout, b.Stderr = out, out
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatalf("second daemon exited 0:\n%s", out)
		}
	case <-time.After(15 * time.Second):
		_ = b.Process.Kill()
		<-done
		t.Fatalf("second daemon still running after 15 s:\n%s", out)
	}
	msg := out.String()
	for _, want := range []string{"in use by another hypervisord", "pid " + strconv.Itoa(a.cmd.Process.Pid), a.url, a.dataDir} {
		if !strings.Contains(msg, want) {
			t.Errorf("second daemon's message lacks %q:\n%s", want, msg)
		}
	}

	if code := a.call("GET", "/healthz", nil, nil); code != 200 {
		t.Errorf("first daemon /healthz: %d", code)
	}
	if b, err := os.ReadFile(endpointPath); err != nil || strings.TrimSpace(string(b)) != a.url {
		t.Errorf("endpoint file %q (%v), want %s", b, err, a.url)
	}
	lock, err := os.ReadFile(filepath.Join(a.dataDir, lockFileName))
	if want := "pid=" + strconv.Itoa(a.cmd.Process.Pid) + " listen=" + a.url + "\n"; err != nil || string(lock) != want {
		t.Errorf("lock file %q (%v), want %q", lock, err, want)
	}

	a.kill()
	a.start()
	if code := a.call("GET", "/healthz", nil, nil); code != 200 {
		t.Errorf("daemon after SIGKILL of the holder: /healthz %d", code)
	}
}

// The SQLite database and its -wal and -shm files are 0600 whatever the
// umask, whether or not the data directory existed (0755) before.
func TestSQLiteFilesPrivate(t *testing.T) {
	for _, preexisting := range []bool{true, false} {
		t.Run("dir-exists="+strconv.FormatBool(preexisting), func(t *testing.T) {
			dmn := newDaemon(t, "")
			if preexisting {
				if err := os.Mkdir(dmn.dataDir, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			old := syscall.Umask(0) // the child inherits it
			dmn.start()
			syscall.Umask(old)
			// Migrations have written: -wal and -shm exist while it runs.
			db := filepath.Join(dmn.dataDir, "hypersdk.db")
			for _, p := range []string{db, db + "-wal", db + "-shm", filepath.Join(dmn.dataDir, lockFileName)} {
				fi, err := os.Stat(p)
				if err != nil {
					t.Errorf("%v", err)
					continue
				}
				if fi.Mode().Perm() != 0o600 {
					t.Errorf("%s mode %v, want 0600", filepath.Base(p), fi.Mode().Perm())
				}
			}
			dmn.kill()
		})
	}
}
