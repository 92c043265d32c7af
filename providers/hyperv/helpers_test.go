package hyperv

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hypersdk/hypersdk/config"
	"github.com/hypersdk/hypersdk/internal/sambatest"
	"github.com/hypersdk/hypersdk/internal/sshdtest"
	"github.com/hypersdk/hypersdk/providers/hyperv/winrmfake"
)

const (
	testUser     = `LAB\exporter`
	testPassword = "Pw-9f2c!'$(calc)`\"x" // odd characters: it must reach the server intact
	testStaging  = `C:\HyperSDK`
	vhdDir       = `C:\Hyper-V\Virtual Hard Disks\`
	gen2ID       = "4f1e2d3c-b5a6-4798-8a9b-0c1d2e3f4a01"
	offID        = "4f1e2d3c-b5a6-4798-8a9b-0c1d2e3f4a02"
)

// diskContent is a disk's expected guest content: size and blocks.
type diskContent struct {
	size   int64
	blocks []winrmfake.Blocks // later ones over earlier ones
}

// raw writes the content as a raw file.
func (d diskContent) raw(t *testing.T) string {
	t.Helper()
	b := make([]byte, d.size)
	for _, layer := range d.blocks {
		for o, data := range layer {
			copy(b[o:], data)
		}
	}
	p := filepath.Join(t.TempDir(), "want.raw")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// fixture is a host with its WinRM server and a provider's settings.
type fixture struct {
	host *winrmfake.Host
	srv  *winrmfake.Server
	cfg  Config
	// want is the merged content of gen2's disks.
	want []diskContent
	log  *syncBuffer
}

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

// newHost makes gen2 (Generation 2, running; disk 0 a dynamic VHDX,
// disk 1 a differencing VHDX over a base, both 1 MiB blocks) and off-1
// (Generation 1, off, one disk).
func newHost(t *testing.T, extra ...*winrmfake.VM) (*winrmfake.Host, []diskContent) {
	t.Helper()
	ctx := context.Background()
	root := t.TempDir()
	host := winrmfake.NewHost(root)
	local, err := host.LocalPath(vhdDir + "x")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(local)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os0 := diskContent{size: 48 << 20, blocks: []winrmfake.Blocks{winrmfake.RandomBlocks(11, 0, 5<<20, 9, 900<<10)}}
	base := winrmfake.RandomBlocks(12, 1<<20, 3<<20, 7, 1<<20)
	child := winrmfake.RandomBlocks(13, 1<<20, 6<<20, 4, 1<<20) // over base blocks 1, 7, 13, 19
	child[30<<20] = bytes.Repeat([]byte{0x5a}, 1<<20)           // and a block the base has not
	data := diskContent{size: 32 << 20, blocks: []winrmfake.Blocks{base, child}}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(winrmfake.WriteDynamic(ctx, filepath.Join(dir, "gen2-os.vhdx"), os0.size, os0.blocks[0]))
	must(winrmfake.WriteDynamic(ctx, filepath.Join(dir, "gen2-data.vhdx"), data.size, base))
	must(winrmfake.WriteDifferencing(filepath.Join(dir, "gen2-data_0A1B2C3D-4E5F-4061-8273-94A5B6C7D8E9.avhdx"), filepath.Join(dir, "gen2-data.vhdx"), child))
	must(winrmfake.WriteDynamic(ctx, filepath.Join(dir, "off-1.vhdx"), 16<<20, winrmfake.RandomBlocks(14, 0, 4<<20, 3, 1<<20)))
	host.AddVM(&winrmfake.VM{
		ID: gen2ID, Name: "gen2", State: "Running", Generation: 2, CPUs: 4, MemoryMiB: 8192,
		NICs: []winrmfake.NIC{{Name: "Network Adapter", Switch: "External", MAC: "00155D0A0B0C"}},
		Drives: []winrmfake.Drive{
			{ControllerType: "SCSI", ControllerNumber: 0, ControllerLocation: 0, Path: vhdDir + "gen2-os.vhdx"},
			{ControllerType: "SCSI", ControllerNumber: 0, ControllerLocation: 1, Path: vhdDir + "gen2-data_0A1B2C3D-4E5F-4061-8273-94A5B6C7D8E9.avhdx"},
		},
	})
	host.AddVM(&winrmfake.VM{
		ID: offID, Name: "off-1", State: "Off", Generation: 1, CPUs: 1, MemoryMiB: 1024,
		Drives: []winrmfake.Drive{{ControllerType: "IDE", Path: vhdDir + "off-1.vhdx"}},
	})
	for _, vm := range extra {
		host.AddVM(vm)
	}
	return host, []diskContent{os0, data}
}

// newFixture serves host over HTTPS with Basic; files come back over
// method ("sftp": a real sshd; "smb": a real smbd whose share is the
// staging folder).
func newFixture(t *testing.T, method string, extra ...*winrmfake.VM) *fixture {
	t.Helper()
	host, want := newHost(t, extra...)
	f := &fixture{host: host, want: want, log: &syncBuffer{}}
	f.srv = winrmfake.NewTLS(winrmfake.Options{Username: testUser, Password: testPassword, Host: host,
		Log: slog.New(slog.NewTextHandler(f.log, nil))})
	t.Cleanup(f.srv.Close)
	h, port := splitAddr(f.srv.Addr())
	f.cfg = Config{Host: h, Port: port, Auth: "basic", Username: testUser, Password: config.NewSecret(testPassword),
		CAPEM: f.srv.CAPEM(), StagingPath: testStaging}
	switch method {
	case "sftp":
		s := sshdtest.Start(t, sshdtest.Options{})
		staging, err := host.LocalPath(testStaging)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(staging, 0o755); err != nil {
			t.Fatal(err)
		}
		f.cfg.Files = Files{Method: "sftp", SFTP: SFTPFiles{Addr: s.Addr, Username: s.User,
			PrivateKey: config.NewSecret(string(s.ClientKey)), KnownHosts: s.KnownHosts, Dir: staging}}
	case "smb":
		s := sambatest.Start(t, sambatest.Options{Share: "HyperSDK"})
		host.Mount(testStaging, s.ShareDir)
		f.cfg.Files = Files{Method: "smb", SMB: SMBFiles{Addr: s.Addr, Share: s.Share, Username: s.User,
			Password: config.NewSecret(s.Password), Domain: s.Domain}}
	default:
		t.Fatalf("method %q", method)
	}
	return f
}

// provider is a connected provider on the fixture, logging into f.log.
func (f *fixture) provider(t *testing.T) *Provider {
	t.Helper()
	p, err := NewProvider("hv1", f.cfg, slog.New(slog.NewTextHandler(f.log, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Disconnect() })
	return p
}

// leftovers asks the host what exports left: checkpoints, staging
// folders, differencing disks made by checkpoints, VM drives not back on
// their own disks.
func (f *fixture) leftovers(t *testing.T) []string {
	t.Helper()
	var left []string
	for _, c := range f.host.Checkpoints() {
		left = append(left, "checkpoint "+c.Name)
	}
	folders, err := f.host.StagingFolders(testStaging)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, d := range folders {
		left = append(left, "staging folder "+d)
	}
	_ = filepath.WalkDir(f.host.Root, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".avhdx") && !strings.Contains(p, "0A1B2C3D") {
			left = append(left, "differencing disk "+p)
		}
		return nil
	})
	vm, _ := f.host.VM(gen2ID)
	if vm.Drives[1].Path != vhdDir+"gen2-data_0A1B2C3D-4E5F-4061-8273-94A5B6C7D8E9.avhdx" || vm.Drives[0].Path != vhdDir+"gen2-os.vhdx" {
		left = append(left, "gen2's drives moved: "+vm.Drives[0].Path+", "+vm.Drives[1].Path)
	}
	return left
}

func configSecret(s string) config.Secret { return config.NewSecret(s) }
