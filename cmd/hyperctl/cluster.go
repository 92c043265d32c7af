package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

func (a *app) clusterCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "cluster",
		Short: "List the daemons sharing the database: live or dead, running exports, and the leader",
		Long: `List the daemons sharing the answering daemon's database. A daemon is live
while it heartbeats; it is shown dead when it has not for the cluster's
dead_after, and stopped after a clean shutdown. The leader (marked *) runs
the schedules and the clean-up sweeps; any live daemon runs exports and
takes over those of a dead one.`,
		Args: exactArgs(),
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			cl, err := c.Cluster(cmd.Context())
			if err != nil {
				return fmt.Errorf("cluster: %w", err)
			}
			return a.show(cl, func(w io.Writer) error {
				now := a.env.now()
				fmt.Fprintln(w, "NODE\tSTATE\tLEADER\tRUNNING\tADDRESS\tVERSION\tLAST SEEN\tSTARTED")
				for _, n := range cl.Nodes {
					state := "live"
					switch {
					case n.StoppedAt != nil:
						state = "stopped"
					case !n.Live:
						state = "dead"
					}
					leader := ""
					if n.Leader {
						leader = "*"
					}
					self := ""
					if n.ID == cl.Self {
						self = " (this)"
					}
					fmt.Fprintf(w, "%s%s\t%s\t%s\t%d/%d\t%s\t%s\t%s ago\t%s ago\n", n.ID, self, state, leader, n.Running, n.Capacity,
						orDash(n.Advertise), orDash(n.Version), age(now, n.LastSeen), age(now, n.StartedAt))
				}
				if cl.Leader == "" {
					fmt.Fprintln(w, "\nNo live leader: the lease is vacant until a live daemon takes it (within a heartbeat).")
				}
				return nil
			})
		}),
	}
}
