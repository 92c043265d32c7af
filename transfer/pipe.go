package transfer

import (
	"bytes"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
)

// block is one buffer of a stream on its way from the network to the
// disk and then to the hash: n bytes that belong at offset off of the file.
type block struct {
	buf *[]byte
	n   int
	off int64
}

func (b block) bytes() []byte { return (*b.buf)[:b.n] }

// ringSize is how many buffers one stream may have in flight between its
// stages: 2 MiB with bufferSize buffers, taken from the Downloader's pool
// once per stream and kept until it ends, so memory stays flat whatever the
// file size and however often the garbage collector empties the pool.
const ringSize = 32

// pipe runs the disk side of one stream concurrently with its network side.
// The caller takes a buffer from the pipe's ring, reads the body into it
// and sends it; a writer goroutine writes each block at its offset
// (starting writeback as it goes) and hands it to an after goroutine (hash,
// accounting), which returns the buffer to the ring. Each stage works on a
// different buffer, so a stream moves at the pace of its slowest stage
// instead of the sum of all three, and buffers are small enough to stay in
// the CPU cache from one stage to the next. When every buffer is in flight
// the reader waits: that is the back-pressure from a slow disk.
//
// Handing a block from stage to stage costs CPU (goroutine wake-ups, the
// block moving from one core's cache to another's) and only pays off when
// the stages find idle cores. While the Downloader has at least as many
// streams in flight as the Go scheduler has processors, the streams
// themselves keep every core busy: the reader then writes and hashes each
// block itself, in its own goroutine, whenever no earlier block is still in
// the stages, and the same few buffers stay hot in its cache. A stream goes
// back to its stages as soon as others end.
//
// Blocks reach after in file order and only once written, so whatever after
// has seen is in the file exactly as received; after a failed write nothing
// more is written or passed on.
type pipe struct {
	d       *Downloader
	out     *os.File
	after   func(block)
	sparse  bool         // all-zero blocks are not written (holes)
	free    chan *[]byte // the ring: buffers not in flight
	made    int          // buffers taken from the pool (reader only)
	toWrite chan block
	toAfter chan block
	failed  chan struct{} // closed when a write fails: the reader stops
	// staged counts the blocks sent to the stages and not yet through them.
	// The stages lower it only once they are done with a block (its write,
	// werr, wb and after), so a reader that loads zero may do that work
	// itself, ordered after theirs.
	staged atomic.Int64
	busyAt int   // streams in flight that keep every core busy
	werr   error // the write failure; read only after wait
	wb     writeback
	wg     sync.WaitGroup
}

// newPipe starts the stages of a stream whose bytes go to out from offset
// start on. The caller must call wait, whatever happens.
func (d *Downloader) newPipe(out *os.File, start int64, sparse bool, after func(block)) *pipe {
	p := &pipe{
		d: d, out: out, after: after, sparse: sparse,
		free: make(chan *[]byte, ringSize),
		// Never full: there are no more blocks than buffers.
		toWrite: make(chan block, ringSize),
		toAfter: make(chan block, ringSize),
		failed:  make(chan struct{}),
		busyAt:  d.busyAt,
		wb:      newWriteback(out, start),
	}
	if p.busyAt <= 0 {
		p.busyAt = runtime.GOMAXPROCS(0) // read per stream: it may change
	}
	d.streams.Add(1)
	p.wg.Go(p.write)
	p.wg.Go(p.finish)
	return p
}

// buf returns a buffer to read into, waiting while every buffer is in
// flight; nil means writing has failed and the reader should stop.
func (p *pipe) buf(wd *watchdog) *[]byte {
	select {
	case <-p.failed:
		return nil
	case b := <-p.free:
		return b
	default:
	}
	if p.made < ringSize {
		p.made++
		return p.d.getBuf()
	}
	// The disk is behind. The body is not stalled, we are: the stall clock
	// stops meanwhile, as it does for the bandwidth limiter.
	wd.pause(true)
	defer wd.pause(false)
	select {
	case <-p.failed:
		return nil
	case b := <-p.free:
		return b
	}
}

// send passes a block on: to the stages, or, when the streams already keep
// every core busy and the stages are idle, through write and after right
// here (with the stall clock stopped: the time is ours, not the server's).
// It never waits for a buffer.
func (p *pipe) send(b block, wd *watchdog) {
	if p.staged.Load() == 0 && p.d.streams.Load() >= int64(p.busyAt) {
		wd.pause(true)
		p.process(b)
		wd.pause(false)
		p.free <- b.buf
		return
	}
	p.staged.Add(1)
	p.toWrite <- b
}

