package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/config"
	"github.com/hypersdk/hypersdk/daemon/store"
	"github.com/hypersdk/hypersdk/daemon/store/storetest"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/providers/providertest"
	"github.com/hypersdk/hypersdk/providers/vsphere"
)

// The test binary doubles as a daemon with a fake provider, so that tests
// can SIGKILL a real hypervisord process. Production builds never contain
// the fake: only this test registers it.
const childEnv = "HYPERVISORD_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		ctx, stop := signalContext()
		registry := testRegistry()
		if os.Getenv("HYPERVISORD_TEST_REAL_PROVIDERS") == "1" {
			registry = productionRegistry()
		}
		code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, registry)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// testRegistry serves every "vsphere" instance (decoded as the real one is)
// with a fake whose pacing and call log come from the environment.
func testRegistry() *providers.Registry {
	r := providers.NewRegistry()
	providers.Register(r, providers.TypeVSphere, providers.Registration[vsphere.Config]{Decode: vsphere.Decode, New: func(name string, _ *vsphere.Config, _ providers.Deps) (providers.Provider, error) {
		f := providertest.NewFake(name, providertest.DefaultFakeVMs(16)...)
		f.CallLog = os.Getenv("FAKE_CALL_LOG")
		f.FinishGate = os.Getenv("FAKE_FINISH_GATE")
		if d, err := time.ParseDuration(os.Getenv("FAKE_CHUNK_DELAY")); err == nil {
			f.ChunkDelay = d
		}
		return f, nil
	}})
	return r
}

// daemon is a hypervisord child process.
type daemon struct {
	t       testing.TB
	dataDir string
	config  string
	env     []string
	cmd     *exec.Cmd
	out     *lockedBuffer
	url     string
	token   string
	done    chan error
	client  *http.Client
}

func newDaemon(t testing.TB, configYAML string, env ...string) *daemon {
	t.Helper()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "hypervisord.yaml")
	if err := os.WriteFile(cfgPath, []byte(configYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	d := &daemon{t: t, dataDir: filepath.Join(dir, "data"), config: cfgPath, env: env}
	t.Cleanup(func() {
		if d.cmd != nil && d.cmd.ProcessState == nil {
			_ = d.cmd.Process.Kill()
			<-d.done
		}
	})
	return d
}

// lockedBuffer collects a child's output; it has no ReadFrom, so os/exec's
// copying goroutine goes through the locked Write.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (d *daemon) start(extraArgs ...string) {
	d.t.Helper()
	_ = os.Remove(filepath.Join(d.dataDir, apitypes.EndpointFile))
	args := append([]string{"--config", d.config, "--data-dir", d.dataDir, "--listen", "127.0.0.1:0"}, extraArgs...)
	d.cmd = exec.Command(os.Args[0], args...)
	d.cmd.Env = append(append(os.Environ(), childEnv+"=1"), d.env...)
	out := &lockedBuffer{}
	d.out = out
	d.cmd.Stdout, d.cmd.Stderr = out, out
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.done = make(chan error, 1)
	go func() { d.done <- d.cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(d.dataDir, apitypes.EndpointFile))
		if err == nil && len(b) > 0 {
			d.url = strings.TrimSpace(string(b))
			break
		}
		select {
		case err := <-d.done:
			d.t.Fatalf("daemon exited during start: %v\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("daemon did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if d.token != "" {
		return // configured by the test
	}
	tok, err := os.ReadFile(filepath.Join(d.dataDir, "admin.token"))
	if err != nil {
		d.t.Fatal(err)
	}
	d.token = strings.TrimSpace(string(tok))
}

func (d *daemon) kill() {
	d.t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		d.t.Fatal(err)
	}
	<-d.done
}

func (d *daemon) call(method, path string, body any, v any) int {
	d.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, d.url+path, rd)
	req.Header.Set("Authorization", "Bearer "+d.token)
	req.Header.Set("Content-Type", "application/json")
	c := d.client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		d.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			d.t.Fatalf("%s %s: decode: %v", method, path, err)
		}
	}
	return resp.StatusCode
}

func (d *daemon) allJobs() []*apitypes.Job {
	var out []*apitypes.Job
	cursor := ""
	for {
		var page struct {
			Items      []*apitypes.Job `json:"items"`
			NextCursor string          `json:"next_cursor"`
		}
		d.call("GET", "/api/v1/jobs?limit=1000&cursor="+cursor, nil, &page)
		out = append(out, page.Items...)
		if page.NextCursor == "" {
			return out
		}
		cursor = page.NextCursor
	}
}

