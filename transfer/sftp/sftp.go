package sftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"
	"sync"

	pkgsftp "github.com/pkg/sftp"

	"github.com/hypersdk/hypersdk/internal/sshclient"
	"github.com/hypersdk/hypersdk/transfer"
	"github.com/hypersdk/hypersdk/transfer/internal/readahead"
)

// Read-ahead of one range: blocks of readBlock bytes (each split by
// pkg/sftp into concurrent requests of its packet size), readDepth of them
// in flight. 2 MiB in flight per stream covers a 100 ms × 160 Mbit/s link;
// ChunkConcurrency multiplies it.
const (
	readBlock = 1 << 20
	readDepth = 2
)

// Client is an SFTP client over one SSH server's connection. It is safe for
// concurrent use.
type Client struct {
	ssh *sshclient.Client

	mu      sync.Mutex
	session *pkgsftp.Client
	gen     uint64 // the SSH connection the session runs on
	closed  bool
}

// New returns a Client on ssh's connection (dialed on first use). The
// caller keeps ownership of ssh; Close closes only the SFTP session.
func New(ssh *sshclient.Client) *Client { return &Client{ssh: ssh} }

// Close ends the SFTP session; the SSH connection stays open.
func (c *Client) Close() error {
	c.mu.Lock()
	s := c.session
	c.session, c.closed = nil, true
	c.mu.Unlock()
	if s != nil {
		return s.Close()
	}
	return nil
}

// sftp returns the SFTP session of the current connection, starting one if
// needed.
func (c *Client) sftp(ctx context.Context) (*pkgsftp.Client, error) {
	conn, gen, err := c.ssh.Conn(ctx)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, fmt.Errorf("%s: SFTP client closed", c.ssh)
	}
	if c.session != nil && c.gen == gen {
		return c.session, nil
	}
	if c.session != nil {
		_ = c.session.Close() // on a connection that is gone
		c.session = nil
	}
	s, err := pkgsftp.NewClient(conn, pkgsftp.UseConcurrentReads(true))
	if err != nil {
		// No SFTP on a live connection: the server does not offer it.
		return nil, fmt.Errorf("%s: start SFTP: %w", c.ssh, err)
	}
	c.session, c.gen = s, gen
	return s, nil
}

// retire forgets session s after a transport failure, so that the next
// use starts another (on a new connection if this one died).
func (c *Client) retire(s *pkgsftp.Client) {
	c.mu.Lock()
	if c.session == s {
		c.session = nil
	}
	c.mu.Unlock()
	_ = s.Close()
}

// classify wraps what an SFTP call returned: permanent for what the server
// refused for good, and a transport failure retires the session.
func (c *Client) classify(s *pkgsftp.Client, op, path string, err error) error {
	if err == nil {
		return nil
	}
	var se *pkgsftp.StatusError
	switch {
	case errors.Is(err, transfer.ErrPermanent), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%s %s: %w: %w", op, c.url(path), err, transfer.ErrPermanent)
	case errors.As(err, &se):
		switch se.FxCode() {
		case pkgsftp.ErrSSHFxNoSuchFile, pkgsftp.ErrSSHFxPermissionDenied, pkgsftp.ErrSSHFxOpUnsupported:
			return fmt.Errorf("%s %s: %w: %w", op, c.url(path), err, transfer.ErrPermanent)
		case pkgsftp.ErrSSHFxConnectionLost, pkgsftp.ErrSSHFxNoConnection:
			c.retire(s)
		}
		return fmt.Errorf("%s %s: %w", op, c.url(path), err)
	default:
		// Not an answer from the server: the session (or the connection
		// under it) failed.
		c.retire(s)
		return fmt.Errorf("%s %s: %w", op, c.url(path), err)
	}
}

// do runs an SFTP call, returning early when ctx ends (pkg/sftp calls take
// no context; a call left behind ends with its connection).
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

