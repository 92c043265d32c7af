package hyperv

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/masterzen/winrm"

	"github.com/hypersdk/hypersdk/providers"
)

// Provider is one Hyper-V host.
type Provider struct {
	name string
	// cfg is a pointer so that printing a Provider shows an address, not
	// the secrets in it.
	cfg *Config
	log *slog.Logger
	// cleanupTimeout bounds the removal of a checkpoint and a staging
	// folder, which runs on a context of its own.
	cleanupTimeout time.Duration

	mu    sync.Mutex
	winrm *winrm.Client
	files fileClient
}

// New is the factory of type hyperv (see providers.Registration).
func New(name string, cfg *Config, deps providers.Deps) (providers.Provider, error) {
	return NewProvider(name, *cfg, deps.Logger)
}

// Registration is what type hyperv contributes to a composition root.
func Registration() providers.Registration[Config] {
	return providers.Registration[Config]{Decode: Decode, New: New, Demo: providers.DemoWithoutOptions(StartDemo)}
}

// NewProvider creates an unconnected provider for one host.
func NewProvider(name string, cfg Config, log *slog.Logger) (*Provider, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("hyperv %s: %w", name, err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Provider{name: name, cfg: &cfg, log: log, cleanupTimeout: 10 * time.Minute}, nil
}

func (p *Provider) Name() string         { return p.name }
func (p *Provider) Type() providers.Type { return providers.TypeHyperV }

// Connect makes the WinRM and file clients and checks the credentials
// with a listing of the VMs.
func (p *Provider) Connect(ctx context.Context) error {
	c, err := newWinRM(p.cfg)
	if err != nil {
		return fmt.Errorf("hyperv %s: %w", p.name, err)
	}
	f, err := newFileClient(p.cfg)
	if err != nil {
		return fmt.Errorf("hyperv %s: %w", p.name, err)
	}
	p.mu.Lock()
	p.winrm, p.files = c, f
	p.mu.Unlock()
	return p.ValidateCredentials(ctx)
}

func (p *Provider) client() (*winrm.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.winrm == nil {
		return nil, fmt.Errorf("hyperv %s: not connected", p.name)
	}
	return p.winrm, nil
}

func (p *Provider) fileClient() (fileClient, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.files == nil {
		return nil, fmt.Errorf("hyperv %s: not connected", p.name)
	}
	return p.files, nil
}

// Disconnect closes the file client; WinRM holds no session between
// commands.
func (p *Provider) Disconnect() error {
	p.mu.Lock()
	f := p.files
	p.winrm, p.files = nil, nil
	p.mu.Unlock()
	if f != nil {
		return f.Close()
	}
	return nil
}

// ValidateCredentials runs the VM listing (Get-VM needs Hyper-V
// Administrators rights, which an export needs anyway).
func (p *Provider) ValidateCredentials(ctx context.Context) error {
	_, err := p.listVMs(ctx, "")
	if err != nil {
		return fmt.Errorf("hyperv %s: %w", p.name, err)
	}
	return nil
}

// ListVMs returns the VMs that match filter, sorted by name.
func (p *Provider) ListVMs(ctx context.Context, filter providers.VMFilter) ([]*providers.VMInfo, error) {
	vms, err := p.listVMs(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("hyperv %s: %w", p.name, err)
	}
	out := vms[:0]
	for _, vm := range vms {
		if filter.Matches(vm) {
			out = append(out, vm)
		}
	}
	return out, nil
}

// GetVM finds a VM by its id (VMId GUID), its path (<host>/<name>) or its
// name.
func (p *Provider) GetVM(ctx context.Context, identifier string) (*providers.VMInfo, error) {
	vms, err := p.listVMs(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("hyperv %s: %w", p.name, err)
	}
	return findVM(vms, identifier)
}

func findVM(vms []*providers.VMInfo, identifier string) (*providers.VMInfo, error) {
	var byName []*providers.VMInfo
	for _, vm := range vms {
		if strings.EqualFold(vm.ID, identifier) || vm.Path == identifier {
			return vm, nil
		}
		if vm.Name == identifier {
			byName = append(byName, vm)
		}
	}
	switch len(byName) {
	case 0:
		return nil, fmt.Errorf("VM %q: %w", identifier, providers.ErrNotFound)
	case 1:
		return byName[0], nil
	}
	return nil, fmt.Errorf("VM %q: %d VMs have this name, use the VM id: %w", identifier, len(byName), providers.ErrAmbiguous)
}

// SearchVMs returns the VMs whose name, id or notes contain query.
func (p *Provider) SearchVMs(ctx context.Context, query string) ([]*providers.VMInfo, error) {
	vms, err := p.listVMs(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("hyperv %s: %w", p.name, err)
	}
	q := strings.ToLower(query)
	return slices.DeleteFunc(vms, func(vm *providers.VMInfo) bool {
		return !strings.Contains(strings.ToLower(vm.Name), q) && !strings.Contains(strings.ToLower(vm.ID), q) &&
			!strings.Contains(strings.ToLower(vm.Labels["hyperv:notes"]), q)
	}), nil
}

// GetExportCapabilities: every format and disk format the pipeline
// writes; a running VM is exported from a checkpoint (Snapshot), never
// powered off.
func (p *Provider) GetExportCapabilities() providers.ExportCapabilities {
	return providers.ExportCapabilities{
		Formats:           providers.Formats(),
		DiskFormats:       providers.DiskFormats(),
		Compression:       []string{"gzip", "zstd"},
		SupportsSnapshot:  true,
		ParallelDownloads: true,
		Resumable:         true,
	}
}
