package lzop

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/adler32"
	"hash/crc32"
	"io"
)

// Magic starts every lzop file.
const Magic = "\x89LZO\x00\r\n\x1a\n"

// Header flags (lzop's conf.h names).
const (
	fAdler32D    = 0x00000001
	fAdler32C    = 0x00000002
	fStdin       = 0x00000004
	fStdout      = 0x00000008
	fNameDefault = 0x00000010
	fDosish      = 0x00000020
	fHExtraField = 0x00000040
	fHGMTDiff    = 0x00000080
	fCRC32D      = 0x00000100
	fCRC32C      = 0x00000200
	fMultipart   = 0x00000400
	fHFilter     = 0x00000800
	fHCRC32      = 0x00001000
	fHPath       = 0x00002000
	fMask        = 0x00003fff
	fOSMask      = 0xff000000
	fCSMask      = 0x00f00000
	fReserved    = ^uint32(fMask | fOSMask | fCSMask)
)

// Limits lzop itself enforces.
const (
	// MaxBlockSize is lzop's MAX_BLOCK_SIZE: no block decompresses to
	// more (lzop writes 256 KiB blocks).
	MaxBlockSize = 64 << 20
	// lzopVersion is the newest format version this reader knows (lzop
	// 1.04); a file needing a newer one to extract is refused.
	lzopVersion   = 0x1040
	maxExtraField = 1 << 20
)

// Methods (all LZO1X: one decompressor reads them).
const (
	methodLZO1X1   = 1
	methodLZO1X115 = 2
	methodLZO1X999 = 3
)

// ErrFormat is matched (errors.Is) by every refusal of malformed input.
var ErrFormat = errors.New("malformed lzop file")

// FormatError is a refusal: the offset in the compressed stream of the
// structure that was wrong, and what.
type FormatError struct {
	Offset  int64
	Problem string
	Err     error
}

func (e *FormatError) Error() string {
	msg := fmt.Sprintf("lzop: at offset %d: %s", e.Offset, e.Problem)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *FormatError) Unwrap() error        { return e.Err }
func (e *FormatError) Is(target error) bool { return target == ErrFormat }

// Header is what an lzop file says about itself.
type Header struct {
	Version    uint16 // lzop version that wrote it
	LibVersion uint16 // LZO library version
	Method     uint8  // 1 LZO1X-1, 2 LZO1X-1(15), 3 LZO1X-999
	Level      uint8
	Flags      uint32
	Mode       uint32
	MTime      uint64 // seconds since the epoch
	Name       string // original file name ("" for stdin)
}

// Reader decompresses an lzop file as it is read.
type Reader struct {
	r     *bufio.Reader
	off   int64 // offset in the compressed stream of the next byte of r
	hdr   Header
	block int // number of the block being read, for messages
	src   []byte
	dst   []byte
	out   []byte // undelivered part of dst
	err   error
}

// NewReader reads and checks the lzop header from r.
func NewReader(r io.Reader) (*Reader, error) {
	z := &Reader{r: bufio.NewReaderSize(r, 64<<10)}
	if err := z.readHeader(); err != nil {
		return nil, err
	}
	return z, nil
}

// Header returns the file's header.
func (z *Reader) Header() Header { return z.hdr }

func (z *Reader) formatErr(off int64, err error, problem string, args ...any) error {
	return &FormatError{Offset: off, Problem: fmt.Sprintf(problem, args...), Err: err}
}

// read fills b from the stream, feeding h when set. A short stream is a
// FormatError naming what was being read.
func (z *Reader) read(b []byte, h io.Writer, what string) error {
	n, err := io.ReadFull(z.r, b)
	z.off += int64(n)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return z.formatErr(z.off, io.ErrUnexpectedEOF, "file ends inside the %s", what)
		}
		return err
	}
	if h != nil {
		h.Write(b)
	}
	return nil
}

func (z *Reader) u8(h io.Writer, what string) (uint8, error) {
	var b [1]byte
	err := z.read(b[:], h, what)
	return b[0], err
}

func (z *Reader) u16(h io.Writer, what string) (uint16, error) {
	var b [2]byte
	err := z.read(b[:], h, what)
	return binary.BigEndian.Uint16(b[:]), err
}

func (z *Reader) u32(h io.Writer, what string) (uint32, error) {
	var b [4]byte
	err := z.read(b[:], h, what)
	return binary.BigEndian.Uint32(b[:]), err
}