// callLog follows the fake provider's call log and remembers when this
// process first saw each line.
type callLog struct {
	path string
	mu   sync.Mutex
	off  int64
	// per job output directory
	starts, dones map[string]int
	openSince     map[string]time.Time // started, not done
	lastDone      time.Time
}

func newCallLog(path string) *callLog {
	return &callLog{path: path, starts: map[string]int{}, dones: map[string]int{}, openSince: map[string]time.Time{}}
}

func (c *callLog) poll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, err := os.Open(c.path)
	if err != nil {
		return
	}
	defer f.Close()
	if _, err := f.Seek(c.off, io.SeekStart); err != nil {
		return
	}
	r := bufio.NewReader(f)
	now := time.Now()
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			break // partial line: re-read next time
		}
		c.off += int64(len(line))
		fields := strings.Fields(line)
		if len(fields) != 3 {
			continue
		}
		dir := fields[2]
		switch fields[0] {
		case "start":
			c.starts[dir]++
			c.openSince[dir] = now
		case "done":
			c.dones[dir]++
			delete(c.openSince, dir)
			c.lastDone = now
		}
	}
}

// quietFor reports whether no completion has been seen for d.
func (c *callLog) quietFor(d time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Since(c.lastDone) >= d
}

// waitUntil polls cond; the bound turns a hang into a failure that says
// what was awaited.
func waitUntil(t testing.TB, what string, bound time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// forget drops in-flight records after a kill: those exports are dead.
func (c *callLog) forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.openSince = map[string]time.Time{}
}

// Two hundred jobs, the daemon SIGKILLed twice mid-flight: after the
// restarts every job has succeeded, and no export ran to completion twice.
//
// Execution is at-least-once: a daemon killed in the instant between a
// provider finishing and the outcome being committed runs that export
// again. The test kills only when no export can be in that instant: a gate
// lets a set number of exports complete and holds the others just before
// they finish; the kill comes once nothing has completed for a while (the
// completed ones have committed), with exports in flight held at the gate.
// A second completion would therefore be a real recovery bug.
func TestSurvivesSIGKILLWithoutRerunningCompletedJobs(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			db := ""
			if d == store.Postgres {
				db = fmt.Sprintf("database:\n  url: %q\n", storetest.PostgresURL(t))
			}
			tmp := t.TempDir()
			callLogPath := filepath.Join(tmp, "calls.log")
			gate := filepath.Join(tmp, "gate-closed")
			dmn := newDaemon(t, db+`
jobs:
  max_concurrent: 16
  heartbeat_stale: 10s
providers:
  - name: lab
    type: vsphere
    url: https://fake.invalid/sdk
`, "FAKE_CALL_LOG="+callLogPath, "FAKE_CHUNK_DELAY=20ms", "FAKE_FINISH_GATE="+gate)
			// The gate lets 40 exports complete, then holds the rest just
			// before they finish.
			if err := os.WriteFile(gate, []byte("40"), 0o600); err != nil {
				t.Fatal(err)
			}
			dmn.start()
			const total = 200
			for i := range total {
				var j apitypes.Job
				if code := dmn.call("POST", "/api/v1/jobs", map[string]any{"provider": "lab", "vm": fmt.Sprintf("vm-%03d", i%16)}, &j); code != 201 {
					t.Fatalf("submit %d: HTTP %d", i, code)
				}
			}
			calls := newCallLog(callLogPath)
			for kill := 1; kill <= 2; kill++ {
				// Wait until the allowed exports have completed and nothing
				// has completed for a while (they have all committed).
				waitUntil(t, "exports to complete up to the gate", 2*time.Minute, func() bool {
					calls.poll()
					calls.mu.Lock()
					n := len(calls.dones)
					calls.mu.Unlock()
					return n >= 40*kill && calls.quietFor(2*time.Second)
				})
				calls.mu.Lock()
				inFlight := len(calls.openSince)
				calls.mu.Unlock()
				if inFlight == 0 {
					t.Fatal("no export in flight at the kill; the test proves nothing")
				}
				dmn.kill()
				calls.poll()
				calls.forget()
				t.Logf("SIGKILL %d with %d exports in flight, after %d completed", kill, inFlight, len(calls.dones))
				next := []byte("80")
				if kill == 2 {
					next = nil
				}
				if next == nil {
					if err := os.Remove(gate); err != nil {
						t.Fatal(err)
					}
				} else if err := os.WriteFile(gate, next, 0o600); err != nil {
					t.Fatal(err)
				}
				dmn.start()
			}
			deadline := time.Now().Add(3 * time.Minute)
			for {
				var pending struct{ Items []*apitypes.Job }
				dmn.call("GET", "/api/v1/jobs?state=queued,running&limit=1", nil, &pending)
				if len(pending.Items) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("jobs still pending after restarts:\n%s", dmn.out.String())
				}
				time.Sleep(200 * time.Millisecond)
			}
			all := dmn.allJobs()
			if len(all) != total {
				t.Fatalf("%d jobs, want %d", len(all), total)
			}
			calls.poll()
			restarted := 0
			for _, j := range all {
				if j.State != apitypes.JobSucceeded {
					t.Errorf("job %s ended %s: %s", j.ID, j.State, j.Error)
				}
				dir := j.Spec.Options.OutputDir
				if n := calls.dones[dir]; n != 1 {
					t.Errorf("job %s ran to completion %d times", j.ID, n)
				}
				if calls.starts[dir] > 1 {
					restarted++
				}
			}
			if restarted == 0 {
				t.Error("no export was interrupted by the kills; the test proves nothing")
			}
			t.Logf("%d jobs succeeded once each; %d were interrupted by a kill and run again", len(all), restarted)
			dmn.kill()
		})
	}
}

