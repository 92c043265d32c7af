package providers

import (
	"context"
)

// Type names a platform. The value appears in configuration (`type: vsphere`)
// and in the API.
type Type string

// The platforms HyperSDK knows about. A Type is usable only when a factory for
// it has been registered (see Registry).
const (
	TypeVSphere Type = "vsphere"
	TypeAWS     Type = "aws"
	TypeAzure   Type = "azure"
	TypeGCP     Type = "gcp"
	TypeHyperV  Type = "hyperv"
	TypeProxmox Type = "proxmox"
)

// Provider is one configured connection to a platform, for example one
// vCenter. Implementations must be safe for concurrent use: the daemon runs
// several exports and discovery calls on one Provider at the same time.
//
// Every method that talks to the platform takes a context; cancelling it must
// make the method return promptly (within seconds) with an error wrapping
// ctx.Err(), and must release what the call acquired (sessions, leases,
// snapshots, partial files).
type Provider interface {
	// Name is the instance name from the configuration ("vc-east").
	Name() string
	// Type is the platform of this instance.
	Type() Type

	// Connect establishes the connection(s) to the platform. It is called
	// once before any other platform call; it returns an error wrapping
	// ErrAuth for rejected credentials.
	Connect(ctx context.Context) error
	// Disconnect releases every connection. The Provider is not used again.
	Disconnect() error
	// ValidateCredentials performs a cheap authenticated call; it is the
	// provider's health check.
	ValidateCredentials(ctx context.Context) error

	// ListVMs returns the VMs that match filter, sorted by inventory path.
	ListVMs(ctx context.Context, filter VMFilter) ([]*VMInfo, error)
	// GetVM finds one VM by any identifier the platform has (inventory path,
	// name, platform ID, UUID). It returns an error wrapping ErrNotFound when
	// nothing matches and ErrAmbiguous when a bare name matches several VMs.
	GetVM(ctx context.Context, identifier string) (*VMInfo, error)
	// SearchVMs returns VMs whose name, path, guest OS or identifiers contain
	// query (case-insensitive).
	SearchVMs(ctx context.Context, query string) ([]*VMInfo, error)

	// Exporter prepares exports on the platform; the pipeline package
	// fetches and packages them (see Export).
	Exporter
	// GetExportCapabilities describes the formats and options this provider
	// supports, so that bad requests are refused before a job is queued.
	GetExportCapabilities() ExportCapabilities
}
