package pipeline_test

import (
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
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/disk"
	"github.com/hypersdk/hypersdk/disk/formats"
	"github.com/hypersdk/hypersdk/pipeline"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/transfer"
	"github.com/hypersdk/hypersdk/vmdk"
)

// watchNames polls dir until done and returns every file name seen in it.
func watchNames(dir string, done <-chan struct{}) []string {
	seen := map[string]bool{}
	for {
		filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				seen[filepath.Base(path)] = true
			}
			return nil
		})
		select {
		case <-done:
			var names []string
			for n := range seen {
				names = append(names, n)
			}
			slices.Sort(names)
			return names
		case <-time.After(200 * time.Microsecond):
		}
	}
}

// exportToSink exports e into sink with the output root watched, and
// fails the test if any file appeared in the root.
func exportToSink(t *testing.T, e *exporter, sink *memSink, opts providers.ExportOptions) (*providers.ExportResult, error) {
	t.Helper()
	dir := t.TempDir()
	opts.OutputDir, opts.Output = dir, sink
	done := make(chan struct{})
	names := make(chan []string, 1)
	go func() { names <- watchNames(dir, done) }()
	res, err := pipeline.Export(context.Background(), e, "vm-1", opts)
	close(done)
	// An OVA's creation time (<name>.time, a few bytes) is the only
	// state kept there: no source is staged, nothing is assembled.
	if seen := slices.DeleteFunc(<-names, func(n string) bool { return strings.HasSuffix(n, ".ova.time") }); len(seen) != 0 {
		t.Errorf("files appeared in the output root during the export: %v", seen)
	}
	if left := listDir(t, dir); len(left) != 0 {
		t.Errorf("output root left with %v", left)
	}
	return res, err
}

// nfcServer serves a disk as vSphere's NFC does: one chunked stream, no
// length, Range ignored. It counts the GETs.
type nfcServer struct {
	*httptest.Server
	gets atomic.Int32
}

func newNFCServer(t *testing.T, data []byte) *nfcServer {
	s := &nfcServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.gets.Add(1)
		if r.Header.Get("Cookie") != "vmware_soap_session=abc" {
			http.Error(w, "no session", http.StatusForbidden)
			return
		}
		for b := data; len(b) > 0; {
			n := min(len(b), 256<<10)
			w.Write(b[:n])
			w.(http.Flusher).Flush()
			b = b[n:]
		}
	}))
	t.Cleanup(s.Close)
	return s
}

// An object-storage raw source streams into the sink in parallel ranged
// GETs, passed through (raw) or encoded (VMDK), with nothing staged.
func TestRangedRawSourceStreamsIntoTheSink(t *testing.T) {
	data := diskBytes(21, 20<<20+4096)
	srv := newObjectServer(t)
	url := srv.put("/b/disk.raw", data)
	for _, df := range []providers.DiskFormat{providers.DiskRaw, providers.DiskVMDK} {
		t.Run(string(df), func(t *testing.T) {
			before := len(srv.rangesOf("/b/disk.raw"))
			e := newExporter(providers.DiskSource{Name: "disk-0", Format: providers.SourceRaw, Capacity: int64(len(data)), Size: int64(len(data)),
				HTTP: &providers.HTTPSource{URL: url, Ranged: true, Validator: etagOf(data)}})
			sink := newMemSink()
			res, err := exportToSink(t, e, sink, providers.ExportOptions{Format: providers.FormatDisks, DiskFormat: df})
			if err != nil {
				t.Fatal(err)
			}
			e.wantEnded(t, false)
			obj := sink.objects["web01-disk-0."+string(df)]
			got := obj
			if df == providers.DiskVMDK {
				got = decodeVMDK(t, obj)
			}
			if !bytes.Equal(got, data) {
				t.Errorf("%s object differs from the source", df)
			}
			if res.Files[0].SHA256 != sum(obj) {
				t.Errorf("result SHA-256 %s, the object's %s", res.Files[0].SHA256, sum(obj))
			}
			if ranges := srv.rangesOf("/b/disk.raw")[before:]; len(ranges) < 3 {
				t.Errorf("ranges asked %v: want parallel ranged GETs", ranges)
			}
		})
	}
}

