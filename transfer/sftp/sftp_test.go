package sftp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/internal/backoff"
	"github.com/hypersdk/hypersdk/internal/sshclient"
	"github.com/hypersdk/hypersdk/internal/sshdtest"
	"github.com/hypersdk/hypersdk/progress"
	"github.com/hypersdk/hypersdk/transfer"
	"github.com/hypersdk/hypersdk/transfer/transfertest"
)

func sha(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// logs collects a Downloader's log lines.
type logs struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logs) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logs) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

func downloader(t *testing.T, opts transfer.Options) (*transfer.Downloader, *logs) {
	l := &logs{}
	opts.Logger = slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts.Retry = backoff.Policy{Base: time.Millisecond, Max: 10 * time.Millisecond}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("downloader log:\n%s", l.String())
		}
	})
	return transfer.NewDownloader(opts), l
}

type fixture struct {
	srv *sshdtest.Server
	ssh *sshclient.Client
	c   *Client
	dir string // the server's files
}

func start(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	srv := sshdtest.Start(t, sshdtest.Options{SFTPDir: dir})
	sc, err := sshclient.New(sshclient.Config{Addr: srv.Addr, User: srv.User, PrivateKey: srv.ClientKey, KnownHosts: srv.KnownHosts})
	if err != nil {
		t.Fatal(err)
	}
	c := New(sc)
	t.Cleanup(func() { c.Close(); sc.Close() })
	return &fixture{srv: srv, ssh: sc, c: c, dir: dir}
}

func TestChunkedParallelDownload(t *testing.T) {
	fx := start(t)
	const size = 24<<20 + 12345
	remote := filepath.Join(fx.dir, "disk0.vhdx")
	want := transfertest.SparseFile(t, remote, size)
	src := transfertest.Count(fx.c.Source(remote))
	d, _ := downloader(t, transfer.Options{ChunkConcurrency: 4, ChunkSize: 4 << 20})
	dest := filepath.Join(t.TempDir(), "disk0.vhdx")
	res, err := d.Download(context.Background(), []transfer.File{{Source: src, Path: dest, SHA256: want}})
	if err != nil {
		t.Fatal(err)
	}
	if got := sha(t, dest); got != want || res[0].SHA256 != want || res[0].Size != size {
		t.Fatalf("sha256 %s (result %s, %d bytes), want %s", got, res[0].SHA256, res[0].Size, want)
	}
	if !res[0].Chunked || src.Peak() < 2 || src.BytesRead() != size {
		t.Fatalf("chunked %v, %d ranges open at most, %d bytes read; want parallel ranges reading %d bytes once",
			res[0].Chunked, src.Peak(), src.BytesRead(), size)
	}
}

func TestResumeAfterInterruption(t *testing.T) {
	fx := start(t)
	const size = 16<<20 + 999
	remote := filepath.Join(fx.dir, "disk1.vhdx")
	want := transfertest.SparseFile(t, remote, size)
	dest := filepath.Join(t.TempDir(), "disk1.vhdx")
	d, _ := downloader(t, transfer.Options{KeepPartial: true, ChunkConcurrency: 3, ChunkSize: 2 << 20})

	first := transfertest.Count(fx.c.Source(remote))
	first.Interrupt(7 << 20)
	_, err := d.Download(context.Background(), []transfer.File{{Source: first, Path: dest}})
	if !errors.Is(err, transfertest.ErrInterrupted) {
		t.Fatalf("interrupted download: %v", err)
	}
	part, err := os.Stat(dest + ".part")
	// Ranges run concurrently, so the kept prefix may pass the 7 MiB at
	// which reads began failing by what was already in flight.
	if err != nil || part.Size() == 0 || part.Size() >= size {
		t.Fatalf("part file after the interruption: %v", err)
	}

	second := transfertest.Count(fx.c.Source(remote))
	res, err := d.Download(context.Background(), []transfer.File{{Source: second, Path: dest, SHA256: want}})
	if err != nil {
		t.Fatal(err)
	}
	if got := sha(t, dest); got != want {
		t.Fatalf("sha256 %s, want %s", got, want)
	}
	if res[0].ReusedBytes != part.Size() || second.BytesRead() != size-part.Size() {
		t.Fatalf("reused %d of the %d kept, read %d; want only the %d missing bytes read",
			res[0].ReusedBytes, part.Size(), second.BytesRead(), size-part.Size())
	}
}

// TestConnectionLossIsResumed drops the SSH connection in the middle of a
// download: ranges in flight fail and are retried, later ones dial a new
// connection and start a new SFTP session, and the file completes
// byte-exact.
func TestConnectionLossIsResumed(t *testing.T) {
	fx := start(t)
	const size = 32 << 20
	remote := filepath.Join(fx.dir, "disk2.raw")
	want := transfertest.SparseFile(t, remote, size)
	var once sync.Once
	_, gen, err := fx.ssh.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	d, _ := downloader(t, transfer.Options{ChunkConcurrency: 2, ChunkSize: 2 << 20, ProgressInterval: time.Nanosecond,
		Progress: func(r progress.Report) {
			if r.ItemBytes > 3<<20 {
				once.Do(func() { fx.ssh.Drop(gen) })
			}
		}})
	dest := filepath.Join(t.TempDir(), "disk2.raw")
	res, err := d.Download(context.Background(), []transfer.File{{Source: fx.c.Source(remote), Path: dest, SHA256: want}})
	if err != nil {
		t.Fatal(err)
	}
	// The drop may fall between two ranges (nothing in flight, nothing to
	// retry) or in the middle of one (retried): either way the download
	// continued on a new connection and is byte-exact.
	t.Logf("retries after the drop: %d", res[0].Retries)
	if _, gen2, _ := fx.ssh.Conn(context.Background()); gen2 == gen {
		t.Errorf("still on the dropped connection")
	}
}

