package azblobfake

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"

	azblobblob "github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
)

// Stats are the server's counters since New.
type Stats struct {
	// Requests counts every request received, refused ones included.
	Requests int64
	// Ops counts authorized requests by operation (the Op* names).
	Ops map[string]int64
	// Errors counts error answers by error code.
	Errors map[string]int64
	// RangedGets and FullGets count Get Blob requests that sent a body,
	// with and without a range.
	RangedGets int64
	FullGets   int64
	// BytesServed is the Get Blob body bytes written to clients.
	BytesServed int64
	// BytesWritten is the content bytes stored by Put Blob and Put Page.
	BytesWritten int64
	// BytesStored is the content held now, all blobs together: the memory
	// the blobs cost (seeded blobs' sources not included).
	BytesStored int64
	// Faults counts requests answered by fault injection.
	Faults int64
	// AuthFailures counts 401 and 403 answers.
	AuthFailures int64
	// MaxConcurrentGets is the most Get Blob bodies streamed at once.
	MaxConcurrentGets int64
}

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Ops = maps.Clone(s.stats.Ops)
	st.Errors = maps.Clone(s.stats.Errors)
	return st
}

// BlobInfo describes a stored blob.
type BlobInfo struct {
	Container string
	Name      string
	// Type is "PageBlob" or "BlockBlob".
	Type string
	Size int64
	// StoredBytes is the written content held in memory (not the size,
	// and not pages read from a PutPageBlobFrom source).
	StoredBytes int64
	ETag        string
}

// ErrNotFound is returned by the inspection and seeding methods for a
// container or blob that does not exist.
var ErrNotFound = errors.New("azblobfake: not found")

// Containers lists the container names, sorted.
func (s *Server) Containers() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.containers))
}

// Blobs lists the blobs of a container (every container when container is
// empty), sorted by container and name.
func (s *Server) Blobs(container string) []BlobInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []BlobInfo
	for _, cn := range slices.Sorted(maps.Keys(s.containers)) {
		if container != "" && cn != container {
			continue
		}
		c := s.containers[cn]
		for _, bn := range slices.Sorted(maps.Keys(c.blobs)) {
			b := c.blobs[bn]
			out = append(out, BlobInfo{Container: cn, Name: bn, Type: string(b.kind), Size: b.size, StoredBytes: b.data.stored(), ETag: b.etag})
		}
	}
	return out
}

// PageRanges returns the written ranges of a page blob, coalesced, as Get
// Page Ranges reports them.
func (s *Server) PageRanges(container, name string) ([]PageRange, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, b, e := s.lookup(container, name)
	if e != nil {
		return nil, fmt.Errorf("%w: %s/%s", ErrNotFound, container, name)
	}
	return b.data.ranges(0, b.size), nil
}

// ReadBlob writes the content of a blob (holes as zeros) to w.
func (s *Server) ReadBlob(container, name string, w io.Writer) error {
	s.mu.Lock()
	_, b, e := s.lookup(container, name)
	if e != nil {
		s.mu.Unlock()
		return fmt.Errorf("%w: %s/%s", ErrNotFound, container, name)
	}
	size := b.size
	v := b.data.view(0, size)
	s.mu.Unlock()
	_, err := copyView(w, v, 0, size)
	return err
}

