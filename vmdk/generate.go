package vmdk

import (
	"errors"
	"io"
	"math/bits"
	"strconv"
	"sync"
)

// Layout of generated content: the disk is cut into 1 MiB extents of sixteen
// 64 KiB blocks. An extent is either empty (never written, like most of a real
// disk) or populated, and each block of a populated extent is zero, log-like
// text, structured binary records or incompressible noise. Kinds and bytes
// derive from the seed and the block index only, so any byte range can be
// regenerated on its own.
const (
	genBlock        = 64 << 10
	genExtentBlocks = 16

	pctEmptyExtent = 30 // share of empty 1 MiB extents
	pctZeroBlock   = 15 // shares of block kinds in populated extents
	pctTextBlock   = 35
	pctRecordBlock = 25 // the rest is noise
)

type blockKind uint8

const (
	kindZero blockKind = iota
	kindText
	kindRecords
	kindNoise
)

// Raw is deterministic pseudo-random disk content: the same seed and size
// always give the same bytes. It implements io.Reader, io.Seeker, io.WriterTo
// (sequential use, not concurrent) and io.ReaderAt (safe for concurrent use).
type Raw struct {
	seed uint64
	size int64

	off      int64  // Read/Seek position
	cached   int64  // index of the block in cache, -1 if none
	cache    []byte // genBlock bytes
	scratchs sync.Pool
}

// GenerateRaw returns size bytes of deterministic content for seed: roughly a
// third empty megabytes, the rest a mix of zero blocks, log-like text,
// structured records and incompressible noise, so that both zero-grain
// elision and compression matter when it is written as a VMDK. Generation
// runs at memory speed; nothing is stored.
func GenerateRaw(seed uint64, size int64) *Raw {
	return &Raw{seed: seed, size: max(size, 0), cached: -1}
}

// Size returns the content size in bytes.
func (r *Raw) Size() int64 { return r.size }

// ReadAt implements io.ReaderAt.
func (r *Raw) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("vmdk: negative offset")
	}
	if off >= r.size {
		return 0, io.EOF
	}
	var err error
	if rest := r.size - off; int64(len(p)) > rest {
		p, err = p[:rest], io.EOF
	}
	var scratch []byte
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		blk, in := pos/genBlock, int(pos%genBlock)
		blen := r.blockLen(blk)
		if in == 0 && len(p)-n >= blen {
			r.fill(p[n:n+blen], blk)
			n += blen
			continue
		}
		if scratch == nil {
			if s, ok := r.scratchs.Get().(*[]byte); ok {
				scratch = *s
			} else {
				scratch = make([]byte, genBlock)
			}
		}
		r.fill(scratch[:blen], blk)
		n += copy(p[n:], scratch[in:blen])
	}
	if scratch != nil {
		r.scratchs.Put(&scratch)
	}
	return n, err
}

// Read implements io.Reader.
func (r *Raw) Read(p []byte) (int, error) {
	if r.off >= r.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && r.off < r.size {
		blk, in := r.off/genBlock, int(r.off%genBlock)
		blen := r.blockLen(blk)
		var k int
		if in == 0 && len(p)-n >= blen {
			r.fill(p[n:n+blen], blk)
			k = blen
		} else {
			if r.cached != blk {
				if r.cache == nil {
					r.cache = make([]byte, genBlock)
				}
				r.fill(r.cache[:blen], blk)
				r.cached = blk
			}
			k = copy(p[n:], r.cache[in:blen])
		}
		n += k
		r.off += int64(k)
	}
	return n, nil
}

