package azblobfake

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The account every Server serves: Azurite's (and the storage emulator's)
// well-known development account, so one set of credentials works against
// both and no real secret is ever needed in tests or the demo.
const (
	AccountName = "devstoreaccount1"
	AccountKey  = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// Limits of the Blob service that the server enforces.
const (
	// PageSize is the page blob page: sizes and Put Page ranges are multiples of it.
	PageSize = 512
	// MaxPageBlobSize is the largest page blob (8 TiB).
	MaxPageBlobSize = 8 << 40
	// MaxPutPageBytes is the most one Put Page (update) may write.
	MaxPutPageBytes = 4 << 20
	// MaxRangeMD5Bytes is the largest range Get Blob returns a Content-MD5
	// for when asked with x-ms-range-get-content-md5.
	MaxRangeMD5Bytes = 4 << 20
	// MaxBlockBlobBytes is this server's own limit on a block blob's single
	// Put Blob body (Azure allows 5000 MiB): block blobs are kept in memory
	// and are here for small objects only.
	MaxBlockBlobBytes = 64 << 20
	// DefaultVersion is the x-ms-version answered to requests that state
	// none (it is what azblob v1.8 sends).
	DefaultVersion = "2026-12-06"
	// maxRangesPerPage bounds one Get Page Ranges answer; more ranges are
	// paged with NextMarker.
	maxRangesPerPage = 10000
)

// AuthKind is how a request was authorized.
type AuthKind string

// Authorization schemes.
const (
	AuthSharedKey AuthKind = "SharedKey"
	AuthSAS       AuthKind = "SAS"
	AuthAnonymous AuthKind = "Anonymous"
)

// Operation names, as Request.Op and Stats.Ops report them (the names of the
// REST reference).
const (
	OpCreateContainer        = "CreateContainer"
	OpDeleteContainer        = "DeleteContainer"
	OpGetContainerProperties = "GetContainerProperties"
	OpListContainers         = "ListContainers"
	OpListBlobs              = "ListBlobs"
	OpPutBlob                = "PutBlob"
	OpPutPage                = "PutPage"
	OpGetPageRanges          = "GetPageRanges"
	OpGetBlob                = "GetBlob"
	OpGetBlobProperties      = "GetBlobProperties"
	OpDeleteBlob             = "DeleteBlob"
)

// Request describes an authorized request about to be served, for
// Options.Inspect and Options.Fault. It carries no credential.
type Request struct {
	Op        string
	Method    string
	Container string
	Blob      string
	Auth      AuthKind
	// HasRange tells whether the request named a byte range (Range or
	// x-ms-range); RangeEnd is -1 for an open range ("bytes=N-").
	HasRange   bool
	RangeStart int64
	RangeEnd   int64
	// SASExpiry is the signed expiry of the SAS that authorized it.
	SASExpiry  time.Time
	RemoteAddr string
}

// Fault is what Options.Fault asks the server to do instead of (or while)
// serving a request. The zero Fault serves it normally.
type Fault struct {
	// Status answers the request with this error status and no effect:
	// 503 is ServerBusy, 500 InternalError, others need Code.
	Status int
	Code   string
	// CutAfter, for a Get Blob, sends the headers and this many bytes of
	// the body and then drops the connection, as a network break would.
	CutAfter int64
}

// Options configure a Server. The zero value serves faithfully with no
// faults.
type Options struct {
	// FailRate is the share of requests (0 to 1) answered with a transient
	// error instead of being served, 503 ServerBusy and 500 InternalError
	// alternately, the way Azure throttles; Seed makes the choice
	// repeatable.
	FailRate float64
	Seed     uint64
	// Latency is waited before serving each request.
	Latency time.Duration
	// StreamRate, when positive, paces every Get Blob body to at most this
	// many bytes per second. One connection to Azure Storage moves far less
	// than the account allows, which is why parallel ranged downloads pay;
	// on loopback nothing else shows it.
	StreamRate int64
	// Now is the service's clock for SAS validity and timestamps; nil is
	// time.Now. The Shared Key date check always uses the real clock,
	// since clients sign with it.
	Now func() time.Time
	// ExpireSASAfter, when positive, honours each distinct SAS for that
	// many requests and then refuses it as expired (403
	// AuthenticationFailed), whatever its se says: a SAS running out
	// mid-download without any wall-clock dependence.
	ExpireSASAfter int
	// Inspect is called for every authorized request before it is served.
	Inspect func(Request)
	// Fault is called for every authorized request; a non-zero answer is
	// injected (see Fault).
	Fault func(Request) Fault
}

// Server is an in-process Blob service endpoint. See the package doc.
type Server struct {
	opts Options
	ts   *httptest.Server
	key  []byte

	mu         sync.Mutex
	containers map[string]*container
	sas        map[string]*sasState // by signature
	rng        *mrand.Rand
	etagSeq    uint64
	stats      Stats

	inflightGets atomic.Int64
}

type container struct {
	name     string
	created  time.Time
	modified time.Time
	etag     string
	blobs    map[string]*blob
}

type blobType string

const (
	pageBlob  blobType = "PageBlob"
	blockBlob blobType = "BlockBlob"
)

type blob struct {
	name        string
	kind        blobType
	size        int64
	data        content
	created     time.Time
	modified    time.Time
	etag        string
	seq         int64
	contentType string
	contentMD5  []byte // as set by x-ms-blob-content-md5 / computed for block blobs
	metadata    map[string]string
}

type sasState struct {
	container, blob string
	uses            int
	expired         bool
}

// New starts a Server on a loopback port. Close it when done.
func New(opts Options) *Server {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	key, err := base64.StdEncoding.DecodeString(AccountKey)
	if err != nil {
		panic(err) // a constant
	}
	s := &Server{
		opts:       opts,
		key:        key,
		containers: map[string]*container{},
		sas:        map[string]*sasState{},
		rng:        mrand.New(mrand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15)),
		etagSeq:    uint64(time.Now().UnixNano()),
	}
	s.stats.Ops = map[string]int64{}
	s.stats.Errors = map[string]int64{}
	s.ts = httptest.NewServer(s)
	return s
}