// CreateContainer makes a container directly, as Create Container would.
// An existing one is kept.
func (s *Server) CreateContainer(name string) error {
	if !validContainerName(name) {
		return fmt.Errorf("azblobfake: invalid container name %q", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.containers[name] == nil {
		now := s.opts.Now()
		s.containers[name] = &container{name: name, created: now, modified: now, etag: s.newETag(), blobs: map[string]*blob{}}
	}
	return nil
}

// PutPageBlob creates (or replaces) an empty page blob of size bytes, as
// Put Blob would.
func (s *Server) PutPageBlob(container, name string, size int64) error {
	return s.PutPageBlobFrom(container, name, size, nil, nil)
}

// PutPageBlobFrom creates (or replaces) a page blob of size bytes whose
// written pages are ranges (inclusive, page-aligned, within size), their
// content read from src at the same offsets whenever the blob is read: a
// multi-GiB demo or benchmark disk costs no memory. Later writes through the
// API overlay it; src must stay readable while the blob exists.
func (s *Server) PutPageBlobFrom(container, name string, size int64, src io.ReaderAt, ranges []PageRange) error {
	if size < 0 || size%PageSize != 0 || size > MaxPageBlobSize {
		return fmt.Errorf("azblobfake: page blob size %d is not a multiple of %d up to 8 TiB", size, PageSize)
	}
	if name == "" || len(name) > 1024 {
		return fmt.Errorf("azblobfake: invalid blob name %q", name)
	}
	b := &blob{name: name, kind: pageBlob, size: size, contentType: "application/octet-stream", metadata: map[string]string{}}
	for _, r := range ranges {
		if src == nil || r.Start < 0 || r.End < r.Start || r.Start%PageSize != 0 || (r.End+1)%PageSize != 0 || r.End >= size {
			return fmt.Errorf("azblobfake: invalid page range %d-%d for a blob of %d bytes", r.Start, r.End, size)
		}
		b.data.write(extent{off: r.Start, n: r.End - r.Start + 1, src: src, srcOff: r.Start})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.containers[container]
	if c == nil {
		return fmt.Errorf("%w: container %s", ErrNotFound, container)
	}
	now := s.opts.Now()
	b.created, b.modified, b.etag = now, now, s.newETag()
	if old := c.blobs[name]; old != nil {
		s.stats.BytesStored -= old.data.stored()
	}
	c.blobs[name] = b
	return nil
}

// WritePages writes data at off of a page blob, as Put Page would (off and
// len(data) page-aligned, within the blob).
func (s *Server) WritePages(container, name string, off int64, data []byte) error {
	n := int64(len(data))
	if off < 0 || off%PageSize != 0 || n%PageSize != 0 {
		return fmt.Errorf("azblobfake: write of %d bytes at %d is not page-aligned", n, off)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, b, e := s.lookup(container, name)
	if e != nil {
		return fmt.Errorf("%w: %s/%s", ErrNotFound, container, name)
	}
	if b.kind != pageBlob || off+n > b.size {
		return fmt.Errorf("azblobfake: write of %d bytes at %d does not fit page blob %s/%s of %d bytes", n, off, container, name, b.size)
	}
	before := b.data.stored()
	b.data.write(extent{off: off, n: n, data: append([]byte(nil), data...)})
	s.stats.BytesStored += b.data.stored() - before
	b.etag, b.modified = s.newETag(), s.opts.Now()
	return nil
}

// DeleteBlob removes a blob directly.
func (s *Server) DeleteBlob(container, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, b, e := s.lookup(container, name)
	if e != nil {
		return fmt.Errorf("%w: %s/%s", ErrNotFound, container, name)
	}
	s.stats.BytesStored -= b.data.stored()
	delete(c.blobs, name)
	return nil
}

// SASURL mints a read-only service SAS URL for a blob (sr=b, sp=r,
// expiring at expiry) with the account key, through the SDK's own signer,
// as a disk grant hands one out. ExpireSAS revokes it even before its
// first use.
func (s *Server) SASURL(container, name string, expiry time.Time) (string, error) {
	cred, err := azblobblob.NewSharedKeyCredential(AccountName, AccountKey)
	if err != nil {
		return "", err
	}
	qp, err := sas.BlobSignatureValues{
		Protocol:      sas.ProtocolHTTPSandHTTP,
		ExpiryTime:    expiry.UTC(),
		Permissions:   (&sas.BlobPermissions{Read: true}).String(),
		ContainerName: container,
		BlobName:      name,
	}.SignWithSharedKey(cred)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	if s.sas[qp.Signature()] == nil {
		s.sas[qp.Signature()] = &sasState{container: container, blob: name}
	}
	s.mu.Unlock()
	u := s.URL() + "/" + container + "/" + escapeBlobName(name) + "?" + qp.Encode()
	return u, nil
}

// escapeBlobName escapes a blob name for a URL path, keeping its slashes.
func escapeBlobName(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}
