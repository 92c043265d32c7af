package pipeline

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"math/bits"
	"os"

	"github.com/hypersdk/hypersdk/internal/safepath"
)

// A block journal lists the cells of a block source whose bytes are
// durable in the part file beside it, so that an interrupted export
// resumes without fetching them again. Layout:
//
//	"hypersdk block journal v1\n"
//	identity as one JSON line: {"source":…,"capacity":…,"block_size":…}
//	batches, each: count uint32 LE, count cell indices uint64 LE,
//	               CRC-32C (Castagnoli) of the two, uint32 LE
//
// A batch is appended only after the part file was synced with its
// blocks in it, and the journal is synced after each batch. A batch cut
// short by a crash fails its CRC: it and anything after it are dropped
// (those blocks are fetched again). A journal whose identity differs, or
// that cannot be read, is started afresh together with the part file.
const journalMagic = "hypersdk block journal v1\n"

// maxJournalHeader bounds the identity line (the source ID is the
// platform's snapshot id or resource id: short).
const maxJournalHeader = 4 << 10

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// journalIdentity says which bytes the part file holds.
type journalIdentity struct {
	Source    string `json:"source"`
	Capacity  int64  `json:"capacity"`
	BlockSize int64  `json:"block_size"`
}

// cellSet is a set of cell indices below n.
type cellSet []uint64

func newCellSet(n int64) cellSet   { return make(cellSet, (n+63)/64) }
func (s cellSet) has(i int64) bool { return s[i/64]&(1<<(i%64)) != 0 }
func (s cellSet) add(i int64)      { s[i/64] |= 1 << (i % 64) }
func (s cellSet) size() (n int) {
	for _, w := range s {
		n += bits.OnesCount64(w)
	}
	return n
}

// blockJournal is an open journal. Its methods are used by one goroutine.
type blockJournal struct {
	f    *os.File
	name string
	end  int64 // where the next batch goes
	buf  []byte
}

// openJournal opens (creating it if needed) the journal name beneath root
// and returns the cells it records as done for id, cells cells in all.
// resumed is false when the journal is new, another source's or
// unreadable: the caller then starts the part file afresh and, only
// after that, resets the journal to id, so that a crash in between never
// leaves id's journal beside another source's bytes.
func openJournal(root *os.Root, name string, id journalIdentity, cells int64) (j *blockJournal, done cellSet, resumed bool, err error) {
	f, err := safepath.OpenFile(root, name, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, nil, false, err
	}
	j = &blockJournal{f: f, name: name}
	done = newCellSet(cells)
	end, ok := j.load(id, done)
	if !ok {
		return j, newCellSet(cells), false, nil
	}
	j.end = end
	// Drop a torn batch so the next one follows the last good one.
	if err := f.Truncate(end); err != nil {
		f.Close()
		return nil, nil, false, fmt.Errorf("journal %s: %w", name, err)
	}
	return j, done, true, nil
}

// load reads the journal into done when it is id's, returning where its
// last good batch ends.
func (j *blockJournal) load(id journalIdentity, done cellSet) (int64, bool) {
	fi, err := j.f.Stat()
	if err != nil || fi.Size() == 0 {
		return 0, false
	}
	br := bufio.NewReaderSize(io.NewSectionReader(j.f, 0, fi.Size()), 64<<10)
	magic := make([]byte, len(journalMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != journalMagic {
		return 0, false
	}
	line, err := br.ReadSlice('\n')
	if err != nil || len(line) > maxJournalHeader {
		return 0, false
	}
	var got journalIdentity
	if json.Unmarshal(line, &got) != nil || got != id {
		return 0, false
	}
	end := int64(len(journalMagic) + len(line))
	cells := int64(len(done)) * 64
	var head [4]byte
	for {
		if _, err := io.ReadFull(br, head[:]); err != nil {
			return end, true
		}
		count := int64(binary.LittleEndian.Uint32(head[:]))
		if count == 0 || count > cells || end+4+count*8+4 > fi.Size() {
			return end, true
		}
		body := make([]byte, count*8+4)
		if _, err := io.ReadFull(br, body); err != nil {
			return end, true
		}
		crc := crc32.Update(crc32.Checksum(head[:], castagnoli), castagnoli, body[:count*8])
		if crc != binary.LittleEndian.Uint32(body[count*8:]) {
			return end, true
		}
		batch := make([]int64, 0, count)
		for k := range count {
			c := int64(binary.LittleEndian.Uint64(body[k*8:]))
			if c < 0 || c >= cells {
				return end, true // not ours to trust: fetch those again
			}
			batch = append(batch, c)
		}
		for _, c := range batch {
			done.add(c)
		}
		end += 4 + count*8 + 4
	}
}

// reset makes the journal id's, recording nothing yet.
func (j *blockJournal) reset(id journalIdentity) error {
	line, err := json.Marshal(id)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	b.WriteString(journalMagic)
	b.Write(line)
	b.WriteByte('\n')
	err = j.f.Truncate(0)
	if err == nil {
		_, err = j.f.WriteAt(b.Bytes(), 0)
	}
	if err == nil {
		err = j.f.Sync()
	}
	if err != nil {
		return fmt.Errorf("journal %s: %w", j.name, err)
	}
	j.end = int64(b.Len())
	return nil
}

// record appends cells as one batch and syncs it. The blocks' bytes must
// already be durable.
func (j *blockJournal) record(cells []int64) error {
	if len(cells) == 0 {
		return nil
	}
	j.buf = binary.LittleEndian.AppendUint32(j.buf[:0], uint32(len(cells)))
	for _, c := range cells {
		j.buf = binary.LittleEndian.AppendUint64(j.buf, uint64(c))
	}
	j.buf = binary.LittleEndian.AppendUint32(j.buf, crc32.Checksum(j.buf, castagnoli))
	if _, err := j.f.WriteAt(j.buf, j.end); err != nil {
		return fmt.Errorf("journal %s: %w", j.name, err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("journal %s: %w", j.name, err)
	}
	j.end += int64(len(j.buf))
	return nil
}

func (j *blockJournal) Close() error { return j.f.Close() }
