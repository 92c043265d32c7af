package transfer

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/hypersdk/hypersdk/internal/safepath"
)

// fileJob is the state of one file while it downloads. Outside chunked mode
// it is used by one goroutine; the invariant is that the part file holds
// exactly offset bytes, all of them fed to h.
type fileJob struct {
	d      *Downloader
	f      File
	origin origin   // where the bytes come from: f.URL or f.Source
	url    string   // the redacted URL or the Source's name, for messages
	dir    *os.Root // the destination's directory; every name below is in it
	dest   string
	part   string
	chunks string // name of the part file while chunks are written out of order
	cur    string // the part file's current name (part or chunks)
	log    *slog.Logger
	prog   *fileProgress

	out       *os.File
	h         *hashes
	offset    int64
	total     int64  // object size, -1 while unknown
	validator string // strong ETag or Last-Modified, for If-Range
	// spliced: the bytes did not come from one response starting at zero
	// (resumed, chunked, reused .part). A checksum mismatch then earns one
	// clean download from zero, since the splice itself may be the culprit
	// (an object replaced between two process runs has no validator to catch it).
	spliced     bool
	cleanRetry  bool // that clean download has been used up
	chunkTried  bool // the ranged probe for chunked mode has been answered
	bad         bool // content is known wrong: never keep it
	chunkConc   int  // parallel ranged requests (File or Options)
	keepPartial bool // File or Options
	sum         string
	transferred atomic.Int64
	retries     atomic.Int64
	res         Result
}

func (d *Downloader) downloadFile(ctx context.Context, f File, prog *fileProgress) Result {
	start := d.clock.Now()
	j := &fileJob{
		d:      d,
		f:      f,
		url:    RedactURL(f.URL),
		dest:   filepath.Base(f.Path),
		part:   filepath.Base(f.Path) + ".part",
		chunks: filepath.Base(f.Path) + ".chunks",
		prog:   prog,
		h:      newHashes(f.Digests),
		total:  -1,
		// A caller's validator is known before the first byte: a kept part
		// file is resumed only if the object still carries it.
		validator:   f.Validator,
		chunkConc:   cmp.Or(f.ChunkConcurrency, d.chunkConc),
		keepPartial: d.keepPartial || f.KeepPartial,
	}
	if f.Size > 0 {
		j.total = f.Size
	}
	if f.Source != nil {
		j.origin, j.url = sourceOrigin{f.Source}, f.Source.String()
		j.log = d.log.With("file", f.Path, "source", j.url)
	} else {
		j.origin = httpOrigin{j}
		j.log = d.log.With("file", f.Path, "url", j.url)
	}
	j.res.Path = f.Path

	err := j.open(ctx)
	if err == nil {
		err = j.run(ctx)
	}
	if err == nil {
		err = j.commit()
	}
	if err != nil {
		j.abandon()
	}
	if j.dir != nil {
		j.dir.Close()
	}
	if err != nil {
		// Whatever the path, a cancelled file's error says so (errors.Is
		// context.Canceled) and why.
		if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
			err = fmt.Errorf("%w: %w", ctxErr, err)
		}
		j.res.Err = fmt.Errorf("download %s: %w", f.Path, err)
		if !errors.Is(err, errSiblingFailed) && ctx.Err() == nil {
			j.log.Error("download failed", "error", err)
		}
	}
	j.res.BytesTransferred = j.transferred.Load()
	j.res.Retries = int(j.retries.Load())
	j.res.Duration = d.clock.Now().Sub(start)
	prog.final()
	return j.res
}

