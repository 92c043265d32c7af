package hyperv

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/masterzen/winrm"

	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/providers/hyperv/internal/ps"
)

// ScriptError is a PowerShell error a script reported (the cmdlet's
// exception type, message and FullyQualifiedErrorId).
type ScriptError struct {
	Script                 string
	Type, Message, ErrorID string
}

func (e *ScriptError) Error() string {
	s := fmt.Sprintf("hyper-v %s: %s: %s", e.Script, e.Type, e.Message)
	if e.ErrorID != "" {
		s += " (" + e.ErrorID + ")"
	}
	return s
}

// newWinRM makes the WinRM client of cfg. Nothing is dialed.
func newWinRM(cfg *Config) (*winrm.Client, error) {
	ca := []byte(cfg.CAPEM)
	if cfg.CAFile != "" {
		b, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		ca = b
	}
	https := cfg.transport() == "https"
	// ResponseHeaderTimeout: above the WS-Management operation timeout,
	// after which the host answers a Receive with OperationTimeout and
	// the client asks again; a long Export-VM is many such Receives.
	ep := winrm.NewEndpoint(cfg.Host, cfg.port(), https, false, ca, nil, nil, 90*time.Second)
	params := winrm.NewParameters("PT60S", "en-US", 153600)
	switch {
	case cfg.auth() == "basic":
		// The default transport: Basic over TLS.
	case https:
		params.TransportDecorator = func() winrm.Transporter { return &winrm.ClientNTLM{} }
	default:
		// NTLM with message encryption over plain HTTP, so that the host
		// needs no AllowUnencrypted.
		enc, err := winrm.NewEncryption("ntlm")
		if err != nil {
			return nil, err
		}
		params.TransportDecorator = func() winrm.Transporter { return enc }
	}
	return winrm.NewClientWithParameters(ep, cfg.Username, cfg.Password.Reveal(), params)
}

// run runs script with input on the host and decodes its result into out.
func (p *Provider) run(ctx context.Context, script string, input, out any) error {
	name := ps.Names()[script]
	text, err := ps.Command(script, input)
	if err != nil {
		return fmt.Errorf("hyper-v %s: %w", name, err)
	}
	c, err := p.client()
	if err != nil {
		return err
	}
	stdout, stderr, code, err := c.RunWithContextWithString(ctx, winrm.Powershell(text), "")
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("hyper-v %s: %w", name, ctx.Err())
		}
		return fmt.Errorf("hyper-v %s: %w", name, classify(err))
	}
	reply, perr := lastJSON(stdout)
	if perr != nil {
		return fmt.Errorf("hyper-v %s: exit code %d, %v; stderr: %s", name, code, perr, clip(stderr))
	}
	if !reply.OK {
		if reply.Error == nil {
			return fmt.Errorf("hyper-v %s: failed without an error object", name)
		}
		return &ScriptError{Script: name, Type: reply.Error.Type, Message: reply.Error.Message, ErrorID: reply.Error.ID}
	}
	if out != nil {
		if err := json.Unmarshal(reply.Result, out); err != nil {
			return fmt.Errorf("hyper-v %s: result: %w", name, err)
		}
	}
	return nil
}

// classify maps the winrm library's errors: a 401 is refused credentials.
func classify(err error) error {
	// The library reports a 401 as "http response error: 401 - …" (Basic)
	// or "http error 401: …" (NTLM).
	if m := err.Error(); strings.Contains(m, "error: 401 ") || strings.Contains(m, "http error 401") {
		return fmt.Errorf("%w: WinRM refused the credentials", providers.ErrAuth)
	}
	return err
}

// lastJSON decodes the last non-empty line of a script's output (anything
// a cmdlet printed before it is ignored).
func lastJSON(stdout string) (*ps.Reply, error) {
	var last string
	sc := bufio.NewScanner(strings.NewReader(stdout))
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			last = l
		}
	}
	if last == "" {
		return nil, errors.New("no answer on stdout")
	}
	var r ps.Reply
	if err := json.Unmarshal([]byte(last), &r); err != nil {
		return nil, fmt.Errorf("answer is not the expected JSON: %w", err)
	}
	return &r, nil
}

func clip(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 500 {
		return s[:500] + "…"
	}
	return s
}
