package sshclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"golang.org/x/crypto/ssh"
)

// ExitError is a remote command that ran and failed.
type ExitError struct {
	// Command is the command line as sent.
	Command string
	// Status is the exit status; -1 when the command was ended by a signal
	// (Signal says which) or the server did not report one.
	Status int
	Signal string
	// Stderr is the end of what the command wrote to its standard error.
	Stderr string
}

func (e *ExitError) Error() string {
	how := fmt.Sprintf("exit status %d", e.Status)
	if e.Signal != "" {
		how = "killed by signal " + e.Signal
	}
	if e.Stderr != "" {
		return fmt.Sprintf("remote command %q: %s: %s", e.Command, how, e.Stderr)
	}
	return fmt.Sprintf("remote command %q: %s", e.Command, how)
}

// Command is a remote command started by Start; reading it reads the
// command's standard output as it streams.
type Command struct {
	ctx     context.Context
	cmd     string
	session *ssh.Session
	stdout  *io.PipeReader
	stderr  *tailBuffer
	stop    func() bool

	once    sync.Once
	waitErr error
}

// stderrTail is how much of a command's standard error is kept for its
// error: enough for the message that says why it failed.
const stderrTail = 4 << 10

// Start runs cmd (a shell command line: the server's shell parses it, so
// quote what comes from outside) on the client's connection. The caller
// reads its standard output from the Command and must Close it. Ending
// ctx stops the command (SIGTERM, then the session is closed).
func (c *Client) Start(ctx context.Context, cmd string) (*Command, error) {
	conn, gen, err := c.Conn(ctx)
	if err != nil {
		return nil, err
	}
	s, err := conn.NewSession()
	if err != nil {
		// A connection that cannot open a channel is of no more use.
		c.Drop(gen)
		return nil, fmt.Errorf("%s: new session: %w", c, err)
	}
	stdout, err := s.StdoutPipe()
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("%s: %w", c, err)
	}
	tail := &tailBuffer{max: stderrTail}
	s.Stderr = tail
	if err := s.Start(cmd); err != nil {
		s.Close()
		return nil, fmt.Errorf("%s: start %q: %w", c, cmd, err)
	}
	// Output goes through a pipe so that ending ctx releases a reader at
	// once: a read of the channel itself cannot be interrupted, and servers
	// may refuse the signal (OpenSSH does for forced commands) and keep the
	// channel open until the command ends by itself (one that writes dies
	// of SIGPIPE once the channel is closed).
	pr, pw := io.Pipe()
	rc := &Command{ctx: ctx, cmd: cmd, session: s, stdout: pr, stderr: tail}
	go func() {
		_, err := io.Copy(pw, stdout)
		pw.CloseWithError(err) // nil: EOF
	}()
	rc.stop = context.AfterFunc(ctx, func() {
		pr.CloseWithError(context.Cause(ctx))
		_ = s.Signal(ssh.SIGTERM)
		s.Close()
	})
	return rc, nil
}

// Read reads the command's standard output. At its end Read waits for the
// command to exit: io.EOF when it succeeded, an *ExitError otherwise, so
// that a consumer never takes the output of a failed command for whole.
func (r *Command) Read(p []byte) (int, error) {
	if r.ctx.Err() != nil {
		return 0, context.Cause(r.ctx)
	}
	n, err := r.stdout.Read(p)
	if err != nil && r.ctx.Err() != nil {
		return n, context.Cause(r.ctx)
	}
	if err == io.EOF {
		if werr := r.wait(); werr != nil {
			return n, werr
		}
	}
	return n, err
}

// Wait waits for the command to exit (reading and discarding what is left
// of its output) and returns nil or why it failed; once ctx has ended it
// returns ctx's cause at once.
func (r *Command) Wait() error {
	if r.ctx.Err() != nil {
		return context.Cause(r.ctx)
	}
	if _, err := io.Copy(io.Discard, r); err != io.EOF && err != nil {
		return err
	}
	return r.wait()
}

func (r *Command) wait() error {
	r.once.Do(func() {
		err := r.session.Wait()
		var ee *ssh.ExitError
		var missing *ssh.ExitMissingError
		switch {
		case err == nil:
		case r.ctx.Err() != nil:
			r.waitErr = context.Cause(r.ctx) // we stopped it
		case errors.As(err, &ee):
			r.waitErr = &ExitError{Command: r.cmd, Status: ee.ExitStatus(), Signal: ee.Signal(), Stderr: r.stderr.String()}
			if ee.Signal() != "" {
				r.waitErr.(*ExitError).Status = -1
			}
		case errors.As(err, &missing):
			r.waitErr = &ExitError{Command: r.cmd, Status: -1, Stderr: r.stderr.String()}
		default:
			r.waitErr = fmt.Errorf("remote command %q: %w", r.cmd, err)
		}
	})
	return r.waitErr
}

// Close stops the command if it still runs and releases its session.
func (r *Command) Close() error {
	r.stop()
	r.stdout.CloseWithError(errClosed)
	err := r.session.Close()
	if errors.Is(err, io.EOF) {
		err = nil // already closed by the server
	}
	return err
}

var errClosed = errors.New("remote command closed")

// Run runs cmd, streaming its standard output into stdout, and returns nil
// once it exited successfully, or why not (an *ExitError carries the exit
// status and the end of its standard error).
func (c *Client) Run(ctx context.Context, cmd string, stdout io.Writer) error {
	rc, err := c.Start(ctx, cmd)
	if err != nil {
		return err
	}
	defer rc.Close()
	if _, err := io.Copy(stdout, rc); err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return err
	}
	return nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.TrimSpace(t.b))
}
