package transfer

import (
	"os"
	"sync"
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
// Blocks reach after in file order and only once written, so whatever after
// has seen is in the file exactly as received; after a failed write nothing
// more is written or passed on.
type pipe struct {
	d       *Downloader
	out     *os.File
	after   func(block)
	free    chan *[]byte // the ring: buffers not in flight
	made    int          // buffers taken from the pool (reader only)
	toWrite chan block
	toAfter chan block
	failed  chan struct{} // closed when a write fails: the reader stops
	werr    error         // the write failure; read only after wait
	wb      writeback
	wg      sync.WaitGroup
}

// newPipe starts the stages of a stream whose bytes go to out from offset
// start on. The caller must call wait, whatever happens.
func (d *Downloader) newPipe(out *os.File, start int64, after func(block)) *pipe {
	p := &pipe{
		d: d, out: out, after: after,
		free: make(chan *[]byte, ringSize),
		// Never full: there are no more blocks than buffers.
		toWrite: make(chan block, ringSize),
		toAfter: make(chan block, ringSize),
		failed:  make(chan struct{}),
		wb:      newWriteback(out, start),
	}
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

// send hands a block to the writer; it never blocks.
func (p *pipe) send(b block) { p.toWrite <- b }

// put gives back a buffer the reader did not send.
func (p *pipe) put(b *[]byte) { p.free <- b }

func (p *pipe) write() {
	defer close(p.toAfter)
	for b := range p.toWrite {
		if p.werr == nil {
			_, p.werr = p.out.WriteAt(b.bytes(), b.off)
			if p.werr == nil {
				p.wb.wrote(b.off + int64(b.n))
				p.toAfter <- b
				continue
			}
			close(p.failed)
		}
		p.free <- b.buf // drained after a failure, never written
	}
	if p.werr == nil {
		p.wb.flush()
	}
}

func (p *pipe) finish() {
	for b := range p.toAfter {
		p.after(b)
		p.free <- b.buf
	}
}

// wait lets every block already sent through the stages, returns the ring's
// buffers to the pool and returns the write error, if any. After it, after
// has seen every block that was written.
func (p *pipe) wait() error {
	close(p.toWrite)
	p.wg.Wait()
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

// writeback tracks the contiguous bytes one stream has written since start.
type writeback struct {
	f      *os.File
	prev   int64 // [prev, kicked) was handed to writeback last time
	kicked int64 // bytes before it have been handed to writeback
	end    int64 // bytes before it are written
}

func newWriteback(f *os.File, start int64) writeback {
	return writeback{f: f, prev: start, kicked: start, end: start}
}

// wrote records that the stream's bytes up to end are written. Every
// writebackEvery bytes the new range is handed to writeback and the writer
// waits for the range handed over before it, so at most about two ranges per
// stream are dirty; on a disk slower than the network this is where the
// stream slows down to the disk's pace instead of filling memory.
// Writeback is advisory: its errors are left to the fsync at commit, which
// reports them.
func (w *writeback) wrote(end int64) {
	w.end = max(w.end, end)
	if w.end-w.kicked < writebackEvery {
		return
	}
	startWriteback(w.f, w.kicked, w.end-w.kicked)
	if w.kicked > w.prev {
		waitWriteback(w.f, w.prev, w.kicked-w.prev)
	}
	w.prev, w.kicked = w.kicked, w.end
}

// flush starts writeback of what is left when the stream ends.
func (w *writeback) flush() {
	if w.end > w.kicked {
		startWriteback(w.f, w.kicked, w.end-w.kicked)
		w.kicked = w.end
	}
}
