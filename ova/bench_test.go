package ova

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/klauspost/pgzip"

	"github.com/hypersdk/hypersdk/ovf"
)

// Benchmarks compare against baselines measured in the same run, on a
// realistic disk: an ext4 image populated by `mkfs.ext4 -d` from a system
// directory, and the same image as a streamOptimized VMDK (what vSphere's
// NFC export serves). Run them with
//
//	go test ./ova -run '^$' -bench . -benchtime 1x
//
// HYPERSDK_BENCH_TREE (default /usr/local/go/src) is the directory copied
// into the image, HYPERSDK_BENCH_IMAGE_MIB (default 192) the image size.
// Inputs are in the page cache: the numbers are CPU and memory bound, as an
// export is once the network delivers faster than the packer consumes.

func benchEnv(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// benchImages builds the ext4 image and its streamOptimized VMDK.
func benchImages(b *testing.B) (raw, vmdk string) {
	b.Helper()
	mkfs := sbinTool(b, "mkfs.ext4", "apt-get install -y e2fsprogs")
	needTool(b, "qemu-img", "apt-get install -y qemu-utils")
	mib, err := strconv.Atoi(benchEnv("HYPERSDK_BENCH_IMAGE_MIB", "192"))
	if err != nil {
		b.Fatal(err)
	}
	tree := benchEnv("HYPERSDK_BENCH_TREE", "/usr/local/go/src")
	dir := b.TempDir()
	raw, vmdk = filepath.Join(dir, "disk.img"), filepath.Join(dir, "disk.vmdk")
	if err := os.WriteFile(raw, nil, 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.Truncate(raw, int64(mib)<<20); err != nil {
		b.Fatal(err)
	}
	for _, c := range [][]string{
		{mkfs, "-q", "-F", "-d", tree, raw},
		{"qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", raw, vmdk},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			b.Fatalf("%v: %v\n%s (a smaller HYPERSDK_BENCH_TREE or larger HYPERSDK_BENCH_IMAGE_MIB may help)", c, err, out)
		}
	}
	return raw, vmdk
}

// sbinTool finds a tool Debian installs in /usr/sbin or /sbin, which are
// not in a normal user's PATH.
func sbinTool(b *testing.B, name, install string) string {
	b.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if p := filepath.Join(dir, name); isExecutable(p) {
			return p
		}
	}
	b.Fatalf("%s not found in PATH, /usr/sbin or /sbin: this benchmark needs it; install it with: %s", name, install)
	return ""
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

func fileSize(b *testing.B, path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	return fi.Size()
}

// compressFile streams path through the compressor made by mk and returns
// the compressed size and the time taken.
func compressFile(b *testing.B, path string, mk func(io.Writer) io.WriteCloser) (int64, time.Duration) {
	b.Helper()
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var cw countWriter
	start := time.Now()
	zw := mk(&cw)
	if _, err := io.CopyBuffer(zw, f, make([]byte, 1<<20)); err != nil {
		b.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		b.Fatal(err)
	}
	return cw.n, time.Since(start)
}

func mbps(n int64, d time.Duration) float64 { return float64(n) / (1 << 20) / d.Seconds() }

// BenchmarkGzipParallel compares pgzip (what the Writer uses) with the
// standard library's compress/gzip, both at level 6, on the same disk
// image, and checks the size against `gzip -6`. Target: at least 1.8x the
// throughput on 2 cores, output within 1% of gzip -6.
func BenchmarkGzipParallel(b *testing.B) {
	raw, _ := benchImages(b)
	size := fileSize(b, raw)
	needTool(b, "gzip", "apt-get install -y gzip")
	out, err := exec.Command("sh", "-c", "gzip -6 -c \"$0\" | wc -c", raw).Output()
	if err != nil {
		b.Fatal(err)
	}
	gnu, err := strconv.ParseInt(string(out[:len(out)-1]), 10, 64)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	b.ResetTimer()
	var pSize, sSize, nSize int64
	var pTime, sTime, nTime time.Duration
	for range b.N {
		// Exactly the compressor the Writer builds for level 6.
		n, d := compressFile(b, raw, func(w io.Writer) io.WriteCloser {
			zw, _, err := newCompressor(w, CompressionGzip, 6, 0)
			if err != nil {
				b.Fatal(err)
			}
			return zw
		})
		pSize, pTime = n, pTime+d
		n, d = compressFile(b, raw, func(w io.Writer) io.WriteCloser {
			zw, _ := pgzip.NewWriterLevel(w, 6)
			zw.SetConcurrency(1<<20, runtime.GOMAXPROCS(0))
			return zw
		})
		nSize, nTime = n, nTime+d
		n, d = compressFile(b, raw, func(w io.Writer) io.WriteCloser {
			zw, _ := gzip.NewWriterLevel(w, 6)
			return zw
		})
		sSize, sTime = n, sTime+d
	}
	pRate, sRate, nRate := mbps(size*int64(b.N), pTime), mbps(size*int64(b.N), sTime), mbps(size*int64(b.N), nTime)
	b.ReportMetric(pRate, "pgzip-MB/s")
	b.ReportMetric(sRate, "stdgzip-MB/s")
	b.ReportMetric(pRate/sRate, "speedup-x")
	b.ReportMetric(100*(float64(pSize)/float64(gnu)-1), "size-vs-gzip6-%")
	fmt.Printf("gzip level 6 on a %d MiB ext4 image, %d cores:\n"+
		"  pgzip (Writer, level 6 = klauspost %d) %7.1f MB/s  %11d bytes  %+.2f%% vs gzip -6\n"+
		"  pgzip, klauspost's own level 6         %7.1f MB/s  %11d bytes  %+.2f%% vs gzip -6\n"+
		"  compress/gzip level 6                  %7.1f MB/s  %11d bytes  %+.2f%% vs gzip -6\n"+
		"  gzip -6                                             %11d bytes\n"+
		"  Writer/stdlib throughput %.2fx (target >= 1.8x), size vs gzip -6 %+.2f%% (target within 1%%)\n",
		size>>20, runtime.GOMAXPROCS(0), gzipEquivalent(6),
		pRate, pSize, 100*(float64(pSize)/float64(gnu)-1),
		nRate, nSize, 100*(float64(nSize)/float64(gnu)-1),
		sRate, sSize, 100*(float64(sSize)/float64(gnu)-1),
		gnu, pRate/sRate, 100*(float64(pSize)/float64(gnu)-1))
}

// BenchmarkCompressionRatio shows what whole-archive compression buys: a
// lot on a raw image, little on a streamOptimized VMDK, whose grains are
// already deflated.
func BenchmarkCompressionRatio(b *testing.B) {
	raw, vmdk := benchImages(b)
	b.ResetTimer()
	for range b.N {
		for _, in := range []struct{ label, path string }{{"ext4 raw image", raw}, {"streamOptimized VMDK", vmdk}} {
			size := fileSize(b, in.path)
			// The compressors the Writer builds at its default levels.
			gzN, gzD := compressFile(b, in.path, func(w io.Writer) io.WriteCloser {
				zw, _, err := newCompressor(w, CompressionGzip, 0, 0)
				if err != nil {
					b.Fatal(err)
				}
				return zw
			})
			zsN, zsD := compressFile(b, in.path, func(w io.Writer) io.WriteCloser {
				zw, _, err := newCompressor(w, CompressionZstd, 0, 0)
				if err != nil {
					b.Fatal(err)
				}
				return zw
			})
			fmt.Printf("%-21s %4d MiB: gzip-6 %5.2fx (%6.1f MB/s)  zstd-3 %5.2fx (%6.1f MB/s)\n",
				in.label, size>>20, float64(size)/float64(gzN), mbps(size, gzD), float64(size)/float64(zsN), mbps(size, zsD))
		}
	}
}

// BenchmarkOVAAssembly compares packing an OVF folder into an OVA with the
// OVF export it replaces: copying the same files (io.Copy, which the kernel
// may do without user-space copies), and copying them while computing the
// SHA-256 an OVF manifest needs, as an export does. Target: the OVA costs
// at most 30% more than the OVF export.
func BenchmarkOVAAssembly(b *testing.B) {
	raw, vmdk := benchImages(b)
	dir := b.TempDir()
	spec := ovf.VMSpec{Name: "bench", CPUs: 2, MemoryMiB: 2048}
	var total int64
	for _, src := range []string{raw, vmdk} {
		name := filepath.Base(src)
		if err := os.Link(src, filepath.Join(dir, name)); err != nil {
			b.Fatal(err)
		}
		n := fileSize(b, src)
		total += n
		format := ovf.FormatRaw
		if filepath.Ext(name) == ".vmdk" {
			format = ovf.FormatVMDKStreamOptimized
		}
		spec.Disks = append(spec.Disks, ovf.DiskSpec{File: name, CapacityBytes: fileSize(b, raw), FileSize: n, Format: format})
	}
	d, err := ovf.Build(spec)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bench.ovf"), d.Marshal(), 0o644); err != nil {
		b.Fatal(err)
	}
	copyAll := func(hash bool) time.Duration {
		out := b.TempDir()
		start := time.Now()
		for _, name := range []string{"disk.img", "disk.vmdk"} {
			in, err := os.Open(filepath.Join(dir, name))
			if err != nil {
				b.Fatal(err)
			}
			o, err := os.Create(filepath.Join(out, name))
			if err != nil {
				b.Fatal(err)
			}
			var w io.Writer = o
			if hash {
				w = io.MultiWriter(o, sha256.New())
				_, err = io.CopyBuffer(w, in, make([]byte, 1<<20))
			} else {
				_, err = io.Copy(o, in)
			}
			if err != nil {
				b.Fatal(err)
			}
			in.Close()
			// Durable like the OVA, which is synced before it is renamed.
			if err := o.Sync(); err != nil {
				b.Fatal(err)
			}
			if err := o.Close(); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(start)
	}
	b.SetBytes(total)
	b.ResetTimer()
	var tCopy, tHash, tOVA, tGz time.Duration
	for range b.N {
		tCopy += copyAll(false)
		tHash += copyAll(true)
		res, err := Pack(context.Background(), dir, "bench.ovf", filepath.Join(b.TempDir(), "bench.ova"), Options{})
		if err != nil {
			b.Fatal(err)
		}
		tOVA += res.Duration
		res, err = Pack(context.Background(), dir, "bench.ovf", filepath.Join(b.TempDir(), "bench.ova.gz"), Options{Compression: CompressionGzip})
		if err != nil {
			b.Fatal(err)
		}
		tGz += res.Duration
	}
	n := total * int64(b.N)
	b.ReportMetric(float64(tOVA)/float64(tHash), "ova/ovf-export-x")
	b.ReportMetric(float64(tOVA)/float64(tCopy), "ova/plain-copy-x")
	fmt.Printf("assembling %d MiB (%d cores):\n"+
		"  plain copy (io.Copy+fsync)       %7.1f MB/s\n"+
		"  OVF export (copy+SHA-256+fsync)  %7.1f MB/s\n"+
		"  OVA (plain)                      %7.1f MB/s  = %.2fx the OVF export time (target <= 1.30x), %.2fx a plain copy\n"+
		"  OVA (gzip level 6, pgzip)        %7.1f MB/s\n",
		total>>20, runtime.GOMAXPROCS(0), mbps(n, tCopy), mbps(n, tHash), mbps(n, tOVA),
		float64(tOVA)/float64(tHash), float64(tOVA)/float64(tCopy), mbps(n, tGz))
}
