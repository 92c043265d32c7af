package vmdk

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"strings"
	"sync"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/zlib"
)

// WriteOptions tunes WriteStreamOptimized. The zero value is ready to use.
type WriteOptions struct {
	// FileName is the extent file name recorded in the embedded descriptor
	// ("disk.vmdk" when empty). vSphere records the name the file is served as,
	// for example "disk-0.vmdk"; readers do not use it for a monolithic file.
	FileName string

	// AdapterType is ddb.adapterType: "lsilogic" (the default), "buslogic",
	// "ide" or "legacyESX". It also selects the legacy CHS geometry.
	AdapterType string

	// HardwareVersion is ddb.virtualHWVersion; 0 means 4, which every VMware
	// product and qemu accept.
	HardwareVersion int

	// CID is the content ID of the descriptor. 0 derives a deterministic value
	// from the capacity and FileName, so equal inputs give equal bytes.
	CID uint32

	// Level is the deflate level, 1 (fastest, the default) to 9 (smallest).
	Level int

	// Concurrency bounds the goroutines that compress grains; 0 means
	// GOMAXPROCS. Output does not depend on it.
	Concurrency int
}

// Stats describes one WriteStreamOptimized run.
type Stats struct {
	// Size is the number of bytes written, the size of the VMDK file.
	Size int64
	// SourceBytes is the number of bytes read from the source.
	SourceBytes int64
	// Grains is the number of grains stored (compressed).
	Grains int64
	// ZeroGrains is the number of grains omitted because they read as zero,
	// including those past the end of a source shorter than the capacity.
	ZeroGrains int64
	// GrainTables is the number of grain tables written.
	GrainTables int64
}

// ErrSourceTooLarge is returned when the source holds more bytes than the
// capacity given to WriteStreamOptimized.
var ErrSourceTooLarge = errors.New("vmdk: source is larger than the disk capacity")

// WriteStreamOptimized writes a monolithic streamOptimized VMDK of the given
// capacity (bytes, a multiple of 512) to w. Disk content is read from src
// once, sequentially; if src ends before capacity bytes the rest of the disk
// reads as zeros, and if it holds more than capacity bytes the write fails
// with ErrSourceTooLarge. All-zero grains are not stored. w receives the file
// front to back and is never seeked, so it can be a pipe or an HTTP body.
func WriteStreamOptimized(w io.Writer, src io.Reader, capacity int64, opts WriteOptions) (Stats, error) {
	var st Stats
	if capacity <= 0 || capacity%SectorSize != 0 {
		return st, fmt.Errorf("vmdk: capacity %d is not a positive multiple of %d", capacity, SectorSize)
	}
	if opts.Level == 0 {
		opts.Level = flate.BestSpeed
	}
	if opts.Level < flate.BestSpeed || opts.Level > flate.BestCompression {
		return st, fmt.Errorf("vmdk: deflate level %d out of range 1..9", opts.Level)
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = runtime.GOMAXPROCS(0)
	}
	if opts.FileName == "" {
		opts.FileName = "disk.vmdk"
	}
	if opts.AdapterType == "" {
		opts.AdapterType = "lsilogic"
	}
	if opts.HardwareVersion == 0 {
		opts.HardwareVersion = 4
	}
	if opts.CID == 0 {
		opts.CID = deriveCID(capacity, opts.FileName)
	}

	desc := descriptorText(capacity, opts)
	if len(desc) >= descriptorSectors*SectorSize {
		return st, fmt.Errorf("vmdk: descriptor too long (%d bytes)", len(desc))
	}

	sw := &streamWriter{
		w:        bufio.NewWriterSize(w, 1<<20),
		capacity: capacity,
		numGTs:   (capacity + GrainSize*gtesPerGT - 1) / (GrainSize * gtesPerGT),
		curGT:    -1,
	}
	sw.gd = make([]uint32, sw.numGTs)
	sw.hdr = header{
		Version:           versionStream,
		Flags:             flagValidNewlineTest | flagCompressed | flagMarkers,
		Capacity:          uint64(capacity / SectorSize),
		GrainSize:         GrainSize / SectorSize,
		DescriptorOffset:  1,
		DescriptorSize:    descriptorSectors,
		NumGTEsPerGT:      gtesPerGT,
		GDOffset:          gdAtEnd,
		Overhead:          1 + descriptorSectors,
		CompressAlgorithm: compressionDeflate,
	}

	sw.write(sw.hdr.marshal())
	area := make([]byte, descriptorSectors*SectorSize)
	copy(area, desc)
	sw.write(area)

	if err := sw.grains(src, opts); err != nil {
		return sw.st, err
	}
	if err := sw.finish(); err != nil {
		return sw.st, err
	}
	return sw.st, nil
}

