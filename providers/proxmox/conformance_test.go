package proxmox

import (
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/hypersdk/hypersdk/disk/disktest"
	"github.com/hypersdk/hypersdk/pipeline"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/providers/providertest"
	"github.com/hypersdk/hypersdk/providers/proxmox/pvefake"
)

// The shared conformance suite against the fake cluster and a real sshd,
// exporting db-1 (stopped, one disk) by streaming vzdump.
func TestConformance(t *testing.T) {
	f := newFixture(t, pvefake.SampleOptions{})
	providertest.Run(t, providertest.Target{
		New: func(t *testing.T) providers.Provider {
			p, err := NewProvider("pve-conformance", f.config(), nil)
			if err != nil {
				t.Fatal(err)
			}
			return p
		},
		ExportVM: "db-1",
		// Slow streams, so that the cancel lands while the archive flows.
		BeforeCancel: func(t *testing.T) { setFaults(t, f, pvefake.Faults{StreamDelay: 50e6}) },
		AfterCancel:  func(t *testing.T) { setFaults(t, f, pvefake.Faults{}) },
		RawDigests: func(t *testing.T) map[string]string {
			sum, err := hex.DecodeString(disktest.FileSHA256(t, f.volumeFile(t, "local-lvm:vm-101-disk-0")))
			if err != nil {
				t.Fatal(err)
			}
			return map[string]string{"db-1-disk-0.raw": hex.EncodeToString(sum)}
		},
		Leftovers: f.leftovers,
	})
}

func setFaults(t *testing.T, f *fixture, faults pvefake.Faults) {
	t.Helper()
	if err := f.st.SetFaults(faults); err != nil {
		t.Fatal(err)
	}
}

// Containers are listed, with what the listing says, and refused for
// export with a message saying why, whatever the method.
func TestLXCListedAndRefused(t *testing.T) {
	f := newFixture(t, pvefake.SampleOptions{})
	for _, method := range Methods() {
		cfg := f.config()
		cfg.ExportMethod = method
		p := f.provider(t, cfg)
		vm, err := p.GetVM(context.Background(), "ct-1")
		if err != nil {
			t.Fatal(err)
		}
		if vm.ID != "200" || vm.Labels[LabelType] != "lxc" || vm.PowerState != providers.PowerOn || vm.MemoryMiB != 512 {
			t.Errorf("container %+v", vm)
		}
		_, err = pipeline.Export(context.Background(), p, "200", providers.ExportOptions{OutputDir: t.TempDir(), JobID: "job-lxc"})
		if !errors.Is(err, providers.ErrUnsupported) || !providers.IsPermanent(err) || !strings.Contains(err.Error(), "LXC container") {
			t.Errorf("%s: export of a container: %v", method, err)
		}
	}
	if cmds := f.st.Commands(); len(cmds) != 0 {
		t.Errorf("commands run for a refused export: %q", cmds)
	}
}
