package providertest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/hypersdk/hypersdk/pipeline"
	"github.com/hypersdk/hypersdk/providers"
)

// The fake passes the suite it helps other packages with.
func TestFakeConformance(t *testing.T) {
	f := NewFake("fake")
	vm, _ := f.GetVM(context.Background(), "vm-001")
	Run(t, Target{
		New:      func(*testing.T) providers.Provider { return f },
		ExportVM: "vm-001",
		RawDigests: func(t *testing.T) map[string]string {
			out := map[string]string{}
			for i, d := range vm.Disks {
				h := sha256.New()
				if _, err := io.Copy(h, FakeDiskBytes(vm.ID, i, d.CapacityBytes)); err != nil {
					t.Fatal(err)
				}
				out[fmt.Sprintf("vm-001-disk%d.raw", i+1)] = hex.EncodeToString(h.Sum(nil))
			}
			return out
		},
		Leftovers: func(*testing.T) []string { return f.Busy() },
	})
}

// Like vSphere, the fake holds a VM for one export at a time: a second
// export of it, by any of its identifiers, is refused while the first runs,
// and is accepted once it ended. Other VMs are not affected.
func TestFakeRefusesOverlappingExportsOfOneVM(t *testing.T) {
	f := NewFake("fake")
	inFirst, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	f.BeforeExport = func(ctx context.Context, vm string) error {
		if vm == "vm-001" {
			once.Do(func() { close(inFirst); <-release })
		}
		return nil
	}
	opts := func() providers.ExportOptions {
		return providers.ExportOptions{OutputDir: t.TempDir(), Format: providers.FormatOVF}
	}
	first := make(chan error, 1)
	go func() { _, err := pipeline.Export(context.Background(), f, "vm-001", opts()); first <- err }()
	<-inFirst
	for _, id := range []string{"vm-001", "/DC0/vm/vm-001", "fake-001"} {
		if _, err := pipeline.Export(context.Background(), f, id, opts()); !errors.Is(err, ErrTaskInProgress) {
			t.Errorf("second export of %s while one runs: %v, want TaskInProgress", id, err)
		}
	}
	if _, err := pipeline.Export(context.Background(), f, "vm-002", opts()); err != nil {
		t.Errorf("another VM: %v", err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if _, err := pipeline.Export(context.Background(), f, "vm-001", opts()); err != nil {
		t.Errorf("export after the first ended: %v", err)
	}
	if f.Overlaps() != 3 || f.Exports("vm-001") != 2 {
		t.Errorf("overlaps %d, exports %d", f.Overlaps(), f.Exports("vm-001"))
	}
}