// process is both stages for one block: write it and pass it to after,
// unless a write has failed.
func (p *pipe) process(b block) {
	if p.werr != nil {
		return
	}
	if p.werr = p.writeBlock(b); p.werr != nil {
		close(p.failed)
		return
	}
	p.after(b)
}

// writeBlock writes b at its offset, or, for a sparse file, leaves an
// all-zero b as a hole (the file was empty there: blocks are written once
// each, after a truncation whenever a download restarts).
func (p *pipe) writeBlock(b block) error {
	if p.sparse && isZero(b.bytes()) {
		return nil
	}
	if _, err := p.out.WriteAt(b.bytes(), b.off); err != nil {
		return err
	}
	p.wb.wrote(b.off + int64(b.n))
	return nil
}

// zeros is a read-only reference for isZero, one buffer long.
var zeros [bufferSize]byte

func isZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeros))
		if !bytes.Equal(b[:n], zeros[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

// put gives back a buffer the reader did not send.
func (p *pipe) put(b *[]byte) { p.free <- b }

func (p *pipe) write() {
	defer close(p.toAfter)
	for b := range p.toWrite {
		if p.werr == nil {
			if p.werr = p.writeBlock(b); p.werr == nil {
				p.toAfter <- b
				continue
			}
			close(p.failed)
		}
		p.free <- b.buf // drained after a failure, never written
		p.staged.Add(-1)
	}
	// After a failed write the flusher still stops; the tail it is given
	// is only ever written out, never trusted.
	p.wb.flush()
}

func (p *pipe) finish() {
	for b := range p.toAfter {
		p.after(b)
		p.free <- b.buf
		p.staged.Add(-1)
	}
}

// wait lets every block already sent through the stages, returns the ring's
// buffers to the pool and returns the write error, if any. After it, after
// has seen every block that was written.
func (p *pipe) wait() error {
	close(p.toWrite)
	p.wg.Wait()
	p.d.streams.Add(-1)
	for len(p.free) > 0 {
		p.d.putBuf(<-p.free)
	}
	return p.werr
}

// writebackEvery is how many bytes a stream writes before asking the kernel
// to start writing them out. Without it dirty pages pile up for the whole
// file and the fsync at commit waits for all of them with nothing left to
// overlap; with it the disk works while the network does, dirty memory stays
// bounded (see writeback.wrote) and the final fsync finds little to do.
const writebackEvery = 32 << 20

// writeback tracks the contiguous bytes one stream has written since start
// and hands them to a flusher goroutine writebackEvery bytes at a time.
type writeback struct {
	f      *os.File
	kicked int64 // bytes before it have been handed to the flusher
	end    int64 // bytes before it are written
	ranges chan [2]int64
	done   chan struct{}
}

// flusherLag is how many ranges the flusher may have queued before the
// writer waits for it: with the range being written and the one being
// waited for, about four ranges per stream can be dirty.
const flusherLag = 2

func newWriteback(f *os.File, start int64) writeback {
	return writeback{f: f, kicked: start, end: start}
}

// wrote records that the stream's bytes up to end are written. Every
// writebackEvery bytes the new range goes to the flusher, which starts its
// writeback and then waits for the range before it, so that the number of
// dirty ranges per stream stays bounded without the writer itself waiting
// on the disk: only when the flusher falls flusherLag ranges behind (a disk
// slower than the network) does the writer, and through the ring the
// reader, slow down to the disk's pace instead of filling memory.
func (w *writeback) wrote(end int64) {
	w.end = max(w.end, end)
	if w.end-w.kicked < writebackEvery {
		return
	}
	w.send()
}

func (w *writeback) send() {
	if w.ranges == nil {
		w.ranges, w.done = make(chan [2]int64, flusherLag), make(chan struct{})
		go w.flusher()
	}
	w.ranges <- [2]int64{w.kicked, w.end}
	w.kicked = w.end
}

// flusher runs while a stream writes. Writeback is advisory: its errors are
// left to the fsync at commit, which reports them.
func (w *writeback) flusher() {
	defer close(w.done)
	var prev [2]int64
	for r := range w.ranges {
		startWriteback(w.f, r[0], r[1]-r[0])
		if prev[1] > prev[0] {
			waitWriteback(w.f, prev[0], prev[1]-prev[0])
		}
		prev = r
	}
}

// flush starts writeback of what is left when the stream ends and stops
// the flusher. A stream shorter than one range (a small file, a chunk)
// never needed a flusher and starts its writeback itself.
func (w *writeback) flush() {
	if w.ranges == nil {
		if w.end > w.kicked {
			startWriteback(w.f, w.kicked, w.end-w.kicked)
			w.kicked = w.end
		}
		return
	}
	if w.end > w.kicked {
		w.send()
	}
	close(w.ranges)
	<-w.done
}
