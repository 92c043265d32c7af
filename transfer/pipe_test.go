package transfer

import (
	"bytes"
	"context"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// noPipeGoroutines fails if any stage of a stream is still running: every
// Download must have joined its pipes before returning.
func noPipeGoroutines(t *testing.T) {
	t.Helper()
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte("transfer.(*pipe)")) || bytes.Contains(g, []byte("transfer.(*writeback)")) {
			t.Errorf("a stream stage outlived Download:\n%s", g)
		}
	}
}

// placements are the two ways a stream runs its blocks through its pipe:
// handed from stage goroutine to stage goroutine, or all in the reading
// goroutine, as when the streams in flight already keep every core busy.
// Tests that care about what a stream leaves behind run under both.
var placements = []struct {
	name   string
	busyAt int // Downloader.busyAt
}{{"staged", math.MaxInt}, {"inline", 1}}

// checkPrefix asserts that a kept part file holds a prefix of data, nothing
// else: what a later run resumes after.
func checkPrefix(t *testing.T, path string, data []byte) int {
	t.Helper()
	part, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(part) == 0 || len(part) > len(data) || !bytes.Equal(part, data[:len(part)]) {
		t.Fatalf("part file: %d bytes that are not a non-empty prefix of the %d-byte source", len(part), len(data))
	}
	return len(part)
}

// A write that fails mid-stream (here the file size limit, as a full disk
// would) stops the stream at once, fails the file without retries, keeps a
// .part whose bytes are exactly a prefix of the source, and leaves no stage
// running (the writeback flusher included, once a stream has gone past its
// first range); a later run resumes from that prefix.
func TestWriteFailureMidStreamFailsCleanly(t *testing.T) {
	for _, tc := range []struct {
		name        string
		size, limit int
	}{
		// Limits that are not a multiple of the buffer size: the failing
		// block is half written.
		{"early", 6*mib + 123, 2*mib + 1000},
		{"after-writeback-started", 2*writebackEvery + 123, writebackEvery + 8*mib + 1000},
	} {
		for _, pl := range placements {
			t.Run(tc.name+"/"+pl.name, func(t *testing.T) { writeFailure(t, tc.size, tc.limit, pl.busyAt) })
		}
	}
}

func writeFailure(t *testing.T, size, limitBytes, busyAt int) {
	data := genData(size, 31)
	var requests atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		serveBytes(w, r, data, `"v1"`)
	}))
	defer ts.Close()
	dest := filepath.Join(t.TempDir(), "f")
	d, _ := testDownloader(t, Options{KeepPartial: true}, newFakeClock())
	d.busyAt = busyAt

	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	limit := syscall.Rlimit{Cur: uint64(limitBytes), Max: old.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &limit); err != nil {
		t.Fatal(err)
	}
	res, err := d.Download(context.Background(), []File{{URL: ts.URL, Path: dest}})
	if rerr := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); rerr != nil {
		t.Fatal(rerr)
	}
	if !errors.Is(err, syscall.EFBIG) || !strings.Contains(err.Error(), "write f.part") {
		t.Fatalf("err %v, want the write failure (EFBIG) naming the part file", err)
	}
	if n := requests.Load(); n != 1 {
		t.Errorf("%d requests: a disk failure is not worth a retry", n)
	}
	if exists(dest) {
		t.Error("failed file has its final name")
	}
	noPipeGoroutines(t)
	kept := checkPrefix(t, dest+".part", data)
	if kept > limitBytes {
		t.Errorf("kept %d bytes, more than the file could hold", kept)
	}
	if res[0].Size != 0 || res[0].SHA256 != "" {
		t.Errorf("result of a failed file: %+v", res[0])
	}

	res, err = d.Download(context.Background(), []File{{URL: ts.URL, Path: dest, SHA256: sha(data)}})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, data)
	if res[0].ReusedBytes != int64(kept) || res[0].BytesTransferred != int64(len(data)-kept) {
		t.Errorf("resume reused %d and transferred %d bytes, want %d and %d",
			res[0].ReusedBytes, res[0].BytesTransferred, kept, len(data)-kept)
	}
}

// The same for ranged chunks: a failed write stops every chunk stream and
// the .part keeps only the contiguous, hashed prefix.
func TestWriteFailureInChunksFailsCleanly(t *testing.T) {
	for _, pl := range placements {
		t.Run(pl.name, func(t *testing.T) { writeFailureInChunks(t, pl.busyAt) })
	}
}

func writeFailureInChunks(t *testing.T, busyAt int) {
	data := genData(8*mib, 32)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		serveBytes(w, r, data, `"v1"`)
	}))
	defer ts.Close()
	dest := filepath.Join(t.TempDir(), "f")
	d, _ := testDownloader(t, Options{KeepPartial: true, ChunkConcurrency: 4, ChunkSize: mib}, newFakeClock())
	d.busyAt = busyAt
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	limit := syscall.Rlimit{Cur: 5*mib + 1000, Max: old.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &limit); err != nil {
		t.Fatal(err)
	}
	_, err := d.Download(context.Background(), []File{{URL: ts.URL, Path: dest}})
	if rerr := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); rerr != nil {
		t.Fatal(rerr)
	}
	if !errors.Is(err, syscall.EFBIG) {
		t.Fatalf("err %v, want the write failure (EFBIG)", err)
	}
	noPipeGoroutines(t)
	if exists(dest) || exists(dest+".chunks") {
		t.Error("failed file left under its final or chunks name")
	}
	if exists(dest + ".part") {
		checkPrefix(t, dest+".part", data)
	}
	if _, err := d.Download(context.Background(), []File{{URL: ts.URL, Path: dest, SHA256: sha(data)}}); err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, data)
}

