package proxmox

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"

	"github.com/hypersdk/hypersdk/progress"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/vma"
)

// GetExportCapabilities implements providers.Provider: every packaging and
// disk format the pipeline writes. Snapshot is accepted: vzdump's snapshot
// mode and the pvesm method's temporary snapshot keep a running VM
// running. Power-off is not offered (vzdump.mode stop, configured, stops
// and restarts the VM around the backup).
func (p *Provider) GetExportCapabilities() providers.ExportCapabilities {
	return providers.ExportCapabilities{
		Formats:          providers.Formats(),
		DiskFormats:      providers.DiskFormats(),
		Compression:      []string{"gzip", "zstd"},
		SupportsSnapshot: true, ParallelDownloads: true,
	}
}

// PrepareExport implements providers.Exporter: the VM is looked up
// (containers refused), then prepared by the configured export method
// (see the package doc).
func (p *Provider) PrepareExport(ctx context.Context, identifier string, opts providers.ExportOptions) (*providers.Export, error) {
	if err := p.GetExportCapabilities().Validate(opts); err != nil {
		return nil, providers.Permanent(err)
	}
	method, err := p.exportMethod(opts)
	if err != nil {
		return nil, providers.Permanent(err)
	}
	jobID := opts.JobID
	if jobID == "" {
		// A caller without a job (a library user) still gets findable
		// platform objects; a daemon's sweep takes such a job for over.
		jobID = "untracked-" + randomHex(8)
	}
	opts.Report(progress.Report{Phase: progress.PhaseConnecting})
	g, err := p.findGuest(ctx, identifier)
	if err != nil {
		return nil, err
	}
	if !g.qemu() {
		return nil, providers.Permanent(fmt.Errorf("proxmox %s: export %d (%s): %w: it is an LXC container; only QEMU VMs are exported (vzdump writes containers as file-system tar archives, not disk images)",
			p.name, g.vmid(), g.name(), providers.ErrUnsupported))
	}
	log := opts.Log().With("provider", p.name, "job_id", jobID, "vmid", g.vmid(), "node", g.res.Node, "method", method)
	opts.Report(progress.Report{Phase: progress.PhasePreparing})
	switch method {
	case MethodPvesm:
		return p.preparePvesm(ctx, g, jobID, log)
	case MethodAPI:
		return p.prepareAPIDump(ctx, g, jobID, opts, log)
	default:
		return p.prepareVzdump(ctx, g, log)
	}
}

// exportMethod is the method of this export: the configured default.
func (p *Provider) exportMethod(_ providers.ExportOptions) (string, error) {
	return p.cfg.method(), nil
}

// checkBackedUp refuses a vzdump of a VM with disks excluded from backups
// (backup=0): the archive would silently lack them.
func checkBackedUp(g *guest) error {
	var skipped []string
	for _, d := range exportableDrives(g.cfg) {
		if !d.Backup {
			skipped = append(skipped, d.Key)
		}
	}
	if len(skipped) > 0 {
		return providers.Permanent(fmt.Errorf("%w: VM %d has disks excluded from backups (backup=0: %s), which vzdump leaves out of its archive; export it with export_method pvesm, or clear backup=0",
			providers.ErrUnsupported, g.vmid(), strings.Join(skipped, ", ")))
	}
	return nil
}

// vzdumpCommand is the node command that streams vm's backup.
func (p *Provider) vzdumpCommand(vmid int) string {
	comp := p.cfg.compress()
	if comp == "none" {
		comp = "0"
	}
	return fmt.Sprintf("vzdump %d --stdout --mode %s --compress %s", vmid, p.cfg.mode(), comp)
}

// prepareVzdump starts `vzdump --stdout` on the VM's node and reads the
// archive's header: the disks and the configuration the backup holds.
// The export's Fill then reads the rest of the stream into the disks.
func (p *Provider) prepareVzdump(ctx context.Context, g *guest, log *slog.Logger) (_ *providers.Export, err error) {
	if err := checkBackedUp(g); err != nil {
		return nil, fmt.Errorf("proxmox %s: export %d: %w", p.name, g.vmid(), err)
	}
	ssh, err := p.sshClient(g.res.Node)
	if err != nil {
		return nil, err
	}
	cmd := p.vzdumpCommand(g.vmid())
	log.Info("starting vzdump over SSH", "command", cmd, "ssh", ssh.String())
	rc, err := ssh.Start(ctx, cmd)
	if err != nil {
		return nil, fmt.Errorf("proxmox %s: export %d: %w", p.name, g.vmid(), sshErr(err))
	}
	closeAll := func() { rc.Close() }
	defer func() {
		if err != nil {
			closeAll()
		}
	}()
	s, err := openStream(rc, "vzdump of VM "+strconv.Itoa(g.vmid()))
	if err != nil {
		return nil, fmt.Errorf("proxmox %s: export %d: %w", p.name, g.vmid(), err)
	}
	closeAll = func() { s.Close(); rc.Close() }
	exp, err := p.streamExport(g, s, log)
	if err != nil {
		return nil, err
	}
	exp.Fill = func(ctx context.Context, sinks []io.WriterAt, report func(done, total int64)) error {
		if err := s.fill(ctx, sinks, report); err != nil {
			return err
		}
		// The stream ended; the command's status says whether vzdump
		// thinks the backup whole.
		if err := rc.Wait(); err != nil {
			return fmt.Errorf("vzdump of VM %d: %w", g.vmid(), sshErr(err))
		}
		log.Info("archive read", "compression", string(s.comp), "archive_bytes", s.r.Offset())
		return nil
	}
	exp.Cleanup = closeAll
	return exp, nil
}

