package pipeline_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/disk"
	"github.com/hypersdk/hypersdk/disk/formats"
	"github.com/hypersdk/hypersdk/pipeline"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/transfer"
	"github.com/hypersdk/hypersdk/vmdk"
)

// objectServer serves objects as object storage does: ranged GETs, a
// strong ETag, and a log of the Range headers it was asked.
type objectServer struct {
	*httptest.Server
	mu      sync.Mutex
	objects map[string][]byte
	ranges  map[string][]string
}

func newObjectServer(t *testing.T) *objectServer {
	s := &objectServer{objects: map[string][]byte{}, ranges: map[string][]string{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		data, ok := s.objects[r.URL.Path]
		s.ranges[r.URL.Path] = append(s.ranges[r.URL.Path], r.Header.Get("Range"))
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("ETag", etagOf(data))
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
	}))
	t.Cleanup(s.Close)
	return s
}

func etagOf(b []byte) string { return fmt.Sprintf(`"%x"`, md5.Sum(b)) }

func (s *objectServer) put(path string, data []byte) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.objects[path] = data
	return s.URL + path + "?X-Amz-Signature=topsecret"
}

func (s *objectServer) rangesOf(path string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ranges[path])
}

func streamVMDK(t *testing.T, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	if _, err := vmdk.WriteStreamOptimized(&b, bytes.NewReader(data), int64(len(data)), vmdk.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// ova packs an .ovf and the VMDK as an OVA does and returns the archive
// and where the VMDK's bytes lie in it.
func ova(t *testing.T, vmdkBytes []byte) (archive []byte, offset int64) {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	ovf := []byte(`<?xml version="1.0"?><Envelope/>`)
	for _, m := range []struct {
		name string
		data []byte
	}{{"vm.ovf", ovf}, {"vm-disk1.vmdk", vmdkBytes}} {
		if err := tw.WriteHeader(&tar.Header{Name: m.name, Mode: 0o644, Size: int64(len(m.data)), Format: tar.FormatUSTAR}); err != nil {
			t.Fatal(err)
		}
		if m.name == "vm-disk1.vmdk" {
			offset = int64(b.Len())
		}
		if _, err := tw.Write(m.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes(), offset
}

// wholeMD5 is the framed MD5 digest of archive checking its member at
// [offset, offset+n).
func wholeMD5(t *testing.T, archive []byte, offset, n int64) providers.Digest {
	t.Helper()
	framed, err := transfer.Framed(md5.New, archive[:offset], archive[offset+n:])
	if err != nil {
		t.Fatal(err)
	}
	s := md5.Sum(archive)
	return providers.Digest{Name: "md5", New: framed, Sum: s[:]}
}

// The VMDK inside an OVA in object storage is fetched as a range of the
// archive, in parallel ranges, verified against the whole archive's MD5,
// and passed through (vmdk) or decoded (raw) without a staged copy of the
// archive.
func TestArchiveMemberSource(t *testing.T) {
	data := diskBytes(7, 40<<20) // two thirds random: a VMDK of about 27 MiB, two ranges
	vm := streamVMDK(t, data)
	archive, off := ova(t, vm)
	srv := newObjectServer(t)
	url := srv.put("/bucket/export-i-1.ova", archive)
	for _, df := range []providers.DiskFormat{providers.DiskVMDK, providers.DiskRaw} {
		t.Run(string(df), func(t *testing.T) {
			before := len(srv.rangesOf("/bucket/export-i-1.ova"))
			dir := t.TempDir()
			e := newExporter(providers.DiskSource{
				Name: "disk-0", Format: providers.SourceVMDKStream, Capacity: int64(len(data)), Size: int64(len(vm)),
				HTTP: &providers.HTTPSource{URL: url, Offset: off, Ranged: true, Validator: etagOf(archive),
					Digests: []providers.Digest{wholeMD5(t, archive, off, int64(len(vm)))}},
			})
			if _, err := pipeline.Export(context.Background(), e, "vm-1", providers.ExportOptions{
				OutputDir: dir, Format: providers.FormatDisks, DiskFormat: df,
			}); err != nil {
				t.Fatal(err)
			}
			e.wantEnded(t, false)
			out, err := os.ReadFile(filepath.Join(dir, "web01-disk-0."+string(df)))
			if err != nil {
				t.Fatal(err)
			}
			want := data
			if df == providers.DiskVMDK {
				want = vm // passed through byte for byte
			}
			if sum(out) != sum(want) {
				t.Errorf("%s output differs from the source", df)
			}
			if got := listDir(t, dir); len(got) != 3 {
				t.Errorf("output %v: staged or partial files left", got)
			}
			ranges := srv.rangesOf("/bucket/export-i-1.ova")[before:]
			if len(ranges) < 2 {
				t.Errorf("ranges asked %v: want parallel ranged GETs", ranges)
			}
			for _, r := range ranges {
				var a, b int64
				if _, err := fmt.Sscanf(r, "bytes=%d-%d", &a, &b); err != nil || a < off || b >= off+int64(len(vm)) {
					t.Errorf("Range %q is not within the member [%d, %d)", r, off, off+int64(len(vm)))
				}
			}
		})
	}
}

func TestArchiveMemberDigestMismatchFailsAndLeavesNothing(t *testing.T) {
	data := diskBytes(8, 1<<20)
	vm := streamVMDK(t, data)
	archive, off := ova(t, vm)
	srv := newObjectServer(t)
	url := srv.put("/b/o.ova", archive)
	dg := wholeMD5(t, archive, off, int64(len(vm)))
	dg.Sum[3] ^= 0x40
	dir := t.TempDir()
	e := newExporter(providers.DiskSource{
		Name: "disk-0", Format: providers.SourceVMDKStream, Capacity: int64(len(data)), Size: int64(len(vm)),
		HTTP: &providers.HTTPSource{URL: url, Offset: off, Ranged: true, Validator: etagOf(archive), Digests: []providers.Digest{dg}},
	})
	_, err := pipeline.Export(context.Background(), e, "vm-1", providers.ExportOptions{OutputDir: dir, Format: providers.FormatOVA})
	if !errors.Is(err, transfer.ErrDigestMismatch) {
		t.Fatalf("err = %v, want a digest mismatch", err)
	}
	if strings.Contains(err.Error(), "topsecret") {
		t.Errorf("the pre-signed URL's signature is in the error: %v", err)
	}
	e.wantEnded(t, true)
	if got := listDir(t, dir); len(got) != 0 {
		t.Errorf("left behind: %v", got)
	}
}

// An image in a format only random access can read (a dynamic VHD) is
// staged beside the output, recognised by its bytes and decoded.
func TestImageSourceIsStagedAndDecoded(t *testing.T) {
	data := diskBytes(9, 6<<20)
	spec, err := formats.Lookup("vhd")
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "src.vhd")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := spec.Write(context.Background(), f, disk.FromReader(bytes.NewReader(data), int64(len(data))), disk.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	vhdBytes, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	srv := newObjectServer(t)
	url := srv.put("/b/export-i-2.vhd", vhdBytes)
	for _, df := range []providers.DiskFormat{providers.DiskRaw, providers.DiskQCOW2} {
		t.Run(string(df), func(t *testing.T) {
			dir := t.TempDir()
			e := newExporter(providers.DiskSource{
				Name: "disk-0", Format: providers.SourceImage, Capacity: int64(len(data)), Size: int64(len(vhdBytes)),
				HTTP: &providers.HTTPSource{URL: url, Ranged: true, Validator: etagOf(vhdBytes)},
			})
			if _, err := pipeline.Export(context.Background(), e, "vm-1", providers.ExportOptions{OutputDir: dir, Format: providers.FormatDisks, DiskFormat: df}); err != nil {
				t.Fatal(err)
			}
			outImg, outFile, err := formats.Open(filepath.Join(dir, "web01-disk-0."+string(df)), "")
			if err != nil {
				t.Fatal(err)
			}
			defer outFile.Close()
			defer outImg.Close()
			got, err := io.ReadAll(io.NewSectionReader(outImg, 0, outImg.Info().VirtualSize))
			if err != nil {
				t.Fatal(err)
			}
			if sum(got) != sum(data) {
				t.Errorf("decoded %s differs from the source disk", df)
			}
			if names := listDir(t, dir); slices.ContainsFunc(names, func(n string) bool { return strings.Contains(n, ".src") }) {
				t.Errorf("staged image left: %v", names)
			}
		})
	}
	// A capacity that disagrees with the image is refused, permanently.
	e := newExporter(providers.DiskSource{
		Name: "disk-0", Format: providers.SourceImage, Capacity: int64(len(data)) + 512, Size: int64(len(vhdBytes)),
		HTTP: &providers.HTTPSource{URL: url},
	})
	dir := t.TempDir()
	_, err = pipeline.Export(context.Background(), e, "vm-1", providers.ExportOptions{OutputDir: dir, Format: providers.FormatDisks, DiskFormat: providers.DiskRaw})
	if !providers.IsPermanent(err) || !strings.Contains(err.Error(), "the platform says") {
		t.Fatalf("err = %v, want a permanent capacity mismatch", err)
	}
	if got := listDir(t, dir); len(got) != 0 {
		t.Errorf("left behind: %v", got)
	}
}

// A raw disk served over HTTP and kept raw is written sparse.
func TestRawHTTPSourcePassedThroughStaysSparse(t *testing.T) {
	data := make([]byte, 16<<20)
	copy(data, diskBytes(10, 1<<20))
	copy(data[12<<20:], diskBytes(11, 1<<20))
	srv := newObjectServer(t)
	url := srv.put("/b/export-i-3.raw", data)
	dir := t.TempDir()
	e := newExporter(providers.DiskSource{
		Name: "disk-0", Format: providers.SourceRaw, Capacity: int64(len(data)), Size: int64(len(data)),
		HTTP: &providers.HTTPSource{URL: url, Ranged: true, Validator: etagOf(data)},
	})
	if _, err := pipeline.Export(context.Background(), e, "vm-1", providers.ExportOptions{OutputDir: dir, Format: providers.FormatDisks, DiskFormat: providers.DiskRaw}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "web01-disk-0.raw")
	out, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if sum(out) != sum(data) {
		t.Fatal("raw output differs from the source")
	}
	st, _ := os.Stat(path)
	if used := st.Sys().(*syscall.Stat_t).Blocks * 512; used > 6<<20 {
		t.Errorf("%d bytes allocated for a 16 MiB disk holding under 2 MiB of data: zeros were written", used)
	}
}

func TestSourceRefusals(t *testing.T) {
	for _, tc := range []struct {
		name string
		d    providers.DiskSource
		want string
	}{
		{"image from a reader", providers.DiskSource{Name: "d", Format: providers.SourceImage, Capacity: 1 << 20, Size: 1 << 20,
			Open: func(context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(nil)), nil }}, "must be an HTTP source"},
		{"offset without size", providers.DiskSource{Name: "d", Format: providers.SourceRaw, Capacity: 1 << 20, Size: -1,
			HTTP: &providers.HTTPSource{URL: "http://127.0.0.1:1/o", Offset: 512}}, "needs its size"},
		{"ranged without validator", providers.DiskSource{Name: "d", Format: providers.SourceRaw, Capacity: 1 << 20, Size: 1 << 20,
			HTTP: &providers.HTTPSource{URL: "http://127.0.0.1:1/o", Ranged: true}}, "validator"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newExporter(tc.d)
			_, err := pipeline.Export(context.Background(), e, "vm-1", providers.ExportOptions{OutputDir: t.TempDir(), Format: providers.FormatDisks, DiskFormat: providers.DiskRaw})
			if !providers.IsPermanent(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want a permanent refusal naming %q", err, tc.want)
			}
		})
	}
	// A provider with one unnamed method refuses every named one.
	e := newExporter(readerDisk("disk-0", make([]byte, 1<<20)))
	_, err := pipeline.Export(context.Background(), e, "vm-1", providers.ExportOptions{OutputDir: t.TempDir(), Method: "export-task"})
	if !errors.Is(err, providers.ErrInvalidArgument) || !strings.Contains(err.Error(), "single export method") {
		t.Fatalf("err = %v, want the method refused", err)
	}
	if e.prepared != 0 {
		t.Error("the platform was asked to prepare an export with a method it does not offer")
	}
}

// TestRangedSourcePartKeptOnlyWhileAnAttemptFollows: a ranged source's
// part file and its version record follow the block sources' rule. A
// failure that may heal keeps them for the next attempt, which resumes
// after the kept bytes; a permanent failure, the job's last attempt, or a
// cancel with providers.ErrAbandoned removes them; a last attempt
// cancelled for another reason (a shutdown hands the job back) keeps them.
func TestRangedSourcePartKeptOnlyWhileAnAttemptFollows(t *testing.T) {
	data := diskBytes(9, 1<<20)
	const half = 256 << 10
	etag := etagOf(data)
	broken := errors.New("connection reset by peer")
	for _, tc := range []struct {
		name      string
		final     bool
		cancel    error // cancel cause once half is in; nil: another disk fails
		permanent bool  // that disk's failure is permanent
		kept      bool
	}{
		{name: "transient failure, attempts follow", kept: true},
		{name: "transient failure, last attempt", final: true},
		{name: "permanent failure", permanent: true},
		{name: "cancelled: abandoned", cancel: providers.ErrAbandoned},
		{name: "cancelled: shutdown, last attempt", final: true, cancel: errors.New("daemon shutting down"), kept: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var healed atomic.Bool
			var mu sync.Mutex
			var ranges []string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				ranges = append(ranges, r.Header.Get("Range"))
				mu.Unlock()
				w.Header().Set("ETag", etag)
				if healed.Load() {
					http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
					return
				}
				// Half the disk, then a connection that stays silent.
				w.Header().Set("Content-Range", fmt.Sprintf("bytes 0-%d/%d", len(data)-1, len(data)))
				w.Header().Set("Content-Length", strconv.Itoa(len(data)))
				w.WriteHeader(http.StatusPartialContent)
				_, _ = w.Write(data[:half])
				w.(http.Flusher).Flush()
				<-r.Context().Done()
			}))
			defer srv.Close()
			dir := t.TempDir()
			part := filepath.Join(dir, "web01-disk-0.raw.part")
			halfIn := make(chan struct{})
			go func() {
				defer close(halfIn)
				for {
					if st, err := os.Stat(part); err == nil && st.Size() >= half {
						return
					}
					time.Sleep(5 * time.Millisecond)
				}
			}()
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			other := providers.DiskSource{Name: "disk-1", Format: providers.SourceRaw, Capacity: 1 << 20, Size: 1 << 20,
				Open: func(ctx context.Context) (io.ReadCloser, error) {
					<-halfIn
					if tc.cancel != nil {
						cancel(tc.cancel)
						<-ctx.Done()
						return nil, context.Cause(ctx)
					}
					if tc.permanent {
						return nil, providers.Permanent(broken)
					}
					return nil, broken
				}}
			ranged := providers.DiskSource{Name: "disk-0", Format: providers.SourceRaw, Capacity: int64(len(data)), Size: int64(len(data)),
				HTTP: &providers.HTTPSource{URL: srv.URL + "/disk.raw", Ranged: true, Validator: etag}}
			opts := providers.ExportOptions{OutputDir: dir, Format: providers.FormatDisks, DiskFormat: providers.DiskRaw, FinalAttempt: tc.final}
			e := newExporter(ranged, other)
			_, err := pipeline.Export(ctx, e, "vm-1", opts)
			if err == nil || providers.IsPermanent(err) != tc.permanent {
				t.Fatalf("export returned %v, want a failure (permanent: %v)", err, tc.permanent)
			}
			e.wantEnded(t, true)
			var want []string
			if tc.kept {
				want = []string{"web01-disk-0.raw.part", "web01-disk-0.raw.part.version"}
			}
			if got := listDir(t, dir); !slices.Equal(got, want) {
				t.Fatalf("the failed export left %v, want %v", got, want)
			}
			if !tc.kept {
				return
			}

			// The next attempt resumes after the kept bytes.
			healed.Store(true)
			mu.Lock()
			asked := len(ranges)
			mu.Unlock()
			e = newExporter(ranged, readerDisk("disk-1", make([]byte, 1<<20)))
			opts.FinalAttempt = true
			if _, err := pipeline.Export(context.Background(), e, "vm-1", opts); err != nil {
				t.Fatal(err)
			}
			out, err := os.ReadFile(filepath.Join(dir, "web01-disk-0.raw"))
			if err != nil {
				t.Fatal(err)
			}
			if sum(out) != sum(data) {
				t.Error("the resumed disk differs from the source")
			}
			mu.Lock()
			resumed := ranges[asked:]
			mu.Unlock()
			if len(resumed) == 0 || !strings.HasPrefix(resumed[0], fmt.Sprintf("bytes=%d-", half)) {
				t.Errorf("the next attempt asked %v, want a range from byte %d on", resumed, half)
			}
			if got, want := listDir(t, dir), []string{"web01-disk-0.raw", "web01-disk-1.raw", "web01.json", "web01.sha256"}; !slices.Equal(got, want) {
				t.Errorf("after the resumed export the directory holds %v, want %v", got, want)
			}
		})
	}
}