// Cancelling while blocks are between the network, the disk and the hash
// stops the stream, joins every stage, and keeps a .part that is exactly a
// prefix of the source, from which the next run resumes.
func TestCancelMidStreamKeepsConsistentPart(t *testing.T) {
	for _, pl := range placements {
		t.Run(pl.name, func(t *testing.T) { cancelMidStream(t, pl.busyAt) })
	}
}

func cancelMidStream(t *testing.T, busyAt int) {
	data := genData(16*mib, 33)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Range") == "" {
			// First run: the body stops flowing mid-stream (as NFC does
			// when a host is busy) and the job is cancelled meanwhile.
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
			for off := 0; off < len(data); off += 100 << 10 {
				if _, err := w.Write(data[off:min(off+100<<10, len(data))]); err != nil {
					return
				}
				if off >= 5*mib {
					http.NewResponseController(w).Flush()
					cancel()
					<-r.Context().Done()
					return
				}
			}
			return
		}
		serveBytes(w, r, data, "")
	}))
	defer ts.Close()
	dest := filepath.Join(t.TempDir(), "f")
	d, _ := testDownloader(t, Options{KeepPartial: true}, nil)
	d.busyAt = busyAt
	_, err := d.Download(ctx, []File{{URL: ts.URL, Path: dest}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	noPipeGoroutines(t)
	kept := checkPrefix(t, dest+".part", data)

	res, err := d.Download(context.Background(), []File{{URL: ts.URL, Path: dest, SHA256: sha(data)}})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, data)
	if res[0].ReusedBytes != int64(kept) {
		t.Errorf("resumed after %d bytes, want the %d kept", res[0].ReusedBytes, kept)
	}
}

// A file larger than several writeback ranges and ring sizes arrives whole
// and hashed, whether the body comes in one stream (as from NFC, chunked
// encoding) or in ranged chunks; no stage outlives the download.
func TestPipelineMovesLargeFilesWhole(t *testing.T) {
	size := int64(3*writebackEvery + 12345)
	p := newPattern(size)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/nfc" {
			w.Header().Set("Transfer-Encoding", "chunked")
			http.ServeContent(noRange{w}, &http.Request{Method: r.Method, Header: http.Header{}}, "", time.Time{}, p.reader())
			return
		}
		http.ServeContent(w, r, "", time.Time{}, p.reader())
	}))
	defer ts.Close()
	for _, tc := range []struct {
		name string
		opts Options
		path string
	}{
		{"nfc-stream", Options{}, "/nfc"},
		{"ranged-chunks", Options{ChunkConcurrency: 3, ChunkSize: 8 * mib}, "/ranged"},
	} {
		for _, pl := range placements {
			t.Run(tc.name+"/"+pl.name, func(t *testing.T) {
				d, _ := testDownloader(t, tc.opts, nil)
				d.busyAt = pl.busyAt
				dest := filepath.Join(t.TempDir(), "f")
				res, err := d.Download(context.Background(), []File{{URL: ts.URL + tc.path, Path: dest, SHA256: p.sha()}})
				if err != nil {
					t.Fatal(err)
				}
				if res[0].Size != size || res[0].SHA256 != p.sha() {
					t.Errorf("result %+v", res[0])
				}
				if res[0].Chunked != (tc.opts.ChunkConcurrency > 1) {
					t.Errorf("chunked %v", res[0].Chunked)
				}
				st, err := os.Stat(dest)
				if err != nil || st.Size() != size {
					t.Fatalf("final file: %v %v", st, err)
				}
				noPipeGoroutines(t)
			})
		}
	}
}

// Streams that change their way of working mid-file arrive whole: three
// NFC-like streams of different lengths with busyAt 2 start out handling
// their blocks in their own goroutines, and each that is left alone once
// the shortest has ended goes back to its stage goroutines; a fourth file
// queued behind them (Concurrency 3) starts while the others are busy.
func TestStreamsSwitchingPlacementArriveWhole(t *testing.T) {
	sizes := []int64{5*mib + 1, writebackEvery + 3*mib + 7, 2*writebackEvery + 12345, 9*mib + 64<<10}
	pats := make([]*pattern, len(sizes))
	for i, n := range sizes {
		pats[i] = newPattern(n)
	}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/"))
		if err != nil || i < 0 || i >= len(pats) {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Transfer-Encoding", "chunked")
		http.ServeContent(noRange{w}, &http.Request{Method: r.Method, Header: http.Header{}}, "", time.Time{}, pats[i].reader())
	}))
	defer ts.Close()
	d, _ := testDownloader(t, Options{Concurrency: 3}, nil)
	d.busyAt = 2
	dir := t.TempDir()
	var files []File
	for i, p := range pats {
		files = append(files, File{URL: ts.URL + "/" + strconv.Itoa(i), Path: filepath.Join(dir, strconv.Itoa(i)), SHA256: p.sha()})
	}
	res, err := d.Download(context.Background(), files)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Size != sizes[i] || r.SHA256 != pats[i].sha() {
			t.Errorf("file %d: %d bytes, sha %s; want %d, %s", i, r.Size, r.SHA256, sizes[i], pats[i].sha())
		}
		got, err := os.ReadFile(files[i].Path)
		if err != nil {
			t.Fatal(err)
		}
		if sha(got) != pats[i].sha() {
			t.Errorf("file %d on disk differs from the source", i)
		}
	}
	if n := d.streams.Load(); n != 0 {
		t.Errorf("%d streams still counted in flight", n)
	}
	noPipeGoroutines(t)
}

// noRange hides the Content-Length ServeContent sets, so the body is
// chunked like NFC's.
type noRange struct{ http.ResponseWriter }

func (w noRange) WriteHeader(code int) {
	w.Header().Del("Content-Length")
	w.ResponseWriter.WriteHeader(code)
}
