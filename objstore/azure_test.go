package objstore_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/hypersdk/hypersdk/disk/disktest"
	"github.com/hypersdk/hypersdk/objstore"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/providers/azure/azuritetest"
)

// azureServer is Azurite with a container.
type azureServer struct {
	az  *azuritetest.Azurite
	url string // the account endpoint
	c   *container.Client
}

func startAzure(t *testing.T, containerName string) *azureServer {
	t.Helper()
	az := azuritetest.Start(t)
	s := &azureServer{az: az, url: az.URL}
	cred, err := container.NewSharedKeyCredential(az.AccountName, az.AccountKey)
	if err != nil {
		t.Fatal(err)
	}
	if s.c, err = container.NewClientWithSharedKeyCredential(az.URL+"/"+containerName, cred, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.c.Create(context.Background(), nil); err != nil {
		t.Fatalf("create container: %v", err)
	}
	return s
}

func (s *azureServer) targets() objstore.Targets {
	return objstore.Targets{{Name: "azurite", URL: "azblob://" + s.az.AccountName + "/",
		Azure: objstore.AzureConfig{Endpoint: s.url, AccountKey: s.az.AccountKey}}}
}

func (s *azureServer) blobs(t *testing.T, prefix string) []string {
	t.Helper()
	var names []string
	pages := s.c.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: &prefix})
	for pages.More() {
		page, err := pages.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range page.Segment.BlobItems {
			names = append(names, *b.Name)
		}
	}
	return names
}

func (s *azureServer) download(t *testing.T, prefix string) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range s.blobs(t, prefix) {
		resp, err := s.c.NewBlobClient(name).DownloadStream(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, strings.TrimPrefix(name, prefix)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// uncommitted counts the uncommitted blocks of the blob name.
func (s *azureServer) uncommitted(t *testing.T, name string) int {
	t.Helper()
	resp, err := s.c.NewBlockBlobClient(name).GetBlockList(context.Background(), blockblob.BlockListTypeUncommitted, nil)
	if err != nil {
		return 0 // no blob, no blocks
	}
	return len(resp.UncommittedBlocks)
}

// TestAzureExport exports to Azurite as plain disks (blocks committed
// into block blobs) and as an OVA, downloads the blobs and checks them
// against the manifest and the source.
func TestAzureExport(t *testing.T) {
	srv := startAzure(t, "exports")
	ts := srv.targets()
	account := srv.az.AccountName
	big, small := diskBytes(1, 40<<20), diskBytes(2, 3<<20)
	srcDir := t.TempDir()
	for name, data := range map[string][]byte{"disk-0": big, "disk-1": small} {
		if err := os.WriteFile(filepath.Join(srcDir, name+".raw"), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name   string
		format providers.Format
		disk   providers.DiskFormat
		mf     string
	}{
		{"disks-raw", providers.FormatDisks, providers.DiskRaw, "web01.sha256"},
		{"disks-qcow2", providers.FormatDisks, providers.DiskQCOW2, "web01.sha256"},
		{"ovf", providers.FormatOVF, providers.DiskVMDK, "web01.mf"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := t.TempDir()
			prefix := "vms/" + tc.name + "/"
			e := newExporter(readerDisk("disk-0", big), readerDisk("disk-1", small))
			watch := watchLocal(t, state)
			res, err := exportTo(t, ts, "azblob://"+account+"/exports/"+prefix, state, e, providers.ExportOptions{Format: tc.format, DiskFormat: tc.disk})
			if err != nil {
				t.Fatal(err)
			}
			watch.check(t, 16<<10)
			if res.OutputDir != "azblob://"+account+"/exports/"+prefix {
				t.Errorf("result output %q", res.OutputDir)
			}
			dir := srv.download(t, prefix)
			checkManifest(t, dir, tc.mf)
			qemu := map[providers.DiskFormat]string{providers.DiskRaw: "raw", providers.DiskVMDK: "vmdk", providers.DiskQCOW2: "qcow2", providers.DiskVHDX: "vhdx"}[tc.disk]
			for _, d := range []string{"disk-0", "disk-1"} {
				disktest.Compare(t, filepath.Join(srcDir, d+".raw"), "raw", filepath.Join(dir, "web01-"+d+"."+string(tc.disk)), qemu)
			}
			if left := listDir(t, state); len(left) > 0 {
				t.Errorf("state left behind: %v", left)
			}
		})
	}
}