// open prepares the part file: a fresh one, or with KeepPartial the one an
// earlier run left, whose bytes are hashed once so that the download resumes
// after them. The destination's directory is opened once, beneath File.Root
// when set, and every name of the file is then created, renamed and removed
// inside it without following links (internal/safepath): a ".part" planted
// as a link to a file elsewhere is refused, never written through.
func (j *fileJob) open(ctx context.Context) error {
	var err error
	if j.f.Root != nil {
		j.dir, err = safepath.OpenDir(j.f.Root, filepath.Dir(j.f.Path), dirMode)
	} else {
		j.dir, err = safepath.OpenPath(filepath.Dir(j.f.Path), ".", dirMode)
	}
	if err != nil {
		return noRetry(err)
	}
	// Chunks are written out of order; a leftover chunks file from a crash
	// may have holes and is never trusted.
	if err := j.dir.Remove(j.chunks); err != nil && !errors.Is(err, os.ErrNotExist) {
		return noRetry(err)
	}
	flags := os.O_RDWR | os.O_CREATE
	if !j.keepPartial {
		flags |= os.O_TRUNC
	}
	out, err := safepath.OpenFile(j.dir, j.part, flags, fileMode)
	if err != nil {
		return noRetry(err)
	}
	j.out, j.cur = out, j.part
	if !j.keepPartial {
		return nil
	}
	st, err := out.Stat()
	if err != nil {
		return noRetry(err)
	}
	n := st.Size()
	if n == 0 {
		return nil
	}
	if j.f.Size > 0 && n > j.f.Size {
		j.log.Info("discarding partial file longer than the expected size", "partial_bytes", n)
		return j.reset()
	}
	if kept := j.keptVersion(); j.f.Validator != "" && kept != j.f.Validator {
		// Bytes of another version of the object (or of an unknown one)
		// are never continued with this one's.
		j.log.Info("discarding partial file of another version of the object", "partial_bytes", n, "kept_version", kept)
		return j.reset()
	}
	if err := j.rehash(ctx, n); err != nil {
		// Leave the kept bytes exactly as they were for the next run.
		_ = j.out.Close()
		j.out, j.cur = nil, ""
		return err
	}
	j.offset, j.spliced = n, true
	j.res.ReusedBytes = n
	j.prog.add(n)
	j.log.Info("resuming from partial file", "partial_bytes", n)
	return nil
}

// versionName is the file beside a kept part file that records the
// version (File.Validator) its bytes are of.
func (j *fileJob) versionName() string { return j.part + ".version" }

// keptVersion reads the version a kept part file is of, "" when none was
// recorded.
func (j *fileJob) keptVersion() string {
	f, err := safepath.OpenFile(j.dir, j.versionName(), os.O_RDONLY, 0)
	if err != nil {
		return ""
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return ""
	}
	return string(b)
}

// recordVersion notes the version of the part file being kept; without a
// record the next run discards it.
func (j *fileJob) recordVersion() error {
	f, err := safepath.OpenFile(j.dir, j.versionName(), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fileMode)
	if err != nil {
		return err
	}
	_, err = f.WriteString(j.f.Validator)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (j *fileJob) rehash(ctx context.Context, n int64) error {
	bp := j.d.getBuf()
	defer j.d.putBuf(bp)
	r := io.NewSectionReader(j.out, 0, n)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		m, err := io.ReadFull(r, *bp)
		j.h.Write((*bp)[:m])
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			return noRetry(err)
		}
	}
}

// run repeats attempts until the file is complete and verified, the error is
// not worth retrying, or the retry budget is spent.
func (j *fileJob) run(ctx context.Context) error {
	high := j.offset // furthest point reached; getting past it is progress
	fails := 0
	for {
		before := high
		done, err := j.attempt(ctx)
		high = max(high, j.offset)
		if err == nil && done {
			err = j.verify()
			if err == nil {
				return nil
			}
			if (errors.Is(err, ErrChecksumMismatch) || errors.Is(err, ErrDigestMismatch)) && j.spliced && !j.cleanRetry {
				j.cleanRetry, j.chunkTried = true, true
				j.log.Warn("checksum mismatch after resume: downloading again from zero", "error", err)
				if terr := j.restart(); terr != nil {
					return terr
				}
				if terr := j.renameTo(j.part); terr != nil {
					return terr
				}
				j.retries.Add(1)
				continue
			}
			j.bad = true
			return err
		}
		if err == nil {
			continue // a range ended short of the object: ask for the rest
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if !retryable(err) && !errors.Is(err, errRestartNeeded) {
			if errors.Is(err, errWrongVersion) || errors.Is(err, errSpanIgnored) {
				j.bad = true // the part file can never be completed
			}
			return err
		}
		if j.offset > before {
			fails = 0
		}
		fails++
		if fails > j.d.maxRetries {
			return noRetry(fmt.Errorf("giving up after %d attempts without progress: %w", fails, err))
		}
		j.retries.Add(1)
		j.log.Warn("download interrupted, retrying", "error", err, "attempt", fails, "offset", j.offset)
		if err := j.d.pause(ctx, fails, err); err != nil {
			return context.Cause(ctx)
		}
	}
}

// call is one request in flight with its own context, so that a stalled
// body can be abandoned without touching the rest of the download.
type call struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	wd     *watchdog
	seg    segment
	resp   *http.Response // seg.resp: the HTTP response, nil for a Source
}

