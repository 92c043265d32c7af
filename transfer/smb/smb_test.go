package smb

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
	"github.com/hypersdk/hypersdk/internal/sambatest"
	"github.com/hypersdk/hypersdk/progress"
	"github.com/hypersdk/hypersdk/transfer"
	"github.com/hypersdk/hypersdk/transfer/transfertest"
)

func fileSHA(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

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

func client(t *testing.T, srv *sambatest.Server, mod func(*Config)) *Client {
	t.Helper()
	cfg := Config{Addr: srv.Addr, User: srv.User, Password: srv.Password, Domain: srv.Domain, Share: srv.Share}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestChunkedParallelDownload fetches a sparse multi-MiB file in parallel
// ranges, from a plain share and from one that requires signing and SMB3
// encryption.
func TestChunkedParallelDownload(t *testing.T) {
	for _, opts := range []sambatest.Options{{}, {Signing: true, Encrypt: true}} {
		t.Run("encrypt="+map[bool]string{false: "no", true: "required"}[opts.Encrypt], func(t *testing.T) {
			srv := sambatest.Start(t, opts)
			const size = 24<<20 + 4567
			want := transfertest.SparseFile(t, filepath.Join(srv.ShareDir, "Virtual Hard Disks", "disk0.vhdx"), size)
			c := client(t, srv, func(cfg *Config) { cfg.RequireSigning = opts.Signing })
			src := transfertest.Count(c.Source(`Virtual Hard Disks\disk0.vhdx`))
			d, _ := downloader(t, transfer.Options{ChunkConcurrency: 4, ChunkSize: 4 << 20})
			dest := filepath.Join(t.TempDir(), "disk0.vhdx")
			res, err := d.Download(context.Background(), []transfer.File{{Source: src, Path: dest, SHA256: want}})
			if err != nil {
				t.Fatal(err)
			}
			if got := fileSHA(t, dest); got != want || res[0].Size != size {
				t.Fatalf("sha256 %s (%d bytes), want %s", got, res[0].Size, want)
			}
			if !res[0].Chunked || src.Peak() < 2 || src.BytesRead() != size {
				t.Fatalf("chunked %v, %d ranges open at most, %d bytes read; want parallel ranges reading %d bytes once",
					res[0].Chunked, src.Peak(), src.BytesRead(), size)
			}
		})
	}
}

func TestResumeAfterInterruption(t *testing.T) {
	srv := sambatest.Start(t, sambatest.Options{})
	const size = 16<<20 + 777
	want := transfertest.SparseFile(t, filepath.Join(srv.ShareDir, "disk1.vhdx"), size)
	c := client(t, srv, nil)
	dest := filepath.Join(t.TempDir(), "disk1.vhdx")
	d, _ := downloader(t, transfer.Options{KeepPartial: true, ChunkConcurrency: 3, ChunkSize: 2 << 20})

	first := transfertest.Count(c.Source("disk1.vhdx"))
	first.Interrupt(7 << 20)
	if _, err := d.Download(context.Background(), []transfer.File{{Source: first, Path: dest}}); !errors.Is(err, transfertest.ErrInterrupted) {
		t.Fatalf("interrupted download: %v", err)
	}
	part, err := os.Stat(dest + ".part")
	// Ranges run concurrently, so the kept prefix may pass the 7 MiB at
	// which reads began failing by what was already in flight.
	if err != nil || part.Size() == 0 || part.Size() >= size {
		t.Fatalf("part file after the interruption: %v (%d bytes)", err, partSize(part))
	}
	second := transfertest.Count(c.Source("disk1.vhdx"))
	res, err := d.Download(context.Background(), []transfer.File{{Source: second, Path: dest, SHA256: want}})
	if err != nil {
		t.Fatal(err)
	}
	if got := fileSHA(t, dest); got != want {
		t.Fatalf("sha256 %s, want %s", got, want)
	}
	if res[0].ReusedBytes != part.Size() || second.BytesRead() != size-part.Size() {
		t.Fatalf("reused %d of the %d kept, read %d; want only the %d missing bytes read",
			res[0].ReusedBytes, part.Size(), second.BytesRead(), size-part.Size())
	}
}

// TestCancelledDownloadLeavesNoOpenHandle cancels a download while READs
// are in flight, then removes the staging folder: a handle left open would
// make the server refuse the delete.
func TestCancelledDownloadLeavesNoOpenHandle(t *testing.T) {
	srv := sambatest.Start(t, sambatest.Options{})
	staging := filepath.Join(srv.ShareDir, "hypersdk-export-7")
	transfertest.SparseFile(t, filepath.Join(staging, "disk.vhdx"), 32<<20)
	c := client(t, srv, nil)
	ctx, cancel := context.WithCancel(context.Background())
	var once sync.Once
	d, _ := downloader(t, transfer.Options{ChunkConcurrency: 4, ChunkSize: 4 << 20, ProgressInterval: time.Nanosecond,
		Progress: func(r progress.Report) {
			if r.ItemBytes > 5<<20 {
				once.Do(cancel)
			}
		}})
	_, err := d.Download(ctx, []transfer.File{{Source: c.Source("hypersdk-export-7/disk.vhdx"), Path: filepath.Join(t.TempDir(), "disk.vhdx")}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled download: %v", err)
	}
	// Handles are closed once their READs return, which is soon but not
	// synchronous with the cancellation; the clean-up retries as a job's
	// would.
	var rerr error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if rerr = c.RemoveAll(context.Background(), "hypersdk-export-7"); rerr == nil {
			break
		}
	}
	if rerr != nil {
		t.Fatal(rerr)
	}
	if _, err := os.Lstat(staging); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("staging folder still there: %v", err)
	}
}

func TestWrongPasswordIsPermanentAndNeverShown(t *testing.T) {
	srv := sambatest.Start(t, sambatest.Options{})
	transfertest.SparseFile(t, filepath.Join(srv.ShareDir, "f"), 1<<20)
	const secret = "Wr0ng-but-s3cret-pw"
	c := client(t, srv, func(cfg *Config) { cfg.Password = secret })
	d, logs := downloader(t, transfer.Options{})
	res, err := d.Download(context.Background(), []transfer.File{{Source: c.Source("f"), Path: filepath.Join(t.TempDir(), "f")}})
	if !errors.Is(err, ErrAuth) || !errors.Is(err, transfer.ErrPermanent) || res[0].Retries != 0 {
		t.Fatalf("err %v (retries %d); want a permanent logon refusal", err, res[0].Retries)
	}
	for _, text := range []string{err.Error(), logs.String(), srv.Log()} {
		if strings.Contains(text, secret) || strings.Contains(text, srv.Password) {
			t.Fatalf("a password leaked: %s", text)
		}
	}
}

func TestMissingFileOrShareIsPermanent(t *testing.T) {
	srv := sambatest.Start(t, sambatest.Options{})
	d, _ := downloader(t, transfer.Options{})
	c := client(t, srv, nil)
	_, err := d.Download(context.Background(), []transfer.File{{Source: c.Source("no/such.vhdx"), Path: filepath.Join(t.TempDir(), "a")}})
	if !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, transfer.ErrPermanent) || !strings.Contains(err.Error(), c.String()+"/no/such.vhdx") {
		t.Fatalf("missing file: %v", err)
	}
	bad := client(t, srv, func(cfg *Config) { cfg.Share = "nosuchshare" })
	_, err = d.Download(context.Background(), []transfer.File{{Source: bad.Source("x"), Path: filepath.Join(t.TempDir(), "b")}})
	if !errors.Is(err, transfer.ErrPermanent) {
		t.Fatalf("missing share: %v", err)
	}
}

