package aws

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"io"
	"log/slog"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/transfer"
)

// exportObject is what S3 says of an export task's object.
type exportObject struct {
	task         *exportTask
	bucket, key  string
	size         int64
	etag         string // as S3 sends it, quoted
	sse          s3types.ServerSideEncryption
	checksumType s3types.ChecksumType
	// checksums are the x-amz-checksum-* values by algorithm.
	checksums map[string]string
}

// headObject describes an object with its checksums (ChecksumMode
// ENABLED).
func (p *Provider) headObject(ctx context.Context, bucket, key string) (*s3.HeadObjectOutput, error) {
	_, s3c, _, err := p.s3Clients()
	if err != nil {
		return nil, err
	}
	out, err := s3c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), ChecksumMode: s3types.ChecksumModeEnabled})
	if err != nil {
		return nil, p.apiError(fmt.Sprintf("describe s3://%s/%s", bucket, key), err)
	}
	return out, nil
}

// describeExportObject describes the completed task's object. It must lie
// where the configuration says tasks write (so the provider never reads,
// nor later deletes, anything else).
func (p *Provider) describeExportObject(ctx context.Context, t *exportTask) (*exportObject, error) {
	et := &p.cfg.ExportTask
	if t.bucket != et.Bucket || !strings.HasPrefix(t.key, et.prefix()) {
		return nil, providers.Permanent(fmt.Errorf("aws %s: export task %s wrote s3://%s/%s, outside export_task's s3://%s/%s", p.name, t.id, t.bucket, t.key, et.Bucket, et.prefix()))
	}
	head, err := p.headObject(ctx, t.bucket, t.key)
	if err != nil {
		if httpStatus(err) == 404 {
			return nil, providers.Permanent(fmt.Errorf("aws %s: export task %s is completed but its object s3://%s/%s is not there", p.name, t.id, t.bucket, t.key))
		}
		return nil, err
	}
	o := &exportObject{
		task: t, bucket: t.bucket, key: t.key, size: aws.ToInt64(head.ContentLength), etag: aws.ToString(head.ETag),
		sse: head.ServerSideEncryption, checksumType: head.ChecksumType, checksums: map[string]string{},
	}
	for name, v := range map[string]*string{
		"crc32": head.ChecksumCRC32, "crc32c": head.ChecksumCRC32C, "crc64nvme": head.ChecksumCRC64NVME,
		"sha1": head.ChecksumSHA1, "sha256": head.ChecksumSHA256,
	} {
		if s := aws.ToString(v); s != "" {
			o.checksums[name] = s
		}
	}
	if o.size <= 0 {
		return nil, providers.Permanent(fmt.Errorf("aws %s: export object s3://%s/%s is empty", p.name, o.bucket, o.key))
	}
	if o.etag == "" {
		return nil, fmt.Errorf("aws %s: S3 answered for s3://%s/%s without an ETag", p.name, o.bucket, o.key)
	}
	return o, nil
}

// crc64NVME is S3's CRC-64/NVME polynomial, bit-reversed as hash/crc64
// takes it.
var crc64NVME = crc64.MakeTable(0x9a6c9329ac4bc9b5)

// checksumHashes are the hashes of S3's x-amz-checksum-* algorithms; each
// sums to the bytes S3 reports, base64-encoded (big-endian CRCs).
var checksumHashes = map[string]func() hash.Hash{
	"crc32":     func() hash.Hash { return crc32.NewIEEE() },
	"crc32c":    func() hash.Hash { return crc32.New(crc32.MakeTable(crc32.Castagnoli)) },
	"crc64nvme": func() hash.Hash { return crc64.New(crc64NVME) },
	"sha1":      sha1.New,
	"sha256":    sha256.New,
}

// wholeObjectDigest picks the digest of the whole object the download is
// checked against, from what S3 holds of it:
//
//   - an x-amz-checksum-* of type FULL_OBJECT: CRC64NVME, which S3
//     computes for every object uploaded since 2025 (multipart ones
//     included) and which costs least to check, else SHA-256, SHA-1,
//     CRC32C or CRC32 when the uploader asked for one; a COMPOSITE
//     checksum (a checksum of the parts' checksums, "…-N") needs the part
//     boundaries and is not used;
//   - else the ETag, when it is the MD5 of the bytes: an object written in
//     one piece (a multipart object's ETag is "md5-of-the-parts'-md5s-N")
//     and not encrypted with KMS (whose ETags are not MD5s; SSE-S3
//     objects' are).
//
// One is enough to prove the bytes are the ones S3 stored: every digest
// is computed in the one goroutine that also computes the SHA-256 of the
// manifest, so a second would slow a fast download without catching more.
// ok is false when S3 holds none (a multipart object of an uploader that
// chose no checksum, from before 2025): the size and the ETag (as the
// object's version) are then all that is checked.
func (o *exportObject) wholeObjectDigest() (d namedDigest, ok bool) {
	if o.checksumType != s3types.ChecksumTypeComposite {
		for _, name := range []string{"crc64nvme", "sha256", "sha1", "crc32c", "crc32"} {
			v, found := o.checksums[name]
			if !found || strings.Contains(v, "-") {
				continue
			}
			b, err := base64.StdEncoding.DecodeString(v)
			if err != nil || len(b) != checksumHashes[name]().Size() {
				continue
			}
			return namedDigest{name: name, new: checksumHashes[name], sum: b}, true
		}
	}
	tag := strings.Trim(o.etag, `"`)
	if b, err := hex.DecodeString(tag); err == nil && len(b) == md5.Size &&
		o.sse != s3types.ServerSideEncryptionAwsKms && o.sse != s3types.ServerSideEncryptionAwsKmsDsse {
		return namedDigest{name: "md5 (ETag)", new: md5.New, sum: b}, true
	}
	return namedDigest{}, false
}