// stream is a VMA archive being read: its decompressor and reader, and
// the disks of the export in archive order.
type stream struct {
	dec   io.ReadCloser
	comp  vma.Compression
	r     *vma.Reader
	what  string
	disks []vma.Device // exported, in Export.Disks order
}

// openStream reads the header of the (compressed) archive in rc.
func openStream(rc io.Reader, what string) (*stream, error) {
	dec, comp, err := vma.Decompress(rc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, archiveErr(err))
	}
	r, err := vma.NewReader(dec)
	if err != nil {
		dec.Close()
		return nil, fmt.Errorf("%s: %w", what, archiveErr(err))
	}
	return &stream{dec: dec, comp: comp, r: r, what: what}, nil
}

// archiveErr marks a malformed archive permanent: the same dump would be
// malformed again. A failed command (its error arrives through the
// stream) keeps its own class.
func archiveErr(err error) error {
	if errors.Is(err, vma.ErrFormat) {
		return providers.Permanent(err)
	}
	return sshErr(err)
}

func (s *stream) Close() { s.dec.Close() }

// fill reads the rest of the archive into sinks (sinks[k] for s.disks[k];
// other devices are checked, not written).
func (s *stream) fill(ctx context.Context, sinks []io.WriterAt, report func(done, total int64)) error {
	byID := map[uint8]io.WriterAt{}
	for k, d := range s.disks {
		byID[d.ID] = sinks[k]
	}
	_, err := s.r.Extract(ctx, vma.ExtractOptions{
		Open:     func(d vma.Device) (io.WriterAt, error) { return byID[d.ID], nil },
		Progress: report,
	})
	if err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return fmt.Errorf("%s: %w", s.what, archiveErr(err))
	}
	return nil
}

// streamExport describes the export of the archive s: the VM as its
// configuration in the archive says (the configuration of the backup,
// taken at the same instant as the disks), its disks the archive's disk
// devices — EFI variables and TPM state left out, as in discovery.
func (p *Provider) streamExport(g *guest, s *stream, log *slog.Logger) (*providers.Export, error) {
	cfg, err := s.r.Header().VMConfig()
	if err != nil {
		return nil, providers.Permanent(fmt.Errorf("proxmox %s: %s: %w", p.name, s.what, err))
	}
	vm := p.vmInfo(&guest{res: g.res, cfg: cfg})
	vm.Disks = []providers.DiskInfo{}
	exp := &providers.Export{VM: vm}
	for _, d := range s.r.Header().Disks() {
		drive, ok := cfg.DiskForDevice(d.Name)
		if !ok {
			// An archive device no map line names: exported all the same,
			// named after the device.
			drive = &vma.Drive{Key: strings.TrimPrefix(d.Name, "drive-"), Bus: "scsi"}
			log.Warn("archive device without a drive in the configuration", "device", d.Name)
		}
		switch drive.Bus {
		case "efidisk", "tpmstate":
			log.Info("firmware state left out of the export", "device", d.Name, "size", d.Size)
			continue
		}
		if drive.CDROM() {
			continue
		}
		s.disks = append(s.disks, d)
		vm.Disks = append(vm.Disks, diskInfo(cfg, *drive, d.Size))
		exp.Disks = append(exp.Disks, providers.DiskSource{
			Name: fmt.Sprintf("disk-%d", len(exp.Disks)), Format: providers.SourceRaw, Capacity: d.Size, Size: -1, Filled: true,
		})
	}
	if len(exp.Disks) == 0 {
		return nil, providers.Permanent(fmt.Errorf("proxmox %s: %s holds no disk: %w", p.name, s.what, providers.ErrUnsupported))
	}
	log.Info("archive header read", "compression", string(s.comp), "disks", len(exp.Disks), "uuid", s.r.Header().UUID.String())
	return exp, nil
}

// snapshotName is the temporary snapshot of jobID: a function of the job,
// so that a later attempt and the sweep know it before it exists (PVE
// allows 40 characters; the job id itself is in the description).
func snapshotName(jobID string) string {
	sum := sha256.Sum256([]byte(jobID))
	return snapshotPrefix + hex.EncodeToString(sum[:12])
}

const (
	snapshotPrefix = "hypersdk_"
	// jobTag marks what an export creates (snapshot description, dump
	// notes) with its job: "hypersdk-job=<job id>".
	jobTag = "hypersdk-job="
)

// taggedJob returns the job id a description or note names.
func taggedJob(text string) (string, bool) {
	for _, line := range strings.Split(text, "\n") {
		if id, ok := strings.CutPrefix(strings.TrimSpace(line), jobTag); ok && id != "" {
			return id, true
		}
	}
	return "", false
}

// shellQuote quotes s for the node's shell.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_:.,/=+@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // never fails on supported platforms
	}
	return hex.EncodeToString(b)
}
