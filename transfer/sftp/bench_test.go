package sftp

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/internal/benchcmd"
	"github.com/hypersdk/hypersdk/internal/sshclient"
	"github.com/hypersdk/hypersdk/internal/sshdtest"
	"github.com/hypersdk/hypersdk/transfer"
	"github.com/hypersdk/hypersdk/transfer/transfertest"
)

// BenchmarkSFTPvsScp fetches one file (1 GiB of incompressible bytes;
// HYPERSDK_BENCH_MIB sets another size) from a real sshd over loopback,
// alternating, HYPERSDK_BENCH_REPS times each (default 3), and compares
// the medians:
//
//   - hypersdk: transfer.Downloader with this package's Source, one stream
//     and ChunkConcurrency 4 (SHA-256 while streaming, fsync, rename);
//   - sftp: OpenSSH's `sftp` client, `get` in batch mode;
//   - scp: OpenSSH's `scp` (the SFTP protocol since OpenSSH 9.0).
//
// Ratios above 1 mean the Downloader finished first. Client and server
// share the machine's CPU, so this measures the per-byte cost of each
// client (encryption, SFTP framing, copies), not a network. Files live in
// HYPERSDK_BENCH_DIR (default /dev/shm).
func BenchmarkSFTPvsScp(b *testing.B) {
	for _, bin := range []string{"sftp", "scp"} {
		if _, err := exec.LookPath(bin); err != nil {
			b.Fatalf("%s not found: install Debian's openssh-client (apt-get install openssh-client)", bin)
		}
	}
	size, reps := benchSize(), benchReps()
	dir := benchcmd.Dir(b)
	srvDir := filepath.Join(dir, "srv")
	remote := filepath.Join(srvDir, "disk.raw")
	want := transfertest.RandomFile(b, remote, size)
	srv := sshdtest.Start(b, sshdtest.Options{SFTPDir: srvDir})
	sc, err := sshclient.New(sshclient.Config{Addr: srv.Addr, User: srv.User, PrivateKey: srv.ClientKey, KnownHosts: srv.KnownHosts})
	if err != nil {
		b.Fatal(err)
	}
	defer sc.Close()
	c := New(sc)
	defer c.Close()
	dest := filepath.Join(dir, "out", "disk.raw")
	if err := os.MkdirAll(filepath.Dir(dest), 0o700); err != nil {
		b.Fatal(err)
	}
	opts := []string{"-q", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=" + srv.KnownHostsFile,
		"-o", "GlobalKnownHostsFile=/dev/null", "-o", "IdentitiesOnly=yes", "-i", srv.ClientKeyFile, "-F", "/dev/null"}
	target := srv.User + "@" + srv.Host

	download := func(chunks int) func() time.Duration {
		return func() time.Duration {
			_ = os.Remove(dest)
			d := transfer.NewDownloader(transfer.Options{ChunkConcurrency: chunks})
			start := time.Now()
			if _, err := d.Download(context.Background(), []transfer.File{{Source: c.Source(remote), Path: dest, SHA256: want}}); err != nil {
				b.Fatal(err)
			}
			return time.Since(start)
		}
	}
	command := func(name string, args ...string) func() time.Duration {
		return func() time.Duration {
			_ = os.Remove(dest)
			cmd := exec.Command(name, args...)
			if name == "sftp" {
				cmd.Stdin = strings.NewReader(fmt.Sprintf("get %s %s\n", remote, dest))
			}
			r := benchcmd.Time(b, cmd)
			if fi, err := os.Stat(dest); err != nil || fi.Size() != size {
				b.Fatalf("%s wrote %v (%v), want %d bytes", name, fi, err, size)
			}
			return r.Wall
		}
	}
	benchcmd.Compare(b, size, reps, "hypersdk", []string{"sftp", "scp"}, []benchcmd.Candidate{
		{Name: "hypersdk-1-stream", Run: download(0)},
		{Name: "hypersdk-4-chunks", Run: download(4)},
		{Name: "sftp", Run: command("sftp", append(opts, "-P", strconv.Itoa(srv.Port), "-b", "-", target)...)},
		{Name: "scp", Run: command("scp", append(opts, "-P", strconv.Itoa(srv.Port), target+":"+remote, dest)...)},
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