type namedDigest struct {
	name string
	new  func() hash.Hash
	sum  []byte
}

// diskFormats maps the export's disk image format to the pipeline's
// source format: a streamOptimized VMDK streams; a raw image is the disk;
// a VHD needs random access, so the pipeline stages it and decodes it
// through disk/formats.
var diskSourceFormats = map[string]string{
	"vmdk": providers.SourceVMDKStream,
	"raw":  providers.SourceRaw,
	"vhd":  providers.SourceImage,
}

// maxOVAFrame bounds what is read of an OVA besides its disk image (the
// descriptor before it, padding and end-of-archive after it).
const maxOVAFrame = 16 << 20

// exportDiskSource hands the object to the pipeline as one HTTP source it
// downloads itself with parallel ranged GETs through a pre-signed URL:
//
//   - a plain disk image is the whole object;
//   - inside an OVA, the disk image's bytes lie uncompressed in the tar
//     at an offset the archive's headers give: the source is that byte
//     range of the object (no staged copy of the archive), and the
//     object's digests still check it, framed by the bytes before and
//     after it, which are read here.
//
// The URL is checked by the provider's SSRF guard and never logged.
func (p *Provider) exportDiskSource(ctx context.Context, vm *providers.VMInfo, o *exportObject, log *slog.Logger) (providers.DiskSource, error) {
	et := &p.cfg.ExportTask
	format := et.diskFormat()
	if len(vm.Disks) != 1 {
		return providers.DiskSource{}, fmt.Errorf("aws %s: export of %s: %d disks, want one", p.name, vm.ID, len(vm.Disks))
	}
	capacity := vm.Disks[0].CapacityBytes
	offset, size := int64(0), o.size
	var prefix, suffix []byte
	if strings.EqualFold(et.Container, "ova") {
		var err error
		if offset, size, prefix, suffix, err = p.locateOVADisk(ctx, o, format); err != nil {
			return providers.DiskSource{}, err
		}
		log.Info("disk image located in the OVA", "bucket", o.bucket, "key", o.key, "offset", offset, "size", size)
	}
	if format == "raw" && size != capacity {
		return providers.DiskSource{}, providers.Permanent(fmt.Errorf("aws %s: the raw image s3://%s/%s is %d bytes, the volume %d", p.name, o.bucket, o.key, size, capacity))
	}
	var digests []providers.Digest
	if d, ok := o.wholeObjectDigest(); ok {
		newHash := d.new
		if offset > 0 || len(suffix) > 0 {
			framed, err := transfer.Framed(d.new, prefix, suffix)
			if err != nil {
				return providers.DiskSource{}, err
			}
			newHash = framed
		}
		digests = append(digests, providers.Digest{Name: d.name, New: newHash, Sum: d.sum})
	} else {
		log.Warn("S3 holds no whole-object digest of the export object (a multipart ETag and no full-object checksum): only its size and version are checked",
			"bucket", o.bucket, "key", o.key)
	}
	u, err := p.presignGet(ctx, o)
	if err != nil {
		return providers.DiskSource{}, err
	}
	p.mu.RLock()
	client := p.http
	p.mu.RUnlock()
	names := make([]string, len(digests))
	for i, d := range digests {
		names[i] = d.Name
	}
	log.Info("export object ready", "bucket", o.bucket, "key", o.key, "bytes", o.size, "verified_by", strings.Join(append(names, "size", "ETag"), ", "))
	return providers.DiskSource{
		Name: "disk-0", Format: diskSourceFormats[format], Capacity: capacity, Size: size,
		HTTP: &providers.HTTPSource{URL: u, Client: client, Offset: offset, Ranged: true, Validator: o.etag, Digests: digests},
	}, nil
}

// presignGet signs a GET of the object, valid tuning.presignExpiry, and
// checks its host with the SSRF guard of the provider's endpoints. Its
// query string is the signature: it is never logged, and errors quote the
// scheme and host only.
func (p *Provider) presignGet(ctx context.Context, o *exportObject) (string, error) {
	_, _, ps, err := p.s3Clients()
	if err != nil {
		return "", err
	}
	req, err := ps.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(o.bucket), Key: aws.String(o.key)}, s3.WithPresignExpires(p.tune.presignExpiry))
	if err != nil {
		return "", p.apiError(fmt.Sprintf("sign a GET of s3://%s/%s", o.bucket, o.key), err)
	}
	u, err := url.Parse(req.URL)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("aws %s: the signed URL of s3://%s/%s does not parse", p.name, o.bucket, o.key)
	}
	if _, err := endpointGuard.CheckURL(u.Scheme + "://" + u.Host + "/"); err != nil {
		return "", providers.Permanent(fmt.Errorf("aws %s: S3 endpoint of s3://%s/%s: %w", p.name, o.bucket, o.key, err))
	}
	return req.URL, nil
}

