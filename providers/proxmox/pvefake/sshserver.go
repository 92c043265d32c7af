package pvefake

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"golang.org/x/crypto/ssh"
)

// SSHServer is an in-process SSH server that plays a node's commands
// (see Run) for exec requests: what --demo uses instead of sshd. It
// accepts one client key, generated with its host key at start.
type SSHServer struct {
	// Addr is its loopback host:port.
	Addr string
	// Fingerprint is its host key's SHA256 fingerprint.
	Fingerprint string
	// ClientKey is the authorized client key (OpenSSH PEM).
	ClientKey []byte

	st     *State
	log    *slog.Logger
	ln     net.Listener
	cfg    *ssh.ServerConfig
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// StartSSH starts an SSH server on a loopback port for the state st.
func StartSSH(st *State, log *slog.Logger) (*SSHServer, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	hostSigner, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		return nil, err
	}
	_, clientPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	clientSigner, err := ssh.NewSignerFromKey(clientPriv)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(clientPriv, "")
	if err != nil {
		return nil, err
	}
	authorized := clientSigner.PublicKey().Marshal()
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if string(key.Marshal()) == string(authorized) {
				return &ssh.Permissions{}, nil
			}
			return nil, errors.New("key not authorized")
		},
	}
	cfg.AddHostKey(hostSigner)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &SSHServer{Addr: ln.Addr().String(), Fingerprint: ssh.FingerprintSHA256(hostSigner.PublicKey()),
		ClientKey: pem.EncodeToMemory(block), st: st, log: log, ln: ln, cfg: cfg, ctx: ctx, cancel: cancel}
	s.wg.Go(s.accept)
	return s, nil
}

// Close stops the server and its sessions.
func (s *SSHServer) Close() {
	s.cancel()
	s.ln.Close()
	s.wg.Wait()
}

func (s *SSHServer) accept() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Go(func() { s.serveConn(c) })
	}
}

func (s *SSHServer) serveConn(c net.Conn) {
	stop := context.AfterFunc(s.ctx, func() { c.Close() })
	defer stop()
	conn, chans, reqs, err := ssh.NewServerConn(c, s.cfg)
	if err != nil {
		c.Close()
		return
	}
	defer conn.Close()
	go ssh.DiscardRequests(reqs)
	var wg sync.WaitGroup
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			continue
		}
		wg.Go(func() { s.session(ch, creqs) })
	}
	wg.Wait()
}

// session serves one session channel: its exec request runs a command;
// a signal, the channel's close or the server's stop ends it.
func (s *SSHServer) session(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	started := false
	done := make(chan int, 1)
	for {
		select {
		case req, ok := <-reqs:
			if !ok {
				cancel() // the client closed the channel
				if started {
					<-done
				}
				return
			}
			switch {
			case req.Type == "exec" && !started:
				var p struct{ Command string }
				if err := ssh.Unmarshal(req.Payload, &p); err != nil {
					_ = req.Reply(false, nil)
					continue
				}
				_ = req.Reply(true, nil)
				started = true
				s.log.Debug("node command", "command", p.Command)
				go func() {
					done <- Run(ctx, s.st, p.Command, ch, ch.Stderr())
				}()
			case req.Type == "signal":
				cancel()
				if req.WantReply {
					_ = req.Reply(true, nil)
				}
			default:
				if req.WantReply {
					_ = req.Reply(false, nil)
				}
			}
		case code := <-done:
			_ = ch.CloseWrite()
			status := make([]byte, 4)
			binary.BigEndian.PutUint32(status, uint32(code))
			_, _ = ch.SendRequest("exit-status", false, status)
			return
		}
	}
}

// String names the server in messages.
func (s *SSHServer) String() string { return fmt.Sprintf("ssh://%s", s.Addr) }
