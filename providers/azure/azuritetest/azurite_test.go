package azuritetest

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestStartStop: Start gives a serving Azurite, and the test's cleanup
// stops it (its port no longer accepts connections).
func TestStartStop(t *testing.T) {
	var host string
	var t0 time.Time
	t.Run("run", func(t *testing.T) {
		t0 = time.Now()
		a := Start(t)
		t.Logf("Azurite up in %v", time.Since(t0).Round(time.Millisecond))
		t.Cleanup(func() { t0 = time.Now() })
		u, err := url.Parse(a.URL)
		if err != nil || u.Hostname() != "127.0.0.1" || u.Path != "/"+AccountName {
			t.Fatalf("URL %q", a.URL)
		}
		host = u.Host
		// Anonymous listing is refused by a running Azurite: proof that it
		// is Azurite answering, not just something listening.
		resp, err := http.Get(a.URL + "?comp=list")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode < 400 || !strings.Contains(resp.Header.Get("Server"), "Azurite") {
			t.Fatalf("anonymous list: %d, Server %q", resp.StatusCode, resp.Header.Get("Server"))
		}
		if !strings.Contains(a.ConnectionString(), "BlobEndpoint="+a.URL+";") {
			t.Fatalf("connection string %q", a.ConnectionString())
		}
	})
	if host == "" {
		return
	}
	t.Logf("Azurite stopped in %v", time.Since(t0).Round(time.Millisecond))
	c, err := net.DialTimeout("tcp", host, time.Second)
	if err == nil {
		c.Close()
		t.Fatalf("Azurite still listens on %s after the test's cleanup", host)
	}
}

// recorder is a testing.TB whose Fatalf records the message and ends the
// goroutine, as the real one does.
type recorder struct {
	testing.TB
	mu  sync.Mutex
	msg string
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.msg = fmt.Sprintf(format, args...)
	r.mu.Unlock()
	runtime.Goexit()
}

func (r *recorder) Helper() {}

// TestMissingFails: without Azurite installed, Start fails the test — never
// skips it — and says how to install it.
func TestMissingFails(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(DirEnv, dir)
	rec := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Start(rec)
	}()
	<-done
	if rec.msg == "" {
		t.Fatal("Start succeeded without Azurite")
	}
	for _, want := range []string{"make test-deps", "npm install --prefix " + dir + " azurite@3.35.0", "not installed"} {
		if !strings.Contains(rec.msg, want) {
			t.Fatalf("failure message %q does not say %q", rec.msg, want)
		}
	}
}
