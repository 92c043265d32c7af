package proxmox

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/config"
	"github.com/hypersdk/hypersdk/internal/sshdtest"
	"github.com/hypersdk/hypersdk/providers/proxmox/pvefake"
)

// The test binary doubles as the nodes' commands: sshd's forced command
// runs it with PVEFAKE_STATE set, and it plays vzdump, pvesm and qm
// against the fake's state (pvefake.Run), so that the real SSH client
// talks to a real sshd.
func TestMain(m *testing.M) {
	if os.Getenv(pvefake.StateEnv) != "" {
		pvefake.Main()
	}
	if path := os.Getenv(childEnv); path != "" {
		runChild(path)
	}
	os.Exit(m.Run())
}

const (
	testTokenID = "hypersdk@pve!test"
	testSecret  = "5e3c1a2b-0d4f-4b6a-9e8d-7c6b5a4f3e2d"
	testUser    = "exporter@pve"
	testPass    = "correct horse battery staple"
)

// fixture is a fake cluster: the API server, a real sshd whose forced
// command plays the nodes, and their shared state.
type fixture struct {
	dir  string
	inv  pvefake.Inventory
	st   *pvefake.State
	srv  *pvefake.Server
	sshd *sshdtest.Server
	logs *logBuffer
}

func newFixture(t *testing.T, o pvefake.SampleOptions) *fixture {
	t.Helper()
	dir := t.TempDir()
	inv, err := pvefake.SampleInventory(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	st, err := pvefake.NewState(filepath.Join(dir, "state"), inv)
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "node-command.sh")
	body := "#!/bin/sh\nexport " + pvefake.StateEnv + "=" + shellQuote(st.Dir) + "\nexec " + shellQuote(exe) + "\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	sshd := sshdtest.Start(t, sshdtest.Options{Command: script})
	srv := pvefake.New(pvefake.Options{State: st, Tokens: map[string]string{testTokenID: testSecret}, Users: map[string]string{testUser: testPass}})
	srv.Start()
	t.Cleanup(srv.Close)
	return &fixture{dir: dir, inv: inv, st: st, srv: srv, sshd: sshd, logs: &logBuffer{}}
}

// config is the provider's configuration reaching the fixture with the
// API token.
func (f *fixture) config() Config {
	nodes := map[string]SSHNode{}
	for _, vm := range f.inv.VMs {
		nodes[vm.Node] = SSHNode{Host: f.sshd.Host, Port: f.sshd.Port}
	}
	return Config{
		URL: f.srv.URL(), TokenID: testTokenID, TokenSecret: config.NewSecret(testSecret), Thumbprint: f.srv.Thumbprint(),
		Vzdump: VzdumpConfig{Storage: "local"},
		SSH: SSHConfig{User: f.sshd.User, PrivateKey: config.NewSecret(string(f.sshd.ClientKey)),
			KnownHosts: f.sshd.KnownHosts, Nodes: nodes},
	}
}

// provider returns a connected provider for cfg, logging into f.logs.
func (f *fixture) provider(t *testing.T, cfg Config) *Provider {
	t.Helper()
	p, err := NewProvider("pve-test", cfg, slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	p.tune.taskPoll = 20 * time.Millisecond
	if err := p.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Disconnect() })
	return p
}

// leftovers asks the fake what exports left: snapshots, dumps, running
// tasks.
func (f *fixture) leftovers(t *testing.T) []string {
	t.Helper()
	left, err := f.st.Leftovers()
	if err != nil {
		t.Fatal(err)
	}
	for _, upid := range f.srv.RunningTasks() {
		left = append(left, "task "+upid)
	}
	return left
}

// volumeFile returns the raw image of volume id.
func (f *fixture) volumeFile(t *testing.T, id string) string {
	t.Helper()
	for _, v := range f.inv.Volumes {
		if v.ID == id {
			return v.File
		}
	}
	t.Fatalf("no volume %s", id)
	return ""
}

// commands returns the node commands run, those matching prefix.
func (f *fixture) commands(prefix string) []string {
	var out []string
	for _, c := range f.st.Commands() {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	return out
}

type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
