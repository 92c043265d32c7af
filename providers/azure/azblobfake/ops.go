package azblobfake

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/xml"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// byteRange is an inclusive range; end -1 is open ("bytes=N-").
type byteRange struct{ start, end int64 }

// requestRange reads x-ms-range, or Range when x-ms-range is absent, as the
// service does. Only the single "bytes=N-M" and "bytes=N-" forms are valid.
func requestRange(r *http.Request) (byteRange, bool, *storageError) {
	name, v := "x-ms-range", r.Header.Get("x-ms-range")
	if v == "" {
		name, v = "Range", r.Header.Get("Range")
	}
	if v == "" {
		return byteRange{}, false, nil
	}
	bad := func() (byteRange, bool, *storageError) { return byteRange{}, false, errInvalidHeader(name, v) }
	spec, ok := strings.CutPrefix(v, "bytes=")
	if !ok {
		return bad()
	}
	a, b, ok := strings.Cut(spec, "-")
	if !ok || a == "" {
		return bad()
	}
	start, err := strconv.ParseInt(a, 10, 64)
	if err != nil || start < 0 {
		return bad()
	}
	end := int64(-1)
	if b != "" {
		if end, err = strconv.ParseInt(b, 10, 64); err != nil || end < start {
			return bad()
		}
	}
	return byteRange{start, end}, true, nil
}

// endWithin is the exclusive end of rg within a resource of size bytes.
func (rg byteRange) endWithin(size int64) int64 {
	if rg.end < 0 || rg.end >= size-1 {
		return size
	}
	return rg.end + 1
}

func httpTime(t time.Time) string { return t.UTC().Format(http.TimeFormat) }

// lookup finds the container and, when name is not empty, the blob. Call
// with s.mu held.
func (s *Server) lookup(cname, bname string) (*container, *blob, *storageError) {
	c := s.containers[cname]
	if c == nil {
		return nil, nil, errContainerNotFound()
	}
	if bname == "" {
		return c, nil, nil
	}
	b := c.blobs[bname]
	if b == nil {
		return c, nil, errBlobNotFound()
	}
	return c, b, nil
}

