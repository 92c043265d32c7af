package benchcmd

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
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
