package vsphere

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/hypersdk/hypersdk/pipeline"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/providers/vsphere/vcsim"
)

// syncBuffer is a log destination safe for the export's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A lease that fails mid-download (the host drops the export; NFC then
// answers 404 for its URLs) fails the export with an error, and logs
// lines, that name the files but never the lease's ticket, which is in the
// URL's path.
func TestFailedLeaseErrorAndLogsHideNFCTicket(t *testing.T) {
	sim := startSim(t, testSpec())
	sim.SetNFCBehavior(vcsim.NFCBehavior{HoldAfter: mib})
	p := sim.provider(t, PoolConfig{})
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	errc := make(chan error, 1)
	go func() {
		_, err := pipeline.Export(context.Background(), p, "db-01", providers.ExportOptions{OutputDir: t.TempDir(), Format: providers.FormatOVF, Logger: log})
		errc <- err
	}()
	if err := sim.WaitNFCHeld(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	leases := sim.Leases()
	if len(leases) != 1 || len(leases[0].Files) == 0 {
		t.Fatalf("leases %+v", leases)
	}
	// https://host/nfc/<ticket>/disk-0.vmdk
	u := leases[0].Files[0].URL
	ticket := strings.Split(strings.SplitN(u, "/nfc/", 2)[1], "/")[0]
	if err := sim.FailLease(leases[0].Ref, nil); err != nil {
		t.Fatal(err)
	}
	err := <-errc
	if err == nil {
		t.Fatal("export of a failed lease succeeded")
	}
	if !strings.Contains(err.Error(), "/nfc/REDACTED/") {
		t.Errorf("error does not name the file (redacted): %v", err)
	}
	for what, s := range map[string]string{"error": err.Error(), "logs": logs.String()} {
		if strings.Contains(s, ticket) {
			t.Errorf("%s contain the NFC ticket %s:\n%s", what, ticket, s)
		}
	}
}
