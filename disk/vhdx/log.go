package vhdx

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/hypersdk/hypersdk/disk"
)

// maxFileSize bounds every file offset the log may write to: nothing in a
// VHDX of the largest virtual size lies beyond it.
const maxFileSize = 2 * disk.MaxVirtualSize

// logEntry is a valid log entry (MS-VHDX 2.3.1) as the replay needs it.
type logEntry struct {
	at       int64 // offset in the log
	length   int64
	tail     int64
	sequence uint64
	flushed  int64 // FlushedFileOffset
	last     int64 // LastFileOffset
	writes   []logWrite
}

// logWrite is one descriptor: a 4 KiB sector of data, or a run of zeros.
type logWrite struct {
	offset int64
	length int64
	data   []byte // nil for a zero descriptor
}

// logReader reads the circular log of one file under a work bound: a
// hostile log could otherwise make the search for the active sequence
// checksum the whole log once per sector.
type logReader struct {
	f      *disk.File
	h      header
	offset int64
	length int64
	budget int64 // bytes the search may still read
}

// read fills p from log offset at, wrapping at the end of the log.
func (l *logReader) read(p []byte, at int64) error {
	if int64(len(p)) > l.budget {
		return errLogBudget
	}
	l.budget -= int64(len(p))
	for done := 0; done < len(p); {
		pos := (at + int64(done)) % l.length
		n := min(int64(len(p)-done), l.length-pos)
		if _, err := l.f.R.ReadAt(p[done:done+int(n)], l.offset+pos); err != nil {
			return err
		}
		done += int(n)
	}
	return nil
}

var errLogBudget = errors.New("log scan exceeded its work bound")

// entryAt returns the log entry starting at log offset at if it is valid in
// every field the spec names (signature, LogGuid, lengths, descriptors,
// data sector sequence numbers, checksum), or nil.
func (l *logReader) entryAt(at int64) (*logEntry, error) {
	le := binary.LittleEndian
	first := make([]byte, logSectorSize)
	if err := l.read(first, at); err != nil {
		return nil, err
	}
	if !bytes.Equal(first[:4], sigLogEntry) || !bytes.Equal(first[32:48], l.h.logGUID[:]) {
		return nil, nil
	}
	e := &logEntry{
		at:       at,
		length:   int64(le.Uint32(first[8:])),
		tail:     int64(le.Uint32(first[12:])),
		sequence: le.Uint64(first[16:]),
		flushed:  int64(le.Uint64(first[48:]) & (1<<62 - 1)),
		last:     int64(le.Uint64(first[56:]) & (1<<62 - 1)),
	}
	count := int64(le.Uint32(first[24:]))
	descSectors := (count + 2 + 127) / 128 // the header takes two descriptor slots
	if e.length < logSectorSize || e.length%logSectorSize != 0 || e.length > l.length ||
		e.tail%logSectorSize != 0 || e.tail >= l.length || e.sequence == 0 ||
		le.Uint64(first[48:])%mib != 0 || le.Uint64(first[56:])%mib != 0 ||
		le.Uint64(first[48:]) > uint64(maxFileSize) || le.Uint64(first[56:]) > uint64(maxFileSize) ||
		descSectors*logSectorSize > e.length {
		return nil, nil
	}
	b := make([]byte, e.length)
	copy(b, first)
	if err := l.read(b[logSectorSize:], at+logSectorSize); err != nil {
		return nil, err
	}
	if !validChecksum(b, 4) {
		return nil, nil
	}
	dataSector := descSectors * logSectorSize
	for i := range count {
		d := b[64+32*i:]
		if le.Uint64(d[24:]) != e.sequence {
			return nil, nil
		}
		off := int64(le.Uint64(d[16:]) & (1<<62 - 1))
		if le.Uint64(d[16:]) > uint64(maxFileSize) || off%logSectorSize != 0 {
			return nil, nil
		}
		switch {
		case bytes.Equal(d[:4], sigZeroDesc):
			n := le.Uint64(d[8:])
			if n%logSectorSize != 0 || n > uint64(maxFileSize) || off+int64(n) > maxFileSize {
				return nil, nil
			}
			if n > 0 {
				e.writes = append(e.writes, logWrite{offset: off, length: int64(n)})
			}
		case bytes.Equal(d[:4], sigDataDesc):
			if dataSector+logSectorSize > e.length {
				return nil, nil
			}
			s := b[dataSector : dataSector+logSectorSize]
			if !bytes.Equal(s[:4], sigData) ||
				uint64(le.Uint32(s[4:]))<<32|uint64(le.Uint32(s[4092:])) != e.sequence {
				return nil, nil
			}
			// The sector's first 8 and last 4 bytes travel in the descriptor.
			data := make([]byte, logSectorSize)
			copy(data[:8], d[8:16])
			copy(data[8:4092], s[8:4092])
			copy(data[4092:], d[4:8])
			e.writes = append(e.writes, logWrite{offset: off, length: logSectorSize, data: data})
			dataSector += logSectorSize
		default:
			return nil, nil
		}
	}
	if dataSector != e.length { // one data sector per data descriptor, no more
		return nil, nil
	}
	return e, nil
}