func (c *call) close() {
	switch {
	case c.seg.body != nil:
		c.seg.body.Close()
	case c.resp != nil:
		c.resp.Body.Close()
	}
	c.wd.stop()
	c.cancel(nil)
}

// request asks the file's origin for bytes [from, to] of the file (to < 0:
// to the end; from == 0 with to < 0: the whole object, no range). validator
// is the version the bytes must belong to, if known. The answer comes back
// in the file's positions (File.Offset) and is refused for good when it is
// not of the caller's version or is a whole object for a part of one.
func (j *fileJob) request(ctx context.Context, from, to int64, validator string) (*call, error) {
	cctx, cancel := context.WithCancelCause(ctx)
	c := &call{ctx: cctx, cancel: cancel}
	from, to = j.toObject(from, to)
	seg, err := j.origin.fetch(cctx, from, to, validator)
	if err != nil {
		err = j.netErr(ctx, c, err)
		c.close()
		return nil, err
	}
	c.seg, c.resp = j.fromObject(seg), seg.resp
	if err := j.checkAnswer(c.seg); err != nil {
		c.close()
		return nil, err
	}
	// From here on the body must keep flowing; the wait for the answer was
	// bounded by the client (ResponseHeaderTimeout) or the Source.
	c.wd = newWatchdog(j.d.stall, cancel)
	return c, nil
}

// toObject maps bytes [from, to] of the file onto its object. A part of
// an object (File.Offset > 0) is asked for as a range within the part,
// even from its first byte to its end: the whole object is never wanted.
func (j *fileJob) toObject(from, to int64) (int64, int64) {
	base := j.f.Offset
	if base == 0 {
		return from, to
	}
	if to < 0 || to >= j.f.Size {
		to = j.f.Size - 1
	}
	return base + from, base + to
}

// fromObject expresses an answer in the file's positions: for a part of
// an object (File.Offset) its range is shifted into the part and the
// object's size becomes the part's, unless the object is too short to hold
// the part (then the shortened size, which checkSize refuses). A range
// reaching outside the part is unusable framing (start -1).
func (j *fileJob) fromObject(seg segment) segment {
	base := j.f.Offset
	if base == 0 || seg.whole {
		return seg // a whole object for a part is refused by checkAnswer
	}
	if seg.total >= 0 {
		if seg.total >= base+j.f.Size {
			seg.total = j.f.Size
		} else {
			seg.total = max(seg.total-base, 0)
		}
	}
	if seg.start >= 0 {
		seg.start -= base
		if seg.end >= 0 {
			seg.end -= base
		}
		if seg.start < 0 || seg.end > j.f.Size {
			seg.start, seg.end = -1, -1
		}
	}
	return seg
}

// checkAnswer refuses, for good, an answer of another version than the one
// the caller described (File.Validator: an HTTP ETag or Last-Modified, a
// Source's SourceInfo.Version) instead of splicing bytes of two versions,
// and a whole object where a part of it (File.Offset) was asked for.
func (j *fileJob) checkAnswer(seg segment) error {
	if j.f.Validator != "" && seg.validator != "" && seg.validator != j.f.Validator {
		return permanent(fmt.Errorf("%s: %w: it carries %s, expected %s", j.url, errWrongVersion, seg.validator, j.f.Validator))
	}
	if seg.whole && j.f.Offset > 0 {
		return permanent(fmt.Errorf("%s: %w (%s): bytes %d-%d of the object cannot be fetched on their own",
			j.url, errSpanIgnored, seg.desc, j.f.Offset, j.f.Offset+j.f.Size-1))
	}
	return nil
}

// netErr classifies a transport or body error of call c.
func (j *fileJob) netErr(ctx context.Context, c *call, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if errors.Is(context.Cause(c.ctx), errStalled) {
		return fmt.Errorf("%s: %w (%v)", j.url, errStalled, j.d.stall)
	}
	err = redactErr(err)
	if certificateError(err) {
		return permanent(err)
	}
	return err
}

