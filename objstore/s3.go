package objstore

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// S3Config reaches an S3 API.
type S3Config struct {
	// Endpoint is the service URL; empty means AWS.
	Endpoint string
	Region   string
	// AccessKeyID and SecretAccessKey are static credentials; empty
	// means the SDK's default chain (environment, shared files, IMDS).
	AccessKeyID, SecretAccessKey string
	// PathStyle addresses buckets in the path (MinIO, versitygw).
	PathStyle bool
	// HTTPClient carries the requests (the daemon's, with the SSRF guard
	// on every dial); nil means the SDK's.
	HTTPClient *http.Client
}

// s3Store is a bucket of an S3 API.
type s3Store struct {
	c      *s3.Client
	bucket string
}

func newS3(cfg S3Config, bucket string) *s3Store {
	o := s3.Options{Region: cfg.Region, UsePathStyle: cfg.PathStyle}
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	if cfg.Endpoint != "" {
		o.BaseEndpoint = aws.String(cfg.Endpoint)
	}
	if cfg.AccessKeyID != "" {
		o.Credentials = credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, "")
	}
	if cfg.HTTPClient != nil {
		o.HTTPClient = cfg.HTTPClient
	}
	return &s3Store{c: s3.New(o), bucket: bucket}
}

func (s *s3Store) location(key string) string { return "s3://" + s.bucket + "/" + key }

func b64(sum []byte) *string { return aws.String(base64.StdEncoding.EncodeToString(sum)) }

func (s *s3Store) put(ctx context.Context, key string, data []byte, sum [32]byte) error {
	_, err := s.c.PutObject(ctx, &s3.PutObjectInput{Bucket: &s.bucket, Key: &key, Body: bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))), ChecksumSHA256: b64(sum[:])})
	return err
}

func (s *s3Store) begin(ctx context.Context, key string) (string, error) {
	out, err := s.c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &s.bucket, Key: &key,
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256})
	if err != nil {
		return "", err
	}
	return aws.ToString(out.UploadId), nil
}

func (s *s3Store) uploadPart(ctx context.Context, key, uploadID string, n int, data []byte, sum [32]byte) (string, error) {
	out, err := s.c.UploadPart(ctx, &s3.UploadPartInput{Bucket: &s.bucket, Key: &key, UploadId: &uploadID,
		PartNumber: aws.Int32(int32(n)), Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data))),
		ChecksumSHA256: b64(sum[:])})
	if err != nil {
		return "", err
	}
	return aws.ToString(out.ETag), nil
}

func (s *s3Store) listParts(ctx context.Context, key, uploadID string) (map[int]part, bool, error) {
	held := map[int]part{}
	pages := s3.NewListPartsPaginator(s.c, &s3.ListPartsInput{Bucket: &s.bucket, Key: &key, UploadId: &uploadID})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if isCode(err, "NoSuchUpload") {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, err
		}
		for _, p := range page.Parts {
			hp := part{N: int(aws.ToInt32(p.PartNumber)), Size: aws.ToInt64(p.Size), ETag: aws.ToString(p.ETag)}
			if c := aws.ToString(p.ChecksumSHA256); c != "" {
				if sum, err := base64.StdEncoding.DecodeString(c); err == nil {
					hp.Sum = sum
				}
			}
			held[hp.N] = hp
		}
	}
	return held, true, nil
}

func (s *s3Store) complete(ctx context.Context, key, uploadID string, parts []part) error {
	var cp []types.CompletedPart
	for _, p := range parts {
		cp = append(cp, types.CompletedPart{PartNumber: aws.Int32(int32(p.N)), ETag: aws.String(p.ETag), ChecksumSHA256: b64(p.Sum)})
	}
	_, err := s.c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: &s.bucket, Key: &key, UploadId: &uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: cp}})
	return err
}

func (s *s3Store) abort(ctx context.Context, key, uploadID string) error {
	_, err := s.c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &s.bucket, Key: &key, UploadId: &uploadID})
	if isCode(err, "NoSuchUpload") {
		return nil
	}
	return err
}

func (s *s3Store) openUploads(ctx context.Context, key string) ([]string, error) {
	var ids []string
	in := &s3.ListMultipartUploadsInput{Bucket: &s.bucket, Prefix: &key}
	for {
		out, err := s.c.ListMultipartUploads(ctx, in)
		if isCode(err, "NoSuchUpload") {
			return ids, nil // gofakes3's answer when there is none
		}
		if err != nil {
			return nil, err
		}
		for _, u := range out.Uploads {
			if aws.ToString(u.Key) == key {
				ids = append(ids, aws.ToString(u.UploadId))
			}
		}
		if !aws.ToBool(out.IsTruncated) {
			return ids, nil
		}
		in.KeyMarker, in.UploadIdMarker = out.NextKeyMarker, out.NextUploadIdMarker
	}
}

func (s *s3Store) size(ctx context.Context, key string) (int64, bool, error) {
	out, err := s.c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &key})
	var nf *types.NotFound
	if errors.As(err, &nf) || isCode(err, "NoSuchKey") || isCode(err, "NotFound") {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	return aws.ToInt64(out.ContentLength), true, nil
}

func (s *s3Store) read(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	rng := fmt.Sprintf("bytes=%d-", off)
	if n >= 0 {
		if n == 0 {
			return io.NopCloser(strings.NewReader("")), nil
		}
		rng = fmt.Sprintf("bytes=%d-%d", off, off+n-1)
	}
	out, err := s.c.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key, Range: &rng})
	if err != nil {
		return nil, err
	}
	return out.Body, nil
}

func (s *s3Store) remove(ctx context.Context, key string) error {
	_, err := s.c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &key})
	return err
}

func isCode(err error, code string) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == code
}