// streamWriter holds the state of one conversion.
type streamWriter struct {
	w        *bufio.Writer
	err      error
	pos      int64 // bytes written so far
	capacity int64
	hdr      header
	st       Stats

	numGTs int64
	gd     []uint32 // sector of each grain table, 0 when omitted
	curGT  int64    // index of the grain table being filled, -1 before the first grain
	gt     [gtesPerGT]uint32
}

func (s *streamWriter) write(b []byte) {
	if s.err != nil {
		return
	}
	n, err := s.w.Write(b)
	s.pos += int64(n)
	s.err = err
}

// pad writes zeros up to the next sector boundary.
func (s *streamWriter) pad() {
	if r := s.pos % SectorSize; r != 0 {
		s.write(make([]byte, SectorSize-r))
	}
}

func (s *streamWriter) sector() int64 { return s.pos / SectorSize }

// slot carries one grain through read, compression and write.
type slot struct {
	grain int64 // index of the grain in the disk
	zero  bool
	raw   []byte // GrainSize bytes
	out   bytes.Buffer
}

// grains reads, compresses and writes every grain of the source.
func (s *streamWriter) grains(src io.Reader, opts WriteOptions) error {
	numGrains := (s.capacity + GrainSize - 1) / GrainSize
	batch := make([]*slot, 4*opts.Concurrency)
	for i := range batch {
		batch[i] = &slot{raw: make([]byte, GrainSize)}
	}
	zw := make([]*zlib.Writer, opts.Concurrency)
	for i := range zw {
		var err error
		if zw[i], err = zlib.NewWriterLevel(io.Discard, opts.Level); err != nil {
			return fmt.Errorf("vmdk: %w", err)
		}
	}

	var next int64 // next grain to read
	srcDone := false
	for !srcDone && next < numGrains {
		// Read a batch of grains, in order.
		k := 0
		for k < len(batch) && next < numGrains && !srcDone {
			sl := batch[k]
			want := min(int64(GrainSize), s.capacity-next*GrainSize)
			n, err := io.ReadFull(src, sl.raw[:want])
			s.st.SourceBytes += int64(n)
			switch {
			case err == io.EOF:
				srcDone = true
				continue
			case err == io.ErrUnexpectedEOF:
				srcDone = true
			case err != nil:
				return fmt.Errorf("vmdk: read source at byte %d: %w", s.st.SourceBytes, err)
			}
			clear(sl.raw[n:])
			sl.grain = next
			sl.zero = IsZero(sl.raw)
			next++
			k++
		}
		if k == 0 {
			break
		}
		if err := compressBatch(batch[:k], zw); err != nil {
			return err
		}
		for _, sl := range batch[:k] {
			if sl.zero {
				s.st.ZeroGrains++
				continue
			}
			if err := s.writeGrain(sl); err != nil {
				return err
			}
		}
		if s.err != nil {
			return fmt.Errorf("vmdk: write: %w", s.err)
		}
	}

	if !srcDone {
		// The whole capacity was read: the source must be exhausted.
		var one [1]byte
		n, err := io.ReadFull(src, one[:])
		if n > 0 {
			return ErrSourceTooLarge
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("vmdk: read source at byte %d: %w", s.st.SourceBytes, err)
		}
	}
	s.st.ZeroGrains += numGrains - next
	return nil
}

// compressBatch deflates the non-zero grains of a batch on len(zw) goroutines.
func compressBatch(batch []*slot, zw []*zlib.Writer) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		next int
		ferr error
	)
	take := func() *slot {
		mu.Lock()
		defer mu.Unlock()
		for next < len(batch) {
			sl := batch[next]
			next++
			if !sl.zero {
				return sl
			}
		}
		return nil
	}
	for _, z := range zw {
		wg.Add(1)
		go func(z *zlib.Writer) {
			defer wg.Done()
			for sl := take(); sl != nil; sl = take() {
				sl.out.Reset()
				z.Reset(&sl.out)
				_, err := z.Write(sl.raw)
				if err == nil {
					err = z.Close()
				}
				if err != nil {
					mu.Lock()
					ferr = fmt.Errorf("vmdk: compress grain %d: %w", sl.grain, err)
					mu.Unlock()
				}
			}
		}(z)
	}
	wg.Wait()
	return ferr
}