// attempt makes one request and streams its body into the part file. done is
// true when the file is complete; (false, nil) means the origin sent a
// shorter range than asked and the rest must be requested.
func (j *fileJob) attempt(ctx context.Context) (done bool, err error) {
	if j.f.Offset > 0 && j.offset == j.f.Size {
		// A kept part file holds every byte of the part; a range past its
		// end cannot be asked for within it.
		j.prog.setSize(j.f.Size)
		return true, nil
	}
	from, to := j.offset, int64(-1)
	probe := j.chunkConc > 1 && !j.chunkTried
	if probe {
		to = from + j.d.chunkSize - 1
	}
	validator := ""
	if from > 0 {
		validator = j.validator
	}
	c, err := j.request(ctx, from, to, validator)
	if err != nil {
		return false, err
	}
	defer c.close()
	seg := c.seg

	end := int64(-1) // offset at which this answer's bytes end, if known
	switch {
	case seg.whole:
		j.chunkTried = true
		if j.offset > 0 {
			reason := "server ignored the Range request"
			if validator != "" {
				reason = "server ignored the Range request or the object changed (If-Range)"
			}
			j.log.Info("restarting from zero", "reason", reason, "discarded_bytes", j.offset)
			if err := j.restart(); err != nil {
				return false, err
			}
		}
		if err := j.checkSize(seg.total); err != nil {
			return false, err
		}
		if seg.total >= 0 {
			j.total, end = seg.total, seg.total
		}
		j.validator = cmp.Or(seg.validator, j.f.Validator)
		j.prog.setSize(j.total)

	case seg.beyond:
		if err := j.checkSize(seg.total); err != nil {
			return false, err
		}
		if seg.total >= 0 && seg.total == j.offset {
			// We already hold every byte (a kept .part that was complete).
			j.total = seg.total
			j.prog.setSize(seg.total)
			return true, nil
		}
		j.chunkTried = true
		if err := j.restart(); err != nil {
			return false, err
		}
		return false, fmt.Errorf("%s: %s for a resume at byte %d", j.url, seg.desc, from)

	default: // a range
		if probe {
			j.chunkTried = true
		}
		// More than asked (to) is harmless as long as it starts where asked.
		if seg.start != j.offset {
			j.log.Warn("restarting from zero: the answer's range does not match the request",
				"range_requested", from, "answer", seg.desc)
			if err := j.restart(); err != nil {
				return false, err
			}
			j.chunkTried = true
			return false, fmt.Errorf("%s: %w", j.url, errBadContentRange)
		}
		if err := j.checkSize(seg.total); err != nil {
			return false, err
		}
		if (seg.total >= 0 && j.total >= 0 && seg.total != j.total && j.f.Size <= 0) ||
			(seg.validator != "" && j.validator != "" && seg.validator != j.validator) {
			if err := j.restart(); err != nil {
				return false, err
			}
			return false, fmt.Errorf("%s: %w", j.url, errObjectChanged)
		}
		if seg.total >= 0 {
			j.total = seg.total
		}
		if j.validator == "" {
			j.validator = seg.validator
		}
		j.prog.setSize(j.total)
		end = seg.end
		if probe && j.total > 0 && j.total-j.offset > j.d.chunkSize {
			err := j.chunked(ctx, c, end)
			return err == nil, err
		}
	}

	if err := j.stream(ctx, c, end); err != nil {
		return false, err
	}
	switch {
	case end >= 0 && j.offset < end:
		return false, fmt.Errorf("%s: %w (%d of %d bytes)", j.url, errShortBody, j.offset, end)
	case j.total >= 0 && j.offset == j.total:
		return true, nil
	case j.total >= 0:
		if end >= 0 {
			return false, nil // the range ended where the origin said it would
		}
		return false, fmt.Errorf("%s: %w (%d of %d bytes)", j.url, errShortBody, j.offset, j.total)
	case to >= 0 && j.offset == to+1:
		return false, nil // a bounded probe filled up; the size is unknown
	default:
		return true, nil
	}
}

// checkSize fails permanently if the server's object size contradicts the
// caller's expectation (n < 0: the server did not say).
func (j *fileJob) checkSize(n int64) error {
	if n >= 0 && j.f.Size > 0 && n != j.f.Size {
		j.bad = true
		return permanent(fmt.Errorf("%s: %w: server has %d bytes, expected %d", j.url, ErrSizeMismatch, n, j.f.Size))
	}
	return nil
}