// Stat returns the file's information, following links.
func (c *Client) Stat(ctx context.Context, path string) (fs.FileInfo, error) {
	s, err := c.sftp(ctx)
	if err != nil {
		return nil, err
	}
	fi, err := do(ctx, func() (fs.FileInfo, error) { return s.Stat(path) })
	return fi, c.classify(s, "stat", path, err)
}

// Remove removes a file or an empty directory; one that does not exist is
// not an error (clean-up runs again after a crash).
func (c *Client) Remove(ctx context.Context, path string) error {
	s, err := c.sftp(ctx)
	if err != nil {
		return err
	}
	_, err = do(ctx, func() (struct{}, error) { return struct{}{}, s.Remove(path) })
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return c.classify(s, "remove", path, err)
}

// RemoveAll removes path and everything below it, without following links
// (a link is removed, not its target); a path that does not exist is not
// an error.
func (c *Client) RemoveAll(ctx context.Context, path string) error {
	s, err := c.sftp(ctx)
	if err != nil {
		return err
	}
	_, err = do(ctx, func() (struct{}, error) { return struct{}{}, s.RemoveAll(path) })
	if errors.Is(err, fs.ErrNotExist) {
		// Gone already, or removed concurrently by another clean-up: check.
		if _, lerr := do(ctx, func() (fs.FileInfo, error) { return s.Lstat(path) }); errors.Is(lerr, fs.ErrNotExist) {
			return nil
		}
	}
	return c.classify(s, "remove", path, err)
}

// Source is the remote file at path (absolute, or relative to the login
// directory) as a transfer.Source.
func (c *Client) Source(path string) transfer.Source { return &source{c: c, path: path} }

type source struct {
	c    *Client
	path string
}

func (s *source) String() string { return s.c.url(s.path) }

// url names a remote path in messages: sftp://user@host:port/abs/path, or
// …/~/rel/path for a path relative to the login directory.
func (c *Client) url(path string) string {
	base := "sftp" + strings.TrimPrefix(c.ssh.String(), "ssh")
	if strings.HasPrefix(path, "/") {
		return base + path
	}
	return base + "/~/" + path
}

// OpenRange opens the file, fstat()s the handle for its size and version
// and reads [off, off+n) with several reads in flight.
func (s *source) OpenRange(ctx context.Context, off, n int64) (io.ReadCloser, transfer.SourceInfo, error) {
	cl, err := s.c.sftp(ctx)
	if err != nil {
		return nil, transfer.SourceInfo{}, err
	}
	f, err := do(ctx, func() (*pkgsftp.File, error) { return cl.Open(s.path) })
	if err != nil {
		if f != nil {
			f.Close()
		}
		return nil, transfer.SourceInfo{}, s.c.classify(cl, "open", s.path, err)
	}
	fi, err := do(ctx, f.Stat)
	if err != nil {
		go f.Close()
		return nil, transfer.SourceInfo{}, s.c.classify(cl, "stat", s.path, err)
	}
	if !fi.Mode().IsRegular() {
		go f.Close()
		return nil, transfer.SourceInfo{}, fmt.Errorf("%s: %s is not a regular file: %w", s, fi.Mode().Type(), transfer.ErrPermanent)
	}
	size := fi.Size()
	info := transfer.SourceInfo{Size: size, Version: strconv.FormatInt(fi.ModTime().Unix(), 10) + "/" + strconv.FormatInt(size, 10)}
	end := size
	if n >= 0 {
		end = min(size, off+n)
	}
	if off >= end {
		go f.Close()
		return io.NopCloser(eofReader{}), info, nil
	}
	r := readahead.New(ctx, f, off, end-off, readahead.Options{BlockSize: readBlock, Depth: readDepth,
		Release: func() { _ = f.Close() }})
	return &body{r: r, s: s, cl: cl}, info, nil
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// body classifies read errors like the other calls.
type body struct {
	r  *readahead.Reader
	s  *source
	cl *pkgsftp.Client
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		err = b.s.c.classify(b.cl, "read", b.s.path, err)
	}
	return n, err
}

func (b *body) Close() error { return b.r.Close() }
