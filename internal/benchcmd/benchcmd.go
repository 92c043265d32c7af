package benchcmd

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Dir is a fresh directory in HYPERSDK_BENCH_DIR (default /dev/shm, so the
// disk under test is not the bottleneck), removed when the benchmark ends.
func Dir(tb testing.TB) string {
	tb.Helper()
	base := os.Getenv("HYPERSDK_BENCH_DIR")
	if base == "" {
		base = "/dev/shm"
	}
	dir, err := os.MkdirTemp(base, "hypersdk-bench-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// Hyperctl is the hyperctl to time: HYPERSDK_BENCH_HYPERCTL (another build,
// to compare versions), or this tree's, built once into dir.
func Hyperctl(tb testing.TB, dir string) string {
	tb.Helper()
	if p := os.Getenv("HYPERSDK_BENCH_HYPERCTL"); p != "" {
		return p
	}
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		goBin = "go"
	}
	bin := filepath.Join(dir, "hyperctl")
	cmd := exec.Command(goBin, "build", "-o", bin, "github.com/hypersdk/hypersdk/cmd/hyperctl")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("build hyperctl: %v: %s", err, out)
	}
	return bin
}

// Result is one timed run of a command.
type Result struct {
	Wall      time.Duration
	CPU       time.Duration // user + system
	MaxRSSKiB int64
}

// Time runs cmd (its output discarded, its stderr kept for the failure
// message) and measures it; a failing command fails the benchmark.
func Time(tb testing.TB, cmd *exec.Cmd) Result {
	tb.Helper()
	var stderr bytes.Buffer
	if cmd.Stdout == nil {
		cmd.Stdout = io.Discard
	}
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	r := Result{Wall: time.Since(start)}
	if err != nil {
		tb.Fatalf("%s: %v: %s", strings.Join(cmd.Args, " "), err, stderr.String())
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.MaxRSSKiB = ru.Maxrss
	}
	r.CPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return r
}

// Median is the middle value of v (the upper one of an even count).
func Median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// Candidate is one way of moving the same bytes, timed by Run.
type Candidate struct {
	Name string
	Run  func() time.Duration
}

// Compare runs every candidate reps times, alternating (so that a change
// in the machine's load hits all of them alike), and reports, for size
// bytes moved, each median's MB/s and the ratio of each of ours (names
// with prefix) to each anchor's median: above 1, ours finished first.
func Compare(b *testing.B, size int64, reps int, prefix string, anchors []string, cands []Candidate) {
	b.Helper()
	walls := map[string][]float64{}
	for i := 0; i < b.N; i++ {
		for range reps {
			for _, c := range cands {
				walls[c.Name] = append(walls[c.Name], c.Run().Seconds())
			}
		}
	}
	med := map[string]float64{}
	var summary []string
	for _, c := range cands {
		med[c.Name] = Median(walls[c.Name])
		mbps := float64(size) / 1e6 / med[c.Name]
		b.ReportMetric(mbps, c.Name+"_MB/s")
		summary = append(summary, c.Name+" "+strconv.FormatFloat(mbps, 'f', 0, 64)+" MB/s")
	}
	for _, c := range cands {
		if !strings.HasPrefix(c.Name, prefix) {
			continue
		}
		for _, a := range anchors {
			ratio := med[a] / med[c.Name]
			b.ReportMetric(ratio, c.Name+"_vs_"+a)
			summary = append(summary, c.Name+"/"+a+" "+strconv.FormatFloat(ratio, 'f', 2, 64)+"x")
		}
	}
	b.Logf("%d MiB, median of %d: %s", size>>20, reps, strings.Join(summary, ", "))
}
