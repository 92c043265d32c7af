package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/client"
	"github.com/hypersdk/hypersdk/config"
	"github.com/hypersdk/hypersdk/internal/backoff"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3",
// as for hypervisord.
var version = ""

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], osEnv())
	stop()
	os.Exit(code)
}

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1 // the operation failed: API error, job failed or cancelled
	exitUsage  = 2 // the command line is wrong
)

// env is everything hyperctl takes from its process, so that tests can run
// the command in process.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	// defaultDataDir is the data directory of a daemon on this host
	// started without --data-dir.
	defaultDataDir func() string
	// isTerminal decides between a live progress bar and plain lines.
	isTerminal func(io.Writer) bool
	// wrapTransport, when set, wraps the HTTP transport.
	wrapTransport func(http.RoundTripper) http.RoundTripper
	// pollInterval is how often watching polls a job (0: one second).
	pollInterval time.Duration
	// retry spaces retried requests (zero: the client's default).
	retry backoff.Policy
	now   func() time.Time
	// promptPassword asks for a password without echo; nil when there is
	// no terminal to ask on.
	promptPassword func(prompt string) (string, error)
}

func osEnv() *env {
	return &env{
		stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv,
		defaultDataDir: config.DefaultDataDir,
		isTerminal: func(w io.Writer) bool {
			f, ok := w.(*os.File)
			return ok && term.IsTerminal(int(f.Fd()))
		},
		now:            time.Now,
		promptPassword: promptTerminalPassword(os.Stderr),
	}
}

func buildVersion() string {
	v := version
	if bi, ok := debug.ReadBuildInfo(); ok && v == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	if v == "" {
		v = "dev"
	}
	return v
}

// run executes one hyperctl invocation and returns its exit code.
func run(ctx context.Context, args []string, e *env) int {
	root, a := newRootCommand(e)
	root.SetArgs(args)
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	return a.report(cmd, err)
}

// usageError is a mistake on the command line (exit 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// opError marks an error returned by a command's action, as opposed to
// one cobra raised while parsing the command line.
type opError struct{ err error }

func (e *opError) Error() string { return e.err.Error() }
func (e *opError) Unwrap() error { return e.err }

// jobEndedError reports a watched job that did not succeed.
type jobEndedError struct{ job *apitypes.Job }

func (e *jobEndedError) Error() string {
	j := e.job
	if j.State == apitypes.JobCancelled {
		return fmt.Sprintf("job %s was cancelled: %s", j.ID, orDash(j.Error))
	}
	kind := ""
	if j.ErrorKind != "" {
		kind = " (" + j.ErrorKind + ")"
	}
	return fmt.Sprintf("job %s %s after %d of %d attempt(s)%s: %s", j.ID, j.State, j.Attempt, j.MaxAttempts, kind, orDash(j.Error))
}

// report prints err for a human and returns the exit code.
func (a *app) report(cmd *cobra.Command, err error) int {
	w := a.env.stderr
	cmdPath := cmd.CommandPath()
	var ue *usageError
	var oe *opError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(w, "hyperctl: %s\nRun '%s --help' for usage.\n", ue.msg, cmdPath)
		return exitUsage
	case !errors.As(err, &oe):
		// Raised by cobra: unknown command or flag, bad flag value,
		// wrong number of arguments, missing required flag.
		fmt.Fprintf(w, "hyperctl: %s\nRun '%s --help' for usage.\n", err, cmdPath)
		return exitUsage
	}
	var p *client.Problem
	if errors.As(err, &p) {
		// "context: detail (HTTP n slug)" then one line per field error.
		ctxPrefix := strings.TrimSuffix(err.Error(), p.Error())
		status := fmt.Sprintf("HTTP %d", p.Status)
		if s := p.Slug(); s != "" {
			status += " " + s
		}
		fmt.Fprintf(w, "hyperctl: %s%s (%s)\n", ctxPrefix, p.Message(), status)
		// Name the flag or argument the user typed, not the API field.
		for _, f := range p.FieldErrorsNamed(func(loc string) string { return inputFor(cmd, loc) }) {
			fmt.Fprintf(w, "  %s\n", f)
		}
		switch p.Status {
		case http.StatusUnauthorized:
			fmt.Fprintf(w, "The server at %s rejected the token from %s. Set HYPERSDK_TOKEN (or --token-file) to a token configured in the daemon's api.tokens, or point --data-dir at the daemon's data directory to use its admin.token.\n",
				a.conn.server, a.conn.tokenSource)
		case http.StatusForbidden:
			fmt.Fprintf(w, "The token from %s is valid but its role does not allow this; use a token with the role named above.\n", a.conn.tokenSource)
		}
		return exitFailed
	}
	var ne *net.OpError
	if errors.As(err, &ne) && ne.Op == "dial" {
		fmt.Fprintf(w, "hyperctl: cannot reach hypervisord at %s (from %s): %v\nIs the daemon running? Start it with 'hypervisord', or point --server or HYPERSDK_SERVER at it.\n",
			a.conn.server, a.conn.serverSource, ne.Err)
		return exitFailed
	}
	fmt.Fprintf(w, "hyperctl: %s\n", err)
	if strings.Contains(err.Error(), "x509:") || strings.Contains(err.Error(), "tls:") {
		fmt.Fprintln(w, "If the daemon uses its own certificate authority, pass it with --cacert FILE.")
	}
	return exitFailed
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
