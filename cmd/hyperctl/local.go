package main

import (
	"github.com/spf13/cobra"
)

// exportLocal is `hyperctl export --local`: the standalone mode, which runs
// the provider's export in this process with no daemon involved, and so
// uses neither --server nor a token. This build has no in-process exporter:
// the mode says so rather than pretending. Its own flags (the platform URL
// and credentials) belong to this file, added from exportCommand next to
// --local.
func (a *app) exportLocal(cmd *cobra.Command, f *exportFlags) error {
	return usageErrorf("export --local (standalone export without a daemon) is not available in this build; leave out --local to export through hypervisord")
}
