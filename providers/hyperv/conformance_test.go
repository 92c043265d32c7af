package hyperv

import (
	"testing"

	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/providers/providertest"
)

func TestConformance(t *testing.T) {
	f := newFixture(t, "sftp")
	providertest.Run(t, providertest.Target{
		New: func(t *testing.T) providers.Provider {
			p, err := NewProvider("hv1", f.cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			return p
		},
		ExportVM:  "off-1",
		SlowVM:    "gen2",
		Leftovers: func(t *testing.T) []string { return f.leftovers(t) },
	})
}
