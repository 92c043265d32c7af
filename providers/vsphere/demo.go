package vsphere

import (
	"context"
	"log/slog"
	"time"

	"github.com/hypersdk/hypersdk/config"
	"github.com/hypersdk/hypersdk/providers/vsphere/vcsim"
)

// StartDemo is the demo backend of type vsphere (registered for
// "hypervisord --demo", used by "hyperctl export --local --demo"): it starts
// the demo vCenter of vcsim and returns the settings that reach it, its
// certificate pinned by thumbprint as a real vCenter's would be, and the
// function that stops it.
func StartDemo(ctx context.Context, log *slog.Logger) (*Config, func(), error) {
	return startDemo(ctx, log, 0)
}

// startDemo is StartDemo with extraVMs small VMs added to the inventory
// (vcsim.DemoSpecWith).
func startDemo(ctx context.Context, log *slog.Logger, extraVMs int) (*Config, func(), error) {
	start := time.Now()
	env, err := vcsim.Start(ctx, vcsim.DemoSpecWith(extraVMs))
	if err != nil {
		return nil, nil, err
	}
	log.Info("demo vCenter started", "url", env.URL().String(), "vms", len(env.VMs()), "took", time.Since(start).Round(time.Millisecond).String())
	return &Config{
		URL: env.URL().String(), Username: env.Username(), Password: config.NewSecret(env.Password()),
		Thumbprint: env.Thumbprint(),
	}, func() { env.Close() }, nil
}