func TestSIGTERMHandsRunningJobsBack(t *testing.T) {
	dmn := newDaemon(t, "providers:\n  - name: lab\n    type: vsphere\n    url: https://fake.invalid/sdk\n", "FAKE_CHUNK_DELAY=1s")
	dmn.start()
	var j apitypes.Job
	dmn.call("POST", "/api/v1/jobs", map[string]any{"provider": "lab", "vm": "vm-001"}, &j)
	waitUntil(t, "the job to run", time.Minute, func() bool {
		dmn.call("GET", "/api/v1/jobs/"+j.ID, nil, &j)
		return j.State == apitypes.JobRunning
	})
	if err := dmn.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-dmn.done; err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, dmn.out.String())
	}
	if !strings.Contains(dmn.out.String(), "hypervisord stopped") {
		t.Errorf("no clean stop logged:\n%s", dmn.out.String())
	}
	// Inspect the store directly: the daemon is down.
	cfg, _ := config.Load(dmn.config, nil, testRegistry().Decoders())
	cfg.DataDir = dmn.dataDir
	db, err := store.Open(context.Background(), store.Options{Path: cfg.DatabasePath()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var state string
	var attempt int
	if err := db.SQL.QueryRow("SELECT state, attempt FROM jobs WHERE id = $1", j.ID).Scan(&state, &attempt); err != nil {
		t.Fatal(err)
	}
	if state != "queued" || attempt != 0 {
		t.Fatalf("after SIGTERM the job is %s with attempt %d; want queued, attempt given back", state, attempt)
	}
}

func TestAdminTokenGeneratedOnceWithPrivateMode(t *testing.T) {
	dmn := newDaemon(t, "")
	dmn.start()
	path := filepath.Join(dmn.dataDir, "admin.token")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("admin.token mode %v", fi.Mode().Perm())
	}
	first := dmn.token
	if strings.Contains(dmn.out.String(), first) {
		t.Error("the token was printed")
	}
	if code := dmn.call("GET", "/api/v1/status", nil, nil); code != 200 {
		t.Fatalf("status with the generated token: %d", code)
	}
	dmn.kill()
	dmn.start()
	if dmn.token != first {
		t.Error("token regenerated on restart")
	}
}