// URL is the account's blob endpoint, path-style as Azurite serves it:
// http://127.0.0.1:PORT/devstoreaccount1. Containers are URL/container,
// blobs URL/container/blob.
func (s *Server) URL() string { return s.ts.URL + "/" + AccountName }

// Close stops the server and drops its connections.
func (s *Server) Close() {
	s.ts.CloseClientConnections()
	s.ts.Close()
}

// reqCtx is what one request carries through the handlers.
type reqCtx struct {
	requestID string
	start     time.Time // by the service clock
	version   string
	op        string
	container string
	blob      string
	auth      AuthKind
	sas       *sasParams
	cutAfter  int64
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// ServeHTTP implements the Blob REST subset; see the package doc.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc := &reqCtx{requestID: newRequestID(), start: s.opts.Now()}
	h := w.Header()
	h.Set("x-ms-request-id", rc.requestID)
	h.Set("Server", "Windows-Azure-Blob/1.0 Microsoft-HTTPAPI/2.0")
	h.Set("Date", rc.start.UTC().Format(http.TimeFormat))
	if id := r.Header.Get("x-ms-client-request-id"); id != "" {
		h.Set("x-ms-client-request-id", id)
	}
	s.count(func(st *Stats) { st.Requests++ })

	if e := s.route(r, rc); e != nil {
		s.fail(w, r, rc, e)
		return
	}
	if e := s.authorize(r, rc); e != nil {
		s.fail(w, r, rc, e)
		return
	}
	if rc.version == "" {
		rc.version = DefaultVersion
	}
	h.Set("x-ms-version", rc.version)
	s.count(func(st *Stats) { st.Ops[rc.op]++ })

	req := Request{Op: rc.op, Method: r.Method, Container: rc.container, Blob: rc.blob, Auth: rc.auth, RemoteAddr: r.RemoteAddr, RangeEnd: -1}
	if rc.sas != nil {
		req.SASExpiry = rc.sas.expiry
	}
	if rg, ok, err := requestRange(r); err == nil && ok {
		req.HasRange, req.RangeStart, req.RangeEnd = true, rg.start, rg.end
	}
	if s.opts.Inspect != nil {
		s.opts.Inspect(req)
	}
	if e := s.injectFault(req, rc); e != nil {
		s.count(func(st *Stats) { st.Faults++ })
		s.fail(w, r, rc, e)
		return
	}
	if s.opts.Latency > 0 {
		t := time.NewTimer(s.opts.Latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}

	var e *storageError
	switch rc.op {
	case OpCreateContainer:
		e = s.createContainer(w, r, rc)
	case OpDeleteContainer:
		e = s.deleteContainer(w, r, rc)
	case OpGetContainerProperties:
		e = s.getContainerProperties(w, r, rc)
	case OpListContainers:
		e = s.listContainers(w, r, rc)
	case OpListBlobs:
		e = s.listBlobs(w, r, rc)
	case OpPutBlob:
		e = s.putBlob(w, r, rc)
	case OpPutPage:
		e = s.putPage(w, r, rc)
	case OpGetPageRanges:
		e = s.getPageRanges(w, r, rc)
	case OpGetBlob, OpGetBlobProperties:
		e = s.getBlob(w, r, rc)
	case OpDeleteBlob:
		e = s.deleteBlob(w, r, rc)
	}
	if e != nil {
		s.fail(w, r, rc, e)
	}
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, rc *reqCtx, e *storageError) {
	s.count(func(st *Stats) {
		st.Errors[e.code]++
		if e.status == http.StatusUnauthorized || e.status == http.StatusForbidden {
			st.AuthFailures++
		}
	})
	if rc.version != "" {
		w.Header().Set("x-ms-version", rc.version)
	}
	s.writeError(w, r, rc, e)
}

func (s *Server) injectFault(req Request, rc *reqCtx) *storageError {
	var f Fault
	if s.opts.Fault != nil {
		f = s.opts.Fault(req)
	}
	if f.Status == 0 && s.opts.FailRate > 0 {
		s.mu.Lock()
		if s.rng.Float64() < s.opts.FailRate {
			f.Status = http.StatusServiceUnavailable
			if s.stats.Faults%2 == 1 {
				f.Status = http.StatusInternalServerError
			}
		}
		s.mu.Unlock()
	}
	rc.cutAfter = f.CutAfter
	switch {
	case f.Status == 0:
		return nil
	case f.Code != "":
		return newErr(f.Status, f.Code, "Injected fault.")
	case f.Status == http.StatusServiceUnavailable:
		return errServerBusy()
	case f.Status == http.StatusInternalServerError:
		return errInternal()
	default:
		return newErr(f.Status, http.StatusText(f.Status), "Injected fault.")
	}
}

// route finds the operation from the method, the path and the query.
func (s *Server) route(r *http.Request, rc *reqCtx) *storageError {
	if v := r.Header.Get("x-ms-version"); v != "" {
		if !validVersion(v) {
			return errInvalidHeader("x-ms-version", v)
		}
		rc.version = v
	}
	p := strings.TrimPrefix(r.URL.Path, "/")
	account, rest, _ := strings.Cut(p, "/")
	if account != AccountName {
		return errResourceNotFound()
	}
	rc.container, rc.blob, _ = strings.Cut(rest, "/")
	q := r.URL.Query()
	comp, restype := q.Get("comp"), q.Get("restype")
	if rc.container != "" && !validContainerName(rc.container) {
		return errInvalidResourceName()
	}
	if rc.blob != "" && (len(rc.blob) > 1024 || strings.ContainsRune(rc.blob, 0)) {
		return errInvalidResourceName()
	}
	if q.Has("snapshot") || q.Has("versionid") {
		// No snapshots or versions exist here; a malformed one is refused
		// as Azure does, a well-formed one names a blob that is not there.
		for _, k := range []string{"snapshot", "versionid"} {
			if v := q.Get(k); q.Has(k) {
				if _, err := time.Parse(time.RFC3339Nano, v); err != nil {
					return errInvalidQuery(k, v, "")
				}
			}
		}
		if rc.blob == "" {
			return errInvalidQuery("snapshot", q.Get("snapshot"), "")
		}
		return errBlobNotFound()
	}
	m := r.Method
	switch {
	case rc.container == "":
		if comp == "list" && m == http.MethodGet {
			rc.op = OpListContainers
			return nil
		}
	case rc.blob == "":
		if restype != "container" {
			return errInvalidQuery("restype", restype, "")
		}
		switch {
		case comp == "" && m == http.MethodPut:
			rc.op = OpCreateContainer
		case comp == "" && m == http.MethodDelete:
			rc.op = OpDeleteContainer
		case comp == "" && (m == http.MethodGet || m == http.MethodHead):
			rc.op = OpGetContainerProperties
		case comp == "list" && m == http.MethodGet:
			rc.op = OpListBlobs
		case comp != "" && comp != "list":
			return errInvalidQuery("comp", comp, "")
		default:
			return errUnsupportedVerb()
		}
		return nil
	default:
		switch {
		case comp == "" && m == http.MethodPut:
			rc.op = OpPutBlob
		case comp == "page" && m == http.MethodPut:
			rc.op = OpPutPage
		case comp == "pagelist" && m == http.MethodGet:
			if q.Has("prevsnapshot") || q.Has("prevsnapshoturl") {
				return errInvalidQuery("prevsnapshot", q.Get("prevsnapshot"), "page range diffs are not supported")
			}
			rc.op = OpGetPageRanges
		case comp == "" && m == http.MethodGet:
			rc.op = OpGetBlob
		case comp == "" && m == http.MethodHead:
			rc.op = OpGetBlobProperties
		case comp == "" && m == http.MethodDelete:
			rc.op = OpDeleteBlob
		case comp != "" && comp != "page" && comp != "pagelist":
			return errInvalidQuery("comp", comp, "")
		default:
			return errUnsupportedVerb()
		}
		return nil
	}
	if comp != "" && comp != "list" {
		return errInvalidQuery("comp", comp, "")
	}
	return errUnsupportedVerb()
}

// validVersion accepts a well-formed service version from the first one
// Shared Key as implemented here applies to.
func validVersion(v string) bool {
	t, err := time.Parse("2006-01-02", v)
	return err == nil && t.Format("2006-01-02") == v && v >= "2009-09-19"
}

// validContainerName: 3 to 63 lowercase letters, digits and single hyphens,
// starting and ending with a letter or digit.
func validContainerName(n string) bool {
	if len(n) < 3 || len(n) > 63 {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i > 0 && i < len(n)-1 && n[i-1] != '-':
		default:
			return false
		}
	}
	return true
}

func (s *Server) newETag() string {
	s.etagSeq++
	return fmt.Sprintf("\"0x%X\"", s.etagSeq)
}

// count updates the statistics under the lock.
func (s *Server) count(f func(*Stats)) {
	s.mu.Lock()
	f(&s.stats)
	s.mu.Unlock()
}
