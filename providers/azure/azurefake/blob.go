package azurefake

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/pageblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
)

// BlobAccount is the storage account behind the grants: Azurite or an
// in-process Blob server, reached with its shared key.
type BlobAccount struct {
	// URL is the account's URL: https://ACCOUNT.blob.core.windows.net or,
	// path-style, http://127.0.0.1:10000/devstoreaccount1.
	URL         string
	AccountName string
	AccountKey  string
	// Container holds the disks' blobs ("hypersdk-fake-disks" when empty);
	// it is created when missing.
	Container string
}

// maxPutPage is the most one Put Page request carries.
const maxPutPage = 4 << 20

// blobStore uploads disk contents as fixed-VHD page blobs and signs
// read-only service SAS URLs for them.
type blobStore struct {
	acct      BlobAccount
	cred      *blob.SharedKeyCredential
	container *container.Client
	opts      *pageblob.ClientOptions
}

func newBlobStore(acct BlobAccount) (*blobStore, error) {
	if acct.URL == "" || acct.AccountName == "" || acct.AccountKey == "" {
		return nil, errors.New("azurefake: the blob account needs a URL, an account name and its key")
	}
	if acct.Container == "" {
		acct.Container = "hypersdk-fake-disks"
	}
	cred, err := blob.NewSharedKeyCredential(acct.AccountName, acct.AccountKey)
	if err != nil {
		return nil, fmt.Errorf("azurefake: blob account key: %w", err)
	}
	// Retried here (retry), each attempt with a body of its own: the
	// SDK's retry rewinds the one body, which the transport may still be
	// reading for the attempt that failed.
	clientOpts := azcore.ClientOptions{Retry: policy.RetryOptions{MaxRetries: -1}}
	cc, err := container.NewClientWithSharedKeyCredential(strings.TrimSuffix(acct.URL, "/")+"/"+acct.Container, cred,
		&container.ClientOptions{ClientOptions: clientOpts})
	if err != nil {
		return nil, err
	}
	return &blobStore{acct: acct, cred: cred, container: cc, opts: &pageblob.ClientOptions{ClientOptions: clientOpts}}, nil
}

// retry runs call until it succeeds, fails for good, or five attempts
// failed: a blob service under test may throttle (503, 500) the uploads
// too.
func retry(ctx context.Context, call func() error) error {
	var err error
	for attempt := 1; attempt <= 5; attempt++ {
		if err = call(); err == nil {
			return nil
		}
		var re *azcore.ResponseError
		if !errors.As(err, &re) || re.StatusCode < 500 && re.StatusCode != http.StatusTooManyRequests {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt) * 10 * time.Millisecond):
		}
	}
	return err
}

// ensureContainer creates the container unless it exists.
func (b *blobStore) ensureContainer(ctx context.Context) error {
	err := retry(ctx, func() error { _, err := b.container.Create(ctx, nil); return err })
	if err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		return fmt.Errorf("azurefake: create container %s: %w", b.acct.Container, err)
	}
	return nil
}

func (b *blobStore) blobURL(name string) string {
	return b.container.URL() + "/" + url.PathEscape(name)
}

