package providertest

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/hypersdk/hypersdk/disk/formats"
	"github.com/hypersdk/hypersdk/pipeline"
	"github.com/hypersdk/hypersdk/progress"
	"github.com/hypersdk/hypersdk/providers"
)

// Target describes a provider under test and what its test target holds.
type Target struct {
	// New returns a fresh, unconnected provider.
	New func(t *testing.T) providers.Provider
	// ExportVM identifies a powered-off VM that exports successfully.
	ExportVM string
	// SlowVM identifies a VM whose export takes long enough to be cancelled
	// after its first progress report (may equal ExportVM when large).
	SlowVM string
	// BeforeCancel, when set, runs before the cancellation check, e.g. to
	// make the target pause transfers so that the cancel lands mid-export;
	// AfterCancel undoes it.
	BeforeCancel, AfterCancel func(t *testing.T)
	// SourceDigests, when set, returns the SHA-256 of each disk's bytes as
	// the platform holds them, keyed by exported file name, so the suite can
	// check the export byte for byte against the source.
	SourceDigests func(t *testing.T) map[string]string
	// RawDigests, when set, returns the SHA-256 of each disk's virtual
	// content (capacity bytes), keyed by the raw file name a
	// `disks`/`raw` export writes, so the suite can check the decoded bytes.
	RawDigests func(t *testing.T) map[string]string
	// Leftovers, when set, asks the platform what an export left behind
	// (open leases, temporary snapshots, VMs held busy); the suite wants
	// none after every export, failed, cancelled or not.
	Leftovers func(t *testing.T) []string
	// Method is the export method every export of the suite asks for
	// (providers.ExportOptions.Method; "" the provider's default), so that
	// a provider with several methods runs the suite once per method.
	Method string
	// RangedParts says the target's disks are ranged HTTP sources
	// (object storage): a cancelled export keeps their ".part" files (with
	// the ".part.version" naming the object's version) for the next
	// attempt to resume, as block sources keep theirs.
	RangedParts bool
}