// etagMatches implements If-Match / If-None-Match lists ("*" or ETags).
func etagMatches(list, etag string) bool {
	for _, t := range strings.Split(list, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}

// conditions applies the conditional headers to a resource with the given
// ETag and modification time (exists=false: the resource is not there). A
// read answers 304 where a write answers 412.
func conditions(r *http.Request, exists bool, etag string, modified time.Time, read bool) (notModified bool, e *storageError) {
	h := r.Header
	if v := h.Get("If-Match"); v != "" && (!exists || !etagMatches(v, etag)) {
		return false, errConditionNotMet()
	}
	if v := h.Get("If-Unmodified-Since"); v != "" && exists {
		if t, err := http.ParseTime(v); err == nil && modified.Truncate(time.Second).After(t) {
			return false, errConditionNotMet()
		}
	}
	if v := h.Get("If-None-Match"); v != "" && exists && etagMatches(v, etag) {
		if read {
			return true, nil
		}
		return false, errConditionNotMet()
	}
	if v := h.Get("If-Modified-Since"); v != "" && exists {
		if t, err := http.ParseTime(v); err == nil && !modified.Truncate(time.Second).After(t) {
			if read {
				return true, nil
			}
			return false, errConditionNotMet()
		}
	}
	return false, nil
}

func metadataFrom(h http.Header) map[string]string {
	m := map[string]string{}
	for k, v := range h {
		if n, ok := strings.CutPrefix(strings.ToLower(k), "x-ms-meta-"); ok && n != "" && len(v) > 0 {
			m[n] = v[0]
		}
	}
	return m
}

func setMetadata(h http.Header, m map[string]string) {
	for k, v := range m {
		h["x-ms-meta-"+k] = []string{v}
	}
}

func (s *Server) createContainer(w http.ResponseWriter, r *http.Request, rc *reqCtx) *storageError {
	if r.Header.Get("x-ms-blob-public-access") != "" {
		// Accounts refuse public access by default (AllowBlobPublicAccess
		// false), and this one has no other setting.
		return newErr(409, "PublicAccessNotPermitted", "Public access is not permitted on this storage account.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.containers[rc.container] != nil {
		return errContainerExists()
	}
	c := &container{name: rc.container, created: rc.start, modified: rc.start, etag: s.newETag(), blobs: map[string]*blob{}}
	s.containers[rc.container] = c
	h := w.Header()
	h.Set("ETag", c.etag)
	h.Set("Last-Modified", httpTime(c.modified))
	w.WriteHeader(http.StatusCreated)
	return nil
}

func (s *Server) deleteContainer(w http.ResponseWriter, r *http.Request, rc *reqCtx) *storageError {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, _, e := s.lookup(rc.container, "")
	if e != nil {
		return e
	}
	if _, e := conditions(r, true, c.etag, c.modified, false); e != nil {
		return e
	}
	delete(s.containers, rc.container)
	w.WriteHeader(http.StatusAccepted)
	return nil
}

func (s *Server) getContainerProperties(w http.ResponseWriter, r *http.Request, rc *reqCtx) *storageError {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, _, e := s.lookup(rc.container, "")
	if e != nil {
		return e
	}
	h := w.Header()
	h.Set("ETag", c.etag)
	h.Set("Last-Modified", httpTime(c.modified))
	h.Set("x-ms-lease-state", "available")
	h.Set("x-ms-lease-status", "unlocked")
	h.Set("x-ms-has-immutability-policy", "false")
	h.Set("x-ms-has-legal-hold", "false")
	h.Set("x-ms-default-encryption-scope", "$account-encryption-key")
	h.Set("x-ms-deny-encryption-scope-override", "false")
	w.WriteHeader(http.StatusOK)
	return nil
}

// listParams reads prefix, marker and maxresults (1 to 5000) of a listing.
func listParams(r *http.Request) (prefix, marker string, max int, e *storageError) {
	q := r.URL.Query()
	prefix, marker, max = q.Get("prefix"), q.Get("marker"), 5000
	if v := q.Get("maxresults"); q.Has("maxresults") {
		n, err := strconv.Atoi(v)
		if err != nil {
			return "", "", 0, errInvalidQuery("maxresults", v, "")
		}
		if n < 1 {
			return "", "", 0, errOutOfRangeQuery("maxresults", v)
		}
		max = min(n, 5000)
	}
	return prefix, marker, max, nil
}

func (s *Server) writeXML(w http.ResponseWriter, v any) {
	body, err := xml.Marshal(v)
	if err != nil {
		panic(err) // our own types
	}
	out := append([]byte(xmlProlog), body...)
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

func (s *Server) listContainers(w http.ResponseWriter, r *http.Request, rc *reqCtx) *storageError {
	prefix, marker, max, e := listParams(r)
	if e != nil {
		return e
	}
	type props struct {
		LastModified string `xml:"Last-Modified"`
		Etag         string `xml:"Etag"`
		LeaseStatus  string `xml:"LeaseStatus"`
		LeaseState   string `xml:"LeaseState"`
	}
	type item struct {
		Name       string `xml:"Name"`
		Properties props  `xml:"Properties"`
	}
	out := struct {
		XMLName         xml.Name `xml:"EnumerationResults"`
		ServiceEndpoint string   `xml:"ServiceEndpoint,attr"`
		Prefix          string   `xml:"Prefix,omitempty"`
		Marker          string   `xml:"Marker,omitempty"`
		MaxResults      int      `xml:"MaxResults,omitempty"`
		Containers      []item   `xml:"Containers>Container"`
		NextMarker      string   `xml:"NextMarker"`
	}{ServiceEndpoint: s.URL() + "/", Prefix: prefix, Marker: marker}
	if r.URL.Query().Has("maxresults") {
		out.MaxResults = max
	}
	s.mu.Lock()
	names := make([]string, 0, len(s.containers))
	for n := range s.containers {
		if strings.HasPrefix(n, prefix) && n >= marker {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for i, n := range names {
		if i == max {
			out.NextMarker = n
			break
		}
		c := s.containers[n]
		out.Containers = append(out.Containers, item{Name: n, Properties: props{httpTime(c.modified), c.etag, "unlocked", "available"}})
	}
	s.mu.Unlock()
	s.writeXML(w, out)
	return nil
}

func (s *Server) listBlobs(w http.ResponseWriter, r *http.Request, rc *reqCtx) *storageError {
	prefix, marker, max, e := listParams(r)
	if e != nil {
		return e
	}
	delim := r.URL.Query().Get("delimiter")
	type props struct {
		CreationTime  string `xml:"Creation-Time"`
		LastModified  string `xml:"Last-Modified"`
		Etag          string `xml:"Etag"`
		ContentLength int64  `xml:"Content-Length"`
		ContentType   string `xml:"Content-Type"`
		ContentMD5    string `xml:"Content-MD5"`
		SeqNum        *int64 `xml:"x-ms-blob-sequence-number,omitempty"`
		BlobType      string `xml:"BlobType"`
		LeaseStatus   string `xml:"LeaseStatus"`
		LeaseState    string `xml:"LeaseState"`
		Encrypted     bool   `xml:"ServerEncrypted"`
	}
	type item struct {
		Name       string `xml:"Name"`
		Properties props  `xml:"Properties"`
	}
	type prefixItem struct {
		Name string `xml:"Name"`
	}
	type blobs struct {
		Prefixes []prefixItem `xml:"BlobPrefix"`
		Blobs    []item       `xml:"Blob"`
	}
	out := struct {
		XMLName         xml.Name `xml:"EnumerationResults"`
		ServiceEndpoint string   `xml:"ServiceEndpoint,attr"`
		ContainerName   string   `xml:"ContainerName,attr"`
		Prefix          string   `xml:"Prefix,omitempty"`
		Marker          string   `xml:"Marker,omitempty"`
		MaxResults      int      `xml:"MaxResults,omitempty"`
		Delimiter       string   `xml:"Delimiter,omitempty"`
		Blobs           blobs    `xml:"Blobs"`
		NextMarker      string   `xml:"NextMarker"`
	}{ServiceEndpoint: s.URL() + "/", ContainerName: rc.container, Prefix: prefix, Marker: marker, Delimiter: delim}
	if r.URL.Query().Has("maxresults") {
		out.MaxResults = max
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, _, e := s.lookup(rc.container, "")
	if e != nil {
		return e
	}
	names := make([]string, 0, len(c.blobs))
	for n := range c.blobs {
		if strings.HasPrefix(n, prefix) && n >= marker {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	emitted, lastPrefix := 0, ""
	for _, n := range names {
		if delim != "" {
			if k := strings.Index(n[len(prefix):], delim); k >= 0 {
				p := n[:len(prefix)+k+len(delim)]
				if p == lastPrefix {
					continue
				}
				if emitted == max {
					out.NextMarker = n
					break
				}
				lastPrefix = p
				out.Blobs.Prefixes = append(out.Blobs.Prefixes, prefixItem{p})
				emitted++
				continue
			}
		}
		if emitted == max {
			out.NextMarker = n
			break
		}
		b := c.blobs[n]
		p := props{CreationTime: httpTime(b.created), LastModified: httpTime(b.modified), Etag: b.etag, ContentLength: b.size,
			ContentType: b.contentType, BlobType: string(b.kind), LeaseStatus: "unlocked", LeaseState: "available", Encrypted: true}
		if b.contentMD5 != nil {
			p.ContentMD5 = base64.StdEncoding.EncodeToString(b.contentMD5)
		}
		if b.kind == pageBlob {
			seq := b.seq
			p.SeqNum = &seq
		}
		out.Blobs.Blobs = append(out.Blobs.Blobs, item{Name: n, Properties: p})
		emitted++
	}
	s.writeXML(w, out)
	return nil
}

func (s *Server) putBlob(w http.ResponseWriter, r *http.Request, rc *reqCtx) *storageError {
	h := r.Header
	kind := h.Get("x-ms-blob-type")
	nb := &blob{name: rc.blob, created: rc.start, modified: rc.start, contentType: h.Get("x-ms-blob-content-type"), metadata: metadataFrom(h)}
	if nb.contentType == "" {
		nb.contentType = "application/octet-stream"
	}
	if v := h.Get("x-ms-blob-content-md5"); v != "" {
		sum, err := base64.StdEncoding.DecodeString(v)
		if err != nil || len(sum) != md5.Size {
			return errInvalidHeader("x-ms-blob-content-md5", v)
		}
		nb.contentMD5 = sum
	}
	switch kind {
	case "":
		return errMissingHeader("x-ms-blob-type")
	case string(pageBlob):
		nb.kind = pageBlob
		if r.ContentLength > 0 {
			return errInvalidHeader("Content-Length", strconv.FormatInt(r.ContentLength, 10))
		}
		v := h.Get("x-ms-blob-content-length")
		if v == "" {
			return errMissingHeader("x-ms-blob-content-length")
		}
		size, err := strconv.ParseInt(v, 10, 64)
		if err != nil || size < 0 || size%PageSize != 0 || size > MaxPageBlobSize {
			return errInvalidHeader("x-ms-blob-content-length", v)
		}
		nb.size = size
		if v := h.Get("x-ms-blob-sequence-number"); v != "" {
			seq, err := strconv.ParseInt(v, 10, 64)
			if err != nil || seq < 0 {
				return errInvalidHeader("x-ms-blob-sequence-number", v)
			}
			nb.seq = seq
		}
	case string(blockBlob):
		nb.kind = blockBlob
		if r.ContentLength < 0 {
			return errMissingLength()
		}
		if r.ContentLength > MaxBlockBlobBytes {
			return errBodyTooLarge()
		}
		body, e := readBody(r, r.ContentLength)
		if e != nil {
			return e
		}
		sum := md5.Sum(body)
		if v := h.Get("Content-MD5"); v != "" {
			want, err := base64.StdEncoding.DecodeString(v)
			if err != nil || len(want) != md5.Size {
				return errInvalidHeader("Content-MD5", v)
			}
			if !bytes.Equal(want, sum[:]) {
				return errMd5Mismatch()
			}
		}
		if nb.contentMD5 == nil {
			nb.contentMD5 = sum[:]
		}
		nb.size = int64(len(body))
		nb.data.write(extent{off: 0, n: nb.size, data: body})
	default:
		return errInvalidHeader("x-ms-blob-type", kind)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	c, old, e := s.lookup(rc.container, rc.blob)
	if c == nil {
		return e
	}
	if old != nil {
		if rc.sas != nil && !strings.ContainsRune(rc.sas.permissions, 'w') {
			// Create permission makes new blobs only.
			return errPermissionMismatch()
		}
		if v := h.Get("If-None-Match"); v == "*" {
			return errBlobExists()
		}
		if _, e := conditions(r, true, old.etag, old.modified, false); e != nil {
			return e
		}
		nb.created = old.created
		s.stats.BytesStored -= old.data.stored()
	} else if _, e := conditions(r, false, "", time.Time{}, false); e != nil {
		return e
	}
	nb.etag = s.newETag()
	c.blobs[rc.blob] = nb
	stored := nb.data.stored()
	s.stats.BytesStored += stored
	s.stats.BytesWritten += stored
	wh := w.Header()
	wh.Set("ETag", nb.etag)
	wh.Set("Last-Modified", httpTime(nb.modified))
	wh.Set("x-ms-request-server-encrypted", "true")
	if nb.kind == blockBlob {
		wh.Set("Content-MD5", base64.StdEncoding.EncodeToString(nb.contentMD5))
	}
	w.WriteHeader(http.StatusCreated)
	return nil
}

// readBody reads the n-byte body. Memory grows with the bytes that arrive,
// not with what Content-Length claims.
func readBody(r *http.Request, n int64) ([]byte, *storageError) {
	var buf bytes.Buffer
	buf.Grow(int(min(n, 64<<10)))
	if m, err := buf.ReadFrom(io.LimitReader(r.Body, n)); err != nil || m != n {
		return nil, errInvalidHeader("Content-Length", strconv.FormatInt(r.ContentLength, 10))
	}
	// Stored as is: keep no spare capacity from the buffer's doubling.
	return bytes.Clone(buf.Bytes()), nil
}

// checkPageWrite validates a Put Page against the blob as it is now. Call
// with s.mu held.
func (s *Server) checkPageWrite(r *http.Request, rc *reqCtx, rg byteRange) (*blob, *storageError) {
	_, b, e := s.lookup(rc.container, rc.blob)
	if e != nil {
		return nil, e
	}
	if b.kind != pageBlob {
		return nil, errInvalidBlobType()
	}
	if rg.end >= b.size {
		return nil, errInvalidPageRange()
	}
	if _, e := conditions(r, true, b.etag, b.modified, false); e != nil {
		return nil, e
	}
	h := r.Header
	for _, c := range []struct {
		name string
		ok   func(limit int64) bool
	}{
		{"x-ms-if-sequence-number-le", func(l int64) bool { return b.seq <= l }},
		{"x-ms-if-sequence-number-lt", func(l int64) bool { return b.seq < l }},
		{"x-ms-if-sequence-number-eq", func(l int64) bool { return b.seq == l }},
	} {
		if v := h.Get(c.name); v != "" {
			l, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, errInvalidHeader(c.name, v)
			}
			if !c.ok(l) {
				return nil, errSeqConditionNotMet()
			}
		}
	}
	return b, nil
}

func (s *Server) putPage(w http.ResponseWriter, r *http.Request, rc *reqCtx) *storageError {
	h := r.Header
	mode := h.Get("x-ms-page-write")
	switch mode {
	case "update", "clear":
	case "":
		return errMissingHeader("x-ms-page-write")
	default:
		return errInvalidHeader("x-ms-page-write", mode)
	}
	rg, ok, e := requestRange(r)
	if e != nil {
		return e
	}
	if !ok {
		return errMissingHeader("Range")
	}
	if rg.end < 0 || rg.end >= MaxPageBlobSize || rg.start%PageSize != 0 || (rg.end+1)%PageSize != 0 {
		return errInvalidPageRange()
	}
	n := rg.end - rg.start + 1
	if mode == "clear" && r.ContentLength > 0 {
		return errInvalidHeader("Content-Length", strconv.FormatInt(r.ContentLength, 10))
	}
	if mode == "update" {
		if r.ContentLength < 0 {
			return errMissingLength()
		}
		if n > MaxPutPageBytes {
			return errBodyTooLarge()
		}
		if r.ContentLength != n {
			return errInvalidHeader("Content-Length", strconv.FormatInt(r.ContentLength, 10))
		}
	}
	// Validate before reading the body, and again after: the blob may
	// have changed meanwhile.
	s.mu.Lock()
	_, e = s.checkPageWrite(r, rc, rg)
	s.mu.Unlock()
	if e != nil {
		return e
	}
	var body []byte
	var sum [md5.Size]byte
	if mode == "update" {
		if body, e = readBody(r, n); e != nil {
			return e
		}
		sum = md5.Sum(body)
		if v := h.Get("Content-MD5"); v != "" {
			want, err := base64.StdEncoding.DecodeString(v)
			if err != nil || len(want) != md5.Size {
				return errInvalidHeader("Content-MD5", v)
			}
			if !bytes.Equal(want, sum[:]) {
				return errMd5Mismatch()
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, e := s.checkPageWrite(r, rc, rg)
	if e != nil {
		return e
	}
	before := b.data.stored()
	if mode == "update" {
		b.data.write(extent{off: rg.start, n: n, data: body})
		s.stats.BytesWritten += n
	} else {
		b.data.clear(rg.start, rg.end+1)
	}
	s.stats.BytesStored += b.data.stored() - before
	b.etag = s.newETag()
	b.modified = rc.start
	wh := w.Header()
	wh.Set("ETag", b.etag)
	wh.Set("Last-Modified", httpTime(b.modified))
	wh.Set("x-ms-blob-sequence-number", strconv.FormatInt(b.seq, 10))
	wh.Set("x-ms-request-server-encrypted", "true")
	if mode == "update" {
		wh.Set("Content-MD5", base64.StdEncoding.EncodeToString(sum[:]))
	}
	w.WriteHeader(http.StatusCreated)
	return nil
}

func (s *Server) getPageRanges(w http.ResponseWriter, r *http.Request, rc *reqCtx) *storageError {
	rg, hasRange, e := requestRange(r)
	if e != nil {
		return e
	}
	q := r.URL.Query()
	limit := maxRangesPerPage
	if v := q.Get("maxresults"); q.Has("maxresults") {
		n, err := strconv.Atoi(v)
		if err != nil {
			return errInvalidQuery("maxresults", v, "")
		}
		if n < 1 {
			return errOutOfRangeQuery("maxresults", v)
		}
		limit = min(n, maxRangesPerPage)
	}
	from := int64(0)
	if v := q.Get("marker"); v != "" {
		off, err := strconv.ParseInt(v, 10, 64)
		if err != nil || off < 0 {
			return errInvalidQuery("marker", v, "")
		}
		from = off
	}
	s.mu.Lock()
	_, b, e := s.lookup(rc.container, rc.blob)
	if e != nil {
		s.mu.Unlock()
		return e
	}
	if b.kind != pageBlob {
		s.mu.Unlock()
		return errInvalidBlobType()
	}
	if _, e := conditions(r, true, b.etag, b.modified, false); e != nil {
		s.mu.Unlock()
		return e
	}
	to := b.size
	if hasRange {
		if rg.start >= b.size {
			s.mu.Unlock()
			return errInvalidPageRange()
		}
		from = max(from, rg.start)
		to = rg.endWithin(b.size)
	}
	ranges := b.data.ranges(from, to)
	etag, modified, size := b.etag, b.modified, b.size
	s.mu.Unlock()

	type pr struct {
		Start int64 `xml:"Start"`
		End   int64 `xml:"End"`
	}
	out := struct {
		XMLName    xml.Name `xml:"PageList"`
		Ranges     []pr     `xml:"PageRange"`
		NextMarker string   `xml:"NextMarker,omitempty"`
	}{}
	for i, x := range ranges {
		if i == limit {
			out.NextMarker = strconv.FormatInt(x.Start, 10)
			break
		}
		out.Ranges = append(out.Ranges, pr{x.Start, x.End})
	}
	wh := w.Header()
	wh.Set("ETag", etag)
	wh.Set("Last-Modified", httpTime(modified))
	wh.Set("x-ms-blob-content-length", strconv.FormatInt(size, 10))
	s.writeXML(w, out)
	return nil
}

// cutWriter drops the connection once limit bytes went out, as a network
// break would.
type cutWriter struct {
	rw    http.ResponseWriter
	w     io.Writer
	limit int64
}

func (c *cutWriter) Write(p []byte) (int, error) {
	if int64(len(p)) >= c.limit {
		_, _ = c.w.Write(p[:c.limit])
		_ = http.NewResponseController(c.rw).Flush()
		panic(http.ErrAbortHandler)
	}
	c.limit -= int64(len(p))
	return c.w.Write(p)
}

// pacedWriter holds a body to rate bytes per second, in 64 KiB steps.
type pacedWriter struct {
	ctx   context.Context
	w     io.Writer
	rate  int64
	start time.Time
	sent  int64
}

func (p *pacedWriter) Write(b []byte) (int, error) {
	written := 0
	for len(b) > 0 {
		k := min(len(b), 64<<10)
		due := p.start.Add(time.Duration(float64(p.sent+int64(k)) / float64(p.rate) * float64(time.Second)))
		if d := time.Until(due); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-p.ctx.Done():
				t.Stop()
				return written, p.ctx.Err()
			}
		}
		n, err := p.w.Write(b[:k])
		written += n
		p.sent += int64(n)
		if err != nil {
			return written, err
		}
		b = b[k:]
	}
	return written, nil
}

// countWriter counts the bytes of a response body.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func (s *Server) getBlob(w http.ResponseWriter, r *http.Request, rc *reqCtx) *storageError {
	rg, hasRange, e := requestRange(r)
	if e != nil {
		return e
	}
	wantMD5 := false
	if v := r.Header.Get("x-ms-range-get-content-md5"); v != "" {
		if v != "true" && v != "false" {
			return errInvalidHeader("x-ms-range-get-content-md5", v)
		}
		wantMD5 = v == "true"
		if wantMD5 && !hasRange {
			return errInvalidHeader("x-ms-range-get-content-md5", v)
		}
	}
	head := r.Method == http.MethodHead
	s.mu.Lock()
	_, b, e := s.lookup(rc.container, rc.blob)
	if e != nil {
		s.mu.Unlock()
		return e
	}
	notModified, e := conditions(r, true, b.etag, b.modified, true)
	if e != nil {
		s.mu.Unlock()
		return e
	}
	from, to := int64(0), b.size
	if hasRange && !head {
		if rg.start >= b.size {
			s.mu.Unlock()
			return errInvalidRange(b.size)
		}
		from, to = rg.start, rg.endWithin(b.size)
	}
	if wantMD5 && to-from > MaxRangeMD5Bytes {
		s.mu.Unlock()
		return errInvalidHeader("x-ms-range-get-content-md5", "true")
	}
	view := b.data.view(from, to)
	props := *b
	s.mu.Unlock()

	wh := w.Header()
	wh.Set("ETag", props.etag)
	wh.Set("Last-Modified", httpTime(props.modified))
	if notModified {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	wh.Set("Accept-Ranges", "bytes")
	wh.Set("Content-Type", props.contentType)
	wh.Set("x-ms-blob-type", string(props.kind))
	wh.Set("x-ms-creation-time", httpTime(props.created))
	wh.Set("x-ms-lease-state", "available")
	wh.Set("x-ms-lease-status", "unlocked")
	wh.Set("x-ms-server-encrypted", "true")
	if props.kind == pageBlob {
		wh.Set("x-ms-blob-sequence-number", strconv.FormatInt(props.seq, 10))
	}
	setMetadata(wh, props.metadata)
	if rc.sas != nil {
		for k, v := range rc.sas.overrides {
			wh.Set(k, v)
		}
	}
	n := to - from
	wh.Set("Content-Length", strconv.FormatInt(n, 10))
	status := http.StatusOK
	switch {
	case hasRange && !head:
		status = http.StatusPartialContent
		wh.Set("Content-Range", "bytes "+strconv.FormatInt(from, 10)+"-"+strconv.FormatInt(to-1, 10)+"/"+strconv.FormatInt(props.size, 10))
		if props.contentMD5 != nil {
			wh.Set("x-ms-blob-content-md5", base64.StdEncoding.EncodeToString(props.contentMD5))
		}
		if wantMD5 {
			m := md5.New()
			if _, err := copyView(m, view, from, to); err != nil {
				return errInternal()
			}
			wh.Set("Content-MD5", base64.StdEncoding.EncodeToString(m.Sum(nil)))
		}
	case props.contentMD5 != nil:
		wh.Set("Content-MD5", base64.StdEncoding.EncodeToString(props.contentMD5))
	}
	if head {
		w.WriteHeader(status)
		return nil
	}

	cur := s.inflightGets.Add(1)
	defer s.inflightGets.Add(-1)
	s.count(func(st *Stats) {
		if hasRange {
			st.RangedGets++
		} else {
			st.FullGets++
		}
		st.MaxConcurrentGets = max(st.MaxConcurrentGets, cur)
	})
	w.WriteHeader(status)
	cw := &countWriter{w: w}
	defer func() { s.count(func(st *Stats) { st.BytesServed += cw.n }) }()
	var out io.Writer = cw
	if s.opts.StreamRate > 0 {
		out = &pacedWriter{ctx: r.Context(), w: cw, rate: s.opts.StreamRate, start: time.Now()}
	}
	if rc.cutAfter > 0 && rc.cutAfter < n {
		out = &cutWriter{rw: w, w: cw, limit: rc.cutAfter}
	}
	_, _ = copyView(out, view, from, to)
	return nil
}

func (s *Server) deleteBlob(w http.ResponseWriter, r *http.Request, rc *reqCtx) *storageError {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, b, e := s.lookup(rc.container, rc.blob)
	if e != nil {
		return e
	}
	if _, e := conditions(r, true, b.etag, b.modified, false); e != nil {
		return e
	}
	s.stats.BytesStored -= b.data.stored()
	delete(c.blobs, rc.blob)
	w.WriteHeader(http.StatusAccepted)
	return nil
}
