package winrmfake

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"golang.org/x/text/encoding/unicode"
)

// WS-Management actions and namespaces the client uses.
const (
	actCreate  = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create"
	actDelete  = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete"
	actCommand = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Command"
	actReceive = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Receive"
	actSend    = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Send"
	actSignal  = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Signal"
	stateDone  = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done"
	stateRun   = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Running"
	resCmd     = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd"

	envOpen = `<s:Envelope xml:lang="en-US" xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:x="http://schemas.xmlsoap.org/ws/2004/09/transfer" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell" xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd" xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault">`
)

// psPrefix is what the winrm library puts in front of every PowerShell
// script it encodes (winrm.Powershell).
const psPrefix = "$ProgressPreference = 'SilentlyContinue';"

// envelope is a request as the client sends it; elements are matched by
// local name.
type envelope struct {
	Header struct {
		Action    string `xml:"Action"`
		MessageID string `xml:"MessageID"`
		Selectors []struct {
			Name  string `xml:"Name,attr"`
			Value string `xml:",chardata"`
		} `xml:"SelectorSet>Selector"`
		OperationTimeout string `xml:"OperationTimeout"`
	} `xml:"Header"`
	Body struct {
		Command *struct {
			Command   string   `xml:"Command"`
			Arguments []string `xml:"Arguments"`
		} `xml:"CommandLine"`
		Receive *struct {
			Stream struct {
				CommandID string `xml:"CommandId,attr"`
			} `xml:"DesiredStream"`
		} `xml:"Receive"`
		Send *struct {
			Stream struct {
				CommandID string `xml:"CommandId,attr"`
				End       string `xml:"End,attr"`
				Data      string `xml:",chardata"`
			} `xml:"Stream"`
		} `xml:"Send"`
		Signal *struct {
			CommandID string `xml:"CommandId,attr"`
			Code      string `xml:"Code"`
		} `xml:"Signal"`
	} `xml:"Body"`
}

func (e *envelope) shellID() string {
	for _, s := range e.Header.Selectors {
		if s.Name == "ShellId" {
			return strings.TrimSpace(s.Value)
		}
	}
	return ""
}

type shell struct {
	commands map[string]*command
}

// command is one running script.
type command struct {
	cancel context.CancelFunc
	done   chan struct{}
	stdout []byte
	stderr []byte
	exit   int
	sent   bool // output already handed to a Receive
}

// Server is the WS-Management endpoint.
type Server struct {
	host *Host
	user string
	pass string
	log  *slog.Logger
	// receiveWait is how long a Receive waits for a command before it
	// answers OperationTimeout, as WinRM does after OperationTimeout.
	receiveWait time.Duration
	srv         *httptest.Server

	ntlm bool

	mu         sync.Mutex
	shells     map[string]*shell
	challenges map[string][8]byte // NTLM server challenge by client address
}

// Options configure a Server.
type Options struct {
	// Username and Password are the one account accepted: HTTP Basic,
	// or with NTLM the NTLMv2 handshake (DOMAIN\user names the domain).
	Username, Password string
	// NTLM makes the server take NTLM (the Negotiate scheme) instead of
	// Basic.
	NTLM bool
	Host *Host
	Log  *slog.Logger
	// ReceiveWait bounds one Receive (default 2s): a command running
	// longer is answered OperationTimeout and asked again, as by WinRM.
	ReceiveWait time.Duration
}

// NewTLS starts a server over HTTPS (httptest's certificate; CAPEM
// returns it for the client's ca option).
func NewTLS(o Options) *Server {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.ReceiveWait == 0 {
		o.ReceiveWait = 2 * time.Second
	}
	s := &Server{host: o.Host, user: o.Username, pass: o.Password, log: o.Log, receiveWait: o.ReceiveWait, ntlm: o.NTLM,
		shells: map[string]*shell{}, challenges: map[string][8]byte{}}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.StartTLS()
	return s
}

// URL is https://127.0.0.1:port.
func (s *Server) URL() string { return s.srv.URL }

// Addr is 127.0.0.1:port.
func (s *Server) Addr() string { return s.srv.Listener.Addr().String() }

// CAPEM is the PEM certificate the server presents (self-signed).
func (s *Server) CAPEM() string {
	c := s.srv.Certificate()
	return "-----BEGIN CERTIFICATE-----\n" + base64.StdEncoding.EncodeToString(c.Raw) + "\n-----END CERTIFICATE-----\n"
}

// Close stops the server and every running command.
func (s *Server) Close() {
	s.srv.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sh := range s.shells {
		for _, c := range sh.commands {
			c.cancel()
		}
	}
}

