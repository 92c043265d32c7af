package main

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/providers"
)

func (a *app) providersCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "providers",
		Short: "Provider instances the daemon is configured with",
		RunE:  groupRunE,
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List provider instances with health and export capabilities",
		Args:  exactArgs(),
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			provs, err := c.Providers(cmd.Context())
			if err != nil {
				return fmt.Errorf("list providers: %w", err)
			}
			out := struct {
				Items []apitypes.ProviderInfo `json:"items"`
			}{provs}
			return a.show(out, func(w io.Writer) error {
				if len(provs) == 0 {
					fmt.Fprintln(a.env.stderr, "No providers are configured on this daemon.")
					return nil
				}
				fmt.Fprintln(w, "NAME\tTYPE\tHEALTH\tFORMATS\tCAPABILITIES")
				for _, p := range provs {
					caps := capabilitiesText(p.Capabilities)
					if len(p.Methods) > 0 {
						// --method's values, the default first.
						caps += ", methods=" + strings.Join(p.Methods, "/")
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", p.Name, p.Type, healthText(p.Health), formatsText(p.Capabilities), caps)
				}
				return nil
			})
		}),
	})
	return cmd
}

func healthText(h providers.Health) string {
	if h.Healthy {
		return "healthy"
	}
	if h.Error == "" {
		return "unknown"
	}
	msg := h.Error
	if len(msg) > 60 {
		msg = msg[:59] + "…"
	}
	return "unhealthy: " + msg
}

func formatsText(c providers.ExportCapabilities) string {
	var parts []string
	for _, f := range c.Formats {
		parts = append(parts, string(f))
	}
	s := strings.Join(parts, ",")
	if len(c.DiskFormats) > 0 {
		s += " (" + strings.Join(c.DiskFormats, ",") + ")"
	}
	return orDash(s)
}

func capabilitiesText(c providers.ExportCapabilities) string {
	var parts []string
	add := func(ok bool, s string) {
		if ok {
			parts = append(parts, s)
		}
	}
	add(c.SupportsSnapshot, "snapshot")
	add(c.SupportsPowerOff, "power-off")
	add(c.ParallelDownloads, "parallel")
	add(c.Resumable, "resumable")
	if len(c.Compression) > 0 {
		parts = append(parts, "compression="+strings.Join(c.Compression, "/"))
	}
	return orDash(strings.Join(parts, ", "))
}