// stream copies c's body to the part file from j.offset on, hashing what
// is written. limit is where the body must end (-1: unknown). The body is
// read here while a pipe writes and hashes earlier blocks; on return the
// pipe has drained, so j.offset counts exactly the bytes that are both in
// the part file and in the hash, whatever failed (network, disk, ctx).
func (j *fileJob) stream(ctx context.Context, c *call, limit int64) error {
	if limit < 0 {
		limit = j.total
	}
	pos := j.offset // where the next byte read goes; j.offset is the pipe's now
	p := j.d.newPipe(j.out, pos, j.f.Sparse, func(b block) {
		j.h.Write(b.bytes())
		j.offset += int64(b.n)
		j.prog.add(int64(b.n))
	})
	long := false
	var err error
	for {
		bp := p.buf(c.wd)
		if bp == nil {
			break // the write failed; wait says why
		}
		buf := (*bp)[:j.d.limit.readSize(len(*bp))]
		n, rerr := readSome(c.seg.body, buf, c.wd)
		if n > 0 {
			j.transferred.Add(int64(n))
			if limit >= 0 && pos+int64(n) > limit {
				// The stream disagrees with its own framing or with the
				// expected size: none of it can be trusted.
				p.put(bp)
				long = true
				break
			}
			c.wd.pause(true)
			werr := j.d.limit.wait(c.ctx, n)
			c.wd.pause(false)
			if werr != nil {
				p.put(bp)
				err = j.netErr(ctx, c, werr)
				break
			}
			p.send(block{buf: bp, n: n, off: pos}, c.wd)
			pos += int64(n)
		} else {
			p.put(bp)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			err = j.netErr(ctx, c, rerr)
			break
		}
	}
	if werr := p.wait(); werr != nil {
		return noRetry(fmt.Errorf("write %s: %w", j.cur, werr))
	}
	if long {
		if err := j.restart(); err != nil {
			return err
		}
		return fmt.Errorf("%s: %w (more than %d bytes)", j.url, errLongBody, limit)
	}
	return err
}

// readSome fills buf from r unless r ends or fails first, so that writes and
// hash updates happen in large pieces whatever size the transport reads in.
func readSome(r io.Reader, buf []byte, wd *watchdog) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if m > 0 {
			wd.kick()
		}
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// restart throws the bytes away and starts the file from zero.
func (j *fileJob) restart() error {
	if err := j.reset(); err != nil {
		return err
	}
	j.res.Restarts++
	return nil
}

// reset empties the part file and forgets everything learnt from it.
func (j *fileJob) reset() error {
	if err := j.out.Truncate(0); err != nil {
		return noRetry(fmt.Errorf("truncate %s: %w", j.cur, err))
	}
	j.prog.add(-j.offset)
	j.h.Reset()
	j.offset = 0
	j.spliced = false
	j.validator = j.f.Validator
	j.total = -1
	if j.f.Size > 0 {
		j.total = j.f.Size
	}
	return nil
}

// renameTo gives the open part file another name (part or chunks).
func (j *fileJob) renameTo(name string) error {
	if j.cur == name {
		return nil
	}
	if err := j.dir.Rename(j.cur, name); err != nil {
		return noRetry(err)
	}
	j.cur = name
	return nil
}

// verify checks the expected digest, if any, once every byte is in.
func (j *fileJob) verify() error {
	j.sum = hex.EncodeToString(j.h.Sum(nil))
	if j.f.SHA256 != "" && !strings.EqualFold(j.sum, j.f.SHA256) {
		return fmt.Errorf("%w for %s: got %s, expected %s", ErrChecksumMismatch, j.url, j.sum, strings.ToLower(j.f.SHA256))
	}
	return j.h.check(j.url)
}

// commit makes the file durable under its final name: fsync the data,
// rename, fsync the directory so the rename survives a crash too.
func (j *fileJob) commit() error {
	if j.f.Sparse {
		// Zeros at the end were not written: the length says they exist.
		if err := j.out.Truncate(j.offset); err != nil {
			return noRetry(fmt.Errorf("truncate %s: %w", j.cur, err))
		}
	}
	if err := j.out.Sync(); err != nil {
		return noRetry(fmt.Errorf("sync %s: %w", j.cur, err))
	}
	if err := j.out.Close(); err != nil {
		j.out = nil
		return noRetry(fmt.Errorf("close %s: %w", j.cur, err))
	}
	j.out = nil
	if err := j.dir.Rename(j.cur, j.dest); err != nil {
		return noRetry(err)
	}
	if j.f.Validator != "" {
		_ = j.dir.Remove(j.versionName())
	}
	// The data is on disk and the name is final; a directory that cannot be
	// fsynced is worth a warning, not a failed export.
	if err := syncDir(j.dir); err != nil {
		j.log.Warn("could not fsync the directory after rename", "error", err)
	}
	j.res.Size = j.offset
	j.res.SHA256 = j.sum
	j.prog.setSize(j.offset) // a chunked body's size is known only now
	j.log.Info("download complete", "bytes", j.offset, "sha256", j.sum,
		"transferred", j.transferred.Load(), "retries", j.retries.Load(), "restarts", j.res.Restarts,
		"chunked", j.res.Chunked)
	return nil
}