func (s *streamWriter) writeGrain(sl *slot) error {
	gti := sl.grain / gtesPerGT
	if gti != s.curGT {
		s.flushGT()
		s.curGT = gti
	}
	sec := s.sector()
	if sec > math.MaxUint32 {
		return errors.New("vmdk: image grew past the 2 TiB a grain table entry can address")
	}
	s.gt[sl.grain%gtesPerGT] = uint32(sec)

	var m [grainMarkerSize]byte
	binary.LittleEndian.PutUint64(m[0:], uint64(sl.grain*GrainSize/SectorSize))
	binary.LittleEndian.PutUint32(m[8:], uint32(sl.out.Len()))
	s.write(m[:])
	s.write(sl.out.Bytes())
	s.pad()
	s.st.Grains++
	return nil
}

// flushGT writes the grain table being filled, behind its marker, and records
// it in the grain directory.
func (s *streamWriter) flushGT() {
	if s.curGT < 0 {
		return
	}
	const gtSectors = gtesPerGT * 4 / SectorSize
	s.write(metadataMarker(gtSectors, markerGT))
	s.gd[s.curGT] = uint32(s.sector())
	b := make([]byte, gtesPerGT*4)
	for i, e := range s.gt {
		binary.LittleEndian.PutUint32(b[i*4:], e)
	}
	s.write(b)
	s.gt = [gtesPerGT]uint32{}
	s.curGT = -1
	s.st.GrainTables++
}

// finish writes the last grain table, the grain directory, the footer and the
// end-of-stream marker.
func (s *streamWriter) finish() error {
	s.flushGT()

	gdBytes := s.numGTs * 4
	gdSectors := sectorsFor(gdBytes)
	s.write(metadataMarker(uint64(gdSectors), markerGD))
	gdOffset := s.sector()
	b := make([]byte, gdSectors*SectorSize)
	for i, e := range s.gd {
		binary.LittleEndian.PutUint32(b[i*4:], e)
	}
	s.write(b)

	footer := s.hdr
	footer.GDOffset = uint64(gdOffset)
	s.write(metadataMarker(1, markerFooter))
	s.write(footer.marshal())
	s.write(metadataMarker(0, markerEOS))

	if s.err == nil {
		s.err = s.w.Flush()
	}
	s.st.Size = s.pos
	if s.err != nil {
		return fmt.Errorf("vmdk: write: %w", s.err)
	}
	return nil
}

// zeroGrain is a read-only reference for IsZero.
var zeroGrain [GrainSize]byte

// IsZero reports whether b holds only zero bytes: a grain a sparse image
// omits, a hole a raw image seeks over.
func IsZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeroGrain))
		if !bytes.Equal(b[:n], zeroGrain[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

func deriveCID(capacity int64, name string) uint32 {
	h := sha256.Sum256(fmt.Appendf(nil, "%d\x00%s", capacity, name))
	cid := binary.LittleEndian.Uint32(h[:4])
	if cid == 0 || cid == math.MaxUint32 {
		cid = 0xfffffffe
	}
	return cid
}

// descriptorText renders the embedded descriptor of a streamOptimized disk.
func descriptorText(capacity int64, o WriteOptions) string {
	sectors := capacity / SectorSize
	heads, maxCyl := int64(255), int64(65535)
	if o.AdapterType == "ide" {
		heads, maxCyl = 16, 16383
	}
	cyl := min(max(sectors/(heads*63), 1), maxCyl)
	long := sha256.Sum256(fmt.Appendf(nil, "%08x\x00%d\x00%s", o.CID, capacity, o.FileName))

	var b strings.Builder
	fmt.Fprintf(&b, "# Disk DescriptorFile\n")
	fmt.Fprintf(&b, "version=1\n")
	fmt.Fprintf(&b, "encoding=\"UTF-8\"\n")
	fmt.Fprintf(&b, "CID=%08x\n", o.CID)
	fmt.Fprintf(&b, "parentCID=ffffffff\n")
	fmt.Fprintf(&b, "createType=\"streamOptimized\"\n\n")
	fmt.Fprintf(&b, "# Extent description\n")
	fmt.Fprintf(&b, "RW %d SPARSE %q\n\n", sectors, o.FileName)
	fmt.Fprintf(&b, "# The Disk Data Base\n#DDB\n\n")
	fmt.Fprintf(&b, "ddb.adapterType = %q\n", o.AdapterType)
	fmt.Fprintf(&b, "ddb.geometry.cylinders = \"%d\"\n", cyl)
	fmt.Fprintf(&b, "ddb.geometry.heads = \"%d\"\n", heads)
	fmt.Fprintf(&b, "ddb.geometry.sectors = \"63\"\n")
	fmt.Fprintf(&b, "ddb.longContentID = \"%x\"\n", long[:16])
	fmt.Fprintf(&b, "ddb.virtualHWVersion = \"%d\"\n", o.HardwareVersion)
	return b.String()
}