func (a *app) vmsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "vms",
		Short: "Browse the VMs of a provider",
		RunE:  groupRunE,
	}
	var provider string
	var filter providers.VMFilter
	var powerState, search string
	list := &cobra.Command{
		Use:   "list --provider P [filters]",
		Short: "List or search a provider's VMs",
		Example: `  hyperctl vms list --provider vc1 --folder /DC0/vm/prod --name-glob 'web-*' --power-state poweredOff
  hyperctl vms list --provider vc1 --search ubuntu`,
		Args: exactArgs(),
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			if provider == "" {
				return usageErrorf("--provider is required")
			}
			filter.PowerState = providers.PowerState(powerState)
			if search != "" && filter != (providers.VMFilter{}) {
				return usageErrorf("--search cannot be combined with --folder, --name-glob, --power-state, --guest-os or --datacenter")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			var vms []*providers.VMInfo
			if search != "" {
				vms, err = c.SearchVMs(cmd.Context(), provider, search)
			} else {
				vms, err = c.ListVMs(cmd.Context(), provider, filter)
			}
			if err != nil {
				return fmt.Errorf("list VMs of %s: %w", provider, err)
			}
			out := struct {
				Items []*providers.VMInfo `json:"items"`
			}{vms}
			return a.show(out, func(w io.Writer) error {
				if len(vms) == 0 {
					fmt.Fprintln(a.env.stderr, "No VMs match.")
					return nil
				}
				fmt.Fprintln(w, "NAME\tID\tPOWER\tCPUS\tMEMORY\tDISKS\tGUEST OS\tPATH")
				for _, vm := range vms {
					fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", vm.Name, vm.ID, vm.PowerState, vm.CPUs,
						humanBytes(vm.MemoryMiB<<20), disksText(vm), orDash(vm.GuestOS), orDash(vm.Path))
				}
				return nil
			})
		}),
	}
	fl := list.Flags()
	fl.StringVar(&provider, "provider", "", "provider instance")
	fl.StringVar(&filter.FolderPrefix, "folder", "", "inventory path prefix, e.g. /DC0/vm/prod")
	fl.StringVar(&filter.Name, "name-glob", "", "glob on the VM name, e.g. 'web-*'")
	fl.StringVar(&powerState, "power-state", "", "poweredOn, poweredOff or suspended")
	fl.StringVar(&filter.GuestOS, "guest-os", "", "case-insensitive substring of the guest OS")
	fl.StringVar(&filter.Datacenter, "datacenter", "", "datacenter name")
	fl.StringVar(&search, "search", "", "free-text search over name, path, guest OS and identifiers (instead of the filters)")
	_ = list.RegisterFlagCompletionFunc("provider", a.completeProviders)
	_ = list.RegisterFlagCompletionFunc("power-state", cobra.FixedCompletions(
		[]string{string(providers.PowerOn), string(providers.PowerOff), string(providers.PowerSuspend)}, cobra.ShellCompDirectiveNoFileComp))

	var getProvider string
	get := &cobra.Command{
		Use:   "get --provider P ID",
		Short: "Show one VM by ID, name, inventory path or UUID",
		Args:  exactArgs("ID"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			if getProvider == "" {
				return usageErrorf("--provider is required")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			vm, err := c.GetVM(cmd.Context(), getProvider, args[0])
			if err != nil {
				return fmt.Errorf("get VM %s of %s: %w", args[0], getProvider, err)
			}
			return a.show(vm, func(w io.Writer) error { describeVM(w, vm); return nil })
		}),
	}
	get.Flags().StringVar(&getProvider, "provider", "", "provider instance")
	_ = get.RegisterFlagCompletionFunc("provider", a.completeProviders)
	cmd.AddCommand(list, get)
	return cmd
}

func disksText(vm *providers.VMInfo) string {
	if len(vm.Disks) == 0 {
		return "-"
	}
	return fmt.Sprintf("%d (%s)", len(vm.Disks), humanBytes(vm.TotalDiskBytes()))
}

func describeVM(w io.Writer, vm *providers.VMInfo) {
	row := func(k, v string) { fmt.Fprintf(w, "%s:\t%s\n", k, v) }
	row("Name", vm.Name)
	row("ID", vm.ID)
	row("Provider", vm.Provider)
	row("Path", orDash(vm.Path))
	row("Datacenter", orDash(vm.Datacenter))
	row("Power", string(vm.PowerState))
	row("Guest OS", orDash(vm.GuestOS))
	row("CPUs", fmt.Sprint(vm.CPUs))
	row("Memory", humanBytes(vm.MemoryMiB<<20))
	row("UUID", orDash(vm.UUID))
	if vm.InstanceUUID != "" {
		row("Instance UUID", vm.InstanceUUID)
	}
	keys := make([]string, 0, len(vm.Labels))
	for k := range vm.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		row("Label "+k, vm.Labels[k])
	}
	if len(vm.Disks) > 0 {
		fmt.Fprintln(w, "\nDISK\tCAPACITY\tPROVISIONING\tCONTROLLER\tBACKING")
		for _, d := range vm.Disks {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", d.Label, humanBytes(d.CapacityBytes), orDash(d.Provisioning), orDash(d.Controller), orDash(d.Path))
		}
	}
	if len(vm.NICs) > 0 {
		fmt.Fprintln(w, "\nNIC\tNETWORK\tTYPE\tMAC")
		for _, n := range vm.NICs {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", n.Label, orDash(n.Network), orDash(n.Type), orDash(n.MAC))
		}
	}
}
