package main

import (
	"testing"

	"github.com/hypersdk/hypersdk/client/clienttest"
)

// hyperctl cluster shows the answering daemon, live and leading, as a
// table and as JSON.
func TestClusterCommand(t *testing.T) {
	h := newHarness(t, clienttest.Options{})
	h.run("cluster").expect(t, 0, "NODE", "STATE", "LEADER", "clienttest (this)", "live", "*", "0/4", "http://clienttest.invalid")
	h.run("cluster", "-o", "json").expect(t, 0, `"self": "clienttest"`, `"leader": "clienttest"`, `"live": true`, `"capacity": 4`)
}