// Run runs the conformance suite.
func Run(t *testing.T, target Target) {
	ctx := context.Background()
	p := target.New(t)
	if err := p.Connect(ctx); err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Disconnect(); err != nil {
			t.Errorf("Disconnect: %v", err)
		}
	})

	t.Run("Identity", func(t *testing.T) {
		if p.Name() == "" {
			t.Error("Name is empty")
		}
		switch p.Type() {
		case providers.TypeVSphere, providers.TypeAWS, providers.TypeAzure, providers.TypeGCP, providers.TypeHyperV, providers.TypeProxmox:
		default:
			t.Errorf("Type %q is not a known provider type", p.Type())
		}
	})

	t.Run("ValidateCredentials", func(t *testing.T) {
		if err := p.ValidateCredentials(ctx); err != nil {
			t.Fatal(err)
		}
	})

	var all []*providers.VMInfo
	t.Run("ListVMs", func(t *testing.T) {
		var err error
		all, err = p.ListVMs(ctx, providers.VMFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(all) == 0 {
			t.Fatal("no VMs listed")
		}
		if !sort.SliceIsSorted(all, func(i, j int) bool { return sortKey(all[i]) < sortKey(all[j]) }) {
			t.Error("ListVMs result is not sorted by inventory path")
		}
		for _, vm := range all {
			if vm.ID == "" || vm.Name == "" {
				t.Errorf("VM without ID or name: %+v", vm)
			}
			if vm.Provider != p.Name() {
				t.Errorf("VM %s: Provider = %q, want %q", vm.Name, vm.Provider, p.Name())
			}
			switch vm.PowerState {
			case providers.PowerOn, providers.PowerOff, providers.PowerSuspend, providers.PowerUnknown:
			default:
				t.Errorf("VM %s: power state %q is not normalised", vm.Name, vm.PowerState)
			}
		}
		first := all[0]
		byName, err := p.ListVMs(ctx, providers.VMFilter{Name: first.Name})
		if err != nil {
			t.Fatal(err)
		}
		if !containsID(byName, first.ID) {
			t.Errorf("filter by exact name %q does not return VM %s", first.Name, first.ID)
		}
		for _, vm := range byName {
			if vm.Name != first.Name {
				t.Errorf("filter by name %q returned %q", first.Name, vm.Name)
			}
		}
		off, err := p.ListVMs(ctx, providers.VMFilter{PowerState: providers.PowerOff})
		if err != nil {
			t.Fatal(err)
		}
		for _, vm := range off {
			if vm.PowerState != providers.PowerOff {
				t.Errorf("power filter returned %s in state %s", vm.Name, vm.PowerState)
			}
		}
		none, err := p.ListVMs(ctx, providers.VMFilter{Name: "no-such-vm-*-xyzzy"})
		if err != nil || len(none) != 0 {
			t.Errorf("filter matching nothing: %d VMs, %v", len(none), err)
		}
	})

	t.Run("GetVM", func(t *testing.T) {
		vm, err := p.GetVM(ctx, target.ExportVM)
		if err != nil {
			t.Fatalf("GetVM(%q): %v", target.ExportVM, err)
		}
		for _, ident := range []string{vm.ID, vm.Path, vm.UUID, vm.InstanceUUID} {
			if ident == "" {
				continue
			}
			got, err := p.GetVM(ctx, ident)
			if err != nil {
				t.Errorf("GetVM(%q): %v", ident, err)
			} else if got.ID != vm.ID {
				t.Errorf("GetVM(%q) = %s, want %s", ident, got.ID, vm.ID)
			}
		}
		_, err = p.GetVM(ctx, "no-such-vm-xyzzy")
		if !errors.Is(err, providers.ErrNotFound) {
			t.Errorf("GetVM of a missing VM: %v, want ErrNotFound", err)
		}
		if !providers.IsPermanent(err) {
			t.Errorf("not-found error is not permanent: %v", err)
		}
	})

	t.Run("SearchVMs", func(t *testing.T) {
		vm, err := p.GetVM(ctx, target.ExportVM)
		if err != nil {
			t.Fatal(err)
		}
		q := strings.ToUpper(vm.Name[:max(1, len(vm.Name)-1)])
		found, err := p.SearchVMs(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if !containsID(found, vm.ID) {
			t.Errorf("SearchVMs(%q) does not find %s", q, vm.Name)
		}
	})

	t.Run("Capabilities", func(t *testing.T) {
		c := p.GetExportCapabilities()
		if len(c.Formats) == 0 {
			t.Fatal("no export formats")
		}
		if err := c.Validate(providers.ExportOptions{Format: "zip"}); !errors.Is(err, providers.ErrInvalidArgument) {
			t.Errorf("Validate accepted format zip: %v", err)
		}
	})

	t.Run("Export", func(t *testing.T) {
		dir := t.TempDir()
		var mu sync.Mutex
		var reports []progress.Report
		res, err := pipeline.Export(ctx, p, target.ExportVM, providers.ExportOptions{
			OutputDir: dir, Format: providers.FormatOVF, ParallelDownloads: 2, Method: target.Method,
			Progress: func(pr progress.Report) { mu.Lock(); reports = append(reports, pr); mu.Unlock() },
		})
		if err != nil {
			t.Fatal(err)
		}
		checkExport(t, dir, res)
		mu.Lock()
		defer mu.Unlock()
		if len(reports) == 0 {
			t.Error("no progress reported")
		}
		for _, r := range reports {
			if r.BytesTotal > 0 && r.BytesDone > r.BytesTotal {
				t.Errorf("progress %d of %d", r.BytesDone, r.BytesTotal)
			}
		}
		checkProgress(t, reports, res)
		checkLeftovers(t, target)
		if target.SourceDigests != nil {
			byName := map[string]string{}
			for _, f := range res.Files {
				byName[filepath.Base(f.Path)] = f.SHA256
			}
			for name, want := range target.SourceDigests(t) {
				if byName[name] != want {
					t.Errorf("%s: exported SHA-256 %s, source %s", name, byName[name], want)
				}
			}
		}
	})

	t.Run("Formats", func(t *testing.T) {
		for _, tc := range []struct {
			format providers.Format
			disk   providers.DiskFormat
		}{
			{providers.FormatOVA, providers.DiskVMDK},
			{providers.FormatDisks, providers.DiskVMDK},
			{providers.FormatDisks, providers.DiskRaw},
			{providers.FormatDisks, providers.DiskQCOW2},
			{providers.FormatDisks, providers.DiskVHD},
			{providers.FormatDisks, providers.DiskVHDX},
		} {
			t.Run(string(tc.format)+"-"+string(tc.disk), func(t *testing.T) {
				dir := t.TempDir()
				var mu sync.Mutex
				var reports []progress.Report
				res, err := pipeline.Export(ctx, p, target.ExportVM, providers.ExportOptions{
					OutputDir: dir, Format: tc.format, DiskFormat: tc.disk, CleanupOVF: true, ParallelDownloads: 2, Method: target.Method,
					Progress: func(pr progress.Report) { mu.Lock(); reports = append(reports, pr); mu.Unlock() },
				})
				if err != nil {
					t.Fatal(err)
				}
				checkLeftovers(t, target)
				if res.Format != tc.format {
					t.Errorf("result format %s", res.Format)
				}
				if tc.format == providers.FormatOVA {
					entries, _ := os.ReadDir(dir)
					if len(entries) != 1 || entries[0].Name() != res.OVAPath {
						t.Errorf("OVA export without a second copy left %v", entries)
					}
					return
				}
				checkExport(t, dir, res)
				disks := 0
				for _, f := range res.Files {
					if strings.HasSuffix(f.Path, ".ovf") {
						t.Errorf("disks export wrote a descriptor %s", f.Path)
					}
					if f.Kind == "disk" {
						disks++
						if !strings.HasSuffix(f.Path, "."+string(tc.disk)) {
							t.Errorf("disk file %s is not .%s", f.Path, tc.disk)
						}
					}
				}
				if disks == 0 || !strings.HasSuffix(res.Manifest, ".sha256") {
					t.Errorf("%d disks, manifest %q", disks, res.Manifest)
				}
				if _, err := os.Stat(filepath.Join(dir, strings.TrimSuffix(res.Manifest, ".sha256")+".json")); err != nil {
					t.Errorf("no JSON metadata: %v", err)
				}
				if tc.disk == providers.DiskRaw && target.RawDigests != nil {
					byName := map[string]string{}
					for _, f := range res.Files {
						byName[f.Path] = f.SHA256
					}
					for name, want := range target.RawDigests(t) {
						if byName[name] != want {
							t.Errorf("%s: raw SHA-256 %s, source content %s", name, byName[name], want)
						}
					}
				} else if tc.disk != providers.DiskVMDK && target.RawDigests != nil {
					// Read back through the format's own reader: the
					// virtual disk must hold the source's bytes.
					for name, want := range target.RawDigests(t) {
						img := filepath.Join(dir, strings.TrimSuffix(name, ".raw")+"."+string(tc.disk))
						if got := virtualDigest(t, img); got != want {
							t.Errorf("%s: virtual disk SHA-256 %s, source content %s", img, got, want)
						}
					}
				}
				checkProgress(t, reports, res)
			})
		}
	})

	t.Run("ExportMissingVMIsPermanent", func(t *testing.T) {
		_, err := pipeline.Export(ctx, p, "no-such-vm-xyzzy", providers.ExportOptions{OutputDir: t.TempDir(), Format: providers.FormatOVF, Method: target.Method})
		if !errors.Is(err, providers.ErrNotFound) || !providers.IsPermanent(err) {
			t.Errorf("export of a missing VM: %v, want a permanent ErrNotFound", err)
		}
	})

	t.Run("Cancel", func(t *testing.T) {
		vmID := target.SlowVM
		if vmID == "" {
			vmID = target.ExportVM
		}
		if target.BeforeCancel != nil {
			target.BeforeCancel(t)
		}
		if target.AfterCancel != nil {
			defer target.AfterCancel(t)
		}
		dir := t.TempDir()
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		var once sync.Once
		_, err := pipeline.Export(cctx, p, vmID, providers.ExportOptions{
			OutputDir: dir, Format: providers.FormatOVF, Method: target.Method,
			Progress: func(pr progress.Report) {
				if pr.BytesDone > 0 {
					once.Do(cancel)
				}
			},
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled export returned %v, want context.Canceled", err)
		}
		if providers.IsPermanent(err) {
			t.Error("cancellation classified as permanent")
		}
		// Nothing is left but resume state, which the next export into
		// the directory resumes (see package pipeline): a block source's
		// part file with its journal, a ranged source's part file.
		entries, _ := os.ReadDir(dir)
		names := map[string]bool{}
		for _, e := range entries {
			names[e.Name()] = true
		}
		for name := range names {
			switch {
			case strings.HasSuffix(name, ".part") && names[strings.TrimSuffix(name, ".part")+".journal"]:
			case strings.HasSuffix(name, ".journal") && names[strings.TrimSuffix(name, ".journal")+".part"]:
			case (strings.HasSuffix(name, ".part") || strings.HasSuffix(name, ".part.version")) && target.RangedParts:
			default:
				t.Errorf("cancelled export left %s behind", name)
			}
		}
		checkLeftovers(t, target)
	})
}

// checkLeftovers asks the platform what the last export left behind.
func checkLeftovers(t *testing.T, target Target) {
	t.Helper()
	if target.Leftovers == nil {
		return
	}
	for _, l := range target.Leftovers(t) {
		t.Errorf("left on the platform: %s", l)
	}
}

// checkProgress wants honest download totals: never below the bytes done,
// and at the end exactly the bytes of the files that were fetched.
func checkProgress(t *testing.T, reports []progress.Report, res *providers.ExportResult) {
	t.Helper()
	var last progress.Report
	for _, r := range reports {
		if r.BytesTotal > 0 && r.BytesDone > r.BytesTotal {
			t.Errorf("progress %d of %d", r.BytesDone, r.BytesTotal)
		}
		if r.Phase == progress.PhaseDownloading {
			last = r
		}
	}
	if last.BytesTotal <= 0 || last.BytesDone != last.BytesTotal {
		t.Errorf("last download report %+v: the total must be known and reached at the end", last)
	}
	if res.DiskFormat == providers.DiskVMDK && res.Format == providers.FormatOVF {
		// Disks passed through (VMDK) or encoded (raw sources): the
		// source bytes moved are at most the capacity of the disks.
		if c := res.VM.TotalDiskBytes(); c > 0 && last.BytesTotal > c+1<<20 {
			t.Errorf("download total %d is above the disks' capacity %d", last.BytesTotal, c)
		}
	}
}

func sortKey(vm *providers.VMInfo) string {
	if vm.Path != "" {
		return vm.Path
	}
	return vm.Name
}

func containsID(vms []*providers.VMInfo, id string) bool {
	for _, vm := range vms {
		if vm.ID == id {
			return true
		}
	}
	return false
}

var manifestLine = regexp.MustCompile(`^SHA256\((.+)\)= ([0-9a-f]{64})$`)

// checkExport verifies an export directory against its result and manifest.
func checkExport(t *testing.T, dir string, res *providers.ExportResult) {
	t.Helper()
	if res == nil {
		t.Fatal("nil result")
	}
	if len(res.Files) == 0 {
		t.Fatal("result lists no files")
	}
	var total int64
	for _, f := range res.Files {
		got, size := fileSHA256(t, filepath.Join(dir, f.Path))
		if got != f.SHA256 || size != f.Size {
			t.Errorf("%s: on disk %d bytes sha256 %s; result says %d bytes %s", f.Path, size, got, f.Size, f.SHA256)
		}
		total += f.Size
	}
	if res.Manifest == "" {
		t.Fatal("result names no manifest")
	}
	mf, err := os.Open(filepath.Join(dir, res.Manifest))
	if err != nil {
		t.Fatal(err)
	}
	defer mf.Close()
	listed := map[string]string{}
	sc := bufio.NewScanner(mf)
	for sc.Scan() {
		m := manifestLine.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			t.Errorf("manifest line %q is not SHA256(file)= hex", sc.Text())
			continue
		}
		listed[m[1]] = m[2]
	}
	if res.Format == providers.FormatOVF {
		for _, f := range res.Files {
			if f.Path == res.Manifest {
				continue
			}
			if listed[f.Path] != f.SHA256 {
				t.Errorf("manifest has %q for %s, file is %s", listed[f.Path], f.Path, f.SHA256)
			}
		}
	}
	_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.HasSuffix(path, ".part") || strings.Contains(d.Name(), ".tmp")) {
			t.Errorf("temporary file left behind: %s", path)
		}
		return nil
	})
}

func fileSHA256(t *testing.T, path string) (string, int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil)), n
}

// virtualDigest is the SHA-256 of the virtual disk in the image at path,
// read through disk/formats (the format detected from its bytes).
func virtualDigest(t *testing.T, path string) string {
	t.Helper()
	img, f, err := formats.Open(path, "")
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer f.Close()
	defer img.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(img, 0, img.Info().VirtualSize)); err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
