package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// versionInfo is what `hyperctl version` reports.
type versionInfo struct {
	Client clientVersion  `json:"client"`
	Server *serverVersion `json:"server"`
}

type clientVersion struct {
	Version  string `json:"version"`
	Revision string `json:"revision,omitempty"`
	Modified bool   `json:"modified,omitempty"`
	Go       string `json:"go"`
	Platform string `json:"platform"`
}

type serverVersion struct {
	URL     string `json:"url"`
	Version string `json:"version,omitempty"`
	Node    string `json:"node,omitempty"`
	// Error says why the server's version is unknown.
	Error string `json:"error,omitempty"`
}

func clientBuild() clientVersion {
	v := clientVersion{Version: buildVersion(), Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Revision = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	return v
}

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Show hyperctl's version and build, and the daemon's version",
		Long: `Show hyperctl's version, commit, Go version and platform, then the version of
the daemon it would talk to (from its status). A daemon that cannot be asked
is reported as such after the client's version; the exit code is then 1 only
if --server named the daemon explicitly, so that 'hyperctl version' also
works on a machine without a daemon.`,
		Args: exactArgs(),
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			info := versionInfo{Client: clientBuild()}
			srvErr := a.serverVersion(cmd, &info)
			if err := a.show(info, func(w io.Writer) error {
				c := info.Client
				build := c.Go + ", " + c.Platform
				if c.Revision != "" {
					build = "commit " + c.Revision + map[bool]string{true: " (modified)"}[c.Modified] + ", " + build
				}
				fmt.Fprintf(w, "Client:\t%s (%s)\n", c.Version, build)
				if s := info.Server; s.Error != "" {
					fmt.Fprintf(w, "Server:\tunknown: %s\n", s.Error)
				} else {
					fmt.Fprintf(w, "Server:\t%s (%s, node %s)\n", s.Version, s.URL, s.Node)
				}
				return nil
			}); err != nil {
				return err
			}
			if srvErr != nil && a.root.PersistentFlags().Changed("server") {
				return srvErr
			}
			return nil
		}),
	}
}

// serverVersion fills in the daemon's version, or why it is unknown.
func (a *app) serverVersion(cmd *cobra.Command, info *versionInfo) error {
	c, err := a.client()
	info.Server = &serverVersion{URL: a.conn.server}
	if err == nil {
		st, serr := c.Status(cmd.Context())
		if serr == nil {
			info.Server.Version, info.Server.Node = st.Version, st.Node
			return nil
		}
		err = fmt.Errorf("server version: %w", serr)
	}
	msg, _, _ := strings.Cut(err.Error(), "\n")
	var ne *net.OpError
	if errors.As(err, &ne) && ne.Op == "dial" {
		msg = fmt.Sprintf("unreachable at %s (%v)", a.conn.server, ne.Err)
	}
	info.Server.Error = msg
	return err
}
