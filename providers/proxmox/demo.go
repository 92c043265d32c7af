package proxmox

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/hypersdk/hypersdk/config"
	"github.com/hypersdk/hypersdk/providers/proxmox/pvefake"
)

// StartDemo is the demo backend of type proxmox: a pvefake API server
// (HTTPS, pinned by its certificate's fingerprint, an API token made up
// for this run) and an in-process SSH server playing the nodes' vzdump,
// pvesm and qm commands, over a sample cluster in a temporary directory:
// web-1 (running, two disks), db-1 (stopped, one disk), a template and
// ct-1, an LXC container that is listed and refused for export. It returns
// the settings that reach them and the function that stops them.
func StartDemo(ctx context.Context, log *slog.Logger) (*Config, func(), error) {
	start := time.Now()
	dir, err := os.MkdirTemp("", "hypersdk-demo-proxmox-")
	if err != nil {
		return nil, nil, err
	}
	fail := func(err error) (*Config, func(), error) {
		os.RemoveAll(dir)
		return nil, nil, fmt.Errorf("demo proxmox: %w", err)
	}
	inv, err := pvefake.SampleInventory(dir, pvefake.SampleOptions{})
	if err != nil {
		return fail(err)
	}
	st, err := pvefake.NewState(dir, inv)
	if err != nil {
		return fail(err)
	}
	tokenID, secret := "hypersdk@pve!demo", randomHex(16)
	srv := pvefake.New(pvefake.Options{State: st, Tokens: map[string]string{tokenID: secret}, Cluster: "demo", Log: log.With("component", "pvefake")})
	srv.Start()
	sshd, err := pvefake.StartSSH(st, log.With("component", "pvefake-ssh"))
	if err != nil {
		srv.Close()
		return fail(err)
	}
	host, port, _ := net.SplitHostPort(sshd.Addr)
	var p int
	fmt.Sscan(port, &p)
	nodes := map[string]SSHNode{}
	for _, vm := range inv.VMs {
		nodes[vm.Node] = SSHNode{Host: host, Port: p, HostKeyFingerprint: sshd.Fingerprint}
	}
	log.Info("demo Proxmox VE cluster started", "url", srv.URL(), "ssh", sshd.Addr, "vms", len(inv.VMs),
		"took", time.Since(start).Round(time.Millisecond).String())
	stop := func() {
		sshd.Close()
		srv.Close()
		os.RemoveAll(dir)
	}
	return &Config{
		URL: srv.URL(), TokenID: tokenID, TokenSecret: config.NewSecret(secret), Thumbprint: srv.Thumbprint(),
		SSH: SSHConfig{User: "root", PrivateKey: config.NewSecret(string(sshd.ClientKey)), Nodes: nodes},
	}, stop, nil
}
