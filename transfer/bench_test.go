package transfer

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// BenchmarkTransfer moves real bytes over loopback HTTPS from an in-process
// server serving deterministic content, and compares the Downloader with a
// baseline measured in the same run: a plain sequential io.Copy of each
// response into its file, plus the fsync any durable writer needs. Every
// Downloader run also verifies the SHA-256 it computes while streaming.
//
// Two servers:
//   - loopback: as fast as the machine goes. Client and server share the CPU,
//     so this measures the per-byte cost (TLS, hashing, copies), not network
//     effects; parallel streams cannot win here on a small machine.
//   - per-stream-100MBps: every response is paced at 100 MB/s, as real
//     servers are per connection (NFC per disk, S3 and Azure per GET, any
//     link with latency × window below its bandwidth). This is what parallel
//     files and parallel ranged GETs are for.
//
// Sizes are modest by default so that
//
//	go test -run xxx -bench . -benchtime 1x ./transfer/
//
// finishes well within a minute; HYPERSDK_BENCH_MIB sets the per-file size
// (e.g. 256). A summary of the ratios is printed at the end.
func BenchmarkTransfer(b *testing.B) {
	size := int64(64) << 20
	if v, err := strconv.Atoi(os.Getenv("HYPERSDK_BENCH_MIB")); err == nil && v > 0 {
		size = int64(v) << 20
	}
	p := newPattern(size)
	wantSHA := p.sha()
	type result struct{ name, base string }
	var summary []result
	mbps := map[string]float64{}

	for _, srv := range []struct {
		name string
		pace int // bytes/s per response, 0 = unpaced
	}{{"loopback", 0}, {"per-stream-100MBps", 100e6}} {
		ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var out http.ResponseWriter = w
			if srv.pace > 0 {
				out = &pacedWriter{ResponseWriter: w, ctx: r.Context(), lim: rate.NewLimiter(rate.Limit(srv.pace), 256<<10)}
			}
			http.ServeContent(out, r, "", time.Time{}, p.reader())
		}))
		ts.StartTLS() // HTTP/1.1 over TLS, like NFC and S3
		pool := x509.NewCertPool()
		pool.AddCert(ts.Certificate())
		client, err := NewHTTPClient(ClientOptions{RootCAs: pool})
		if err != nil {
			b.Fatal(err)
		}
		urls := []string{ts.URL + "/0", ts.URL + "/1", ts.URL + "/2"}
		dir := b.TempDir()

		run := func(name string, files int, base string, op func(b *testing.B, dir string)) {
			name = srv.name + "/" + name
			if base != "" {
				base = srv.name + "/" + base
				summary = append(summary, result{name, base})
			}
			b.Run(name, func(b *testing.B) {
				b.SetBytes(size * int64(files))
				b.ReportAllocs()
				var spent time.Duration
				for i := range b.N {
					sub := filepath.Join(dir, fmt.Sprintf("%d-%d", len(mbps), i))
					start := time.Now()
					op(b, sub)
					spent += time.Since(start)
					b.StopTimer()
					_ = os.RemoveAll(sub) // disk use stays at one op's worth
					b.StartTimer()
				}
				mbps[name] = float64(size*int64(files)*int64(b.N)) / 1e6 / spent.Seconds()
				if base != "" && mbps[base] > 0 {
					b.ReportMetric(mbps[name]/mbps[base], "x-baseline")
				}
			})
		}
		baseline := func(urls []string) func(*testing.B, string) {
			return func(b *testing.B, dir string) {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					b.Fatal(err)
				}
				for i, u := range urls {
					resp, err := client.Get(u)
					if err != nil {
						b.Fatal(err)
					}
					f, err := os.Create(filepath.Join(dir, strconv.Itoa(i)))
					if err != nil {
						b.Fatal(err)
					}
					n, err := io.Copy(f, resp.Body)
					resp.Body.Close()
					if err == nil {
						err = f.Sync()
					}
					if cerr := f.Close(); err == nil {
						err = cerr
					}
					if err != nil || n != size {
						b.Fatalf("baseline copy: %d bytes, %v", n, err)
					}
				}
			}
		}
		downloader := func(urls []string, opts Options) func(*testing.B, string) {
			opts.Client = client
			d := NewDownloader(opts)
			return func(b *testing.B, dir string) {
				files := make([]File, len(urls))
				for i, u := range urls {
					files[i] = File{URL: u, Path: filepath.Join(dir, strconv.Itoa(i)), Size: size, SHA256: wantSHA}
				}
				if _, err := d.Download(context.Background(), files); err != nil {
					b.Fatal(err)
				}
			}
		}

		run("3files/baseline-sequential-io.Copy", 3, "", baseline(urls))
		run("3files/downloader-concurrency-3", 3, "3files/baseline-sequential-io.Copy",
			downloader(urls, Options{Concurrency: 3}))
		run("1file/baseline-io.Copy", 1, "", baseline(urls[:1]))
		run("1file/downloader-single-stream", 1, "1file/baseline-io.Copy", downloader(urls[:1], Options{}))
		run("1file/downloader-chunked-4x16MiB", 1, "1file/baseline-io.Copy",
			downloader(urls[:1], Options{ChunkConcurrency: 4, ChunkSize: 16 << 20}))

		client.CloseIdleConnections()
		ts.Close()
	}

	// Printed, not logged: a parent benchmark's log only shows with -v.
	fmt.Printf("\ntransfer benchmark summary: %d MiB per file, HTTPS, GOMAXPROCS=%d\n", size>>20, runtime.GOMAXPROCS(0))
	for _, r := range summary {
		if mbps[r.name] > 0 && mbps[r.base] > 0 {
			fmt.Printf("  %-52s %7.1f MB/s = %.2fx baseline (%.1f MB/s)\n", r.name, mbps[r.name], mbps[r.name]/mbps[r.base], mbps[r.base])
		}
	}
}

// pacedWriter caps one response's rate, as a server does per connection.
type pacedWriter struct {
	http.ResponseWriter
	ctx context.Context
	lim *rate.Limiter
}

func (w *pacedWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		n := min(len(p), w.lim.Burst())
		if err := w.lim.WaitN(w.ctx, n); err != nil {
			return written, err
		}
		m, err := w.ResponseWriter.Write(p[:n])
		written += m
		if err != nil {
			return written, err
		}
		p = p[n:]
	}
	return written, nil
}
