package smb

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/internal/benchcmd"
	"github.com/hypersdk/hypersdk/internal/sambatest"
	"github.com/hypersdk/hypersdk/transfer"
	"github.com/hypersdk/hypersdk/transfer/transfertest"
)

// BenchmarkSMBvsSmbclient fetches one file (1 GiB of incompressible bytes;
// HYPERSDK_BENCH_MIB sets another size) from a real smbd over loopback,
// alternating, HYPERSDK_BENCH_REPS times each (default 3), and compares
// the medians:
//
//   - hypersdk: transfer.Downloader with this package's Source, one stream
//     and ChunkConcurrency 4 (SHA-256 while streaming, fsync, rename);
//   - smbclient: Samba's own client, `get` (SMB3, the same share options).
//
// Ratios above 1 mean the Downloader finished first. Client and server
// share the machine's CPU. Files live in HYPERSDK_BENCH_DIR (default
// /dev/shm).
func BenchmarkSMBvsSmbclient(b *testing.B) {
	smbclient, err := exec.LookPath("smbclient")
	if err != nil {
		b.Fatal("smbclient not found: install Debian's smbclient (apt-get install smbclient)")
	}
	size, reps := benchSize(), benchReps()
	srv := sambatest.Start(b, sambatest.Options{})
	want := transfertest.RandomFile(b, filepath.Join(srv.ShareDir, "disk.raw"), size)
	c, err := New(Config{Addr: srv.Addr, User: srv.User, Password: srv.Password, Domain: srv.Domain, Share: srv.Share})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	dest := filepath.Join(benchcmd.Dir(b), "disk.raw")

	download := func(chunks int) func() time.Duration {
		return func() time.Duration {
			_ = os.Remove(dest)
			d := transfer.NewDownloader(transfer.Options{ChunkConcurrency: chunks})
			start := time.Now()
			if _, err := d.Download(context.Background(), []transfer.File{{Source: c.Source("disk.raw"), Path: dest, SHA256: want}}); err != nil {
				b.Fatal(err)
			}
			return time.Since(start)
		}
	}
	get := func() time.Duration {
		_ = os.Remove(dest)
		cmd := exec.Command(smbclient, "-s", srv.Conf, "-p", strconv.Itoa(srv.Port), "//"+srv.Host+"/"+srv.Share,
			"-U", srv.User, "-c", "get disk.raw "+dest)
		cmd.Env = append(os.Environ(), "PASSWD="+srv.Password) // never in the arguments
		r := benchcmd.Time(b, cmd)
		if fi, err := os.Stat(dest); err != nil || fi.Size() != size {
			b.Fatalf("smbclient wrote %v (%v), want %d bytes", fi, err, size)
		}
		return r.Wall
	}
	benchcmd.Compare(b, size, reps, "hypersdk", []string{"smbclient"}, []benchcmd.Candidate{
		{Name: "hypersdk-1-stream", Run: download(0)},
		{Name: "hypersdk-4-chunks", Run: download(4)},
		{Name: "smbclient", Run: get},
	})
}

func benchSize() int64 {
	if v, err := strconv.Atoi(os.Getenv("HYPERSDK_BENCH_MIB")); err == nil && v > 0 {
		return int64(v) << 20
	}
	return 1 << 30
}

func benchReps() int {
	if v, err := strconv.Atoi(os.Getenv("HYPERSDK_BENCH_REPS")); err == nil && v > 0 {
		return v
	}
	return 3
}
