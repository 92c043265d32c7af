package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"testing"
	"time"

	"github.com/hypersdk/hypersdk/daemon/api"
)

// A second daemon on a data directory in use exits non-zero, naming the
// first one's pid and address, and touches nothing: the first keeps
// serving and its endpoint file still names it. After a SIGKILL of the
// first, the kernel has dropped the lock and a new daemon starts.
func TestSecondDaemonOnDataDirRefused(t *testing.T) {
	a := newDaemon(t, "")
	a.start()
	endpointPath := filepath.Join(a.dataDir, api.EndpointFile)

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
