package proxmox

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/config"
	"github.com/hypersdk/hypersdk/disk/disktest"
	"github.com/hypersdk/hypersdk/pipeline"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/providers/proxmox/pvefake"
)

// childEnv names the file describing an export the test binary, started
// again as a child, runs: so that a test can measure the exporting
// process alone (VmHWM) or SIGKILL it mid-export.
const childEnv = "PROXMOX_TEST_CHILD_EXPORT"

// childSpec is an export for a child process. Secrets travel in this
// file (mode 0600, in the test's temp dir): config.Secret never marshals.
type childSpec struct {
	URL, TokenID, TokenSecret, Thumbprint string
	SSHUser, SSHKey, KnownHosts           string
	Nodes                                 map[string]SSHNode
	Method, Storage                       string
	VM, Job, OutputDir                    string
	Format, DiskFormat                    string
}

func (f *fixture) childSpec(method, vm, job, out string, format providers.Format, df providers.DiskFormat) childSpec {
	c := f.config()
	return childSpec{URL: c.URL, TokenID: c.TokenID, TokenSecret: c.TokenSecret.Reveal(), Thumbprint: c.Thumbprint,
		SSHUser: c.SSH.User, SSHKey: c.SSH.PrivateKey.Reveal(), KnownHosts: c.SSH.KnownHosts, Nodes: c.SSH.Nodes,
		Method: method, Storage: c.Vzdump.Storage, VM: vm, Job: job, OutputDir: out, Format: string(format), DiskFormat: string(df)}
}

// runChild is the child's side: the export, then its peak resident set
// (VmHWM) on stdout.
func runChild(path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var s childSpec
	if err := json.Unmarshal(b, &s); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	cfg := Config{URL: s.URL, TokenID: s.TokenID, TokenSecret: config.NewSecret(s.TokenSecret), Thumbprint: s.Thumbprint,
		ExportMethod: s.Method, Vzdump: VzdumpConfig{Storage: s.Storage},
		SSH: SSHConfig{User: s.SSHUser, PrivateKey: config.NewSecret(s.SSHKey), KnownHosts: s.KnownHosts, Nodes: s.Nodes}}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	p, err := NewProvider("pve-child", cfg, log)
	if err == nil {
		err = p.Connect(context.Background())
	}
	if err == nil {
		fmt.Println("connected")
		_, err = pipeline.Export(context.Background(), p, s.VM, providers.ExportOptions{OutputDir: s.OutputDir,
			Format: providers.Format(s.Format), DiskFormat: providers.DiskFormat(s.DiskFormat), JobID: s.Job, Logger: log})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "export:", err)
		os.Exit(1)
	}
	status, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			fmt.Println(line)
		}
	}
	os.Exit(0)
}

// startChild starts the export spec in a child process.
func startChild(t *testing.T, spec childSpec) (*exec.Cmd, *bufio.Scanner, *logBuffer) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "child.json")
	b, _ := json.Marshal(spec)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	tmp := t.TempDir()
	cmd.Env = append(os.Environ(), childEnv+"="+path, "TMPDIR="+tmp)
	stderr := &logBuffer{}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd, bufio.NewScanner(out), stderr
}

// dirUsage returns the bytes allocated by the files below dir and the
// largest file's apparent size.
func dirUsage(dir string) (alloc, largest int64) {
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			alloc += st.Blocks * 512
		}
		largest = max(largest, fi.Size())
		return nil
	})
	return alloc, largest
}

