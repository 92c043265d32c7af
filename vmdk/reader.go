package vmdk

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
)

// Info describes an opened sparse extent.
type Info struct {
	// CreateType is the createType of the embedded descriptor, for example
	// "streamOptimized" or "monolithicSparse".
	CreateType string
	// Capacity is the virtual disk size in bytes.
	Capacity int64
	// GrainSize is the grain size in bytes.
	GrainSize int64
	// Compressed is true when grains are deflate-compressed behind markers.
	Compressed bool
	// Version and Flags are the raw header fields.
	Version uint32
	Flags   uint32
	// Descriptor is the embedded descriptor text.
	Descriptor string
}

// Image is a sparse VMDK extent opened for reading. It implements
// io.ReaderAt over the virtual disk (Capacity bytes); unallocated grains read
// as zeros. It is safe for concurrent use.
type Image struct {
	Info

	r     io.ReaderAt
	size  int64
	hdr   header
	gd    []uint32
	gtLen int64 // bytes per grain table

	mu        sync.Mutex
	gts       map[int64][]uint32
	lastGrain int64
	lastData  []byte
}

// Open parses the header (or, when the header defers to it, the footer), the
// embedded descriptor and the grain directory of the sparse extent in r,
// which is size bytes long.
func Open(r io.ReaderAt, size int64) (*Image, error) {
	b := make([]byte, SectorSize)
	if _, err := r.ReadAt(b, 0); err != nil {
		return nil, fmt.Errorf("vmdk: read header: %w", err)
	}
	h, err := parseHeader(b)
	if err != nil {
		return nil, err
	}
	if h.GDOffset == gdAtEnd {
		if size < 3*SectorSize {
			return nil, errors.New("vmdk: header defers to a footer but the file is too short")
		}
		tail := make([]byte, 3*SectorSize)
		if _, err := r.ReadAt(tail, size-3*SectorSize); err != nil {
			return nil, fmt.Errorf("vmdk: read footer: %w", err)
		}
		le := binary.LittleEndian
		if le.Uint32(tail[12:]) != markerFooter || le.Uint32(tail[8:]) != 0 {
			return nil, errors.New("vmdk: footer marker missing")
		}
		eos := tail[2*SectorSize:]
		if le.Uint64(eos) != 0 || le.Uint32(eos[8:]) != 0 || le.Uint32(eos[12:]) != markerEOS {
			return nil, errors.New("vmdk: end-of-stream marker missing")
		}
		if h, err = parseHeader(tail[SectorSize : 2*SectorSize]); err != nil {
			return nil, fmt.Errorf("vmdk: footer: %w", err)
		}
		if h.GDOffset == gdAtEnd {
			return nil, errors.New("vmdk: footer has no grain directory offset")
		}
	}
	if h.GrainSize == 0 || h.GrainSize&(h.GrainSize-1) != 0 || h.GrainSize > 1<<16 {
		return nil, fmt.Errorf("vmdk: invalid grain size %d sectors", h.GrainSize)
	}
	if h.NumGTEsPerGT == 0 || h.NumGTEsPerGT > 1<<16 {
		return nil, fmt.Errorf("vmdk: invalid grain table size %d", h.NumGTEsPerGT)
	}
	im := &Image{
		r:         r,
		size:      size,
		hdr:       h,
		gts:       make(map[int64][]uint32),
		lastGrain: -1,
		gtLen:     int64(h.NumGTEsPerGT) * 4,
	}
	im.Version = h.Version
	im.Flags = h.Flags
	im.Capacity = int64(h.Capacity) * SectorSize
	im.GrainSize = int64(h.GrainSize) * SectorSize
	im.Compressed = h.Flags&flagCompressed != 0
	if im.Compressed && h.CompressAlgorithm != compressionDeflate {
		return nil, fmt.Errorf("vmdk: unsupported compression algorithm %d", h.CompressAlgorithm)
	}

	if h.DescriptorOffset > 0 && h.DescriptorSize > 0 {
		d := make([]byte, h.DescriptorSize*SectorSize)
		n, err := r.ReadAt(d, int64(h.DescriptorOffset)*SectorSize)
		if err != nil && !(errors.Is(err, io.EOF) && n > 0) {
			return nil, fmt.Errorf("vmdk: read descriptor: %w", err)
		}
		d = d[:n]
		if i := bytes.IndexByte(d, 0); i >= 0 {
			d = d[:i]
		}
		im.Descriptor = string(d)
		im.CreateType = descriptorValue(im.Descriptor, "createType")
	}

	coverage := int64(h.NumGTEsPerGT) * int64(h.GrainSize)
	numGTs := (int64(h.Capacity) + coverage - 1) / coverage
	gd := make([]byte, numGTs*4)
	if _, err := r.ReadAt(gd, int64(h.GDOffset)*SectorSize); err != nil {
		return nil, fmt.Errorf("vmdk: read grain directory: %w", err)
	}
	im.gd = make([]uint32, numGTs)
	for i := range im.gd {
		im.gd[i] = binary.LittleEndian.Uint32(gd[i*4:])
	}
	return im, nil
}