func (z *Reader) readHeader() error {
	var magic [9]byte
	if err := z.read(magic[:], nil, "magic"); err != nil {
		return err
	}
	if string(magic[:]) != Magic {
		return z.formatErr(0, nil, "not an lzop file (magic % x)", magic[:])
	}
	// The header checksum covers everything from the version to the name;
	// both algorithms are fed and the flags pick one once read.
	ad, cr := adler32.New(), crc32.NewIEEE()
	both := io.MultiWriter(ad, cr)
	h := &z.hdr
	var err error
	start := z.off
	if h.Version, err = z.u16(both, "header"); err != nil {
		return err
	}
	if h.Version < 0x0900 {
		return z.formatErr(start, nil, "lzop format version %#x is older than any lzop release", h.Version)
	}
	if h.LibVersion, err = z.u16(both, "header"); err != nil {
		return err
	}
	if h.Version >= 0x0940 {
		need, err := z.u16(both, "header")
		if err != nil {
			return err
		}
		if need > lzopVersion {
			return z.formatErr(start, nil, "needs lzop %#x to extract (this reader knows up to %#x)", need, lzopVersion)
		}
		if need < 0x0900 {
			return z.formatErr(start, nil, "version needed to extract %#x is invalid", need)
		}
	}
	if h.Method, err = z.u8(both, "header"); err != nil {
		return err
	}
	if h.Version >= 0x0940 {
		if h.Level, err = z.u8(both, "header"); err != nil {
			return err
		}
	}
	if h.Flags, err = z.u32(both, "header"); err != nil {
		return err
	}
	switch {
	case h.Flags&fReserved != 0:
		return z.formatErr(start, nil, "unknown header flags %#x", h.Flags&fReserved)
	case h.Flags&fHFilter != 0:
		return z.formatErr(start, nil, "lzop filters are not supported")
	case h.Flags&fMultipart != 0:
		return z.formatErr(start, nil, "multi-part lzop files are not supported")
	}
	if h.Mode, err = z.u32(both, "header"); err != nil {
		return err
	}
	low, err := z.u32(both, "header")
	if err != nil {
		return err
	}
	h.MTime = uint64(low)
	if h.Version >= 0x0940 {
		high, err := z.u32(both, "header")
		if err != nil {
			return err
		}
		h.MTime |= uint64(high) << 32
	}
	n, err := z.u8(both, "header")
	if err != nil {
		return err
	}
	name := make([]byte, n)
	if err := z.read(name, both, "header"); err != nil {
		return err
	}
	h.Name = string(name)
	want := ad.Sum32()
	if h.Flags&fHCRC32 != 0 {
		want = cr.Sum32()
	}
	sumOff := z.off
	got, err := z.u32(nil, "header checksum")
	if err != nil {
		return err
	}
	if got != want {
		return z.formatErr(sumOff, nil, "header checksum %#08x, computed %#08x", got, want)
	}
	switch h.Method {
	case methodLZO1X1, methodLZO1X115, methodLZO1X999:
	default:
		return z.formatErr(start, nil, "compression method %d is not LZO1X (1, 2 or 3)", h.Method)
	}
	if h.Flags&fHExtraField != 0 {
		eh := checksum(h.Flags&fHCRC32 != 0)
		extraOff := z.off
		l, err := z.u32(eh, "extra field")
		if err != nil {
			return err
		}
		if l > maxExtraField {
			return z.formatErr(extraOff, nil, "extra field of %d bytes (at most %d)", l, maxExtraField)
		}
		if _, err := io.CopyN(eh, z.r, int64(l)); err != nil {
			z.off += int64(l)
			return z.formatErr(z.off, io.ErrUnexpectedEOF, "file ends inside the extra field")
		}
		z.off += int64(l)
		got, err := z.u32(nil, "extra field checksum")
		if err != nil {
			return err
		}
		if got != eh.Sum32() {
			return z.formatErr(extraOff, nil, "extra field checksum %#08x, computed %#08x", got, eh.Sum32())
		}
	}
	return nil
}

func checksum(crc bool) hash.Hash32 {
	if crc {
		return crc32.NewIEEE()
	}
	return adler32.New()
}

// Read returns decompressed bytes; io.EOF once the end marker was read and
// nothing follows it.
func (z *Reader) Read(p []byte) (int, error) {
	for len(z.out) == 0 {
		if z.err != nil {
			return 0, z.err
		}
		z.err = z.nextBlock()
	}
	n := copy(p, z.out)
	z.out = z.out[n:]
	return n, nil
}