// upload writes c as a fixed VHD page blob: the disk's written pages, then
// the footer in the last page.
func (b *blobStore) upload(ctx context.Context, name string, c *Content, badFooter bool) error {
	pb, err := pageblob.NewClientWithSharedKeyCredential(b.blobURL(name), b.cred, b.opts)
	if err != nil {
		return err
	}
	size := c.Size()
	if err := retry(ctx, func() error { _, err := pb.Create(ctx, size+PageSize, nil); return err }); err != nil {
		return fmt.Errorf("azurefake: create page blob %s: %w", name, err)
	}
	buf := make([]byte, maxPutPage)
	for _, r := range c.Ranges() {
		for off := r.Offset; off < r.End(); {
			n := min(r.End()-off, maxPutPage)
			if _, err := c.ReadAt(buf[:n], off); err != nil {
				return err
			}
			if err := retry(ctx, func() error {
				_, err := pb.UploadPages(ctx, streaming.NopCloser(bytes.NewReader(buf[:n])), blob.HTTPRange{Offset: off, Count: n}, nil)
				return err
			}); err != nil {
				return fmt.Errorf("azurefake: put pages at %d of %s: %w", off, name, err)
			}
			off += n
		}
	}
	footer := fixedVHDFooter(size)
	if badFooter {
		footer[64+3]++ // the checksum's last byte
	}
	if err := retry(ctx, func() error {
		_, err := pb.UploadPages(ctx, streaming.NopCloser(bytes.NewReader(footer)), blob.HTTPRange{Offset: size, Count: PageSize}, nil)
		return err
	}); err != nil {
		return fmt.Errorf("azurefake: put the footer of %s: %w", name, err)
	}
	return nil
}

// sas signs a read-only service SAS for the blob, valid until expiry, and
// returns it with its signature.
func (b *blobStore) sas(name string, expiry time.Time) (string, string, error) {
	q, err := sas.BlobSignatureValues{
		Protocol:      sas.ProtocolHTTPSandHTTP,
		StartTime:     time.Now().UTC().Add(-time.Minute),
		ExpiryTime:    expiry.UTC(),
		Permissions:   (&sas.BlobPermissions{Read: true}).String(),
		ContainerName: b.acct.Container,
		BlobName:      name,
	}.SignWithSharedKey(b.cred)
	if err != nil {
		return "", "", err
	}
	return b.blobURL(name) + "?" + q.Encode(), q.Signature(), nil
}

// remove deletes a blob; a missing one is not an error.
func (b *blobStore) remove(ctx context.Context, name string) error {
	pb, err := pageblob.NewClientWithSharedKeyCredential(b.blobURL(name), b.cred, b.opts)
	if err != nil {
		return err
	}
	if err := retry(ctx, func() error { _, err := pb.Delete(ctx, nil); return err }); err != nil && !bloberror.HasCode(err, bloberror.BlobNotFound) {
		return err
	}
	return nil
}

// maxGrantSeconds is the longest grant Azure hands out (5 days).
const maxGrantSeconds = 5 * 24 * 3600