// WriteTo implements io.WriterTo, writing the content from the current
// position to the end.
func (r *Raw) WriteTo(w io.Writer) (int64, error) {
	buf := make([]byte, 4*genBlock)
	var total int64
	for {
		n, err := r.Read(buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// Seek implements io.Seeker.
func (r *Raw) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.size
	default:
		return 0, errors.New("vmdk: invalid whence")
	}
	if offset < 0 {
		return 0, errors.New("vmdk: negative position")
	}
	r.off = offset
	return offset, nil
}

func (r *Raw) blockLen(blk int64) int {
	return int(min(int64(genBlock), r.size-blk*genBlock))
}

func (r *Raw) kind(blk int64) blockKind {
	if mix(r.seed, uint64(blk/genExtentBlocks), 0xE47E)%100 < pctEmptyExtent {
		return kindZero
	}
	switch v := mix(r.seed, uint64(blk), 0xB10C) % 100; {
	case v < pctZeroBlock:
		return kindZero
	case v < pctZeroBlock+pctTextBlock:
		return kindText
	case v < pctZeroBlock+pctTextBlock+pctRecordBlock:
		return kindRecords
	default:
		return kindNoise
	}
}

// fill writes block blk (or its first len(dst) bytes) into dst.
func (r *Raw) fill(dst []byte, blk int64) {
	g := newPRNG(mix(r.seed, uint64(blk), 0xDA7A))
	switch r.kind(blk) {
	case kindZero:
		clear(dst)
	case kindText:
		fillText(dst, &g, blk)
	case kindRecords:
		fillRecords(dst, &g, blk)
	default:
		fillNoise(dst, &g)
	}
}

func fillNoise(dst []byte, g *prng) {
	i := 0
	for ; i+8 <= len(dst); i += 8 {
		v := g.next()
		dst[i], dst[i+1], dst[i+2], dst[i+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
		dst[i+4], dst[i+5], dst[i+6], dst[i+7] = byte(v>>32), byte(v>>40), byte(v>>48), byte(v>>56)
	}
	for v := g.next(); i < len(dst); i++ {
		dst[i] = byte(v)
		v >>= 8
	}
}

var (
	logHosts    = []string{"web-01", "web-02", "db-01", "cache-01", "batch-07", "edge-03"}
	logServices = []string{"nginx", "postgres", "sshd", "kernel", "systemd", "cron", "app", "redis"}
	logLevels   = []string{"INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"}
	logWords    = []string{
		"request", "completed", "started", "connection", "from", "user", "session",
		"opened", "closed", "checkpoint", "vacuum", "table", "index", "cache", "miss",
		"hit", "timeout", "retry", "backend", "upstream", "GET", "POST", "/api/v1/items",
		"/healthz", "/login", "status", "latency_ms", "bytes", "worker", "queue", "job",
		"deadline", "exceeded", "disk", "sync", "flush", "ok", "failed", "for", "the",
	}
)

// fillText writes syslog-like lines: timestamps, hosts, services and words
// from a small vocabulary, which deflate compresses several-fold.
func fillText(dst []byte, g *prng, blk int64) {
	line := make([]byte, 0, 256)
	ts := 1_700_000_000 + blk*37
	n := 0
	for n < len(dst) {
		v := g.next()
		ts += int64(v % 3)
		line = line[:0]
		line = strconv.AppendInt(line, ts, 10)
		line = append(line, '.')
		line = strconv.AppendUint(line, 100+v>>8%900, 10)
		line = append(line, ' ')
		line = append(line, logHosts[v>>20%uint64(len(logHosts))]...)
		line = append(line, ' ')
		line = append(line, logServices[v>>24%uint64(len(logServices))]...)
		line = append(line, '[')
		line = strconv.AppendUint(line, 1000+v>>28%30000, 10)
		line = append(line, "]: "...)
		line = append(line, logLevels[v>>44%uint64(len(logLevels))]...)
		for w := 3 + int(v>>48%9); w > 0; w-- {
			x := g.next()
			line = append(line, ' ')
			if x%5 == 0 {
				line = strconv.AppendUint(line, x>>8%100000, 10)
			} else {
				line = append(line, logWords[x>>8%uint64(len(logWords))]...)
			}
		}
		line = append(line, '\n')
		n += copy(dst[n:], line)
	}
}

// fillRecords writes 64-byte records with a counter, a key, small numbers
// and zero padding, like database or filesystem metadata pages.
func fillRecords(dst []byte, g *prng, blk int64) {
	const rec = 64
	var r [rec]byte
	id := uint64(blk) * (genBlock / rec)
	for n := 0; n < len(dst); n += rec {
		v := g.next()
		clear(r[:])
		putU64(r[0:], id)
		putU64(r[8:], v&0xffff_ffff)
		putU64(r[16:], v>>40)
		copy(r[24:], logWords[v>>32%uint64(len(logWords))])
		r[rec-1] = byte(id)
		copy(dst[n:], r[:])
		id++
	}
}

func putU64(b []byte, v uint64) {
	for i := range 8 {
		b[i] = byte(v >> (8 * i))
	}
}

// mix hashes a seed, an index and a domain tag into 64 well-mixed bits
// (splitmix64 finaliser).
func mix(seed, idx, tag uint64) uint64 {
	z := seed ^ bits.RotateLeft64(idx*0x9e3779b97f4a7c15, 17) ^ tag*0xd1b54a32d192ed03
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// prng is xoshiro256**: fast, and its output is fixed by this code rather
// than by a library, so generated content never changes under our feet.
type prng struct{ s [4]uint64 }

func newPRNG(seed uint64) prng {
	var g prng
	for i := range g.s {
		seed += 0x9e3779b97f4a7c15
		z := seed
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		g.s[i] = z ^ (z >> 31)
	}
	return g
}

func (g *prng) next() uint64 {
	s := &g.s
	result := bits.RotateLeft64(s[1]*5, 7) * 9
	t := s[1] << 17
	s[2] ^= s[0]
	s[3] ^= s[1]
	s[1] ^= s[2]
	s[0] ^= s[3]
	s[2] ^= t
	s[3] = bits.RotateLeft64(s[3], 45)
	return result
}
