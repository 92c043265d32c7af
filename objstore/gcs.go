package objstore

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/storage"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	htransport "google.golang.org/api/transport/http"

	"github.com/hypersdk/hypersdk/internal/backoff"
)

// GCSConfig reaches Google Cloud Storage.
type GCSConfig struct {
	// Endpoint is the JSON API URL (".../storage/v1/"); empty means
	// Google's.
	Endpoint string
	// CredentialsFile is a service account key file; empty means the
	// application default credentials.
	CredentialsFile string
	// Anonymous sends no credentials (an emulator).
	Anonymous bool
	// HTTPClient carries the requests (the daemon's, with the SSRF guard
	// on every dial); nil means the library's. With credentials, their
	// OAuth 2 transport wraps its transport: every request to the store
	// passes the guard, the tokens are fetched as the library fetches them
	// (Google's token endpoint, or the metadata server for the application
	// default credentials on Google Cloud, which the guard would refuse).
	HTTPClient *http.Client
}

// gcsStore is a bucket of GCS. GCS has no multipart upload: parts are
// objects of their own (with their CRC32C, which GCS verifies, and their
// SHA-256 in their metadata), composed into the object when all are there
// (32 at a time, in a tree for more) and then deleted. An upload's parts
// are named "<key>.parts/<upload id>/<n>", so that they are found again.
type gcsStore struct {
	c      *storage.Client
	bucket string
	// retry paces the tries of the requests the library does not retry
	// itself (see retry).
	retry backoff.Policy
}

func newGCS(ctx context.Context, cfg GCSConfig, bucket string) (*gcsStore, error) {
	// Reads through the JSON API, as every other call: the endpoint is a
	// JSON API URL (an emulator has no XML API).
	opts := []option.ClientOption{storage.WithJSONReads()}
	if cfg.Endpoint != "" {
		opts = append(opts, option.WithEndpoint(cfg.Endpoint))
	}
	var auth []option.ClientOption
	if cfg.CredentialsFile != "" {
		auth = append(auth, option.WithCredentialsFile(cfg.CredentialsFile)) //nolint:staticcheck // a key file the operator configured
	}
	switch {
	case cfg.Anonymous:
		opts = append(opts, option.WithoutAuthentication())
		if cfg.HTTPClient != nil {
			opts = append(opts, option.WithHTTPClient(cfg.HTTPClient))
		}
	case cfg.HTTPClient != nil:
		// The library takes a client as is (it adds no credentials to
		// one): the credentials' transport is put on top of the guarded
		// one, with the scopes the library would ask for.
		base := cmp.Or[http.RoundTripper](cfg.HTTPClient.Transport, http.DefaultTransport)
		rt, err := htransport.NewTransport(ctx, base, append(auth, option.WithScopes(storage.ScopeFullControl, "https://www.googleapis.com/auth/cloud-platform"))...)
		if err != nil {
			return nil, fmt.Errorf("GCS credentials: %w", err)
		}
		opts = append(opts, option.WithHTTPClient(&http.Client{Transport: rt, CheckRedirect: cfg.HTTPClient.CheckRedirect, Timeout: cfg.HTTPClient.Timeout}))
	default:
		opts = append(opts, auth...)
	}
	c, err := storage.NewClient(ctx, opts...)
	if err != nil {
		return nil, err
	}
	return &gcsStore{c: c, bucket: bucket, retry: backoff.Policy{Base: time.Second, Max: 8 * time.Second, Jitter: 0.5}}, nil
}

// gcsTries bounds the tries of one request that the library does not
// retry: an upload in one request (ChunkSize 0: the part is already in
// memory, and the library retries only uploads it buffered itself), a
// compose and a delete (not idempotent to the library without a
// generation precondition; here they are: a part is the same bytes under
// the same name, a compose of the same parts the same object, and a
// delete of what is gone succeeds).
const gcsTries = 4

// try runs fn until it succeeds, fails with an error the library deems
// permanent (storage.ShouldRetry: 408, 429, 5xx, timeouts and broken
// connections are transient), or gcsTries tries have failed.
func (s *gcsStore) try(ctx context.Context, fn func() error) error {
	for n := 1; ; n++ {
		err := fn()
		if err == nil || n == gcsTries || !storage.ShouldRetry(err) || ctx.Err() != nil {
			return err
		}
		if s.retry.Sleep(ctx, n) != nil {
			return err
		}
	}
}

// composeMax is how many sources one GCS compose takes.
const composeMax = 32

var crc32c = crc32.MakeTable(crc32.Castagnoli)

func (s *gcsStore) location(key string) string { return "gs://" + s.bucket + "/" + key }

func (s *gcsStore) obj(key string) *storage.ObjectHandle { return s.c.Bucket(s.bucket).Object(key) }

func (s *gcsStore) write(ctx context.Context, key string, data []byte, meta map[string]string) error {
	return s.try(ctx, func() error { return s.writeOnce(ctx, key, data, meta) })
}