// Shells is the number of open shells (a client that closes its shells
// leaves none).
func (s *Server) Shells() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.shells)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/wsman" || r.Method != http.MethodPost {
		http.Error(w, "", http.StatusNotFound)
		return
	}
	if s.ntlm {
		if !s.ntlmAuth(w, r) {
			return
		}
	} else if u, p, ok := r.BasicAuth(); !ok || subtle.ConstantTimeCompare([]byte(u), []byte(s.user)) != 1 || subtle.ConstantTimeCompare([]byte(p), []byte(s.pass)) != 1 {
		// WinRM answers an empty 401 naming the schemes it accepts.
		w.Header().Add("WWW-Authenticate", "Negotiate")
		w.Header().Add("WWW-Authenticate", `Basic realm="WSMAN"`)
		w.WriteHeader(http.StatusUnauthorized)
		s.log.Info("winrmfake: authentication refused", "user", u)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return
	}
	var env envelope
	if err := xml.Unmarshal(body, &env); err != nil {
		s.fault(w, "s:Sender", "w:InvalidMessageInformationHeader", "The request is not a SOAP envelope: "+err.Error(), "2150858817")
		return
	}
	s.handle(w, &env)
}

func (s *Server) handle(w http.ResponseWriter, env *envelope) {
	s.mu.Lock()
	defer s.mu.Unlock()
	act := strings.TrimSpace(env.Header.Action)
	if act == actCreate {
		id := newUUID()
		s.shells[id] = &shell{commands: map[string]*command{}}
		s.reply(w, env, "http://schemas.xmlsoap.org/ws/2004/09/transfer/CreateResponse",
			`<x:ResourceCreated><a:Address>`+html.EscapeString(s.srv.URL)+`/wsman</a:Address><a:ReferenceParameters><w:ResourceURI>`+resCmd+`</w:ResourceURI><w:SelectorSet><w:Selector Name="ShellId">`+id+`</w:Selector></w:SelectorSet></a:ReferenceParameters></x:ResourceCreated>`+
				`<rsp:Shell><rsp:ShellId>`+id+`</rsp:ShellId><rsp:ResourceUri>`+resCmd+`</rsp:ResourceUri><rsp:Owner>`+html.EscapeString(s.user)+`</rsp:Owner><rsp:State>Connected</rsp:State></rsp:Shell>`)
		return
	}
	sh := s.shells[env.shellID()]
	if sh == nil {
		s.fault(w, "s:Sender", "w:InvalidSelectors", "The WS-Management service cannot process the request because the request contained invalid selectors for the resource.", "2150858843")
		return
	}
	switch act {
	case actDelete:
		for _, c := range sh.commands {
			c.cancel()
		}
		delete(s.shells, env.shellID())
		s.reply(w, env, "http://schemas.xmlsoap.org/ws/2004/09/transfer/DeleteResponse", "")
	case actCommand:
		if env.Body.Command == nil {
			s.fault(w, "s:Sender", "w:SchemaValidationError", "CommandLine missing", "2150858817")
			return
		}
		id := newUUID()
		ctx, cancel := context.WithCancel(context.Background())
		c := &command{cancel: cancel, done: make(chan struct{})}
		sh.commands[id] = c
		line := env.Body.Command.Command
		go func() {
			defer close(c.done)
			out, errOut, code := s.execute(ctx, line)
			s.mu.Lock()
			c.stdout, c.stderr, c.exit = []byte(out), []byte(errOut), code
			s.mu.Unlock()
		}()
		s.reply(w, env, "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandResponse",
			`<rsp:CommandResponse><rsp:CommandId>`+id+`</rsp:CommandId></rsp:CommandResponse>`)
	case actSend:
		if env.Body.Send == nil || sh.commands[env.Body.Send.Stream.CommandID] == nil {
			s.fault(w, "s:Sender", "w:InvalidParameter", "unknown command", "2150858843")
			return
		}
		s.reply(w, env, "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/SendResponse", `<rsp:SendResponse/>`)
	case actSignal:
		if env.Body.Signal == nil {
			s.fault(w, "s:Sender", "w:SchemaValidationError", "Signal missing", "2150858817")
			return
		}
		if c := sh.commands[env.Body.Signal.CommandID]; c != nil {
			c.cancel()
			delete(sh.commands, env.Body.Signal.CommandID)
		}
		s.reply(w, env, "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/SignalResponse", `<rsp:SignalResponse/>`)
	case actReceive:
		if env.Body.Receive == nil {
			s.fault(w, "s:Sender", "w:SchemaValidationError", "Receive missing", "2150858817")
			return
		}
		id := env.Body.Receive.Stream.CommandID
		c := sh.commands[id]
		if c == nil {
			s.fault(w, "s:Sender", "w:InvalidParameter", "The request contained an unknown CommandId.", "2150858843")
			return
		}
		// Wait for the command without holding the lock.
		s.mu.Unlock()
		select {
		case <-c.done:
		case <-time.After(s.receiveWait):
		}
		s.mu.Lock()
		select {
		case <-c.done:
		default:
			s.fault(w, "s:Receiver", "w:TimedOut", "The WS-Management service cannot complete the operation within the time specified in OperationTimeout.", "2150858793")
			return
		}
		var b strings.Builder
		b.WriteString(`<rsp:ReceiveResponse>`)
		if !c.sent {
			writeStream(&b, "stdout", id, c.stdout)
			writeStream(&b, "stderr", id, c.stderr)
			c.sent = true
		}
		fmt.Fprintf(&b, `<rsp:CommandState CommandId="%s" State="%s"><rsp:ExitCode>%d</rsp:ExitCode></rsp:CommandState></rsp:ReceiveResponse>`, id, stateDone, c.exit)
		s.reply(w, env, "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/ReceiveResponse", b.String())
	default:
		s.fault(w, "s:Sender", "a:ActionNotSupported", "The action is not supported by the service.", "2150858770")
	}
}