// activeSequence finds the newest valid and complete log sequence by the
// search MS-VHDX 2.3.3 describes, and returns its entries from the tail
// entry to the head entry, or nil when there is none.
func (l *logReader) activeSequence() ([]*logEntry, error) {
	var candidate []*logEntry
	tail, oldTail := int64(0), int64(0)
	for {
		var current []*logEntry
		pos, used := tail, int64(0)
		for {
			e, err := l.entryAt(pos)
			if err != nil {
				return nil, err
			}
			if e == nil || used+e.length > l.length ||
				(len(current) > 0 && e.sequence != current[len(current)-1].sequence+1) {
				break
			}
			current = append(current, e)
			used += e.length
			pos = (pos + e.length) % l.length
		}
		valid := false
		if len(current) > 0 {
			head := current[len(current)-1]
			for i, e := range current {
				if e.at == head.tail {
					valid = true
					if candidate == nil || head.sequence > candidate[len(candidate)-1].sequence {
						candidate = current[i:]
					}
					break
				}
			}
		}
		if valid {
			tail = pos
		} else {
			tail = (tail + logSectorSize) % l.length
		}
		if tail <= oldTail {
			return candidate, nil
		}
		oldTail = tail
	}
}

// replayLog replays the log of f read-only: it returns a view of the file
// as the replay would leave it, holding in memory only the sectors the
// active sequence writes (bounded by the log's length).
func replayLog(f *disk.File, h header) (*logView, error) {
	l := &logReader{f: f, h: h, offset: int64(h.logOffset), length: int64(h.logLength)}
	// Enough to checksum the log a few dozen times: far beyond what a log
	// written by Hyper-V or qemu needs, bounded for one that is not.
	l.budget = 32*l.length + 64*mib
	seq, err := l.activeSequence()
	if errors.Is(err, errLogBudget) {
		return nil, disk.Errorf(f, disk.VHDX, "log", l.offset, "%v", err)
	}
	if err != nil {
		return nil, &disk.FormatError{File: f.Name, Format: disk.VHDX, Structure: "log", Offset: l.offset, Problem: "cannot read", Err: err}
	}
	if len(seq) == 0 {
		return nil, disk.Errorf(f, disk.VHDX, "log", l.offset,
			"the header names a log to replay (LogGuid %s) but the log holds no valid entry sequence; the file is corrupt", h.logGUID)
	}
	head := seq[len(seq)-1]
	if f.Size < head.flushed {
		return nil, disk.Errorf(f, disk.VHDX, fmt.Sprintf("log entry %d", head.sequence), l.offset+head.at,
			"the file is %d bytes but the log says it was at least %d when written: the file is truncated", f.Size, head.flushed)
	}
	v := &logView{r: f.R, fileSize: f.Size, size: max(f.Size, head.last), sectors: map[int64][]byte{}}
	// Zero runs after data sectors cost a pass over the sectors each; a
	// log written to be expensive is refused rather than replayed slowly.
	work := 0
	for _, e := range seq {
		for _, w := range e.writes {
			if work += v.apply(w); work > maxReplayWork {
				return nil, disk.Errorf(f, disk.VHDX, fmt.Sprintf("log entry %d", e.sequence), l.offset+e.at,
					"the log interleaves more zero runs and data sectors than a replay is bounded to; replay it where it can be written (open and close it in Hyper-V, or qemu-img check -r all)")
			}
		}
	}
	return v, nil
}

// logView is a file with a replayed log laid over it: reads see the
// sectors and zero runs the log writes, later writes over earlier ones,
// and the file extended to what the log says it must be.
type logView struct {
	r        io.ReaderAt
	fileSize int64 // the file's own size
	size     int64 // its size after the replay
	zeros    []logWrite
	sectors  map[int64][]byte // 4 KiB aligned file offset → sector
}

// maxReplayWork bounds the sector visits applying a log's zero runs.
const maxReplayWork = 1 << 24

// apply lays w over the view and returns the work it took.
func (v *logView) apply(w logWrite) int {
	v.size = max(v.size, w.offset+w.length)
	if w.data != nil {
		v.sectors[w.offset] = w.data
		return 1
	}
	// A zero run hides the sectors written before it; later ones win.
	work := len(v.sectors)
	for off := range v.sectors {
		if off >= w.offset && off < w.offset+w.length {
			delete(v.sectors, off)
		}
	}
	v.zeros = append(v.zeros, w)
	return work + 1
}

func (v *logView) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("vhdx: negative offset")
	}
	if off >= v.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), v.size-off))
	end := off + int64(n)
	if off < v.fileSize {
		k := int(min(int64(n), v.fileSize-off))
		if _, err := v.r.ReadAt(p[:k], off); err != nil && !(err == io.EOF && k == 0) {
			return 0, err
		}
		clear(p[k:n])
	} else {
		clear(p[:n])
	}
	for _, z := range v.zeros {
		if lo, hi := max(z.offset, off), min(z.offset+z.length, end); lo < hi {
			clear(p[lo-off : hi-off])
		}
	}
	if len(v.sectors) > 0 {
		for s := off &^ (logSectorSize - 1); s < end; s += logSectorSize {
			data, ok := v.sectors[s]
			if !ok {
				continue
			}
			lo, hi := max(s, off), min(s+logSectorSize, end)
			copy(p[lo-off:hi-off], data[lo-s:hi-s])
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
