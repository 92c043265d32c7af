package api

import (
	"context"
	"net/http"
	"reflect"

	"github.com/danielgtaylor/huma/v2"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/providers"
)

func reflectType[T any]() reflect.Type { return reflect.TypeFor[T]() }

type providerListOutput struct {
	Body struct {
		Items []apitypes.ProviderInfo `json:"items"`
	}
}

type vmListInput struct {
	Name       string `path:"name" doc:"Provider instance name"`
	Datacenter string `query:"datacenter"`
	Folder     string `query:"folder" doc:"Inventory path prefix, e.g. /DC0/vm/prod"`
	VMName     string `query:"vm_name" doc:"Glob on the VM name, e.g. web-*"`
	PowerState string `query:"power_state" enum:"poweredOn,poweredOff,suspended"`
	GuestOS    string `query:"guest_os" doc:"Case-insensitive substring of the guest OS"`
	Query      string `query:"q" doc:"Free-text search over name, path, guest OS and identifiers (ignores the other filters)"`
}

type vmListOutput struct {
	Body struct {
		Items []*providers.VMInfo `json:"items"`
	}
}

type vmGetInput struct {
	Name string `path:"name"`
	ID   string `path:"id" doc:"VM identifier: ID, name, inventory path or UUID (URL-encode slashes)"`
}

type vmOutput struct {
	Body *providers.VMInfo
}

func (s *Server) registerProviders() {
	huma.Register(s.api, op("listProviders", http.MethodGet, apitypes.APIPrefix+"/providers", "viewer", "List provider instances with health and capabilities", "providers"),
		func(ctx context.Context, _ *struct{}) (*providerListOutput, error) {
			out := &providerListOutput{}
			out.Body.Items = []apitypes.ProviderInfo{}
			for _, in := range s.opts.Providers.List() {
				out.Body.Items = append(out.Body.Items, apitypes.ProviderInfo{Name: in.Name(), Type: string(in.Type()), MaxConcurrent: in.Limit,
					Health: in.Health(), Capabilities: in.GetExportCapabilities(), Methods: providers.ExportMethods(in)})
			}
			return out, nil
		})

	list := op("listVMs", http.MethodGet, apitypes.APIPrefix+"/providers/{name}/vms", "viewer", "List or search a provider's VMs", "providers")
	list.Errors = append(list.Errors, http.StatusNotFound, http.StatusBadGateway, http.StatusServiceUnavailable)
	huma.Register(s.api, list, func(ctx context.Context, in *vmListInput) (*vmListOutput, error) {
		p, err := s.provider(in.Name)
		if err != nil {
			return nil, err
		}
		var vms []*providers.VMInfo
		if in.Query != "" {
			vms, err = p.SearchVMs(ctx, in.Query)
		} else {
			vms, err = p.ListVMs(ctx, providers.VMFilter{Datacenter: in.Datacenter, FolderPrefix: in.Folder, Name: in.VMName,
				PowerState: providers.PowerState(in.PowerState), GuestOS: in.GuestOS})
		}
		if err != nil {
			return nil, toProblem(ctx, s.log, err)
		}
		out := &vmListOutput{}
		out.Body.Items = vms
		if out.Body.Items == nil {
			out.Body.Items = []*providers.VMInfo{}
		}
		return out, nil
	})

	get := op("getVM", http.MethodGet, apitypes.APIPrefix+"/providers/{name}/vms/{id}", "viewer", "Get one VM by any identifier", "providers")
	get.Errors = append(get.Errors, http.StatusNotFound, http.StatusConflict, http.StatusBadGateway, http.StatusServiceUnavailable)
	huma.Register(s.api, get, func(ctx context.Context, in *vmGetInput) (*vmOutput, error) {
		p, err := s.provider(in.Name)
		if err != nil {
			return nil, err
		}
		vm, err := p.GetVM(ctx, in.ID)
		if err != nil {
			return nil, toProblem(ctx, s.log, err)
		}
		return &vmOutput{Body: vm}, nil
	})
}

func (s *Server) provider(name string) (*providers.Instance, error) {
	in, ok := s.opts.Providers.Get(name)
	if !ok {
		return nil, problem(http.StatusNotFound, apitypes.ProblemProviderNotFound, "no provider named "+name+" is configured")
	}
	return in, nil
}
