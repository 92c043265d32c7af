package vmdk

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"strings"
	"sync"

	"github.com/hypersdk/hypersdk/disk"
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
	// including those in holes and past the end of a source shorter than the
	// capacity.
	ZeroGrains int64
	// GrainTables is the number of grain tables written.
	GrainTables int64
}

// ErrSourceTooLarge is returned when the source holds more bytes than the
// capacity given to WriteStreamOptimized.
var ErrSourceTooLarge = errors.New("vmdk: source is larger than the disk capacity")

// Write writes src as a monolithic streamOptimized VMDK to t: the header
// (grain directory "at the end"), the embedded descriptor naming o.Name
// ("disk.vmdk" when empty), every grain holding data deflate-compressed
// behind its marker, each grain table behind its marker right after its
// grains, the grain directory, the footer and the end-of-stream marker.
//
// Holes of src are never read and all-zero grains inside its extents are
// not stored; grain tables covering only such grains are left out. Grains
// are compressed on all CPUs and written in order, so the output depends
// only on the data and o. Memory stays flat whatever the disk size.
//
// Write only appends, through t.Write: it never calls t's WriteAt, Seek or
// Truncate, so t may be a pipe, an HTTP body or a hashing writer. o.Subformat
// must be "" or "streamOptimized"; o.AdapterType ("lsilogic") and
// o.HardwareVersion (4) fill the descriptor's DDB.
func Write(ctx context.Context, t disk.Target, src disk.Source, o disk.WriteOptions) error {
	if o.Subformat != "" && o.Subformat != "streamOptimized" {
		return fmt.Errorf("vmdk: cannot write subformat %q (this writer writes streamOptimized)", o.Subformat)
	}
	_, err := write(ctx, t, src, WriteOptions{FileName: o.Name, AdapterType: o.AdapterType, HardwareVersion: o.HardwareVersion})
	return err
}

// WriteStreamOptimized writes a monolithic streamOptimized VMDK of the given
// capacity (bytes, a multiple of 512) to w. Disk content is read from src
// once, sequentially; if src ends before capacity bytes the rest of the disk
// reads as zeros, and if it holds more than capacity bytes the write fails
// with ErrSourceTooLarge. w receives the file front to back (see Write).
func WriteStreamOptimized(w io.Writer, src io.Reader, capacity int64, opts WriteOptions) (Stats, error) {
	s := &paddedSource{r: src, size: capacity}
	st, err := write(context.Background(), w, s, opts)
	st.SourceBytes = s.read
	return st, err
}

// paddedSource is WriteStreamOptimized's source: src in extents of
// paddedChunk bytes while it lasts (its tail up to the capacity is then a
// hole, never read), then a check that src has nothing beyond the capacity.
type paddedSource struct {
	r     io.Reader
	size  int64
	read  int64 // bytes taken from r
	cur   disk.Extent
	pos   int64 // next disk offset Read fills
	ended bool  // r reached EOF: the rest of the current extent is zeros
}

const paddedChunk = 1 << 20

func (p *paddedSource) Size() int64 { return p.size }

func (p *paddedSource) NextExtent() (disk.Extent, error) {
	if !p.ended && p.cur.End() < p.size {
		p.cur = disk.Extent{Offset: p.cur.End(), Length: min(paddedChunk, p.size-p.cur.End())}
		p.pos = p.cur.Offset
		return p.cur, nil
	}
	if !p.ended {
		var one [1]byte
		n, err := io.ReadFull(p.r, one[:])
		if n > 0 {
			return disk.Extent{}, ErrSourceTooLarge
		}
		if err != io.EOF { //nolint:errorlint // io.ReadFull's own end
			return disk.Extent{}, fmt.Errorf("vmdk: read source at byte %d: %w", p.read, err)
		}
	}
	return disk.Extent{}, io.EOF
}

func (p *paddedSource) Read(b []byte) (int, error) {
	if p.pos >= p.cur.End() {
		return 0, io.EOF
	}
	b = b[:min(int64(len(b)), p.cur.End()-p.pos)]
	n := 0
	if !p.ended {
		var err error
		n, err = p.r.Read(b)
		p.read += int64(n)
		switch {
		case err == io.EOF: //nolint:errorlint // io.Reader's own end
			p.ended = true
		case err != nil:
			p.pos += int64(n)
			return n, fmt.Errorf("vmdk: read source at byte %d: %w", p.read, err)
		}
	}
	if p.ended && n == 0 {
		n = len(b)
		clear(b)
	}
	p.pos += int64(n)
	return n, nil
}

// grainJob carries one grain from the source through compression to the
// output.
type grainJob struct {
	index int64  // grain number
	raw   []byte // GrainSize bytes
	zero  bool
	out   bytes.Buffer // the zlib stream, when not zero
	err   error
	done  chan struct{} // one token when compressed
}

// write is Write and WriteStreamOptimized: the source is read on one
// goroutine, grains are compressed on opts.Concurrency goroutines, and the
// calling goroutine writes them in order, reusing a bounded set of jobs.
func write(ctx context.Context, w io.Writer, src disk.Source, opts WriteOptions) (Stats, error) {
	var st Stats
	capacity := src.Size()
	if capacity <= 0 || capacity%SectorSize != 0 || capacity > disk.MaxVirtualSize {
		return st, fmt.Errorf("vmdk: capacity %d is not a positive multiple of %d up to %d", capacity, SectorSize, disk.MaxVirtualSize)
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

	if err := sw.grains(ctx, src, opts); err != nil {
		return sw.st, err
	}
	numGrains := (capacity + GrainSize - 1) / GrainSize
	sw.st.ZeroGrains = numGrains - sw.st.Grains
	err := sw.finish()
	return sw.st, err
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
		var zeros [SectorSize]byte
		s.write(zeros[:SectorSize-r])
	}
}