func TestCheckConfig(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"--check-config", "--config", "../../config/testdata/seed.yaml"}, &out, &errOut, testRegistry()); code != 0 {
		t.Fatalf("seed config: exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "configuration OK") {
		t.Errorf("output %q", out.String())
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	_ = os.WriteFile(bad, []byte("jobs:\n  max_concurrent: 0\nexport:\n  formt: ova\n"), 0o600)
	out.Reset()
	errOut.Reset()
	if code := run(context.Background(), []string{"--check-config", "--config", bad}, &out, &errOut, testRegistry()); code != 2 {
		t.Fatalf("bad config: exit %d", code)
	}
	if !strings.Contains(errOut.String(), "line 4: export.formt: unknown key") {
		t.Errorf("error output %q", errOut.String())
	}
	// An unavailable provider type is caught by --check-config too.
	noVS := filepath.Join(t.TempDir(), "vs.yaml")
	_ = os.WriteFile(noVS, []byte("vcenter:\n  url: https://vc/sdk\n"), 0o600)
	errOut.Reset()
	if code := run(context.Background(), []string{"--check-config", "--config", noVS}, &out, &errOut, providers.NewRegistry()); code != 2 ||
		!strings.Contains(errOut.String(), `vcenter: the vcenter block is a provider of type "vsphere", which is not available in this build (available: none)`) {
		t.Errorf("exit %d: %s", code, errOut.String())
	}
}

func TestVersionFlag(t *testing.T) {
	var out bytes.Buffer
	if code := run(context.Background(), []string{"--version"}, &out, io.Discard, testRegistry()); code != 0 || !strings.HasPrefix(out.String(), "hypervisord ") {
		t.Fatalf("exit %d output %q", code, out.String())
	}
}

// The demo daemon exports a VM of its simulated vCenter through the API:
// descriptor, manifest and disks whose SHA-256 match the manifest and the
// bytes the simulator serves; qemu-img reads every disk.
func TestDemoExportThroughTheDaemon(t *testing.T) {
	dmn := newDaemon(t, "", "HYPERVISORD_TEST_REAL_PROVIDERS=1")
	dmn.start("--demo")
	if !strings.Contains(dmn.out.String(), "Demo mode") {
		t.Fatalf("no demo instructions printed:\n%s", dmn.out.String())
	}
	var j apitypes.Job
	if code := dmn.call("POST", "/api/v1/jobs", map[string]any{"provider": "demo", "vm": "/DC0/vm/production/db/db-01"}, &j); code != 201 {
		t.Fatalf("submit: %d", code)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for !j.State.Terminal() {
		if time.Now().After(deadline) {
			t.Fatalf("export still %s", j.State)
		}
		time.Sleep(100 * time.Millisecond)
		dmn.call("GET", "/api/v1/jobs/"+j.ID, nil, &j)
	}
	if j.State != apitypes.JobSucceeded {
		t.Fatalf("demo export %s: %s", j.State, j.Error)
	}
	dir := j.Result.OutputDir
	cmd := exec.Command("sha256sum", "-c", j.Result.Manifest)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum -c: %v\n%s", err, out)
	}
	disks := 0
	for _, f := range j.Result.Files {
		if f.Kind != "disk" {
			continue
		}
		disks++
		out, err := exec.Command("qemu-img", "info", filepath.Join(dir, f.Path)).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "file format: vmdk") {
			t.Errorf("qemu-img info %s: %v\n%s", f.Path, err, out)
		}
	}
	if disks != 2 {
		t.Errorf("%d disks exported, want 2", disks)
	}
}

