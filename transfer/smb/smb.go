package smb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	smb2 "github.com/cloudsoda/go-smb2"

	"github.com/hypersdk/hypersdk/transfer"
	"github.com/hypersdk/hypersdk/transfer/internal/readahead"
)

// ErrAuth: the server refused the credentials.
var ErrAuth = errors.New("SMB logon refused")

// Config is how to reach one share.
type Config struct {
	// Addr is "host" or "host:port" (port 445 by default).
	Addr string
	// User, Password and Domain log in with NTLM. Domain may be empty
	// (a local account) or the NetBIOS/DNS domain name.
	User     string
	Password string
	Domain   string
	// Share is the share's name (e.g. "Exports").
	Share string
	// RequireSigning refuses a session whose messages are not signed.
	// Signing is used whenever the server asks for it anyway.
	RequireSigning bool
	// DialTimeout bounds connecting, negotiating, logging in and mounting
	// the share. Default 30s.
	DialTimeout time.Duration
	// KeepAlive is the interval between ECHO requests; a connection that
	// leaves one unanswered for three intervals is closed, which fails the
	// requests stuck on it so that they are retried on a new one. Default
	// 15s; negative disables.
	KeepAlive time.Duration
}

// Read-ahead of one range: readDepth READs of readBlock bytes (go-smb2 caps
// one READ at 1 MiB) in flight, so a stream is not bound by round trips.
const (
	readBlock = 1 << 20
	readDepth = 4
)

// Client is a session on one share. It is safe for concurrent use.
type Client struct {
	cfg  Config
	addr string

	mu     sync.Mutex
	conn   *conn // the current session, nil until the first use
	closed bool
}

// conn is one logged-on session on its own TCP connection, with the share
// mounted.
type conn struct {
	nc      net.Conn
	session *smb2.Session
	share   *smb2.Share
	once    sync.Once
	done    chan struct{} // closed when the session is retired
}

func (cn *conn) retire() {
	cn.once.Do(func() {
		close(cn.done)
		// Logoff on a broken connection fails fast; closing the socket
		// releases any request still waiting on it.
		go func() {
			_ = cn.session.Logoff()
			cn.nc.Close()
		}()
	})
}

