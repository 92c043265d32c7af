package hyperv

import (
	"context"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path"
	"strings"

	"github.com/hypersdk/hypersdk/internal/sshclient"
	"github.com/hypersdk/hypersdk/transfer"
	"github.com/hypersdk/hypersdk/transfer/sftp"
	"github.com/hypersdk/hypersdk/transfer/smb"
)

// fileClient reads the staging path on the host (SMB share or SFTP).
// Paths are relative to the staging path, with / separators.
type fileClient interface {
	Source(rel string) transfer.Source
	Stat(ctx context.Context, rel string) (fs.FileInfo, error)
	Close() error
}

func newFileClient(cfg *Config) (fileClient, error) {
	f := cfg.Files
	switch f.Method {
	case "smb":
		addr := f.SMB.Addr
		if addr == "" {
			addr = cfg.Host
		}
		c, err := smb.New(smb.Config{
			Addr: addr, User: f.SMB.Username, Password: f.SMB.Password.Reveal(), Domain: f.SMB.Domain,
			Share: f.SMB.Share, RequireSigning: f.SMB.RequireSigning,
		})
		if err != nil {
			return nil, err
		}
		return &smbFiles{c: c, dir: strings.Trim(f.SMB.Dir, "/")}, nil
	case "sftp":
		s := f.SFTP
		addr := s.Addr
		if addr == "" {
			addr = net.JoinHostPort(cfg.Host, "22")
		}
		key := []byte(s.PrivateKey.Reveal())
		if s.PrivateKeyFile != "" {
			b, err := os.ReadFile(s.PrivateKeyFile)
			if err != nil {
				return nil, fmt.Errorf("files.sftp.private_key_file: %w", err)
			}
			key = b
		}
		known := s.KnownHosts
		if s.KnownHostsFile != "" {
			b, err := os.ReadFile(s.KnownHostsFile)
			if err != nil {
				return nil, fmt.Errorf("files.sftp.known_hosts_file: %w", err)
			}
			known = string(b)
		}
		cfg := sshclient.Config{
			Addr: addr, User: s.Username, Password: s.Password.Reveal(),
			KnownHosts: known, HostKeyFingerprints: s.HostKeyFingerprints,
		}
		if len(key) > 0 {
			cfg.PrivateKey = key
		}
		c, err := sshclient.New(cfg)
		if err != nil {
			return nil, err
		}
		return &sftpFiles{c: sftp.New(c), dir: s.Dir}, nil
	}
	return nil, fmt.Errorf("files.method %q: want smb or sftp", f.Method)
}

type smbFiles struct {
	c   *smb.Client
	dir string
}

func (s *smbFiles) path(rel string) string {
	if s.dir == "" {
		return rel
	}
	return s.dir + "/" + rel
}
func (s *smbFiles) Source(rel string) transfer.Source { return s.c.Source(s.path(rel)) }
func (s *smbFiles) Stat(ctx context.Context, rel string) (fs.FileInfo, error) {
	return s.c.Stat(ctx, s.path(rel))
}
func (s *smbFiles) Close() error { return s.c.Close() }

type sftpFiles struct {
	c   *sftp.Client
	dir string
}

func (s *sftpFiles) Source(rel string) transfer.Source { return s.c.Source(path.Join(s.dir, rel)) }
func (s *sftpFiles) Stat(ctx context.Context, rel string) (fs.FileInfo, error) {
	return s.c.Stat(ctx, path.Join(s.dir, rel))
}
func (s *sftpFiles) Close() error { return s.c.Close() }
