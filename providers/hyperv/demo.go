package hyperv

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hypersdk/hypersdk/config"
	"github.com/hypersdk/hypersdk/providers/hyperv/winrmfake"
)

// demoStaging is the demo host's staging path.
const demoStaging = `C:\HyperSDK`

// StartDemo is the demo backend of type hyperv: an in-process
// WS-Management server (winrmfake, HTTPS with Basic, its certificate
// trusted through ca_pem) playing the cmdlets against a host in a
// temporary directory, and an in-process SFTP server over the host's
// staging folder (host key pinned by fingerprint). Two VMs: web-1
// (Generation 2, running, two disks: a dynamic VHDX and a differencing
// disk over a base) and db-1 (Generation 1, off, one IDE disk). Made-up
// credentials for this run.
func StartDemo(ctx context.Context, log *slog.Logger) (*Config, func(), error) {
	start := time.Now()
	dir, err := os.MkdirTemp("", "hypersdk-demo-hyperv-")
	if err != nil {
		return nil, nil, err
	}
	fail := func(err error) (*Config, func(), error) {
		os.RemoveAll(dir)
		return nil, nil, fmt.Errorf("demo hyperv: %w", err)
	}
	host, err := DemoHost(ctx, dir)
	if err != nil {
		return fail(err)
	}
	staging, err := host.LocalPath(demoStaging)
	if err != nil {
		return fail(err)
	}
	if err := os.MkdirAll(staging, 0o755); err != nil {
		return fail(err)
	}
	user, pass := "demo", randomToken()
	srv := winrmfake.NewTLS(winrmfake.Options{Username: user, Password: pass, Host: host, Log: log.With("component", "winrmfake")})
	sftpPass := randomToken()
	sf, err := winrmfake.StartSFTP(staging, "exporter", sftpPass, log.With("component", "sftp"))
	if err != nil {
		srv.Close()
		return fail(err)
	}
	log.Info("demo Hyper-V host started", "winrm", srv.URL(), "sftp", sf.Addr(), "took", time.Since(start).Round(time.Millisecond).String())
	h, port := splitAddr(srv.Addr())
	cfg := &Config{
		Host: h, Port: port, Transport: "https", Auth: "basic", Username: user, Password: config.NewSecret(pass),
		CAPEM: srv.CAPEM(), StagingPath: demoStaging,
		Files: Files{Method: "sftp", SFTP: SFTPFiles{
			Addr: sf.Addr(), Username: "exporter", Password: config.NewSecret(sftpPass),
			HostKeyFingerprints: []string{sf.Fingerprint()}, Dir: "/",
		}},
	}
	return cfg, func() {
		sf.Close()
		srv.Close()
		os.RemoveAll(dir)
	}, nil
}

// DemoHost makes the demo's host under dir: web-1 (Generation 2,
// running; web-1.vhdx dynamic, 64 MiB, and web-1-data_….avhdx, 32 MiB,
// differencing over web-1-data.vhdx) and db-1 (Generation 1, off;
// db-1.vhdx on IDE 0:0).
func DemoHost(ctx context.Context, dir string) (*winrmfake.Host, error) {
	host := winrmfake.NewHost(dir)
	vhds := `C:\Hyper-V\Virtual Hard Disks\`
	local, err := host.LocalPath(vhds + "x")
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(local), 0o755); err != nil {
		return nil, err
	}
	at := func(name string) string { return filepath.Join(filepath.Dir(local), name) }
	if err := winrmfake.WriteDynamic(ctx, at("web-1.vhdx"), 64<<20, winrmfake.RandomBlocks(1, 0, 5<<20, 8, 700<<10)); err != nil {
		return nil, err
	}
	if err := winrmfake.WriteDynamic(ctx, at("web-1-data.vhdx"), 32<<20, winrmfake.RandomBlocks(2, 1<<20, 4<<20, 6, 1<<20)); err != nil {
		return nil, err
	}
	child := "web-1-data_6F3A1E52-6C0B-4A8E-9B2D-3C4D5E6F7A80.avhdx"
	if err := winrmfake.WriteDifferencing(at(child), at("web-1-data.vhdx"), winrmfake.RandomBlocks(3, 1<<20, 8<<20, 3, 1<<20)); err != nil {
		return nil, err
	}
	if err := winrmfake.WriteDynamic(ctx, at("db-1.vhdx"), 48<<20, winrmfake.RandomBlocks(4, 2<<20, 6<<20, 5, 1<<20)); err != nil {
		return nil, err
	}
	host.AddVM(&winrmfake.VM{
		ID: "8d2c6f0e-4b1a-4c3e-9f7d-1a2b3c4d5e01", Name: "web-1", State: "Running", Generation: 2, CPUs: 2, MemoryMiB: 4096,
		Notes: "demo web server",
		NICs:  []winrmfake.NIC{{Name: "Network Adapter", Switch: "Default Switch", MAC: "00155D010203"}},
		Drives: []winrmfake.Drive{
			{ControllerType: "SCSI", ControllerNumber: 0, ControllerLocation: 0, Path: vhds + "web-1.vhdx"},
			{ControllerType: "SCSI", ControllerNumber: 0, ControllerLocation: 1, Path: vhds + child},
		},
	})
	host.AddVM(&winrmfake.VM{
		ID: "8d2c6f0e-4b1a-4c3e-9f7d-1a2b3c4d5e02", Name: "db-1", State: "Off", Generation: 1, CPUs: 1, MemoryMiB: 2048,
		NICs:   []winrmfake.NIC{{Name: "Network Adapter", Switch: "Internal", MAC: "00155D010204"}},
		Drives: []winrmfake.Drive{{ControllerType: "IDE", ControllerNumber: 0, ControllerLocation: 0, Path: vhds + "db-1.vhdx"}},
	})
	return host, nil
}

func randomToken() string {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return fmt.Sprintf("%x", b)
}

func splitAddr(a string) (string, int) {
	h, p, _ := net.SplitHostPort(a)
	port, _ := strconv.Atoi(p)
	return h, port
}