func (s *gcsStore) writeOnce(ctx context.Context, key string, data []byte, meta map[string]string) error {
	w := s.obj(key).NewWriter(ctx)
	w.ChunkSize = 0 // one request: the part is in memory
	w.CRC32C, w.SendCRC32C = crc32.Checksum(data, crc32c), true
	w.Metadata = meta
	if _, err := w.Write(data); err != nil {
		_ = w.Close()
		return err
	}
	return w.Close()
}

func (s *gcsStore) put(ctx context.Context, key string, data []byte, _ [32]byte) error {
	return s.write(ctx, key, data, nil)
}

func (s *gcsStore) partsPrefix(key, uploadID string) string { return key + ".parts/" + uploadID + "/" }

func (s *gcsStore) begin(context.Context, string) (string, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

func (s *gcsStore) uploadPart(ctx context.Context, key, uploadID string, n int, data []byte, sum [32]byte) (string, error) {
	name := s.partsPrefix(key, uploadID) + fmt.Sprintf("%05d", n)
	return "", s.write(ctx, name, data, map[string]string{"sha256": hex.EncodeToString(sum[:])})
}

func (s *gcsStore) list(ctx context.Context, prefix string) ([]*storage.ObjectAttrs, error) {
	var out []*storage.ObjectAttrs
	it := s.c.Bucket(s.bucket).Objects(ctx, &storage.Query{Prefix: prefix})
	for {
		a, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
}

func (s *gcsStore) listParts(ctx context.Context, key, uploadID string) (map[int]part, bool, error) {
	objs, err := s.list(ctx, s.partsPrefix(key, uploadID))
	if err != nil {
		return nil, false, err
	}
	held := map[int]part{}
	for _, a := range objs {
		n, err := strconv.Atoi(path.Base(a.Name))
		if err != nil {
			continue // an intermediate of compose
		}
		p := part{N: n, Size: a.Size}
		if sum, err := hex.DecodeString(a.Metadata["sha256"]); err == nil && len(sum) == 32 {
			p.Sum = sum
		}
		held[n] = p
	}
	// An upload is open while a part of it is: a composed one has none.
	return held, len(held) > 0, nil
}

func (s *gcsStore) complete(ctx context.Context, key, uploadID string, parts []part) error {
	prefix := s.partsPrefix(key, uploadID)
	srcs := make([]string, len(parts))
	for i, p := range parts {
		srcs[i] = prefix + fmt.Sprintf("%05d", p.N)
	}
	// A tree of composes: each level composes groups of 32 into
	// intermediates, until one compose makes the object.
	for level := 0; len(srcs) > composeMax; level++ {
		var next []string
		for i := 0; i < len(srcs); i += composeMax {
			name := prefix + "c" + strconv.Itoa(level) + "-" + strconv.Itoa(i/composeMax)
			if err := s.compose(ctx, name, srcs[i:min(i+composeMax, len(srcs))]); err != nil {
				return err
			}
			next = append(next, name)
		}
		srcs = next
	}
	if err := s.compose(ctx, key, srcs); err != nil {
		return err
	}
	return s.deletePrefix(ctx, prefix)
}

func (s *gcsStore) compose(ctx context.Context, dst string, srcs []string) error {
	hs := make([]*storage.ObjectHandle, len(srcs))
	for i, n := range srcs {
		hs[i] = s.obj(n)
	}
	return s.try(ctx, func() error {
		_, err := s.obj(dst).ComposerFrom(hs...).Run(ctx)
		return err
	})
}

// delete deletes key; a key that is gone is deleted.
func (s *gcsStore) delete(ctx context.Context, key string) error {
	return s.try(ctx, func() error {
		if err := s.obj(key).Delete(ctx); err != nil && !errors.Is(err, storage.ErrObjectNotExist) {
			return err
		}
		return nil
	})
}

func (s *gcsStore) deletePrefix(ctx context.Context, prefix string) error {
	objs, err := s.list(ctx, prefix)
	if err != nil {
		return err
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	sem := make(chan struct{}, 8)
	for _, a := range objs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := s.delete(ctx, a.Name); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (s *gcsStore) abort(ctx context.Context, key, uploadID string) error {
	return s.deletePrefix(ctx, s.partsPrefix(key, uploadID))
}

func (s *gcsStore) openUploads(ctx context.Context, key string) ([]string, error) {
	objs, err := s.list(ctx, key+".parts/")
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, a := range objs {
		id, _, _ := strings.Cut(strings.TrimPrefix(a.Name, key+".parts/"), "/")
		if id != "" && (len(ids) == 0 || ids[len(ids)-1] != id) {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

func (s *gcsStore) size(ctx context.Context, key string) (int64, bool, error) {
	a, err := s.obj(key).Attrs(ctx)
	if errors.Is(err, storage.ErrObjectNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	return a.Size, true, nil
}

func (s *gcsStore) remove(ctx context.Context, key string) error { return s.delete(ctx, key) }

func (s *gcsStore) read(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	return s.obj(key).NewRangeReader(ctx, off, n)
}