func TestRemoveStaging(t *testing.T) {
	srv := sambatest.Start(t, sambatest.Options{})
	ctx := context.Background()
	c := client(t, srv, nil)
	staging := filepath.Join(srv.ShareDir, "hypersdk-export-9")
	for _, f := range []string{"Virtual Hard Disks/disk0.vhdx", "Virtual Machines/vm.vmcx", "Virtual Machines/snap/x.vmrs"} {
		transfertest.SparseFile(t, filepath.Join(staging, f), 3<<20)
	}
	single := filepath.Join(srv.ShareDir, "single.tmp")
	if err := os.WriteFile(single, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.Remove(ctx, "single.tmp"); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveAll(ctx, `hypersdk-export-9`); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{single, staging} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s still there: %v", p, err)
		}
	}
	if err := c.RemoveAll(ctx, "hypersdk-export-9"); err != nil {
		t.Errorf("second RemoveAll: %v", err)
	}
	if err := c.Remove(ctx, "single.tmp"); err != nil {
		t.Errorf("second Remove: %v", err)
	}
	if fi, err := c.Stat(ctx, "."); err != nil || !fi.IsDir() {
		t.Errorf("stat of the share's root: %v", err)
	}
}

func partSize(fi os.FileInfo) int64 {
	if fi == nil {
		return -1
	}
	return fi.Size()
}