// grantAccess grants read access to a disk or snapshot as Azure does: the
// resource's bytes become a page blob (a fixed VHD) readable through a
// service SAS that expires after the requested duration. A disk attached
// to a VM that is not deallocated is refused with 409, as is a second
// grant while one is active and an incremental snapshot still copying.
// Revoking the grant deletes the blob, so its SAS stops working.
func (s *Server) grantAccess(ctx context.Context, key, rg, name string, data armcompute.GrantAccessData) (string, error) {
	if data.Access == nil || *data.Access != armcompute.AccessLevelRead {
		return "", &armError{http.StatusBadRequest, "InvalidParameter", "azurefake grants read access only"}
	}
	if data.DurationInSeconds == nil || *data.DurationInSeconds <= 0 || *data.DurationInSeconds > maxGrantSeconds {
		return "", &armError{http.StatusBadRequest, "InvalidParameter", fmt.Sprintf("durationInSeconds must be between 1 and %d", maxGrantSeconds)}
	}
	if data.FileFormat != nil && *data.FileFormat != armcompute.FileFormatVHD {
		return "", &armError{http.StatusBadRequest, "InvalidParameter", "azurefake serves VHD only"}
	}
	s.mu.Lock()
	now := time.Now()
	var (
		slot    **grant
		content *Content
		id, uid string
		kind    string
	)
	switch {
	case s.disks[key] != nil:
		d := s.disks[key]
		if st := d.state(now); st == "Attached" {
			s.mu.Unlock()
			return "", &armError{http.StatusConflict, "OperationNotAllowed",
				fmt.Sprintf("Disk %s is attached to VM %s, which is not deallocated; snapshot the disk or deallocate the VM.", d.spec.Name, d.vm.id)}
		}
		slot, content, id, uid, kind = &d.grant, d.spec.Content, d.id, d.uniqueID, "disk"
	case s.snapshots[key] != nil:
		sn := s.snapshots[key]
		if sn.pendingPolls > 0 {
			s.mu.Unlock()
			return "", &armError{http.StatusConflict, "OperationNotAllowed", fmt.Sprintf("Snapshot %s is still copying; grant access once it is complete.", name)}
		}
		slot, content, id, uid, kind = &sn.grant, sn.content, sn.id, sn.uniqueID, "snapshot"
	default:
		s.mu.Unlock()
		kind := "disks"
		if strings.Contains(key, "/snapshots/") {
			kind = "snapshots"
		}
		return "", notFound(kind, rg, name)
	}
	if x := s.faults.RefuseGrantsOn; x != "" && (strings.Contains(id, x) || kind == "snapshot" && strings.Contains(s.snapshots[key].sourceID, x)) {
		s.mu.Unlock()
		return "", &armError{http.StatusConflict, "OperationNotAllowed", fmt.Sprintf("Access to %s is not allowed now.", id)}
	}
	if (*slot).active(now) {
		s.mu.Unlock()
		return "", &armError{http.StatusConflict, "OperationNotAllowed", fmt.Sprintf("%s already has an active SAS; revoke it first.", id)}
	}
	if s.faults.FailGrants > 0 {
		s.faults.FailGrants--
		s.mu.Unlock()
		return "", &armError{http.StatusInternalServerError, "InternalExecutionError", "An internal execution error occurred."}
	}
	lifetime := time.Duration(*data.DurationInSeconds) * time.Second
	if s.faults.SASLifetime > 0 {
		lifetime = s.faults.SASLifetime
	}
	badFooter := s.faults.BadFooter
	s.grantSeq++
	g := &grant{resourceID: id, blobName: fmt.Sprintf("%s-%s-%d.vhd", kind, uid, s.grantSeq), expires: now.Add(lifetime)}
	*slot = g // reserved: a concurrent grant is refused
	s.stats.Grants++
	s.mu.Unlock()

	fail := func(err error) (string, error) {
		s.mu.Lock()
		if *slot == g {
			*slot = nil
		}
		s.mu.Unlock()
		s.log.Warn("grant failed", "resource", id, "err", err)
		return "", &armError{http.StatusInternalServerError, "InternalExecutionError", "An internal execution error occurred."}
	}
	if err := s.blobs.ensureContainer(ctx); err != nil {
		return fail(err)
	}
	if err := s.blobs.upload(ctx, g.blobName, content, badFooter); err != nil {
		return fail(err)
	}
	sasURL, sig, err := s.blobs.sas(g.blobName, g.expires)
	if err != nil {
		return fail(err)
	}
	s.mu.Lock()
	s.sigs = append(s.sigs, sig)
	s.mu.Unlock()
	s.log.Info("access granted", "resource", id, "blob", g.blobName, "expires", g.expires.UTC().Format(time.RFC3339))
	return sasURL, nil
}

// revokeAccess ends the resource's grant, if any, and deletes its blob.
func (s *Server) revokeAccess(ctx context.Context, key, rg, name string) error {
	s.mu.Lock()
	var slot **grant
	switch {
	case s.disks[key] != nil:
		slot = &s.disks[key].grant
	case s.snapshots[key] != nil:
		slot = &s.snapshots[key].grant
	default:
		s.mu.Unlock()
		kind := "disks"
		if strings.Contains(key, "/snapshots/") {
			kind = "snapshots"
		}
		return notFound(kind, rg, name)
	}
	g := *slot
	*slot = nil
	s.stats.Revokes++
	s.mu.Unlock()
	if g == nil {
		return nil
	}
	if err := s.blobs.remove(ctx, g.blobName); err != nil {
		s.log.Warn("deleting a revoked grant's blob failed", "blob", g.blobName, "err", err)
	}
	s.log.Info("access revoked", "resource", g.resourceID)
	return nil
}