func decodeVMDK(t *testing.T, b []byte) []byte {
	t.Helper()
	s, err := vmdk.NewStreamReader(bytes.NewReader(b), "disk")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(s.Raw())
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// An NFC stream (no length, no ranges) is read in one GET with the
// source's header and passed through, decoded or re-encoded as it
// arrives; its digest is checked at its end.
func TestNFCStreamIntoTheSink(t *testing.T) {
	data := diskBytes(22, 6<<20)
	vm := streamVMDK(t, data)
	srv := newNFCServer(t, vm)
	for _, df := range []providers.DiskFormat{providers.DiskVMDK, providers.DiskRaw, providers.DiskQCOW2} {
		t.Run(string(df), func(t *testing.T) {
			srv.gets.Store(0)
			e := newExporter(providers.DiskSource{Name: "disk-0", Format: providers.SourceVMDKStream, Capacity: int64(len(data)), Size: -1,
				HTTP: &providers.HTTPSource{URL: srv.URL + "/nfc/disk-0.vmdk", Header: http.Header{"Cookie": {"vmware_soap_session=abc"}},
					Digests: []providers.Digest{md5Digest(vm)}}})
			sink := newMemSink()
			if _, err := exportToSink(t, e, sink, providers.ExportOptions{Format: providers.FormatDisks, DiskFormat: df}); err != nil {
				t.Fatal(err)
			}
			obj := sink.objects["web01-disk-0."+string(df)]
			var got []byte
			switch df {
			case providers.DiskVMDK:
				if !bytes.Equal(obj, vm) {
					t.Error("the VMDK was not passed through byte for byte")
				}
				got = decodeVMDK(t, obj)
			case providers.DiskRaw:
				got = obj
			case providers.DiskQCOW2:
				got = decodeImage(t, obj)
			}
			if !bytes.Equal(got, data) {
				t.Errorf("%s object holds other disk bytes than the source", df)
			}
			if n := srv.gets.Load(); n != 1 {
				t.Errorf("%d GETs, want one", n)
			}
		})
	}
}

func md5Digest(b []byte) providers.Digest {
	s := md5.Sum(b)
	return providers.Digest{Name: "md5", New: md5.New, Sum: s[:]}
}

func decodeImage(t *testing.T, b []byte) []byte {
	t.Helper()
	df := &disk.File{Name: "img", R: bytes.NewReader(b), Size: int64(len(b))}
	spec, err := formats.Detect(df)
	if err != nil {
		t.Fatal(err)
	}
	img, err := spec.Open(df)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	out := make([]byte, img.Info().VirtualSize)
	if _, err := img.ReadAt(out, 0); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	return out
}

// The VMDK inside an OVA in object storage streams from its range of the
// archive into the sink, checked against the archive's MD5.
func TestArchiveMemberStreamsIntoTheSink(t *testing.T) {
	data := diskBytes(23, 24<<20)
	vm := streamVMDK(t, data)
	archive, off := ova(t, vm)
	srv := newObjectServer(t)
	url := srv.put("/b/export.ova", archive)
	for _, df := range []providers.DiskFormat{providers.DiskVMDK, providers.DiskRaw} {
		t.Run(string(df), func(t *testing.T) {
			before := len(srv.rangesOf("/b/export.ova"))
			e := newExporter(providers.DiskSource{Name: "disk-0", Format: providers.SourceVMDKStream, Capacity: int64(len(data)), Size: int64(len(vm)),
				HTTP: &providers.HTTPSource{URL: url, Offset: off, Ranged: true, Validator: etagOf(archive),
					Digests: []providers.Digest{wholeMD5(t, archive, off, int64(len(vm)))}}})
			sink := newMemSink()
			if _, err := exportToSink(t, e, sink, providers.ExportOptions{Format: providers.FormatDisks, DiskFormat: df}); err != nil {
				t.Fatal(err)
			}
			obj := sink.objects["web01-disk-0."+string(df)]
			want := data
			if df == providers.DiskVMDK {
				want = vm
			}
			if !bytes.Equal(obj, want) {
				t.Errorf("%s object differs from the source", df)
			}
			ranges := srv.rangesOf("/b/export.ova")[before:]
			for _, r := range ranges {
				var a, b int64
				if _, err := fmt.Sscanf(r, "bytes=%d-%d", &a, &b); err != nil || a < off || b >= off+int64(len(vm)) {
					t.Errorf("Range %q is not within the member [%d, %d)", r, off, off+int64(len(vm)))
				}
			}
			if len(ranges) < 2 {
				t.Errorf("ranges asked %v: want parallel ranged GETs", ranges)
			}
		})
	}
}

// A digest mismatch fails the export and leaves no object, whether the
// output is passed through, decoded or re-encoded, and into a disk object
// or an OVA's.
func TestStreamedDigestMismatchLeavesNoObject(t *testing.T) {
	data := diskBytes(24, 2<<20)
	vm := streamVMDK(t, data)
	archive, off := ova(t, vm)
	obj := newObjectServer(t)
	url := obj.put("/b/o.ova", archive)
	nfc := newNFCServer(t, vm)
	bad := func(d providers.Digest) []providers.Digest {
		d.Sum = slices.Clone(d.Sum)
		d.Sum[0] ^= 1
		return []providers.Digest{d}
	}
	sources := map[string]*providers.HTTPSource{
		"member": {URL: url, Offset: off, Ranged: true, Validator: etagOf(archive), Digests: bad(wholeMD5(t, archive, off, int64(len(vm))))},
		"nfc":    {URL: nfc.URL + "/disk", Header: http.Header{"Cookie": {"vmware_soap_session=abc"}}, Digests: bad(md5Digest(vm))},
	}
	for name, h := range sources {
		for _, out := range []struct {
			f  providers.Format
			df providers.DiskFormat
		}{{providers.FormatDisks, providers.DiskVMDK}, {providers.FormatDisks, providers.DiskRaw}, {providers.FormatDisks, providers.DiskQCOW2}, {providers.FormatOVA, providers.DiskVMDK}} {
			t.Run(fmt.Sprintf("%s/%s-%s", name, out.f, out.df), func(t *testing.T) {
				size := int64(len(vm))
				if name == "nfc" {
					size = -1
				}
				e := newExporter(providers.DiskSource{Name: "disk-0", Format: providers.SourceVMDKStream, Capacity: int64(len(data)), Size: size, HTTP: h})
				sink := newMemSink()
				_, err := exportToSink(t, e, sink, providers.ExportOptions{Format: out.f, DiskFormat: out.df, FinalAttempt: true})
				if !errors.Is(err, transfer.ErrDigestMismatch) {
					t.Fatalf("err = %v, want a digest mismatch", err)
				}
				if strings.Contains(err.Error(), "topsecret") {
					t.Errorf("the pre-signed URL's signature is in the error: %v", err)
				}
				e.wantEnded(t, true)
				if len(sink.committed) != 0 || len(sink.objects) != 0 {
					t.Errorf("committed %v, objects left %d", sink.committed, len(sink.objects))
				}
			})
		}
	}
}

// Several streamed sources share one bandwidth limit and still arrive
// whole.
func TestStreamedSourcesUnderABandwidthLimit(t *testing.T) {
	a, b := diskBytes(25, 1<<20), diskBytes(26, 1<<20)
	srv := newObjectServer(t)
	e := newExporter(
		providers.DiskSource{Name: "disk-0", Format: providers.SourceRaw, Capacity: int64(len(a)), Size: int64(len(a)),
			HTTP: &providers.HTTPSource{URL: srv.put("/b/a", a), Ranged: true, Validator: etagOf(a)}},
		providers.DiskSource{Name: "disk-1", Format: providers.SourceRaw, Capacity: int64(len(b)), Size: int64(len(b)),
			HTTP: &providers.HTTPSource{URL: srv.put("/b/b", b), Ranged: true, Validator: etagOf(b)}})
	sink := newMemSink()
	if _, err := exportToSink(t, e, sink, providers.ExportOptions{Format: providers.FormatDisks, DiskFormat: providers.DiskRaw,
		ParallelDownloads: 2, BandwidthLimit: 64 << 20}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sink.objects["web01-disk-0.raw"], a) || !bytes.Equal(sink.objects["web01-disk-1.raw"], b) {
		t.Error("objects differ from their sources")
	}
}
