package providertest

import (
	"testing"

	"github.com/hypersdk/hypersdk/providers"
)

// The fake passes the suite it helps other packages with.
func TestFakeConformance(t *testing.T) {
	Run(t, Target{
		New:      func(*testing.T) providers.Provider { return NewFake("fake") },
		ExportVM: "vm-001",
	})
}