// --demo registers the vSphere demo as "demo" and the AWS demo as
// "demo-aws"; an export of the AWS demo's two-volume instance succeeds
// through the daemon, its manifest verifies, its raw disks are exactly
// VolumeSize long.
func TestDemoAWSExportThroughTheDaemon(t *testing.T) {
	dmn := newDaemon(t, "", "HYPERVISORD_TEST_REAL_PROVIDERS=1")
	dmn.start("--demo")
	if !strings.Contains(dmn.out.String(), "--provider demo-aws") {
		t.Fatalf("no AWS demo instructions printed:\n%s", dmn.out.String())
	}
	// The providers connect in the background: wait for demo-aws.
	deadline := time.Now().Add(time.Minute)
	for {
		var provs struct{ Items []apitypes.ProviderInfo }
		if code := dmn.call("GET", "/api/v1/providers", nil, &provs); code != 200 {
			t.Fatalf("providers: %d", code)
		}
		types, healthy := map[string]string{}, false
		for _, p := range provs.Items {
			types[p.Name] = p.Type
			healthy = healthy || (p.Name == "demo-aws" && p.Health.Healthy)
		}
		if types["demo"] != "vsphere" || types["demo-aws"] != "aws" {
			t.Fatalf("demo providers %v, want demo (vsphere) and demo-aws (aws)", types)
		}
		if healthy {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo-aws not healthy:\n%s", dmn.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	var vms struct{ Items []providers.VMInfo }
	if code := dmn.call("GET", "/api/v1/providers/demo-aws/vms", nil, &vms); code != 200 || len(vms.Items) < 2 {
		t.Fatalf("demo-aws VMs: %d, %+v", code, vms.Items)
	}
	var j apitypes.Job
	if code := dmn.call("POST", "/api/v1/jobs", map[string]any{"provider": "demo-aws", "vm": "web-1", "format": "disks", "disk_format": "raw"}, &j); code != 201 {
		t.Fatalf("submit: %d", code)
	}
	deadline = time.Now().Add(2 * time.Minute)
	for !j.State.Terminal() {
		if time.Now().After(deadline) {
			t.Fatalf("export still %s", j.State)
		}
		time.Sleep(100 * time.Millisecond)
		dmn.call("GET", "/api/v1/jobs/"+j.ID, nil, &j)
	}
	if j.State != apitypes.JobSucceeded {
		t.Fatalf("demo-aws export %s: %s", j.State, j.Error)
	}
	dir := j.Result.OutputDir
	cmd := exec.Command("sha256sum", "--strict", "-c", j.Result.Manifest)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum -c: %v\n%s", err, out)
	}
	want := []int64{1 << 30, 2 << 30} // web-1's root and data volumes
	var got []int64
	for _, f := range j.Result.Files {
		if f.Kind == "disk" {
			got = append(got, f.Size)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("disk sizes %v, want %v", got, want)
	}
}

// selfSigned writes a certificate and key for 127.0.0.1 and returns a pool
// trusting it.
func selfSigned(t *testing.T, dir string) (certPath, keyPath string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hypervisord test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certPath, keyPath = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	_ = os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	_ = os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certPath, keyPath, pool
}

// Over TLS, with configured tokens and a vCenter password in the
// configuration: every response and every log line is free of tokens and
// passwords, and so is the daemon's argument list.
func TestTLSAndNoSecretsAnywhere(t *testing.T) {
	dir := t.TempDir()
	cert, key, pool := selfSigned(t, dir)
	const (
		adminTok  = "adm-7f3c9e1b5a2d4c6e8f0a1b3c"
		viewerTok = "view-2b4d6f8a0c1e3a5c7e9b1d3f"
		vcPass    = "vc-Pa55w0rd-that-must-not-leak"
	)
	dmn := newDaemon(t, fmt.Sprintf(`
api:
  tls_cert: %s
  tls_key: %s
  tokens:
    - {name: ops, role: admin, token: %s}
    - {name: dash, role: viewer, token: {env: TEST_VIEWER_TOKEN}}
vcenter:
  name: broken-vc
  url: https://127.0.0.1:9/sdk
  username: exporter@vsphere.local
  password: {env: TEST_VC_PASSWORD}
log:
  format: json
  level: debug
`, cert, key, adminTok), "HYPERVISORD_TEST_REAL_PROVIDERS=1", "TEST_VIEWER_TOKEN="+viewerTok, "TEST_VC_PASSWORD="+vcPass)
	dmn.token = adminTok
	dmn.client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	dmn.start("--demo")
	if !strings.HasPrefix(dmn.url, "https://") {
		t.Fatalf("endpoint %q is not https", dmn.url)
	}
	if _, err := os.Stat(filepath.Join(dmn.dataDir, "admin.token")); err == nil {
		t.Error("an admin token was generated although tokens are configured")
	}
	var j apitypes.Job
	if code := dmn.call("POST", "/api/v1/jobs", map[string]any{"provider": "demo", "vm": "dev-ubuntu-01"}, &j); code != 201 {
		t.Fatalf("submit over TLS: %d", code)
	}
	var failing apitypes.Job
	dmn.call("POST", "/api/v1/jobs", map[string]any{"provider": "broken-vc", "vm": "x", "max_attempts": 1}, &failing)
	for _, id := range []string{j.ID, failing.ID} {
		deadline := time.Now().Add(time.Minute)
		var got apitypes.Job
		for !got.State.Terminal() && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			dmn.call("GET", "/api/v1/jobs/"+id, nil, &got)
		}
		if !got.State.Terminal() {
			t.Fatalf("job %s did not finish", id)
		}
	}
	var bodies []string
	for _, path := range []string{"/api/v1/jobs", "/api/v1/jobs/" + j.ID, "/api/v1/jobs/" + failing.ID, "/api/v1/jobs/" + j.ID + "/logs",
		"/api/v1/jobs/" + failing.ID + "/logs", "/api/v1/providers", "/api/v1/status", "/api/v1/openapi.json",
		"/api/v1/providers/demo/vms", "/api/v1/providers/broken-vc/vms", "/metrics", "/healthz", "/readyz"} {
		req, _ := http.NewRequest("GET", dmn.url+path, nil)
		req.Header.Set("Authorization", "Bearer "+adminTok)
		resp, err := dmn.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		bodies = append(bodies, path+": "+string(b))
	}
	// The viewer token works and the metrics name the vSphere session pool.
	req, _ := http.NewRequest("GET", dmn.url+"/api/v1/status", nil)
	req.Header.Set("Authorization", "Bearer "+viewerTok)
	if resp, err := dmn.client.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("viewer token: %v %v", resp, err)
	}
	if !strings.Contains(strings.Join(bodies, "\n"), `hypersdk_vsphere_pool_sessions_created_total{provider="demo"}`) {
		t.Error("no vSphere pool metrics")
	}
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", dmn.cmd.Process.Pid))
	dmn.kill()
	haystacks := append(bodies, "daemon output: "+dmn.out.String(), "cmdline: "+string(cmdline))
	for _, h := range haystacks {
		for _, secret := range []string{adminTok, viewerTok, vcPass} {
			if strings.Contains(h, secret) {
				t.Errorf("secret %s… leaked in %.300s", secret[:6], h)
			}
		}
	}
}