func (s *streamWriter) sector() int64 { return s.pos / SectorSize }

// grains runs the read → compress → write pipeline over src.
func (s *streamWriter) grains(ctx context.Context, src disk.Source, opts WriteOptions) error {
	// Enough jobs in flight to keep every compressor busy while the
	// writer waits for the oldest.
	jobs := 8 * opts.Concurrency
	free := make(chan *grainJob, jobs)
	for range jobs {
		free <- &grainJob{raw: make([]byte, GrainSize), done: make(chan struct{}, 1)}
	}
	work := make(chan *grainJob, jobs)
	order := make(chan *grainJob, jobs)
	stop := make(chan struct{})

	var wg sync.WaitGroup
	for range opts.Concurrency {
		zw, err := zlib.NewWriterLevel(io.Discard, opts.Level)
		if err != nil {
			return fmt.Errorf("vmdk: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range work {
				j.zero, j.err = disk.IsZero(j.raw), nil
				if !j.zero {
					j.out.Reset()
					zw.Reset(&j.out)
					if _, err := zw.Write(j.raw); err != nil {
						j.err = err
					} else if err := zw.Close(); err != nil {
						j.err = err
					}
				}
				j.done <- struct{}{}
			}
		}()
	}

	var readErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(order)
		defer close(work)
		readErr = readGrains(ctx, src, free, stop, func(j *grainJob) {
			work <- j
			order <- j
		})
	}()

	var err error
	for j := range order {
		<-j.done
		if err == nil {
			switch {
			case j.err != nil:
				err = fmt.Errorf("vmdk: compress grain %d: %w", j.index, j.err)
			case !j.zero:
				err = s.writeGrain(j)
			}
			if err == nil && s.err != nil {
				err = fmt.Errorf("vmdk: write: %w", s.err)
			}
			if err != nil {
				close(stop) // the reader stops; the jobs in flight drain
			}
		}
		free <- j
	}
	wg.Wait()
	if err != nil {
		return err
	}
	return readErr
}

// readGrains reads src's extents into grains, handing each grain touched
// by an extent to send; grains no extent touches are never read. It
// returns when src is done, on the first error, or when stop closes.
func readGrains(ctx context.Context, src disk.Source, free chan *grainJob, stop chan struct{}, send func(*grainJob)) error {
	size := src.Size()
	var (
		j    *grainJob // the grain being filled
		prev int64     // end of the previous extent
	)
	flush := func() {
		if j != nil {
			send(j)
			j = nil
		}
	}
	for {
		e, err := src.NextExtent()
		if err == io.EOF { //nolint:errorlint // the Source's own end
			flush()
			return nil
		}
		if err != nil {
			return err
		}
		if e.Offset < prev || e.Length <= 0 || e.Offset > size-e.Length {
			return fmt.Errorf("vmdk: source extent [%d, +%d) is out of order or outside the %d-byte disk", e.Offset, e.Length, size)
		}
		prev = e.End()
		for off := e.Offset; off < e.End(); {
			g := off / GrainSize
			if j != nil && j.index != g {
				flush()
			}
			if j == nil {
				if err := ctx.Err(); err != nil {
					return err
				}
				select {
				case j = <-free:
				case <-stop:
					return nil
				}
				j.index = g
				clear(j.raw)
			}
			in := off - g*GrainSize
			n := min(e.End()-off, GrainSize-in)
			if _, err := io.ReadFull(src, j.raw[in:in+n]); err != nil {
				if err == io.EOF { //nolint:errorlint // io.ReadFull's own end
					err = io.ErrUnexpectedEOF
				}
				return fmt.Errorf("vmdk: read source at disk byte %d: %w", off, err)
			}
			off += n
		}
	}
}

func (s *streamWriter) writeGrain(j *grainJob) error {
	gti := j.index / gtesPerGT
	if gti != s.curGT {
		s.flushGT()
		s.curGT = gti
	}
	sec := s.sector()
	if sec > math.MaxUint32 {
		return errors.New("vmdk: image grew past the 2 TiB a grain table entry can address")
	}
	s.gt[j.index%gtesPerGT] = uint32(sec)

	var m [grainMarkerSize]byte
	binary.LittleEndian.PutUint64(m[0:], uint64(j.index*GrainSize/SectorSize))
	binary.LittleEndian.PutUint32(m[8:], uint32(j.out.Len()))
	s.write(m[:])
	s.write(j.out.Bytes())
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
	s.write(metadataMarker(gtBytes/SectorSize, markerGT))
	s.gd[s.curGT] = uint32(s.sector())
	var b [gtBytes]byte
	for i, e := range s.gt {
		binary.LittleEndian.PutUint32(b[i*4:], e)
	}
	s.write(b[:])
	s.gt = [gtesPerGT]uint32{}
	s.curGT = -1
	s.st.GrainTables++
}

// finish writes the last grain table, the grain directory, the footer and the
// end-of-stream marker.
func (s *streamWriter) finish() error {
	s.flushGT()

	gdSectors := sectorsFor(s.numGTs * 4)
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

// IsZero reports whether b holds only zero bytes (disk.IsZero, kept for
// callers of this package).
func IsZero(b []byte) bool { return disk.IsZero(b) }

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
