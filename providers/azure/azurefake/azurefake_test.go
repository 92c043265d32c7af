package azurefake_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/pageblob"

	"github.com/hypersdk/hypersdk/providers/azure/azblobfake"
	"github.com/hypersdk/hypersdk/providers/azure/azurefake"
)

const (
	sub, tenant, client, secret = "0b1f6471-1bf0-4dda-aec3-000000000001", "72f988bf-86f1-41af-91ab-000000000002", "3c5e2b1a-7d4f-4e6a-9b8c-000000000003", "s3cret"
)

func ptr[T any](v T) *T { return &v }

// The real SDK (azidentity, armcompute, azblob) against the fake: Azure's
// rules for grants and snapshots hold, and a grant's SAS serves the disk
// as a fixed VHD, expiring after the requested duration.
func TestAzureRules(t *testing.T) {
	blobs := azblobfake.New(azblobfake.Options{})
	defer blobs.Close()
	running, _ := azurefake.NewSampleContent(16, 1)
	parked, _ := azurefake.NewSampleContent(16, 2)
	srv, err := azurefake.New(azurefake.Options{
		SubscriptionID: sub, TenantID: tenant, ClientID: client, ClientSecret: secret,
		Blob: azurefake.BlobAccount{URL: blobs.URL(), AccountName: azblobfake.AccountName, AccountKey: azblobfake.AccountKey},
		Spec: azurefake.Spec{
			Disks: []*azurefake.Disk{{Name: "run-os", ResourceGroup: "rg", Content: running}, {Name: "park-os", ResourceGroup: "rg", Content: parked}},
			VMs: []*azurefake.VM{
				{Name: "run", ResourceGroup: "rg", Size: "Standard_B2s", OSDisk: "run-os"},
				{Name: "park", ResourceGroup: "rg", Size: "Standard_B2s", PowerState: azurefake.PowerDeallocated, OSDisk: "park-os"},
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(srv.CACertPEM())
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	opts := azcore.ClientOptions{
		Transport: hc, Retry: policy.RetryOptions{MaxRetries: -1},
		Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: srv.URL(), Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
			cloud.ResourceManager: {Endpoint: srv.URL(), Audience: srv.URL()},
		}},
	}
	ctx := context.Background()

	bad, _ := azidentity.NewClientSecretCredential(tenant, client, "wrong", &azidentity.ClientSecretCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: true})
	var authErr *azidentity.AuthenticationFailedError
	if _, err := bad.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{srv.URL() + "/.default"}}); !errors.As(err, &authErr) {
		t.Errorf("a wrong secret: %v", err)
	}
	cred, _ := azidentity.NewClientSecretCredential(tenant, client, secret, &azidentity.ClientSecretCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: true})
	f, err := armcompute.NewClientFactory(sub, cred, &arm.ClientOptions{ClientOptions: opts})
	if err != nil {
		t.Fatal(err)
	}
	disks, snaps := f.NewDisksClient(), f.NewSnapshotsClient()
	grant := armcompute.GrantAccessData{Access: ptr(armcompute.AccessLevelRead), DurationInSeconds: ptr[int32](600), FileFormat: ptr(armcompute.FileFormatVHD)}
	status := func(err error) int {
		var re *azcore.ResponseError
		if errors.As(err, &re) {
			return re.StatusCode
		}
		return 0
	}

	// A running VM's disk: no grant (409); its snapshot can be granted.
	if _, err := disks.BeginGrantAccess(ctx, "rg", "run-os", grant, nil); status(err) != http.StatusConflict {
		t.Errorf("grant on a running VM's disk: %v, want 409", err)
	}
	d, err := disks.Get(ctx, "rg", "run-os", nil)
	if err != nil || *d.Properties.DiskState != armcompute.DiskStateAttached {
		t.Fatalf("run-os: %v %v", err, d.Properties)
	}
	sp, err := snaps.BeginCreateOrUpdate(ctx, "rg", "s1", armcompute.Snapshot{
		Location: d.Location, Tags: map[string]*string{"k": ptr("v")},
		Properties: &armcompute.SnapshotProperties{CreationData: &armcompute.CreationData{CreateOption: ptr(armcompute.DiskCreateOptionCopy), SourceResourceID: d.ID}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sp.PollUntilDone(ctx, nil); err != nil {
		t.Fatal(err)
	}
	gp, err := snaps.BeginGrantAccess(ctx, "rg", "s1", grant, nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := gp.PollUntilDone(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := snaps.BeginGrantAccess(ctx, "rg", "s1", grant, nil); status(err) != http.StatusConflict {
		t.Errorf("a second grant: %v, want 409", err)
	}
	if _, err := snaps.BeginDelete(ctx, "rg", "s1", nil); status(err) != http.StatusConflict {
		t.Errorf("deleting a snapshot under a grant: %v, want 409", err)
	}
	if len(srv.Grants()) != 1 || len(srv.Snapshots()) != 1 || len(srv.Leftovers()) != 2 {
		t.Errorf("inspection: grants %v snapshots %v leftovers %v", srv.Grants(), srv.Snapshots(), srv.Leftovers())
	}

	// The SAS serves the disk's bytes and a fixed VHD footer, and expires
	// after the requested duration.
	u, err := url.Parse(*g.AccessSAS)
	if err != nil {
		t.Fatal(err)
	}
	se, _ := time.Parse(time.RFC3339, u.Query().Get("se"))
	if d := time.Until(se); d < 590*time.Second || d > 601*time.Second {
		t.Errorf("the SAS expires in %v, want 600 s", d)
	}
	pb, err := pageblob.NewClientWithNoCredential(*g.AccessSAS, nil)
	if err != nil {
		t.Fatal(err)
	}
	props, err := pb.GetProperties(ctx, nil)
	if err != nil || *props.ContentLength != 16<<20+512 {
		t.Fatalf("blob properties: %v %v", err, props.ContentLength)
	}
	res, err := pb.DownloadStream(ctx, &blob.DownloadStreamOptions{Range: blob.HTTPRange{Offset: 16 << 20, Count: 512}})
	if err != nil {
		t.Fatal(err)
	}
	footer := make([]byte, 512)
	_, _ = res.Body.Read(footer)
	res.Body.Close()
	if string(footer[:8]) != "conectix" {
		t.Errorf("footer %q", footer[:8])
	}
	rp, err := snaps.BeginRevokeAccess(ctx, "rg", "s1", nil)
	if err == nil {
		_, err = rp.PollUntilDone(ctx, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pb.GetProperties(ctx, nil); err == nil {
		t.Error("a revoked SAS still works")
	}
	dp, err := snaps.BeginDelete(ctx, "rg", "s1", nil)
	if err == nil {
		_, err = dp.PollUntilDone(ctx, nil)
	}
	if err != nil || len(srv.Leftovers()) != 0 {
		t.Errorf("after revoke and delete: %v %v", err, srv.Leftovers())
	}

	// A deallocated VM's disk is granted directly (Reserved → ActiveSAS).
	gp2, err := disks.BeginGrantAccess(ctx, "rg", "park-os", grant, nil)
	if err != nil {
		t.Fatalf("grant on a deallocated VM's disk: %v", err)
	}
	if _, err := gp2.PollUntilDone(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if d, _ := disks.Get(ctx, "rg", "park-os", nil); *d.Properties.DiskState != armcompute.DiskStateActiveSAS {
		t.Errorf("park-os under a grant: %s", *d.Properties.DiskState)
	}
	if err := srv.SetPowerState("rg", "park", azurefake.PowerRunning); err == nil {
		t.Error("a VM started while its disk is under a grant")
	}
}