// descriptorValue returns the unquoted value of key in descriptor text.
func descriptorValue(desc, key string) string {
	sc := bufio.NewScanner(strings.NewReader(desc))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), key) {
			return strings.Trim(strings.TrimSpace(v), `"`)
		}
	}
	return ""
}

// grainTable returns grain table gti, or nil when it is not allocated.
// im.mu must be held.
func (im *Image) grainTable(gti int64) ([]uint32, error) {
	if gt, ok := im.gts[gti]; ok {
		return gt, nil
	}
	if im.gd[gti] == 0 {
		return nil, nil
	}
	b := make([]byte, im.gtLen)
	if _, err := im.r.ReadAt(b, int64(im.gd[gti])*SectorSize); err != nil {
		return nil, fmt.Errorf("vmdk: read grain table %d: %w", gti, err)
	}
	gt := make([]uint32, len(b)/4)
	for i := range gt {
		gt[i] = binary.LittleEndian.Uint32(b[i*4:])
	}
	im.gts[gti] = gt
	return gt, nil
}

// grain returns the content of grain g (GrainSize bytes), or nil when the
// grain reads as zeros. The returned slice must not be modified.
// im.mu must be held.
func (im *Image) grain(g int64) ([]byte, error) {
	if g == im.lastGrain {
		return im.lastData, nil
	}
	per := int64(im.hdr.NumGTEsPerGT)
	gt, err := im.grainTable(g / per)
	if err != nil || gt == nil {
		return nil, err
	}
	gte := gt[g%per]
	if gte == 0 || (gte == 1 && im.Flags&flagZeroedGrainGTE != 0) {
		return nil, nil
	}
	off := int64(gte) * SectorSize
	data := make([]byte, im.GrainSize)
	if !im.Compressed {
		if _, err := im.r.ReadAt(data, off); err != nil {
			return nil, fmt.Errorf("vmdk: read grain %d: %w", g, err)
		}
	} else {
		var m [grainMarkerSize]byte
		if _, err := im.r.ReadAt(m[:], off); err != nil {
			return nil, fmt.Errorf("vmdk: read marker of grain %d: %w", g, err)
		}
		lba := binary.LittleEndian.Uint64(m[0:])
		n := int64(binary.LittleEndian.Uint32(m[8:]))
		if want := uint64(g) * im.hdr.GrainSize; lba != want {
			return nil, fmt.Errorf("vmdk: grain %d: marker says LBA %d, want %d", g, lba, want)
		}
		if n == 0 || off+grainMarkerSize+n > im.size {
			return nil, fmt.Errorf("vmdk: grain %d: compressed size %d out of bounds", g, n)
		}
		comp := make([]byte, n)
		if _, err := im.r.ReadAt(comp, off+grainMarkerSize); err != nil {
			return nil, fmt.Errorf("vmdk: read grain %d: %w", g, err)
		}
		zr, err := zlib.NewReader(bytes.NewReader(comp))
		if err != nil {
			return nil, fmt.Errorf("vmdk: grain %d: %w", g, err)
		}
		k, err := io.ReadFull(zr, data)
		if err != nil && !(errors.Is(err, io.ErrUnexpectedEOF) && g*im.GrainSize+int64(k) >= im.Capacity) {
			return nil, fmt.Errorf("vmdk: inflate grain %d: %w", g, err)
		}
		clear(data[k:])
	}
	im.lastGrain, im.lastData = g, data
	return data, nil
}

// ReadAt reads virtual disk bytes. Reads past Capacity return io.EOF.
func (im *Image) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("vmdk: negative offset")
	}
	if off >= im.Capacity {
		return 0, io.EOF
	}
	var err error
	if rest := im.Capacity - off; int64(len(p)) > rest {
		p, err = p[:rest], io.EOF
	}
	im.mu.Lock()
	defer im.mu.Unlock()
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		g, in := pos/im.GrainSize, pos%im.GrainSize
		data, gerr := im.grain(g)
		if gerr != nil {
			return n, gerr
		}
		k := min(len(p)-n, int(im.GrainSize-in))
		if data == nil {
			clear(p[n : n+k])
		} else {
			copy(p[n:n+k], data[in:])
		}
		n += k
	}
	return n, err
}

// Verify reads every allocated grain, checking its marker and that it
// inflates, and returns how many grains are allocated. It is what
// "qemu-img check" does for the grain layer.
func (im *Image) Verify() (grains int64, err error) {
	im.mu.Lock()
	defer im.mu.Unlock()
	numGrains := (im.Capacity + im.GrainSize - 1) / im.GrainSize
	for g := int64(0); g < numGrains; g++ {
		data, err := im.grain(g)
		if err != nil {
			return grains, err
		}
		if data != nil {
			grains++
		}
	}
	return grains, nil
}