// New checks cfg and returns a Client; nothing is dialed yet.
func New(cfg Config) (*Client, error) {
	switch {
	case cfg.Addr == "":
		return nil, invalid("no address")
	case cfg.User == "":
		return nil, invalid("no user")
	case cfg.Share == "" || strings.ContainsAny(cfg.Share, `/\`):
		return nil, invalid(fmt.Sprintf("share name %q: want a name such as Exports", cfg.Share))
	}
	c := &Client{cfg: cfg, addr: cfg.Addr}
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		c.addr = net.JoinHostPort(strings.Trim(cfg.Addr, "[]"), "445")
	}
	return c, nil
}

func invalid(msg string) error {
	return fmt.Errorf("smb configuration: %s: %w", msg, transfer.ErrPermanent)
}

// String is "smb://[domain;]user@host:port/share", for messages.
func (c *Client) String() string {
	user := c.cfg.User
	if c.cfg.Domain != "" {
		user = c.cfg.Domain + ";" + user
	}
	return "smb://" + user + "@" + c.addr + "/" + c.cfg.Share
}

// url names a path of the share in messages.
func (c *Client) url(path string) string {
	return c.String() + "/" + strings.TrimLeft(strings.ReplaceAll(path, `\`, "/"), "/")
}

// Close logs off.
func (c *Client) Close() error {
	c.mu.Lock()
	cn := c.conn
	c.conn, c.closed = nil, true
	c.mu.Unlock()
	if cn != nil {
		cn.once.Do(func() { close(cn.done) })
		err := cn.session.Logoff()
		cn.nc.Close()
		return err
	}
	return nil
}

// mount returns the current session, logging in first if needed.
//
// Requests on a session never get a context that ends: go-smb2 lets the
// next request reuse the send buffer of one whose context ended while it
// was being written (a data race on the wire). Callers stop waiting
// instead (do, readahead) and the keepalive bounds how long a request can
// hang on a dead connection.
func (c *Client) mount(ctx context.Context) (*conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, fmt.Errorf("%s: client closed", c)
	}
	if c.conn != nil {
		return c.conn, nil
	}
	timeout := c.cfg.DialTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	nc, err := (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext(dctx, "tcp", c.addr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, fmt.Errorf("%s: %w", c, err)
	}
	// Set-up requests may be cut by dctx; the connection is then thrown away.
	stop := context.AfterFunc(dctx, func() { nc.Close() })
	defer stop()
	d := &smb2.Dialer{
		Negotiator: smb2.Negotiator{RequireMessageSigning: c.cfg.RequireSigning},
		Initiator:  &smb2.NTLMInitiator{User: c.cfg.User, Password: c.cfg.Password, Domain: c.cfg.Domain},
	}
	s, err := d.DialConn(dctx, nc, c.addr)
	if err != nil {
		nc.Close()
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, c.classify(nil, "log on to", "", err)
	}
	share, err := s.WithContext(dctx).Mount(c.cfg.Share)
	if err != nil {
		_ = s.Logoff()
		nc.Close()
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, c.classify(nil, "mount", "", err)
	}
	if !stop() {
		return nil, fmt.Errorf("%s: no session within %v", c, timeout)
	}
	cn := &conn{nc: nc, session: s, share: share.WithContext(context.Background()), done: make(chan struct{})}
	if ka := c.cfg.KeepAlive; ka >= 0 {
		if ka == 0 {
			ka = 15 * time.Second
		}
		go c.keepAlive(cn, ka)
	}
	c.conn = cn
	return cn, nil
}

// keepAlive sends an ECHO every interval while cn is current and retires
// cn when one is not answered within three intervals.
func (c *Client) keepAlive(cn *conn, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-cn.done:
			return
		case <-t.C:
		}
		answered := make(chan error, 1)
		go func() { answered <- cn.session.Echo() }()
		select {
		case <-cn.done:
			return
		case err := <-answered:
			if err == nil {
				continue
			}
		case <-time.After(3 * interval):
		}
		c.retire(cn)
		return
	}
}

// retire forgets cn after a transport failure so that the next use logs
// in again.
func (c *Client) retire(cn *conn) {
	if cn == nil {
		return
	}
	c.mu.Lock()
	if c.conn == cn {
		c.conn = nil
	}
	c.mu.Unlock()
	cn.retire()
}

// do runs a go-smb2 call without ending it when ctx does (see mount), but
// returns ctx's cause then.
func do[T any](ctx context.Context, f func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := f()
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, context.Cause(ctx)
	}
}

// NTSTATUS codes the classification needs (MS-ERREF 2.3).
const (
	statusWrongPassword        = 0xC000006A
	statusLogonFailure         = 0xC000006D
	statusAccountRestriction   = 0xC000006E
	statusPasswordExpired      = 0xC0000071
	statusAccountDisabled      = 0xC0000072
	statusNoSuchUser           = 0xC0000064
	statusAccountLockedOut     = 0xC0000234
	statusAccountExpired       = 0xC0000193
	statusPasswordMustChange   = 0xC0000224
	statusBadNetworkName       = 0xC00000CC
	statusObjectNameInvalid    = 0xC0000033
	statusFileIsADirectory     = 0xC00000BA
	statusNotADirectory        = 0xC0000103
	statusNetworkNameDeleted   = 0xC00000C9
	statusUserSessionDeleted   = 0xC0000203
	statusNetworkSessionExpire = 0xC000035C
)

// classify wraps an error of an operation on path: permanent for what the
// server refused for good, and a failure of the session or transport
// retires the session.
func (c *Client) classify(cn *conn, op, path string, err error) error {
	if err == nil {
		return nil
	}
	name := c.String()
	if path != "" {
		name = c.url(path)
	}
	var re *smb2.ResponseError
	var te *smb2.TransportError
	switch {
	case errors.Is(err, transfer.ErrPermanent), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%s %s: %w: %w", op, name, err, transfer.ErrPermanent)
	case errors.As(err, &re):
		switch re.Code {
		case statusWrongPassword, statusLogonFailure, statusAccountRestriction, statusPasswordExpired,
			statusAccountDisabled, statusNoSuchUser, statusAccountLockedOut, statusAccountExpired, statusPasswordMustChange:
			// NTLM's answer names no credential; neither does this.
			return fmt.Errorf("%s %s: %w (%v): %w", op, name, ErrAuth, err, transfer.ErrPermanent)
		case statusBadNetworkName, statusObjectNameInvalid, statusFileIsADirectory, statusNotADirectory:
			return fmt.Errorf("%s %s: %w: %w", op, name, err, transfer.ErrPermanent)
		case statusNetworkNameDeleted, statusUserSessionDeleted, statusNetworkSessionExpire:
			c.retire(cn)
		}
		return fmt.Errorf("%s %s: %w", op, name, err)
	case errors.As(err, &te), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		c.retire(cn)
		return fmt.Errorf("%s %s: %w", op, name, err)
	default:
		var ne net.Error
		if errors.As(err, &ne) {
			c.retire(cn)
		}
		return fmt.Errorf("%s %s: %w", op, name, err)
	}
}

// Stat returns the information of a path of the share.
func (c *Client) Stat(ctx context.Context, path string) (fs.FileInfo, error) {
	cn, err := c.mount(ctx)
	if err != nil {
		return nil, err
	}
	fi, err := do(ctx, func() (fs.FileInfo, error) { return cn.share.Stat(path) })
	return fi, c.classify(cn, "stat", path, err)
}

// Remove removes a file or an empty directory; one that does not exist is
// not an error (clean-up runs again after a crash).
func (c *Client) Remove(ctx context.Context, path string) error {
	cn, err := c.mount(ctx)
	if err != nil {
		return err
	}
	_, err = do(ctx, func() (struct{}, error) { return struct{}{}, cn.share.Remove(path) })
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return c.classify(cn, "remove", path, err)
}

// RemoveAll removes path and everything below it; links (reparse points)
// are removed, never followed. A path that does not exist is not an error.
func (c *Client) RemoveAll(ctx context.Context, path string) error {
	cn, err := c.mount(ctx)
	if err != nil {
		return err
	}
	_, err = do(ctx, func() (struct{}, error) { return struct{}{}, cn.share.RemoveAll(path) })
	return c.classify(cn, "remove", path, err)
}

// Source is the file at path of the share ("dir/disk.vhdx" or
// `dir\disk.vhdx`) as a transfer.Source.
func (c *Client) Source(path string) transfer.Source { return &source{c: c, path: path} }

type source struct {
	c    *Client
	path string
}

func (s *source) String() string { return s.c.url(s.path) }

// OpenRange opens the file (its CREATE answer carries size and last write
// time) and reads [off, off+n) with several READs in flight.
func (s *source) OpenRange(ctx context.Context, off, n int64) (io.ReadCloser, transfer.SourceInfo, error) {
	cn, err := s.c.mount(ctx)
	if err != nil {
		return nil, transfer.SourceInfo{}, err
	}
	type opened struct {
		f   *smb2.File
		fi  fs.FileInfo
		err error
	}
	ch := make(chan opened, 1)
	go func() {
		f, err := cn.share.Open(s.path)
		if err != nil {
			ch <- opened{err: err}
			return
		}
		fi, err := f.Stat()
		if err != nil {
			_ = f.Close()
			ch <- opened{err: err}
			return
		}
		ch <- opened{f: f, fi: fi}
	}()
	var o opened
	select {
	case o = <-ch:
	case <-ctx.Done():
		// The open goes on (see mount) and its handle must be closed once
		// it is there, or the server would refuse to delete the file.
		go func() {
			if o := <-ch; o.f != nil {
				_ = o.f.Close()
			}
		}()
		return nil, transfer.SourceInfo{}, context.Cause(ctx)
	}
	if o.err != nil {
		return nil, transfer.SourceInfo{}, s.c.classify(cn, "open", s.path, o.err)
	}
	f, fi := o.f, o.fi
	closeFile := func() { _ = f.Close() }
	if !fi.Mode().IsRegular() {
		go closeFile()
		return nil, transfer.SourceInfo{}, fmt.Errorf("%s: not a regular file (%v): %w", s, fi.Mode().Type(), transfer.ErrPermanent)
	}
	size := fi.Size()
	info := transfer.SourceInfo{Size: size, Version: strconv.FormatInt(fi.ModTime().UnixNano(), 10) + "/" + strconv.FormatInt(size, 10)}
	end := size
	if n >= 0 {
		end = min(size, off+n)
	}
	if off >= end {
		go closeFile()
		return io.NopCloser(strings.NewReader("")), info, nil
	}
	r := readahead.New(ctx, f, off, end-off, readahead.Options{BlockSize: readBlock, Depth: readDepth, Release: closeFile})
	return &body{r: r, s: s, cn: cn}, info, nil
}

// body classifies read errors like the other calls.
type body struct {
	r  *readahead.Reader
	s  *source
	cn *conn
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		err = b.s.c.classify(b.cn, "read", b.s.path, err)
	}
	return n, err
}

func (b *body) Close() error { return b.r.Close() }
