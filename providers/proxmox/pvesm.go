package proxmox

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/hypersdk/hypersdk/internal/sshclient"
	"github.com/hypersdk/hypersdk/providers"
)

// preparePvesm exports each disk with `pvesm export VOLID raw+size -`: from
// a temporary snapshot when the VM runs (taken with `qm snapshot`, named
// after the job before it is taken, removed by Cleanup and, after a
// crash, by the sweep), from the volumes themselves when it is stopped.
func (p *Provider) preparePvesm(ctx context.Context, g *guest, jobID string, log *slog.Logger) (_ *providers.Export, err error) {
	drives := exportableDrives(g.cfg)
	if len(drives) == 0 {
		return nil, providers.Permanent(fmt.Errorf("proxmox %s: export %d: %w: the VM has no disk", p.name, g.vmid(), providers.ErrUnsupported))
	}
	for _, d := range drives {
		if d.Size <= 0 {
			return nil, providers.Permanent(fmt.Errorf("proxmox %s: export %d: drive %s (%s) records no size in the configuration", p.name, g.vmid(), d.Key, d.Volume))
		}
		if !strings.Contains(d.Volume, ":") {
			return nil, providers.Permanent(fmt.Errorf("proxmox %s: export %d: drive %s is the path %s, not a storage volume pvesm can export: %w",
				p.name, g.vmid(), d.Key, d.Volume, providers.ErrUnsupported))
		}
	}
	ssh, err := p.sshClient(g.res.Node)
	if err != nil {
		return nil, err
	}
	snap := ""
	if g.res.Status != "stopped" {
		snap = snapshotName(jobID)
		if err := p.takeSnapshot(ctx, ssh, g, snap, jobID, log); err != nil {
			return nil, err
		}
	}
	removeSnap := func() {
		if snap == "" {
			return
		}
		if err := p.removeSnapshot(ssh, g.vmid(), snap, log); err != nil {
			log.Warn("removing the temporary snapshot failed; the orphan sweep will retry", "snapshot", snap, "err", err)
		}
	}
	exp := &providers.Export{VM: p.vmInfo(g), Cleanup: removeSnap}
	for i, d := range drives {
		cmd := "pvesm export " + shellQuote(d.Volume) + " raw+size -"
		if snap != "" {
			cmd += " --snapshot " + snap
		}
		capacity := d.Size
		exp.Disks = append(exp.Disks, providers.DiskSource{
			Name: fmt.Sprintf("disk-%d", i), Format: providers.SourceRaw, Capacity: capacity, Size: capacity,
			Open: func(ctx context.Context) (io.ReadCloser, error) {
				log.Info("exporting a volume over SSH", "command", cmd)
				return openPvesm(ctx, ssh, cmd, d.Volume, capacity)
			},
		})
	}
	return exp, nil
}

// openPvesm starts cmd and reads pve-storage's raw+size header (the
// volume's size, 8 bytes little-endian), which must be the capacity the
// configuration records.
func openPvesm(ctx context.Context, ssh *sshclient.Client, cmd, volume string, capacity int64) (io.ReadCloser, error) {
	rc, err := ssh.Start(ctx, cmd)
	if err != nil {
		return nil, sshErr(err)
	}
	var head [8]byte
	if _, err := io.ReadFull(rc, head[:]); err != nil {
		rc.Close()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = fmt.Errorf("the export stream ended before its size header")
		}
		return nil, fmt.Errorf("pvesm export %s: %w", volume, sshErr(err))
	}
	size := int64(binary.LittleEndian.Uint64(head[:]))
	if size != capacity {
		rc.Close()
		return nil, providers.Permanent(fmt.Errorf("pvesm export %s: the volume holds %d bytes, the configuration records %d", volume, size, capacity))
	}
	return &sizedCommand{cmd: rc, left: size}, nil
}

// sizedCommand reads a command's output of a known length and, with its
// last byte, waits for the command's exit: a failed export is an error
// even though every byte arrived.
type sizedCommand struct {
	cmd  *sshclient.Command
	left int64
}

func (s *sizedCommand) Read(p []byte) (int, error) {
	if s.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	n, err := s.cmd.Read(p)
	s.left -= int64(n)
	if s.left == 0 {
		if werr := s.cmd.Wait(); werr != nil {
			return n, sshErr(werr)
		}
		return n, io.EOF
	}
	if err == io.EOF {
		return n, io.ErrUnexpectedEOF
	}
	return n, sshErr(err)
}

func (s *sizedCommand) Close() error { return s.cmd.Close() }

// takeSnapshot takes the job's temporary snapshot of g. One an earlier
// attempt of the job left is removed first (it is of an earlier instant).
// When taking it fails, it is removed all the same: a lost answer may hide
// a snapshot that was taken.
func (p *Provider) takeSnapshot(ctx context.Context, ssh *sshclient.Client, g *guest, snap, jobID string, log *slog.Logger) error {
	if err := p.removeSnapshot(ssh, g.vmid(), snap, log); err != nil {
		return fmt.Errorf("proxmox %s: export %d: remove the job's earlier snapshot: %w", p.name, g.vmid(), err)
	}
	cmd := fmt.Sprintf("qm snapshot %d %s --description %s", g.vmid(), snap, shellQuote(jobTag+jobID))
	log.Info("taking a temporary snapshot", "snapshot", snap)
	if err := ssh.Run(ctx, cmd, io.Discard); err != nil {
		if rerr := p.removeSnapshot(ssh, g.vmid(), snap, log); rerr != nil {
			log.Warn("removing the snapshot after a failed snapshot command failed; the orphan sweep will retry", "snapshot", snap, "err", rerr)
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return fmt.Errorf("proxmox %s: snapshot VM %d: %w", p.name, g.vmid(), sshErr(err))
	}
	return nil
}

// removeSnapshot removes snapshot snap of vmid on its own context (the
// export's may be what ended); a snapshot that does not exist is fine.
func (p *Provider) removeSnapshot(ssh *sshclient.Client, vmid int, snap string, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(context.Background(), p.tune.cleanupTimeout)
	defer cancel()
	err := ssh.Run(ctx, fmt.Sprintf("qm delsnapshot %d %s", vmid, snap), io.Discard)
	var ee *sshclient.ExitError
	if errors.As(err, &ee) && strings.Contains(ee.Stderr, "does not exist") {
		return nil
	}
	if err == nil {
		log.Info("temporary snapshot removed", "snapshot", snap)
	}
	return sshErr(err)
}
