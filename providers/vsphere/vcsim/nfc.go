package vcsim

import (
	"context"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/vmware/govmomi/simulator"
)

// NFCRequest is one request the disk download server answered.
type NFCRequest struct {
	Lease  string // lease MoRef value
	VM     string
	File   string // targetId
	Method string
	Range  string // the Range header as sent, "" if none
	Status int
	Bytes  int64 // body bytes sent
	// Dropped is true when the connection was cut on purpose (DropAfter),
	// Aborted when it was cut because the lease ended or Close was called.
	Dropped bool
	Aborted bool
}

// nfcState is guarded by Env.mu.
type nfcState struct {
	behavior NFCBehavior
	counts   map[string]int // GETs per lease file since SetNFCBehavior
	log      []NFCRequest
	held     int
	heldCh   chan struct{} // closed and replaced whenever held changes
	release  chan struct{} // closed by ReleaseNFC
}

func (n *nfcState) init(b NFCBehavior) {
	n.behavior = b
	n.counts = make(map[string]int)
	n.heldCh = make(chan struct{})
	n.release = make(chan struct{})
}

// SetNFCBehavior changes how disk downloads are answered from now on. It
// resets the per-file request counts DropFirst refers to and releases
// responses held by a previous HoldAfter.
func (e *Env) SetNFCBehavior(b NFCBehavior) {
	e.mu.Lock()
	defer e.mu.Unlock()
	close(e.nfc.release)
	e.nfc.release = make(chan struct{})
	e.nfc.behavior = b
	e.nfc.counts = make(map[string]int)
}

// ReleaseNFC lets responses paused by HoldAfter continue and turns
// HoldAfter off.
func (e *Env) ReleaseNFC() {
	e.mu.Lock()
	defer e.mu.Unlock()
	close(e.nfc.release)
	e.nfc.release = make(chan struct{})
	e.nfc.behavior.HoldAfter = 0
}

// WaitNFCHeld blocks until at least n responses are paused at HoldAfter, or
// ctx ends.
func (e *Env) WaitNFCHeld(ctx context.Context, n int) error {
	for {
		e.mu.Lock()
		held, ch := e.nfc.held, e.nfc.heldCh
		e.mu.Unlock()
		if held >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// NFCRequests returns every request the download server answered, oldest
// first.
func (e *Env) NFCRequests() []NFCRequest {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.nfc.log)
}

func (e *Env) heldDelta(d int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.nfc.held += d
	close(e.nfc.heldCh)
	e.nfc.heldCh = make(chan struct{})
}

// serveNFC serves /nfc/{ticket}/{file}: the download URLs of export leases.
// Unknown tickets belong to the simulator's own (import) leases.
func (e *Env) serveNFC(w http.ResponseWriter, r *http.Request) {
	ticket, name := r.PathValue("ticket"), r.PathValue("file")
	e.mu.Lock()
	l := e.byTicket[ticket]
	e.mu.Unlock()
	if l == nil {
		if strings.HasPrefix(ticket, "session[") { // a lease of the simulator's own (import)
			simulator.ServeNFC(w, r)
			return
		}
		http.NotFound(w, r)
		return
	}
	lf := l.byTarget[name]
	if lf == nil {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}

	e.mu.Lock()
	active := l.outcome == LeaseActive
	b := e.nfc.behavior
	key := ticket + "/" + name
	n := e.nfc.counts[key]
	if r.Method == http.MethodGet {
		e.nfc.counts[key]++
	}
	release := e.nfc.release
	e.mu.Unlock()

	rec := NFCRequest{Lease: l.Self.Value, VM: l.vmName, File: name, Method: r.Method, Range: r.Header.Get("Range")}
	defer func() {
		e.mu.Lock()
		e.nfc.log = append(e.nfc.log, rec)
		e.mu.Unlock()
	}()
	if !active {
		rec.Status = http.StatusNotFound
		http.Error(w, "lease is no longer active", http.StatusNotFound)
		return
	}
	f, err := os.Open(lf.Path)
	if err != nil {
		rec.Status = http.StatusNotFound
		http.NotFound(w, r)
		return
	}
	defer f.Close()

	first := b.DropFirst
	if first <= 0 {
		first = 1
	}
	cw := &nfcWriter{
		ResponseWriter: w,
		e:              e,
		l:              l,
		r:              r,
		rec:            &rec,
		limit:          -1,
		hold:           b.HoldAfter,
		release:        release,
	}
	if b.DropAfter > 0 && n < first {
		cw.limit = b.DropAfter
	}

	if b.Ranges {
		st, err := f.Stat()
		if err != nil {
			rec.Status = http.StatusInternalServerError
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(cw, r, name, st.ModTime(), f)
		return
	}

	// Like vSphere NFC: 200, no Content-Length (chunked), Range ignored.
	w.Header().Set("Content-Type", "application/octet-stream")
	cw.WriteHeader(http.StatusOK)
	cw.Flush()
	if r.Method == http.MethodHead {
		return
	}
	buf := make([]byte, 64<<10)
	_, _ = io.CopyBuffer(cw, struct{ io.Reader }{f}, buf)
}

// nfcWriter counts body bytes and cuts or pauses a response as the
// behaviour asks, and cuts it when the lease ends or the Env closes.
type nfcWriter struct {
	http.ResponseWriter
	e       *Env
	l       *lease
	r       *http.Request
	rec     *NFCRequest
	limit   int64 // cut after this many bytes; -1: never
	hold    int64 // pause after this many bytes; 0: never
	held    bool
	release chan struct{}
}

func (w *nfcWriter) WriteHeader(code int) {
	w.rec.Status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *nfcWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// cut flushes what was written and aborts the connection: the client sees
// the body end early (unexpected EOF), as when a network path breaks.
func (w *nfcWriter) cut(dropped bool) {
	w.rec.Dropped = dropped
	w.rec.Aborted = !dropped
	w.Flush()
	panic(http.ErrAbortHandler)
}

func (w *nfcWriter) Write(p []byte) (int, error) {
	if w.rec.Status == 0 {
		w.rec.Status = http.StatusOK
	}
	written := 0
	for len(p) > 0 {
		select {
		case <-w.l.done:
			w.cut(false)
		case <-w.e.closed:
			w.cut(false)
		default:
		}
		chunk := p
		if w.limit >= 0 {
			if w.rec.Bytes >= w.limit {
				w.cut(true)
			}
			chunk = chunk[:min(int64(len(chunk)), w.limit-w.rec.Bytes)]
		}
		if w.hold > 0 && !w.held {
			if w.rec.Bytes >= w.hold {
				w.pause()
				continue
			}
			chunk = chunk[:min(int64(len(chunk)), w.hold-w.rec.Bytes)]
		}
		k, err := w.ResponseWriter.Write(chunk)
		w.rec.Bytes += int64(k)
		written += k
		if err != nil {
			return written, err
		}
		p = p[k:]
	}
	return written, nil
}

// pause waits at HoldAfter until released; it cuts the connection if the
// lease ends or the Env closes meanwhile.
func (w *nfcWriter) pause() {
	w.held = true
	w.Flush()
	w.e.heldDelta(1)
	defer w.e.heldDelta(-1)
	select {
	case <-w.release:
	case <-w.r.Context().Done():
	case <-w.l.done:
		w.cut(false)
	case <-w.e.closed:
		w.cut(false)
	}
}