// abandon closes a failed file: its part file is kept (trimmed to the bytes
// that were hashed, so a later run can resume from it) or removed.
func (j *fileJob) abandon() {
	if j.out == nil {
		if j.cur != "" && (!j.keepPartial || j.bad) {
			_ = j.dir.Remove(j.cur)
			_ = j.dir.Remove(j.versionName())
		}
		return
	}
	name := j.cur
	if j.keepPartial && !j.bad && j.offset > 0 && j.cur == j.part {
		err := j.out.Truncate(j.offset)
		if err == nil {
			err = j.out.Sync()
		}
		if err == nil && j.f.Validator != "" {
			err = j.recordVersion()
		}
		if err == nil {
			j.log.Info("kept partial file for a later resume", "partial_bytes", j.offset)
		}
		_ = j.out.Close()
		j.out = nil
		if err == nil {
			return
		}
	}
	if j.out != nil {
		_ = j.out.Close()
		j.out = nil
	}
	_ = j.dir.Remove(name)
	_ = j.dir.Remove(j.versionName())
}

// validatorOf returns what identifies this version of the object for
// If-Range: a strong ETag (weak ones are not allowed there), else
// Last-Modified.
func validatorOf(resp *http.Response) string {
	if et := resp.Header.Get("ETag"); et != "" && !strings.HasPrefix(et, "W/") {
		return et
	}
	return resp.Header.Get("Last-Modified")
}

// parseContentRange parses "bytes first-last/total", "bytes first-last/*"
// (total -1) and "bytes */total" (first = last = -1).
func parseContentRange(v string) (first, last, total int64, ok bool) {
	rest, found := strings.CutPrefix(strings.TrimSpace(v), "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	rng, size, found := strings.Cut(strings.TrimSpace(rest), "/")
	if !found {
		return 0, 0, 0, false
	}
	total = -1
	if size != "*" {
		t, err := strconv.ParseInt(size, 10, 64)
		if err != nil || t < 0 {
			return 0, 0, 0, false
		}
		total = t
	}
	if rng == "*" {
		return -1, -1, total, total >= 0
	}
	a, b, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, 0, false
	}
	first, err1 := strconv.ParseInt(a, 10, 64)
	last, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || first < 0 || last < first || (total >= 0 && last >= total) {
		return 0, 0, 0, false
	}
	return first, last, total, true
}

// syncDir makes a rename in dir durable. Some platforms cannot fsync a
// directory; that is not worth failing a download for.
func syncDir(dir *os.Root) error {
	d, err := dir.Open(".")
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, errors.ErrUnsupported) {
		return err
	}
	return nil
}

// hashes is a file's SHA-256 and the other digests it must match
// (File.Digests), fed together in one pass.
type hashes struct {
	sha   hash.Hash
	want  []Digest
	extra []hash.Hash
}

func newHashes(want []Digest) *hashes {
	h := &hashes{sha: sha256.New(), want: want, extra: make([]hash.Hash, len(want))}
	for i, d := range want {
		h.extra[i] = d.New()
	}
	return h
}

func (h *hashes) Write(p []byte) (int, error) {
	h.sha.Write(p)
	for _, e := range h.extra {
		e.Write(p)
	}
	return len(p), nil
}

// Reset starts every digest afresh (File.Digests' New again).
func (h *hashes) Reset() {
	h.sha.Reset()
	for i, d := range h.want {
		h.extra[i] = d.New()
	}
}

// Sum is the SHA-256.
func (h *hashes) Sum(b []byte) []byte { return h.sha.Sum(b) }

// check compares the other digests with what they must be.
func (h *hashes) check(url string) error {
	for i, d := range h.want {
		if got := h.extra[i].Sum(nil); !bytes.Equal(got, d.Sum) {
			return fmt.Errorf("%w for %s: %s is %x, expected %x", ErrDigestMismatch, url, d.Name, got, d.Sum)
		}
	}
	return nil
}
