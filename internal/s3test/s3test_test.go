package s3test

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// What the AWS export-task path relies on, against the real server: a
// single-part object's ETag is its MD5, its checksum is reported with
// ChecksumMode, and a pre-signed GET honours Range through the proxy.
func TestServerSpeaksS3(t *testing.T) {
	s := Start(t, Options{})
	s.CreateBucket(t, "exports")
	ctx := context.Background()
	c := s.Client()
	body := bytes.Repeat([]byte("hypersdk"), 100_000)
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("exports"), Key: aws.String("vms/a.raw"), Body: bytes.NewReader(body)}); err != nil {
		t.Fatal(err)
	}
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("exports"), Key: aws.String("vms/a.raw"), ChecksumMode: s3types.ChecksumModeEnabled})
	if err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum(body)
	if got := strings.Trim(aws.ToString(head.ETag), `"`); got != hex.EncodeToString(sum[:]) || aws.ToInt64(head.ContentLength) != int64(len(body)) {
		t.Errorf("ETag %s, length %d; want the MD5 %x and %d", got, aws.ToInt64(head.ContentLength), sum, len(body))
	}
	t.Logf("checksums: crc32 %q crc32c %q crc64nvme %q sha256 %q type %q", aws.ToString(head.ChecksumCRC32), aws.ToString(head.ChecksumCRC32C),
		aws.ToString(head.ChecksumCRC64NVME), aws.ToString(head.ChecksumSHA256), head.ChecksumType)
	pre, err := s3.NewPresignClient(c).PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("exports"), Key: aws.String("vms/a.raw")},
		s3.WithPresignExpires(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, pre.URL, nil)
	req.Header.Set("Range", "bytes=8-15")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || string(got) != "hypersdk" {
		t.Fatalf("ranged pre-signed GET: %s %q", resp.Status, got)
	}
	var ranged int
	for _, r := range s.Requests() {
		if r.Presigned && r.Range == "bytes=8-15" && r.Path == "/exports/vms/a.raw" {
			ranged++
		}
	}
	if ranged != 1 {
		t.Errorf("the proxy saw %d ranged pre-signed GETs: %+v", ranged, s.Requests())
	}
	if keys := s.Keys(t, "exports"); len(keys) != 1 || keys[0] != "vms/a.raw" {
		t.Errorf("keys %v", keys)
	}
}