func TestUnknownHostKeyIsRefusedWithItsFingerprint(t *testing.T) {
	fx := start(t)
	remote := filepath.Join(fx.dir, "f")
	transfertest.SparseFile(t, remote, 1<<20)
	other := sshdtest.Start(t, sshdtest.Options{}) // another server's key
	sc, err := sshclient.New(sshclient.Config{Addr: fx.srv.Addr, User: fx.srv.User, PrivateKey: fx.srv.ClientKey,
		KnownHosts: strings.Replace(other.KnownHosts, other.Addr[strings.LastIndex(other.Addr, ":"):], fx.srv.Addr[strings.LastIndex(fx.srv.Addr, ":"):], 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	d, _ := downloader(t, transfer.Options{})
	dest := filepath.Join(t.TempDir(), "f")
	_, err = d.Download(context.Background(), []transfer.File{{Source: New(sc).Source(remote), Path: dest}})
	if !errors.Is(err, sshclient.ErrHostKey) || !errors.Is(err, transfer.ErrPermanent) || !strings.Contains(err.Error(), fx.srv.Fingerprint) {
		t.Fatalf("err %v; want a permanent host key refusal naming %s", err, fx.srv.Fingerprint)
	}
	if _, serr := os.Stat(dest); serr == nil {
		t.Error("a file was written from an untrusted server")
	}
}

func TestWrongPasswordIsPermanentAndNeverShown(t *testing.T) {
	fx := start(t)
	remote := filepath.Join(fx.dir, "f")
	transfertest.SparseFile(t, remote, 1<<20)
	const secret = "pa55-W0rd-n0t-f0r-logs"
	sc, err := sshclient.New(sshclient.Config{Addr: fx.srv.Addr, User: fx.srv.User, Password: secret, KnownHosts: fx.srv.KnownHosts})
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	d, logs := downloader(t, transfer.Options{})
	res, err := d.Download(context.Background(), []transfer.File{{Source: New(sc).Source(remote), Path: filepath.Join(t.TempDir(), "f")}})
	if !errors.Is(err, sshclient.ErrAuth) || !errors.Is(err, transfer.ErrPermanent) {
		t.Fatalf("err %v; want a permanent authentication failure", err)
	}
	if res[0].Retries != 0 {
		t.Errorf("a refused password was retried %d times", res[0].Retries)
	}
	for _, text := range []string{err.Error(), res[0].Err.Error(), logs.String()} {
		if strings.Contains(text, secret) {
			t.Fatalf("the password leaked: %s", text)
		}
	}
	if !strings.Contains(logs.String(), "download failed") {
		t.Errorf("the failure was not logged:\n%s", logs.String())
	}
}

func TestMissingFileIsPermanent(t *testing.T) {
	fx := start(t)
	d, _ := downloader(t, transfer.Options{})
	missing := filepath.Join(fx.dir, "no-such.vhdx")
	res, err := d.Download(context.Background(), []transfer.File{{Source: fx.c.Source(missing), Path: filepath.Join(t.TempDir(), "x")}})
	if !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, transfer.ErrPermanent) || res[0].Retries != 0 ||
		!strings.Contains(err.Error(), "sftp://"+fx.srv.User+"@"+fx.srv.Addr+missing) {
		t.Fatalf("err %v (retries %d)", err, res[0].Retries)
	}
}

func TestRemoveStaging(t *testing.T) {
	fx := start(t)
	ctx := context.Background()
	outside := filepath.Join(t.TempDir(), "precious")
	if err := os.WriteFile(outside, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	staging := filepath.Join(fx.dir, "hypersdk-export-42")
	for _, d := range []string{"Virtual Hard Disks", "Virtual Machines/snap"} {
		if err := os.MkdirAll(filepath.Join(staging, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"Virtual Hard Disks/disk0.vhdx", "Virtual Machines/vm.vmcx", "Virtual Machines/snap/x.vmrs"} {
		if err := os.WriteFile(filepath.Join(staging, f), []byte("data"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(staging, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Dir(outside), filepath.Join(staging, "dirlink")); err != nil {
		t.Fatal(err)
	}
	single := filepath.Join(fx.dir, "single.tmp")
	if err := os.WriteFile(single, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}

	if err := fx.c.Remove(ctx, single); err != nil {
		t.Fatal(err)
	}
	if err := fx.c.RemoveAll(ctx, staging); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{single, staging} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s still there: %v", p, err)
		}
	}
	if b, err := os.ReadFile(outside); err != nil || string(b) != "keep me" {
		t.Fatalf("the link's target was touched: %q %v", b, err)
	}
	// Clean-up runs again after a crash: what is gone already is fine.
	if err := fx.c.RemoveAll(ctx, staging); err != nil {
		t.Errorf("second RemoveAll: %v", err)
	}
	if err := fx.c.Remove(ctx, single); err != nil {
		t.Errorf("second Remove: %v", err)
	}
	if fi, err := fx.c.Stat(ctx, fx.dir); err != nil || !fi.IsDir() {
		t.Errorf("stat of the server's directory: %v", err)
	}
}