// writeStream writes data as WinRM does: base64 chunks, then an empty
// element with End="true".
func writeStream(b *strings.Builder, name, id string, data []byte) {
	const chunk = 8 << 10
	for len(data) > 0 {
		n := min(chunk, len(data))
		fmt.Fprintf(b, `<rsp:Stream Name="%s" CommandId="%s">%s</rsp:Stream>`, name, id, base64.StdEncoding.EncodeToString(data[:n]))
		data = data[n:]
	}
	fmt.Fprintf(b, `<rsp:Stream Name="%s" CommandId="%s" End="true"></rsp:Stream>`, name, id)
}

func (s *Server) reply(w http.ResponseWriter, env *envelope, action, body string) {
	w.Header().Set("Content-Type", "application/soap+xml;charset=UTF-8")
	fmt.Fprintf(w, `%s<s:Header><a:Action>%s</a:Action><a:MessageID>uuid:%s</a:MessageID><a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To><a:RelatesTo>%s</a:RelatesTo></s:Header><s:Body>%s</s:Body></s:Envelope>`,
		envOpen, action, newUUID(), html.EscapeString(env.Header.MessageID), body)
}

func (s *Server) fault(w http.ResponseWriter, code, subcode, text, wsmanCode string) {
	w.Header().Set("Content-Type", "application/soap+xml;charset=UTF-8")
	w.WriteHeader(http.StatusInternalServerError)
	fmt.Fprintf(w, `%s<s:Header><a:Action>http://schemas.dmtf.org/wbem/wsman/1/wsman/fault</a:Action><a:MessageID>uuid:%s</a:MessageID></s:Header><s:Body><s:Fault><s:Code><s:Value>%s</s:Value><s:Subcode><s:Value>%s</s:Value></s:Subcode></s:Code><s:Reason><s:Text xml:lang="en-US">%s</s:Text></s:Reason><s:Detail><f:WSManFault Code="%s" Machine="winrmfake"><f:Message>%s</f:Message></f:WSManFault></s:Detail></s:Fault></s:Body></s:Envelope>`,
		envOpen, newUUID(), code, subcode, html.EscapeString(text), wsmanCode, html.EscapeString(text))
}

// execute runs one command line: powershell.exe -EncodedCommand <base64
// UTF-16LE>, the only form the provider sends.
func (s *Server) execute(ctx context.Context, line string) (stdout, stderr string, exit int) {
	const pfx = "powershell.exe -EncodedCommand "
	if !strings.HasPrefix(line, pfx) {
		return "", fmt.Sprintf("'%s' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n", strings.Fields(line + " x")[0]), 1
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(line, pfx))
	if err != nil || len(raw)%2 != 0 {
		return "", "The command line -EncodedCommand argument is not valid base64 UTF-16LE.\r\n", 1
	}
	text, err := unicode.UTF16(unicode.LittleEndian, unicode.IgnoreBOM).NewDecoder().Bytes(raw)
	if err != nil {
		return "", "The command line -EncodedCommand argument is not valid UTF-16LE.\r\n", 1
	}
	script := strings.TrimPrefix(string(text), psPrefix)
	return s.host.run(ctx, script, len(line))
}

func newUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%X-%X-%X-%X-%X", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
