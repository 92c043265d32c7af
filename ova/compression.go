package ova

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
)

// Compression is how an OVA archive is compressed as a whole.
type Compression string

// Supported compressions. The zero value means none.
const (
	CompressionNone Compression = "none"
	CompressionGzip Compression = "gzip"
	CompressionZstd Compression = "zstd"
)

// ParseCompression accepts "", "none", "gzip" and "zstd".
func ParseCompression(s string) (Compression, error) {
	switch strings.ToLower(s) {
	case "", "none":
		return CompressionNone, nil
	case "gzip", "gz":
		return CompressionGzip, nil
	case "zstd", "zst":
		return CompressionZstd, nil
	}
	return "", fmt.Errorf("ova: unknown compression %q (want none, gzip or zstd)", s)
}

func (c Compression) normalize() Compression {
	if c == "" {
		return CompressionNone
	}
	return c
}

// Extension returns the file name extension for an archive: ".ova",
// ".ova.gz" or ".ova.zst".
func (c Compression) Extension() string {
	switch c.normalize() {
	case CompressionGzip:
		return ".ova.gz"
	case CompressionZstd:
		return ".ova.zst"
	}
	return ".ova"
}

// DefaultGzipLevel is the gzip level used when Options.Level is 0, as
// `gzip` itself defaults to 6.
const DefaultGzipLevel = 6

// DefaultZstdLevel is the zstd level used when Options.Level is 0, as the
// `zstd` CLI defaults to 3.
const DefaultZstdLevel = 3

// maxZstdWindow bounds the window a zstd frame may demand when reading; it
// matches the zstd CLI's default decoder limit (--long=27) and keeps a
// hostile frame from making us allocate gigabytes.
const maxZstdWindow = 128 << 20

// gzipEquivalent maps a level on gzip's scale to the klauspost/compress
// level whose output is about as small. klauspost's levels trade ratio for
// speed at the same number: its level 6 writes ~3% more than `gzip -6` on
// an ext4 image of a source tree, its level 8 the same size (measured with
// BenchmarkGzipParallel; on binary-heavy images even its level 9 stays ~1%
// above gzip -6). Levels 1-2 already match.
func gzipEquivalent(level int) int {
	return [10]int{0, 1, 2, 4, 5, 7, 8, 8, 9, 9}[level]
}

// compressor wraps w in the compressing writer for c. level 0 picks the
// codec's default; concurrency 0 uses GOMAXPROCS.
func newCompressor(w io.Writer, c Compression, level, concurrency int) (io.WriteCloser, int, error) {
	if concurrency <= 0 {
		concurrency = runtime.GOMAXPROCS(0)
	}
	switch c.normalize() {
	case CompressionNone:
		return nil, 0, nil
	case CompressionGzip:
		if level == 0 {
			level = DefaultGzipLevel
		}
		if level < 1 || level > 9 {
			return nil, 0, fmt.Errorf("ova: gzip level %d (want 1-9, or 0 for the default)", level)
		}
		zw, err := pgzip.NewWriterLevel(w, gzipEquivalent(level))
		if err != nil {
			return nil, 0, err
		}
		// 1 MiB blocks: large enough that restarting the deflate window per
		// block (pgzip primes it with the previous block's tail) costs well
		// under 1% of ratio, small enough to keep every core busy.
		if err := zw.SetConcurrency(1<<20, concurrency); err != nil {
			return nil, 0, err
		}
		return zw, level, nil
	case CompressionZstd:
		if level == 0 {
			level = DefaultZstdLevel
		}
		if level < 1 || level > 22 {
			return nil, 0, fmt.Errorf("ova: zstd level %d (want 1-22, or 0 for the default)", level)
		}
		zw, err := zstd.NewWriter(w,
			zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)),
			zstd.WithEncoderConcurrency(concurrency))
		if err != nil {
			return nil, 0, err
		}
		return zw, level, nil
	}
	return nil, 0, fmt.Errorf("ova: unknown compression %q", c)
}

// detect identifies the container by its first bytes, never by file name.
func detect(head []byte) (Compression, error) {
	switch {
	case len(head) >= 2 && head[0] == 0x1f && head[1] == 0x8b:
		return CompressionGzip, nil
	case len(head) >= 4 && bytes.Equal(head[:4], []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return CompressionZstd, nil
	case len(head) >= 4 && head[0]&0xf0 == 0x50 && head[1] == 0x2a && head[2] == 0x4d && head[3] == 0x18:
		return CompressionZstd, nil // a zstd skippable frame first
	case len(head) >= 262 && string(head[257:262]) == "ustar":
		return CompressionNone, nil
	case len(head) == 512 && bytes.Count(head, []byte{0}) == 512:
		return CompressionNone, nil // an empty tar: its end marker first
	case len(head) >= 6 && bytes.Equal(head[:6], []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return "", errors.New("xz-compressed archives are not supported (use gzip or zstd)")
	case len(head) >= 3 && string(head[:3]) == "BZh":
		return "", errors.New("bzip2-compressed archives are not supported (use gzip or zstd)")
	}
	return "", errors.New("not an OVA: neither a USTAR/PAX tar archive nor gzip- or zstd-compressed")
}

// newDecompressor returns a reader of the decompressed stream.
func newDecompressor(r io.Reader, c Compression) (io.ReadCloser, error) {
	switch c {
	case CompressionGzip:
		// pgzip decodes ahead in a goroutine; the format is read serially.
		zr, err := pgzip.NewReader(r)
		if err != nil {
			return nil, err
		}
		return zr, nil
	case CompressionZstd:
		zr, err := zstd.NewReader(r,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderMaxWindow(maxZstdWindow))
		if err != nil {
			return nil, err
		}
		return zr.IOReadCloser(), nil
	}
	return io.NopCloser(r), nil
}