// locateOVADisk finds the disk image in an OVA object: it reads the
// archive's headers from the start with ranged GETs (the .ovf first, then
// the disk's header), and the bytes after the disk image, which must hold
// nothing but padding and the end of the archive. It returns where the
// disk image lies and the bytes before and after it.
func (p *Provider) locateOVADisk(ctx context.Context, o *exportObject, format string) (offset, size int64, prefix, suffix []byte, err error) {
	_, s3c, _, err := p.s3Clients()
	if err != nil {
		return 0, 0, nil, nil, err
	}
	bad := func(format string, args ...any) error {
		return providers.Permanent(fmt.Errorf("aws %s: OVA s3://%s/%s: %s", p.name, o.bucket, o.key, fmt.Sprintf(format, args...)))
	}
	rr := &rangeReader{ctx: ctx, s3: s3c, bucket: o.bucket, key: o.key, etag: o.etag, size: o.size}
	cr := &capturingReader{r: rr, max: maxOVAFrame}
	tr := tar.NewReader(cr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return 0, 0, nil, nil, bad("holds no .%s disk image", format)
		}
		if err != nil {
			if rr.err != nil {
				return 0, 0, nil, nil, rr.err
			}
			return 0, 0, nil, nil, bad("%v", err)
		}
		if h.Typeflag != tar.TypeReg || !strings.HasSuffix(strings.ToLower(h.Name), "."+format) {
			continue
		}
		offset, size = cr.n, h.Size
		break
	}
	if offset+size > o.size || size <= 0 {
		return 0, 0, nil, nil, bad("disk image of %d bytes at %d does not fit the %d-byte object", size, offset, o.size)
	}
	// What follows the disk image: padding to the next 512-byte block, then
	// only the end of the archive (VM Export packs one disk).
	rest := o.size - (offset + size)
	if rest > maxOVAFrame {
		return 0, 0, nil, nil, bad("%d bytes follow the disk image; more than one disk is not exported", rest)
	}
	if rest > 0 {
		if suffix, err = getRange(ctx, s3c, o, offset+size, rest); err != nil {
			return 0, 0, nil, nil, p.apiError(fmt.Sprintf("read the end of s3://%s/%s", o.bucket, o.key), err)
		}
	}
	pad := (512 - size%512) % 512
	if int64(len(suffix)) < pad {
		return 0, 0, nil, nil, bad("truncated after the disk image")
	}
	if _, err := tar.NewReader(bytes.NewReader(suffix[pad:])).Next(); !errors.Is(err, io.EOF) {
		return 0, 0, nil, nil, bad("more follows the disk image than the end of the archive (%v)", err)
	}
	return offset, size, cr.buf.Bytes(), suffix, nil
}

// rangeReader reads an object from its start in ranged GETs of growing
// size, each conditional on the object's ETag.
type rangeReader struct {
	ctx         context.Context
	s3          *s3.Client
	bucket, key string
	etag        string
	size, off   int64
	buf         []byte
	chunk       int64
	err         error // the last request's failure, for the caller's message
}

func (r *rangeReader) Read(p []byte) (int, error) {
	if len(r.buf) == 0 {
		if r.off >= r.size {
			return 0, io.EOF
		}
		r.chunk = min(max(r.chunk*2, 64<<10), 1<<20)
		n := min(r.chunk, r.size-r.off)
		b, err := getRange(r.ctx, r.s3, &exportObject{bucket: r.bucket, key: r.key, etag: r.etag}, r.off, n)
		if err != nil {
			r.err = fmt.Errorf("read s3://%s/%s at %d: %w", r.bucket, r.key, r.off, err)
			return 0, r.err
		}
		r.buf, r.off = b, r.off+int64(len(b))
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// getRange reads bytes [off, off+n) of the object, if it still has the
// ETag it was described with.
func getRange(ctx context.Context, c *s3.Client, o *exportObject, off, n int64) ([]byte, error) {
	out, err := c.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(o.bucket), Key: aws.String(o.key), IfMatch: aws.String(o.etag),
		Range: aws.String(fmt.Sprintf("bytes=%d-%d", off, off+n-1)),
	})
	if err != nil {
		return nil, err
	}
	defer out.Body.Close()
	b, err := io.ReadAll(io.LimitReader(out.Body, n+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) != n {
		return nil, fmt.Errorf("asked for %d bytes at %d, got %d", n, off, len(b))
	}
	return b, nil
}

// capturingReader keeps what it passes on (up to max bytes) and counts it.
type capturingReader struct {
	r   io.Reader
	n   int64
	max int64
	buf bytes.Buffer
}

func (c *capturingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n > c.max {
		return n, fmt.Errorf("more than %d bytes precede the disk image", c.max)
	}
	c.buf.Write(p[:n])
	return n, err
}