// nextBlock reads, checks and decompresses the next block into z.out.
func (z *Reader) nextBlock() error {
	z.block++
	at := z.off
	dstLen, err := z.u32(nil, "block header")
	if err != nil {
		return err
	}
	if dstLen == 0 { // end of the file
		if _, err := z.r.ReadByte(); err == nil {
			return z.formatErr(z.off, nil, "data after the end of the lzop stream")
		} else if err != io.EOF {
			return err
		}
		return io.EOF
	}
	if dstLen > MaxBlockSize {
		return z.formatErr(at, nil, "block %d decompresses to %d bytes (lzop's limit is %d)", z.block, dstLen, MaxBlockSize)
	}
	srcLen, err := z.u32(nil, "block header")
	if err != nil {
		return err
	}
	if srcLen == 0 || srcLen > dstLen {
		return z.formatErr(at, nil, "block %d: %d compressed bytes for %d decompressed", z.block, srcLen, dstLen)
	}
	// LZO1X produces at most ~255 bytes per input byte (a length grows by
	// 255 per extra zero byte): a block claiming more is refused before
	// its output buffer is allocated.
	if int64(dstLen) > int64(srcLen)*256+1024 {
		return z.formatErr(at, nil, "block %d claims %d bytes from %d compressed (beyond LZO1X's 255:1)", z.block, dstLen, srcLen)
	}
	flags := z.hdr.Flags
	var dAdler, dCRC, cAdler, cCRC uint32
	if flags&fAdler32D != 0 {
		if dAdler, err = z.u32(nil, "block header"); err != nil {
			return err
		}
	}
	if flags&fCRC32D != 0 {
		if dCRC, err = z.u32(nil, "block header"); err != nil {
			return err
		}
	}
	stored := srcLen == dstLen
	if flags&fAdler32C != 0 {
		if stored {
			cAdler = dAdler
		} else if cAdler, err = z.u32(nil, "block header"); err != nil {
			return err
		}
	}
	if flags&fCRC32C != 0 {
		if stored {
			cCRC = dCRC
		} else if cCRC, err = z.u32(nil, "block header"); err != nil {
			return err
		}
	}
	dataAt := z.off
	// The compressed bytes are read in growing steps so that a header
	// claiming a large block costs memory only as its bytes arrive.
	z.src, err = z.readGrow(z.src[:0], int(srcLen))
	if err != nil {
		return err
	}
	if !stored {
		if flags&fAdler32C != 0 && adler32.Checksum(z.src) != cAdler {
			return z.formatErr(dataAt, nil, "block %d: compressed data Adler-32 mismatch", z.block)
		}
		if flags&fCRC32C != 0 && crc32.ChecksumIEEE(z.src) != cCRC {
			return z.formatErr(dataAt, nil, "block %d: compressed data CRC-32 mismatch", z.block)
		}
	}
	var out []byte
	if stored {
		out = z.src
	} else {
		if cap(z.dst) < int(dstLen) {
			z.dst = make([]byte, dstLen)
		}
		out = z.dst[:dstLen]
		if err := Decompress1X(out, z.src); err != nil {
			return z.formatErr(dataAt, err, "block %d", z.block)
		}
	}
	if flags&fAdler32D != 0 && adler32.Checksum(out) != dAdler {
		return z.formatErr(dataAt, nil, "block %d: decompressed data Adler-32 mismatch", z.block)
	}
	if flags&fCRC32D != 0 && crc32.ChecksumIEEE(out) != dCRC {
		return z.formatErr(dataAt, nil, "block %d: decompressed data CRC-32 mismatch", z.block)
	}
	z.out = out
	return nil
}

// readGrow appends n bytes of the stream to b, growing it at most to
// twice what has arrived so far.
func (z *Reader) readGrow(b []byte, n int) ([]byte, error) {
	const step = 256 << 10
	for len(b) < n {
		want := min(n-len(b), max(step, len(b)))
		if cap(b)-len(b) < want {
			nb := make([]byte, len(b), len(b)+want)
			copy(nb, b)
			b = nb
		}
		k, err := io.ReadFull(z.r, b[len(b):len(b)+want])
		b = b[:len(b)+k]
		z.off += int64(k)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return b, z.formatErr(z.off, io.ErrUnexpectedEOF, "file ends inside block %d", z.block)
			}
			return b, err
		}
	}
	return b, nil
}