// hookReceiver is a webhook receiver that verifies every request with the
// official Standard Webhooks library.
type hookReceiver struct {
	*httptest.Server
	t      *testing.T
	wh     *standardwebhooks.Webhook
	delay  time.Duration
	mu     sync.Mutex
	ids    map[string]int // webhook-id → requests
	events []map[string]any
	bad    []string
}

func newHookReceiver(t *testing.T, secret string, delay time.Duration) *hookReceiver {
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	h := &hookReceiver{t: t, wh: wh, delay: delay, ids: map[string]int{}}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if h.delay > 0 {
			time.Sleep(h.delay)
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if err := h.wh.Verify(body, r.Header); err != nil {
			h.bad = append(h.bad, err.Error())
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		h.ids[r.Header.Get("webhook-id")]++
		var p map[string]any
		_ = json.Unmarshal(body, &p)
		h.events = append(h.events, p)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookReceiver) distinct() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.ids)
}

// A real export's whole lifecycle, from the demo vCenter through the
// daemon, reaches a receiver that verifies every delivery with the official
// Standard Webhooks library.
func TestWebhooksForARealExport(t *testing.T) {
	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	rcv := newHookReceiver(t, secret, 0)
	dmn := newDaemon(t, fmt.Sprintf(`
webhooks:
  - url: %s/hooks
    events: ["job.*"]
    secret: %s
webhook_delivery:
  allow_private_targets: true
`, rcv.URL, secret), "HYPERVISORD_TEST_REAL_PROVIDERS=1")
	dmn.start("--demo")
	var j apitypes.Job
	if code := dmn.call("POST", "/api/v1/jobs", map[string]any{"provider": "demo", "vm": "web-01", "snapshot": true}, &j); code != 201 {
		t.Fatalf("submit: %d", code)
	}
	deadline := time.Now().Add(time.Minute)
	for rcv.distinct() < 3 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if len(rcv.bad) > 0 {
		t.Fatalf("deliveries failed verification: %v", rcv.bad)
	}
	types := map[string]map[string]any{}
	for _, e := range rcv.events {
		types[e["type"].(string)] = e["data"].(map[string]any)
	}
	for _, want := range []string{"job.created", "job.started", "job.completed"} {
		if types[want] == nil {
			t.Fatalf("no %s among %d events", want, len(rcv.events))
		}
	}
	done := types["job.completed"]
	files, _ := done["files"].([]any)
	if done["job_id"] != j.ID || done["state"] != "succeeded" || len(files) < 3 {
		t.Fatalf("job.completed data %v", done)
	}
	for _, f := range files {
		if sum, _ := f.(map[string]any)["sha256"].(string); len(sum) != 64 {
			t.Errorf("file without a checksum: %v", f)
		}
	}
}

