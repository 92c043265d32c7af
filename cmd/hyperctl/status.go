package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hypersdk/hypersdk/apitypes"
)

func (a *app) statusCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the daemon's version, node, database, job counts and provider health",
		Args:  exactArgs(),
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			st, err := c.Status(cmd.Context())
			if err != nil {
				return fmt.Errorf("status: %w", err)
			}
			return a.show(st, func(w io.Writer) error {
				now := a.env.now()
				row := func(k, v string) { fmt.Fprintf(w, "%s:\t%s\n", k, v) }
				row("Server", c.BaseURL())
				row("Version", st.Version)
				row("Node", st.Node)
				row("Database", st.Database)
				row("Uptime", fmt.Sprintf("%s (since %s)", humanDuration(time.Duration(st.UptimeSeconds*float64(time.Second)).Round(time.Second)),
					st.StartedAt.Local().Format("2006-01-02 15:04:05 MST")))
				counts := make([]string, 0, len(apitypes.JobStates()))
				for _, s := range apitypes.JobStates() {
					counts = append(counts, fmt.Sprintf("%d %s", st.Jobs[s], s))
				}
				row("Jobs", strings.Join(counts, ", "))
				if len(st.Providers) == 0 {
					row("Providers", "none configured")
					return nil
				}
				fmt.Fprintln(w, "\nPROVIDER\tTYPE\tHEALTH\tCHECKED")
				for _, p := range st.Providers {
					health := "healthy"
					if !p.Healthy {
						health = "unhealthy: " + orDash(p.Error)
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s ago\n", p.Name, p.Type, health, age(now, p.CheckedAt))
				}
				return nil
			})
		}),
	}
}
