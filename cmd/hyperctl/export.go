package main

import (
	"github.com/spf13/cobra"
)

// exportFlags are the flags of `hyperctl export`: the job options, and
// the choice between the daemon and the standalone mode.
type exportFlags struct {
	submitFlags
	localMode bool
	local     localFlags
}

// localOnlyFlags are the flags of the standalone mode, which a daemon
// export would otherwise ignore silently.
var localOnlyFlags = []string{"demo", "url", "username", "thumbprint"}

func (a *app) exportCommand() *cobra.Command {
	f := &exportFlags{}
	cmd := &cobra.Command{
		Use:   "export --provider P --vm V [--output DIR] [--format ovf|ova] [--wait]",
		Short: "Export a VM (shorthand for 'jobs submit')",
		Long: `Export a VM through the daemon: the same as 'hyperctl jobs submit'. With
--wait it shows a progress bar until the export ends and exits non-zero
unless it succeeded.

--output is a directory on the daemon's host: relative to the daemon's export
directory, or absolute under one of its export.allowed_roots. Without it the
export goes to <export directory>/<job id>.

With --local the export runs in this process with the daemon's provider code:
no daemon, store or token, and --output is a local directory. The vCenter
comes from --url or GOVC_URL, the user from the URL, --username or
GOVC_USERNAME, the password from GOVC_PASSWORD or a prompt (a password in
--url works but is visible in the process list, so hyperctl warns), and
GOVC_INSECURE=1 or --insecure skips certificate checks (--thumbprint pins
one instead). --local --demo starts a simulated vCenter in this process (the
demo VMs of 'hypervisord --demo') to try it without one. Without --output
the files land in ./<VM name>.`,
		Example: `  hyperctl export --provider vc1 --vm /DC0/vm/web01 --output web01 --wait
  hyperctl export --provider vc1 --vm web01 --output web01 --format ova --compress --compression zstd

  # Standalone, like govc: no daemon; the password comes from GOVC_PASSWORD or a prompt
  GOVC_URL=https://exporter@vc.example.com/sdk hyperctl export --local --vm /DC0/vm/web01 --output ./web01

  # Try it without a vCenter: a simulated one with demo VMs, in this process
  hyperctl export --local --demo --vm db-01
  hyperctl export --local --demo --vm web-01 --snapshot --format ova`,
		Args: exactArgs(),
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			if f.localMode {
				return a.exportLocal(cmd, f)
			}
			for _, name := range localOnlyFlags {
				if cmd.Flags().Changed(name) {
					return usageErrorf("--%s applies only with --local (an export in this process, without a daemon)", name)
				}
			}
			if f.provider == "" || f.vm == "" {
				return usageErrorf("--provider and --vm are required")
			}
			req, err := f.request(cmd)
			if err != nil {
				return err
			}
			return a.submit(cmd.Context(), req, &f.submitFlags)
		}),
	}
	a.addSubmitFlags(cmd, &f.submitFlags)
	cmd.Flags().BoolVar(&f.localMode, "local", false, "export from a vCenter in this process, without a daemon (see --url)")
	addLocalFlags(cmd, &f.local)
	return cmd
}