// The streamed path of a 4 GiB VM (a 1 MiB data region every 64 MiB):
// the exporting process stays under 100 MiB of resident memory (its
// VmHWM), the output directory never holds more than the output (peak
// allocation ≈ the raw disk's data, no file larger than the disk) and no
// temporary file appears anywhere else: the archive is never written.
func TestStreamedExportMemoryAndDisk(t *testing.T) {
	const diskSize = 4 << 30
	f := newFixture(t, pvefake.SampleOptions{DBDiskSize: diskSize, Large: true})
	out := t.TempDir()
	cmd, stdout, stderr := startChild(t, f.childSpec(MethodVzdump, "db-1", "job-mem", out, providers.FormatDisks, providers.DiskRaw))

	var mu sync.Mutex
	var peak, largest int64
	done, stop := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			a, l := dirUsage(out)
			mu.Lock()
			peak, largest = max(peak, a), max(largest, l)
			mu.Unlock()
			select {
			case <-time.After(20 * time.Millisecond):
			case <-stop:
				return
			}
		}
	}()
	var hwm int64
	for stdout.Scan() {
		if v, ok := strings.CutPrefix(stdout.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			hwm = kb << 10
		}
	}
	err := cmd.Wait()
	close(stop)
	<-done
	if err != nil {
		t.Fatalf("child export: %v\n%s", err, stderr)
	}
	disk := filepath.Join(out, "db-1-disk-0.raw")
	disktest.Compare(t, disk, "raw", f.volumeFile(t, "local-lvm:vm-101-disk-0"), "raw")
	finalAlloc, _ := dirUsage(out)
	t.Logf("4 GiB disk (%d MiB of data): exporting process VmHWM %.1f MiB; output dir peak %.1f MiB allocated, final %.1f MiB, largest file %d bytes",
		disktest.Allocated(t, disk)>>20, float64(hwm)/(1<<20), float64(peak)/(1<<20), float64(finalAlloc)/(1<<20), largest)
	limit := int64(100 << 20)
	if raceEnabled {
		limit *= 3 // the same code, with the race detector's shadow memory
	}
	if hwm <= 0 || hwm > limit {
		t.Errorf("the exporting process peaked at %d bytes resident, want under %d MiB", hwm, limit>>20)
	}
	if largest > diskSize {
		t.Errorf("a file of %d bytes appeared in the output, larger than the %d-byte disk", largest, diskSize)
	}
	if peak > finalAlloc+8<<20 {
		t.Errorf("the output directory peaked at %d bytes allocated, the output is %d: something else was written", peak, finalAlloc)
	}
	if tmp := cmd.Env[len(cmd.Env)-1]; strings.HasPrefix(tmp, "TMPDIR=") {
		if a, _ := dirUsage(strings.TrimPrefix(tmp, "TMPDIR=")); a != 0 {
			t.Errorf("%d bytes written under the child's TMPDIR", a)
		}
	}
}

// An exporting process killed with SIGKILL mid-export leaves its
// temporary snapshot (pvesm) or its dump archive (api) on the cluster;
// the sweep of a restarted provider, told the job is over, removes them.
func TestKilledExportIsSweptAfterRestart(t *testing.T) {
	f := newFixture(t, pvefake.SampleOptions{})
	setFaults(t, f, pvefake.Faults{StreamDelay: 100 * time.Millisecond})
	for _, tc := range []struct {
		method string
		// ready reports when the kill lands mid-export.
		ready func() bool
	}{
		{MethodPvesm, func() bool { return len(f.commands("pvesm export")) > 0 }},
		{MethodAPI, func() bool { return len(f.srv.RunningTasks()) > 0 }},
	} {
		t.Run(tc.method, func(t *testing.T) {
			job := "job-kill9-" + tc.method
			cmd, _, stderr := startChild(t, f.childSpec(tc.method, "web-1", job, t.TempDir(), providers.FormatOVF, providers.DiskVMDK))
			deadline := time.Now().Add(time.Minute)
			for !tc.ready() {
				if time.Now().After(deadline) {
					t.Fatalf("the export never got going:\n%s", stderr)
				}
				time.Sleep(10 * time.Millisecond)
			}
			time.Sleep(100 * time.Millisecond)
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_ = cmd.Wait()
			// The dump task runs on after its client died, as PVE's does.
			for len(f.srv.RunningTasks()) > 0 {
				time.Sleep(10 * time.Millisecond)
			}
			left := f.leftovers(t)
			if len(left) != 1 || !strings.Contains(left[0], map[string]string{MethodPvesm: snapshotName(job), MethodAPI: jobTag + job}[tc.method]) {
				t.Fatalf("after the kill: %v, want the job's %s", left, map[string]string{MethodPvesm: "snapshot", MethodAPI: "dump"}[tc.method])
			}
			p := f.provider(t, f.config())
			removed, err := p.SweepOrphans(context.Background(), func(string) bool { return false })
			if err != nil || len(removed) != 1 || !strings.Contains(removed[0], job) {
				t.Errorf("sweep: %q, %v", removed, err)
			}
			if left := f.leftovers(t); len(left) != 0 {
				t.Errorf("after the sweep: %v", left)
			}
		})
	}
}
