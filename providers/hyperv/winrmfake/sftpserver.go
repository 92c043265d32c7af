package winrmfake

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path"
	"strings"
	"sync"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// SFTPServer is an in-process SFTP server (x/crypto/ssh + pkg/sftp) that
// serves one directory read-only as "/", for the demo: the host's staging
// folder as Windows OpenSSH would serve it. One account, password login.
type SFTPServer struct {
	ln   net.Listener
	conf *ssh.ServerConfig
	root *os.Root
	pub  ssh.PublicKey
	log  *slog.Logger
	wg   sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// StartSFTP serves dir on 127.0.0.1 (a free port) for user and password.
func StartSFTP(dir, user, password string, log *slog.Logger) (*SFTPServer, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	signer, err := ssh.NewSignerFromKey(key)
	if err != nil {
		return nil, err
	}
	conf := &ssh.ServerConfig{
		PasswordCallback: func(c ssh.ConnMetadata, p []byte) (*ssh.Permissions, error) {
			if subtle.ConstantTimeCompare([]byte(c.User()), []byte(user)) == 1 && subtle.ConstantTimeCompare(p, []byte(password)) == 1 {
				return nil, nil
			}
			return nil, errors.New("password refused")
		},
	}
	conf.AddHostKey(signer)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &SFTPServer{ln: ln, conf: conf, root: root, pub: signer.PublicKey(), log: log, conns: map[net.Conn]struct{}{}}
	s.wg.Go(s.accept)
	return s, nil
}

// Addr is 127.0.0.1:port.
func (s *SFTPServer) Addr() string { return s.ln.Addr().String() }

// Fingerprint is the host key's SHA256 fingerprint ("SHA256:…").
func (s *SFTPServer) Fingerprint() string { return ssh.FingerprintSHA256(s.pub) }

// Close stops the server and its connections.
func (s *SFTPServer) Close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.root.Close()
}

func (s *SFTPServer) accept() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Go(func() {
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
			s.serve(c)
		})
	}
}

func (s *SFTPServer) serve(c net.Conn) {
	sc, chans, reqs, err := ssh.NewServerConn(c, s.conf)
	if err != nil {
		s.log.Debug("sftp: handshake failed", "err", err)
		return
	}
	defer sc.Close()
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			return
		}
		go func() {
			for r := range creqs {
				ok := r.Type == "subsystem" && len(r.Payload) > 4 && string(r.Payload[4:]) == "sftp"
				_ = r.Reply(ok, nil)
				if ok {
					h := handlers{root: s.root}
					srv := sftp.NewRequestServer(ch, sftp.Handlers{FileGet: h, FilePut: h, FileCmd: h, FileList: h})
					go func() {
						_ = srv.Serve()
						srv.Close()
						ch.Close()
					}()
				}
			}
		}()
	}
}

// handlers serve root read-only; every path is resolved beneath it.
type handlers struct{ root *os.Root }

func rel(p string) string {
	r := strings.TrimPrefix(path.Clean("/"+p), "/")
	if r == "" {
		return "."
	}
	return r
}

func (h handlers) Fileread(r *sftp.Request) (io.ReaderAt, error) {
	return h.root.Open(rel(r.Filepath))
}

func (h handlers) Filewrite(*sftp.Request) (io.WriterAt, error) {
	return nil, sftp.ErrSSHFxPermissionDenied
}

func (h handlers) Filecmd(*sftp.Request) error { return sftp.ErrSSHFxPermissionDenied }

func (h handlers) Filelist(r *sftp.Request) (sftp.ListerAt, error) {
	switch r.Method {
	case "Stat", "Lstat":
		fi, err := h.root.Stat(rel(r.Filepath))
		if err != nil {
			return nil, err
		}
		return lister{fi}, nil
	case "List":
		d, err := h.root.Open(rel(r.Filepath))
		if err != nil {
			return nil, err
		}
		defer d.Close()
		ents, err := d.ReadDir(-1)
		if err != nil {
			return nil, err
		}
		var out lister
		for _, e := range ents {
			if fi, err := e.Info(); err == nil {
				out = append(out, fi)
			}
		}
		return out, nil
	}
	return nil, sftp.ErrSSHFxOpUnsupported
}

type lister []fs.FileInfo

func (l lister) ListAt(dst []os.FileInfo, off int64) (int, error) {
	if off >= int64(len(l)) {
		return 0, io.EOF
	}
	n := copy(dst, l[off:])
	if n < len(dst) {
		return n, io.EOF
	}
	return n, nil
}
