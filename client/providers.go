package client

import (
	"context"
	"net/url"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/providers"
)

// Status returns the daemon's version, node, database, job counts and
// provider health.
func (c *Client) Status(ctx context.Context) (*apitypes.Status, error) {
	var s apitypes.Status
	if err := c.get(ctx, apiPath("status"), nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// Providers lists the configured provider instances with their health and
// export capabilities.
func (c *Client) Providers(ctx context.Context) ([]apitypes.ProviderInfo, error) {
	var out struct {
		Items []apitypes.ProviderInfo `json:"items"`
	}
	if err := c.get(ctx, apiPath("providers"), nil, &out); err != nil {
		return nil, err
	}
	if out.Items == nil {
		out.Items = []apitypes.ProviderInfo{}
	}
	return out.Items, nil
}

// ListVMs lists a provider's VMs matching f (zero fields match everything).
func (c *Client) ListVMs(ctx context.Context, provider string, f providers.VMFilter) ([]*providers.VMInfo, error) {
	q := url.Values{}
	setIf(q, "datacenter", f.Datacenter)
	setIf(q, "folder", f.FolderPrefix)
	setIf(q, "vm_name", f.Name)
	setIf(q, "power_state", string(f.PowerState))
	setIf(q, "guest_os", f.GuestOS)
	return c.vms(ctx, provider, q)
}

// SearchVMs searches a provider's VMs by free text over name, inventory
// path, guest OS and identifiers.
func (c *Client) SearchVMs(ctx context.Context, provider, query string) ([]*providers.VMInfo, error) {
	return c.vms(ctx, provider, url.Values{"q": {query}})
}

func (c *Client) vms(ctx context.Context, provider string, q url.Values) ([]*providers.VMInfo, error) {
	var out struct {
		Items []*providers.VMInfo `json:"items"`
	}
	if err := c.get(ctx, apiPath("providers", provider, "vms"), q, &out); err != nil {
		return nil, err
	}
	if out.Items == nil {
		out.Items = []*providers.VMInfo{}
	}
	return out.Items, nil
}

// GetVM returns one VM by any identifier the provider accepts: ID, name,
// inventory path (slashes are escaped) or UUID.
func (c *Client) GetVM(ctx context.Context, provider, id string) (*providers.VMInfo, error) {
	var vm providers.VMInfo
	if err := c.get(ctx, apiPath("providers", provider, "vms", id), nil, &vm); err != nil {
		return nil, err
	}
	return &vm, nil
}