// With 100 deliveries pending to a slow receiver the daemon is SIGKILLed;
// after a restart every one of them arrives.
func TestPendingWebhooksSurviveSIGKILL(t *testing.T) {
	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("abcdefghijklmnopqrstuvwxyz012345"))
	rcv := newHookReceiver(t, secret, 100*time.Millisecond)
	dmn := newDaemon(t, fmt.Sprintf(`
webhooks:
  - url: %s/slow
    events: ["*"]
    secret: %s
webhook_delivery:
  allow_private_targets: true
  workers: 2
`, rcv.URL, secret))
	dmn.start()
	var hooks struct {
		Items []struct{ ID string } `json:"items"`
	}
	dmn.call("GET", "/api/v1/webhooks", nil, &hooks)
	if len(hooks.Items) != 1 {
		t.Fatalf("endpoints %+v", hooks)
	}
	id := hooks.Items[0].ID
	for i := range 100 {
		if code := dmn.call("POST", "/api/v1/webhooks/"+id+"/test", nil, nil); code != 202 {
			t.Fatalf("test event %d: HTTP %d", i, code)
		}
	}
	waitUntil(t, "the first deliveries", time.Minute, func() bool { return rcv.distinct() >= 5 })
	dmn.kill()
	before := rcv.distinct()
	if before >= 100 {
		t.Fatal("all delivered before the kill; the test proves nothing")
	}
	t.Logf("SIGKILL with %d of 100 delivered", before)
	dmn.start()
	deadline := time.Now().Add(2 * time.Minute)
	for rcv.distinct() < 100 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of 100 deliveries arrived after the restart", rcv.distinct())
		}
		time.Sleep(50 * time.Millisecond)
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if len(rcv.bad) > 0 {
		t.Fatalf("bad signatures: %v", rcv.bad)
	}
}

