package objstore

import (
	"bytes"
	"context"
	"crypto/md5" //nolint:gosec // Azure's per-block Content-MD5, a transfer check, not security
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
)

// AzureConfig reaches an Azure storage account's blobs.
type AzureConfig struct {
	// Endpoint is the account's blob endpoint; empty means
	// https://<account>.blob.core.windows.net.
	Endpoint string
	// AccountKey is the account's shared key.
	AccountKey string
	// HTTPClient carries the requests (the daemon's, with the SSRF
	// guard); nil means the SDK's.
	HTTPClient *http.Client
}

// azureStore is a container of block blobs. An upload is the blob's
// uncommitted blocks, each staged with its Content-MD5 (which Azure
// verifies) under an id naming the upload and the part
// ("<upload id>-<n>", base64), committed in order by Put Block List.
type azureStore struct {
	c       *container.Client
	account string
	name    string // the container
}

func newAzure(cfg AzureConfig, account, containerName string) (*azureStore, error) {
	cred, err := container.NewSharedKeyCredential(account, cfg.AccountKey)
	if err != nil {
		return nil, err
	}
	endpoint := strings.TrimSuffix(cfg.Endpoint, "/")
	if endpoint == "" {
		endpoint = "https://" + account + ".blob.core.windows.net"
	}
	opts := &container.ClientOptions{}
	if cfg.HTTPClient != nil {
		opts.ClientOptions = azcore.ClientOptions{Transport: cfg.HTTPClient}
	}
	c, err := container.NewClientWithSharedKeyCredential(endpoint+"/"+containerName, cred, opts)
	if err != nil {
		return nil, err
	}
	return &azureStore{c: c, account: account, name: containerName}, nil
}

func (s *azureStore) location(key string) string {
	return "azblob://" + s.account + "/" + s.name + "/" + key
}

func (s *azureStore) blob(key string) *blockblob.Client { return s.c.NewBlockBlobClient(key) }

func md5Of(data []byte) []byte {
	sum := md5.Sum(data) //nolint:gosec // see the import
	return sum[:]
}

func (s *azureStore) put(ctx context.Context, key string, data []byte, _ [32]byte) error {
	_, err := s.blob(key).Upload(ctx, streaming.NopCloser(bytes.NewReader(data)), &blockblob.UploadOptions{
		TransactionalValidation: blob.TransferValidationTypeMD5(md5Of(data))})
	return err
}

func (s *azureStore) begin(context.Context, string) (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// blockID names part n of an upload; every id of a blob has one length.
func blockID(uploadID string, n int) string {
	return base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "%s-%06d", uploadID, n))
}

func (s *azureStore) uploadPart(ctx context.Context, key, uploadID string, n int, data []byte, _ [32]byte) (string, error) {
	_, err := s.blob(key).StageBlock(ctx, blockID(uploadID, n), streaming.NopCloser(bytes.NewReader(data)), &blockblob.StageBlockOptions{
		TransactionalValidation: blob.TransferValidationTypeMD5(md5Of(data))})
	return "", err
}

// uncommitted returns the uncommitted blocks of key by upload id and part.
func (s *azureStore) uncommitted(ctx context.Context, key string) (map[string]map[int]part, error) {
	resp, err := s.blob(key).GetBlockList(ctx, blockblob.BlockListTypeUncommitted, nil)
	if bloberror.HasCode(err, bloberror.BlobNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[string]map[int]part{}
	if resp.UncommittedBlocks == nil {
		return out, nil
	}
	for _, b := range resp.UncommittedBlocks {
		if b.Name == nil || b.Size == nil {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(*b.Name)
		if err != nil {
			continue
		}
		id, num, ok := strings.Cut(string(raw), "-")
		n, err := strconv.Atoi(num)
		if !ok || err != nil {
			continue
		}
		if out[id] == nil {
			out[id] = map[int]part{}
		}
		out[id][n] = part{N: n, Size: *b.Size}
	}
	return out, nil
}

func (s *azureStore) listParts(ctx context.Context, key, uploadID string) (map[int]part, bool, error) {
	all, err := s.uncommitted(ctx, key)
	if err != nil {
		return nil, false, err
	}
	held := all[uploadID]
	return held, len(held) > 0, nil
}

func (s *azureStore) complete(ctx context.Context, key, uploadID string, parts []part) error {
	ids := make([]string, len(parts))
	for i, p := range parts {
		ids[i] = blockID(uploadID, p.N)
	}
	_, err := s.blob(key).CommitBlockList(ctx, ids, nil)
	return err
}

// abort discards the blob's uncommitted blocks, which Azure offers no
// call for but a commit: an empty block list, then the empty blob
// deleted. Only a key being written anew or removed is aborted.
func (s *azureStore) abort(ctx context.Context, key, _ string) error {
	if _, err := s.blob(key).CommitBlockList(ctx, nil, nil); err != nil {
		return err
	}
	return s.remove(ctx, key)
}

func (s *azureStore) openUploads(ctx context.Context, key string) ([]string, error) {
	all, err := s.uncommitted(ctx, key)
	if err != nil {
		return nil, err
	}
	var ids []string
	for id := range all {
		ids = append(ids, id)
	}
	return ids, nil
}

func (s *azureStore) size(ctx context.Context, key string) (int64, bool, error) {
	p, err := s.blob(key).GetProperties(ctx, nil)
	if bloberror.HasCode(err, bloberror.BlobNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	if p.ContentLength == nil {
		return 0, true, nil
	}
	return *p.ContentLength, true, nil
}

func (s *azureStore) read(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if n == 0 {
		return io.NopCloser(strings.NewReader("")), nil
	}
	// Count 0 reads to the end.
	resp, err := s.blob(key).DownloadStream(ctx, &blob.DownloadStreamOptions{Range: blob.HTTPRange{Offset: off, Count: max(n, 0)}})
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

func (s *azureStore) remove(ctx context.Context, key string) error {
	_, err := s.blob(key).Delete(ctx, nil)
	if bloberror.HasCode(err, bloberror.BlobNotFound) {
		return nil
	}
	return err
}
