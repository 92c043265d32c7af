package vma

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"

	"github.com/hypersdk/hypersdk/internal/lzop"
)

// Compression is how a dump file is compressed as a whole (vzdump's
// --compress): the archive inside is the same.
type Compression string

// The compressions vzdump writes.
const (
	CompressionNone Compression = "none" // .vma
	CompressionZstd Compression = "zstd" // .vma.zst
	CompressionGzip Compression = "gzip" // .vma.gz
	CompressionLZO  Compression = "lzo"  // .vma.lzo (lzop)
)

// maxZstdWindow bounds the window a zstd frame may demand: the zstd
// tool's own default decoder limit (--long=27); vzdump's frames need far
// less. A frame asking for more is refused rather than allocated.
const maxZstdWindow = 128 << 20

// DetectCompression names the compression of a dump from its first bytes
// (at least 9 of them), never from a file name.
func DetectCompression(head []byte) (Compression, error) {
	switch {
	case len(head) >= 4 && bytes.Equal(head[:4], magic[:]):
		return CompressionNone, nil
	case len(head) >= 4 && bytes.Equal(head[:4], []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return CompressionZstd, nil
	case len(head) >= 4 && head[0]&0xf0 == 0x50 && head[1] == 0x2a && head[2] == 0x4d && head[3] == 0x18:
		return CompressionZstd, nil // a zstd skippable frame first (pzstd writes one)
	case len(head) >= 2 && head[0] == 0x1f && head[1] == 0x8b:
		return CompressionGzip, nil
	case len(head) >= len(lzop.Magic) && string(head[:len(lzop.Magic)]) == lzop.Magic:
		return CompressionLZO, nil
	case len(head) >= 6 && bytes.Equal(head[:6], []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return "", formatErr(0, "file", "xz-compressed: not a compression vzdump writes (zstd, gzip, lzo)")
	case len(head) >= 3 && string(head[:3]) == "BZh":
		return "", formatErr(0, "file", "bzip2-compressed: not a compression vzdump writes (zstd, gzip, lzo)")
	}
	return "", formatErr(0, "file", "not a VMA archive, plain or compressed with zstd, gzip or lzo (first bytes % x)", head[:min(len(head), 9)])
}

// Decompress returns the archive inside r, whichever way vzdump compressed
// it (recognised by its first bytes), and the compression found. Closing
// the result releases the decompressor, not r.
func Decompress(r io.Reader) (io.ReadCloser, Compression, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(9)
	if err != nil && len(head) == 0 {
		if err == io.EOF {
			return nil, "", formatErr(0, "file", "empty")
		}
		return nil, "", err
	}
	c, err := DetectCompression(head)
	if err != nil {
		return nil, "", err
	}
	switch c {
	case CompressionZstd:
		zr, err := zstd.NewReader(br, zstd.WithDecoderMaxWindow(maxZstdWindow))
		if err != nil {
			return nil, "", err
		}
		return zr.IOReadCloser(), c, nil
	case CompressionGzip:
		// pgzip inflates ahead in a goroutine while the archive is parsed.
		zr, err := pgzip.NewReader(br)
		if err != nil {
			return nil, "", formatErr(0, "gzip header", "%v", err)
		}
		return zr, c, nil
	case CompressionLZO:
		zr, err := lzop.NewReader(br)
		if err != nil {
			return nil, "", err
		}
		// lzop decodes in the caller's goroutine: run it ahead.
		return newReadAhead(zr, 1<<20, 2), c, nil
	}
	return io.NopCloser(br), c, nil
}

// File is a dump file on disk opened for reading: its compression and the
// archive's Reader, header read.
type File struct {
	*Reader
	Path        string
	Compression Compression
	// Size is the file's size on disk (compressed).
	Size   int64
	dec    io.Closer
	closer io.Closer
}

// Open opens the dump file at path (.vma, .vma.zst, .vma.gz, .vma.lzo —
// recognised by content) and reads its header.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	dec, c, err := Decompress(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	r, err := NewReader(dec)
	if err != nil {
		dec.Close()
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &File{Reader: r, Path: path, Compression: c, Size: fi.Size(), dec: dec, closer: f}, nil
}

// Close closes the decompressor and the file.
func (f *File) Close() error {
	derr := f.dec.Close()
	if err := f.closer.Close(); err != nil {
		return err
	}
	return derr
}