// A schedule created through the API survives SIGKILL: after the restart it
// fires on time again and its history records the runs and their outcome.
func TestScheduleSurvivesSIGKILL(t *testing.T) {
	dmn := newDaemon(t, "providers:\n  - name: lab\n    type: vsphere\n    url: https://fake.invalid/sdk\n")
	dmn.start()
	var sc struct {
		ID      string    `json:"id"`
		NextRun time.Time `json:"next_run"`
	}
	if code := dmn.call("POST", "/api/v1/schedules", map[string]any{"name": "often", "schedule": "@every 2s",
		"job": map[string]any{"provider": "lab", "vm": "vm-001"}}, &sc); code != 201 {
		t.Fatalf("create schedule: HTTP %d", code)
	}
	type execution struct {
		JobID      string     `json:"job_id"`
		Status     string     `json:"status"`
		Kind       string     `json:"kind"`
		ExecutedAt time.Time  `json:"executed_at"`
		DueAt      *time.Time `json:"due_at"`
		Lag        float64    `json:"lag_seconds"`
	}
	history := func() []execution {
		var h struct{ Items []execution }
		dmn.call("GET", "/api/v1/schedules/often/history", nil, &h)
		return h.Items
	}
	waitRuns := func(n int) []execution {
		deadline := time.Now().Add(time.Minute)
		for {
			h := history()
			if len(h) >= n {
				return h
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d runs, want %d", len(h), n)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitRuns(1)
	dmn.kill()
	killedAt := time.Now()
	before := len(history2(t, dmn.dataDir))
	dmn.start()
	// After the restart it fires again and submits jobs. (A due time may
	// first be skipped — overlap: skip — while the run the kill
	// interrupted is re-run.)
	var h []execution
	waitUntil(t, "a job submitted by the schedule after the restart", time.Minute, func() bool {
		h = history()
		for _, x := range h {
			if x.ExecutedAt.After(killedAt) && x.JobID != "" {
				return true
			}
		}
		return false
	})
	if len(h) < before+1 {
		t.Fatalf("history lost runs: %d before the kill, %d after", before, len(h))
	}
	// On time: the regular runs after the restart start within a second
	// or two of their due time (at most one catch-up for the downtime).
	catchUps := 0
	for _, x := range h {
		if x.Kind == "catch_up" {
			catchUps++
		}
	}
	if catchUps > 1 {
		t.Errorf("%d catch-up runs for one downtime", catchUps)
	}
	for _, x := range h {
		if x.Kind == "scheduled" && x.ExecutedAt.After(killedAt) && x.Lag > 3 {
			t.Errorf("run due %v started %.1fs late", x.DueAt, x.Lag)
		}
	}
	// Finished jobs record their outcome in the history.
	deadline := time.Now().Add(time.Minute)
	for {
		done := 0
		for _, x := range history() {
			if x.Status == "succeeded" {
				done++
			}
		}
		if done >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("history never shows succeeded runs: %+v", history())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// history2 counts executions straight from the store of a stopped daemon.
func history2(t *testing.T, dataDir string) []int {
	t.Helper()
	db, err := store.Open(context.Background(), store.Options{Path: filepath.Join(dataDir, "hypersdk.db"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.SQL.QueryRow("SELECT COUNT(*) FROM schedule_executions").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return make([]int, n)
}

// An export root with links planted below it: an output directory reached
// through a link to a directory outside the root, and ".part" files planted
// as links to a file outside, are refused. Each job fails permanently with
// an error naming the link, nothing appears in the outside directory and
// the outside file keeps its bytes.
func TestExportRefusesLinksBelowTheRoot(t *testing.T) {
	base := t.TempDir()
	root, outside := filepath.Join(base, "root"), filepath.Join(base, "outside")
	for _, d := range []string{root, outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	victim := filepath.Join(base, "victim")
	if err := os.WriteFile(victim, []byte("precious bytes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	victimSum := fileSHA256(t, victim)
	if err := os.Symlink(outside, filepath.Join(root, "evil")); err != nil {
		t.Fatal(err)
	}
	dmn := newDaemon(t, "export:\n  output_dir: "+root+"\n  allowed_roots: ["+root+"]\n", "HYPERVISORD_TEST_REAL_PROVIDERS=1")
	dmn.start("--demo")
	export := func(output string) apitypes.Job {
		t.Helper()
		var j apitypes.Job
		if code := dmn.call("POST", "/api/v1/jobs", map[string]any{"provider": "demo", "vm": "/DC0/vm/production/db/db-01",
			"output": output, "max_attempts": 3}, &j); code != 201 {
			t.Fatalf("submit %s: %d", output, code)
		}
		waitUntil(t, "job "+j.ID+" to end", 2*time.Minute, func() bool {
			dmn.call("GET", "/api/v1/jobs/"+j.ID, nil, &j)
			return j.State.Terminal()
		})
		return j
	}
	refused := func(j apitypes.Job, link string) {
		t.Helper()
		want := link + " is a symbolic link; refusing to write outside "
		if j.State != apitypes.JobFailed || !strings.Contains(j.Error, want) {
			t.Fatalf("job %s: %s %q, want failed with %q", j.ID, j.State, j.Error, want)
		}
		if j.Attempt != 1 {
			t.Errorf("job %s: %d attempts, want 1 (the failure is permanent)", j.ID, j.Attempt)
		}
		if ents, err := os.ReadDir(outside); err != nil || len(ents) != 0 {
			t.Fatalf("outside directory: %v %v", ents, err)
		}
		if got := fileSHA256(t, victim); got != victimSum {
			t.Fatalf("outside file changed: sha256 %s, was %s", got, victimSum)
		}
	}

	refused(export(filepath.Join(root, "evil", "x")), filepath.Join(root, "evil"))
	refused(export("evil/y"), filepath.Join(root, "evil"))

	// A good export names the files; the same names with ".part" planted
	// as links make the next exports fail, one file kind after the other.
	good := export(filepath.Join(root, "good"))
	if good.State != apitypes.JobSucceeded {
		t.Fatalf("export: %s %s", good.State, good.Error)
	}
	var disk, ovfName string
	for _, f := range good.Result.Files {
		switch f.Kind {
		case "disk":
			disk = f.Path
		case "ovf":
			ovfName = f.Path
		}
	}
	for _, name := range []string{disk, ovfName} {
		dir := filepath.Join(root, "planted-"+name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(dir, name+".part")
		if err := os.Symlink(victim, link); err != nil {
			t.Fatal(err)
		}
		refused(export(dir), link)
	}
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
