package azure

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/hypersdk/hypersdk/config"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/providers/azure/azblobfake"
	"github.com/hypersdk/hypersdk/providers/azure/azurefake"
)

func TestConfigValidate(t *testing.T) {
	secret := config.NewSecret(testSecret)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	cert := filepath.Join(t.TempDir(), "sp.pem")
	for _, f := range []string{ca, cert} {
		if err := os.WriteFile(f, selfSignedPEM(t, nil), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	sp := Credential{Type: CredentialClientSecret, ClientID: testClientID, ClientSecret: secret}
	base := func(mod func(*Config)) Config {
		c := Config{SubscriptionID: testSubscription, TenantID: testTenant, Credential: sp}
		mod(&c)
		return c
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // "" for valid
	}{
		{"client secret", base(func(*Config) {}), ""},
		{"default chain", Config{SubscriptionID: testSubscription}, ""},
		{"managed identity, user-assigned", Config{SubscriptionID: testSubscription, Credential: Credential{Type: CredentialManagedIdentity, ClientID: testClientID}}, ""},
		{"azure cli", Config{SubscriptionID: testSubscription, Credential: Credential{Type: CredentialAzureCLI}}, ""},
		{"certificate", base(func(c *Config) {
			c.Credential = Credential{Type: CredentialCertificate, ClientID: testClientID, CertificateFile: cert}
		}), ""},
		{"tenant domain", base(func(c *Config) { c.TenantID = "contoso.onmicrosoft.com" }), ""},
		{"groups, cloud, endpoints, CA", base(func(c *Config) {
			c.ResourceGroups = []string{"prod-rg", "Web_RG.(1)"}
			c.Cloud = "usgovernment"
			c.Endpoints = Endpoints{ARM: "https://management.local.azurestack.external", Login: "https://adfs.local.azurestack.external/", Blob: "https://*.blob.local.azurestack.external"}
			c.CAFile = ca
		}), ""},
		{"loopback endpoints (tests, demo)", base(func(c *Config) {
			c.Endpoints = Endpoints{ARM: "https://127.0.0.1:8443", Login: "https://[::1]:8443/", Blob: "http://127.0.0.1:10000/devstoreaccount1"}
		}), ""},
		{"no subscription", Config{}, "subscription_id: required"},
		{"bad subscription", Config{SubscriptionID: "my-sub"}, "subscription_id:"},
		{"bad tenant", base(func(c *Config) { c.TenantID = "a b" }), "tenant_id:"},
		{"secret without tenant", base(func(c *Config) { c.TenantID = "" }), "tenant_id: required with credential type client_secret"},
		{"secret missing", base(func(c *Config) { c.Credential.ClientSecret = config.Secret{} }), "credential.client_secret: required"},
		{"client id missing", base(func(c *Config) { c.Credential.ClientID = "" }), "credential.client_id: required"},
		{"client id not a GUID", base(func(c *Config) { c.Credential.ClientID = "app" }), "credential.client_id:"},
		{"certificate file missing", base(func(c *Config) {
			c.Credential = Credential{Type: CredentialCertificate, ClientID: testClientID, CertificateFile: "/no/such/cert.pem"}
		}), "credential.certificate_file:"},
		{"secret with a managed identity", Config{SubscriptionID: testSubscription, Credential: Credential{Type: CredentialManagedIdentity, ClientSecret: secret}}, "credential.client_secret: not used"},
		{"client id with the default chain", Config{SubscriptionID: testSubscription, Credential: Credential{ClientID: testClientID}}, "credential.client_id: not used"},
		{"unknown credential type", Config{SubscriptionID: testSubscription, Credential: Credential{Type: "password"}}, "credential.type:"},
		{"bad resource group", base(func(c *Config) { c.ResourceGroups = []string{"ends.with.a.period."} }), "resource_groups[0]:"},
		{"bad cloud", base(func(c *Config) { c.Cloud = "mars" }), "cloud:"},
		{"login over http", base(func(c *Config) { c.Endpoints.Login = "http://127.0.0.1:8080" }), "endpoints.login: must be an https"},
		{"endpoint zone id", base(func(c *Config) { c.Endpoints.ARM = "https://[fe80::1%25eth0]:443" }), "endpoints.arm:"},
		{"endpoint odd IPv4", base(func(c *Config) { c.Endpoints.ARM = "https://2130706433/" }), "endpoints.arm:"},
		{"endpoint credentials", base(func(c *Config) { c.Endpoints.ARM = "https://u:" + testSecret + "@arm.example.com" }), "endpoints.arm: must not contain credentials"},
		{"blob pattern with a query", base(func(c *Config) { c.Endpoints.Blob = "https://*.blob.example.com/?sv=1" }), "endpoints.blob: must not have a query"},
		{"CA file not PEM", base(func(c *Config) { c.CAFile = notPEM }), "ca_file:"},
	} {
		err := tc.cfg.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		case err != nil && strings.Contains(err.Error(), testSecret):
			t.Errorf("%s: the error quotes the secret: %v", tc.name, err)
		}
	}
}

func TestDecodeStrict(t *testing.T) {
	var n yaml.Node
	src := "subscription_id: " + testSubscription + "\ntenant_id: " + testTenant +
		"\ncredential: {type: client_secret, client_id: " + testClientID + ", client_secret: " + testSecret + "}" +
		"\nresource_groups: [a-rg]\nendpoints: {arm: https://127.0.0.1:1}\nbogus: 1\n"
	if err := yaml.Unmarshal([]byte(src), &n); err != nil {
		t.Fatal(err)
	}
	_, err := Decode(&config.ProviderSettings{Name: "az1", Type: "azure", Path: "providers[0]", Node: n.Content[0]})
	if err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Fatalf("unknown key: %v", err)
	}
	n.Content[0].Content = n.Content[0].Content[:len(n.Content[0].Content)-2]
	c, err := Decode(&config.ProviderSettings{Name: "az1", Type: "azure", Path: "providers[0]", Node: n.Content[0]})
	if err != nil {
		t.Fatal(err)
	}
	if c.Credential.ClientSecret.Reveal() != testSecret || c.ResourceGroups[0] != "a-rg" || c.Endpoints.ARM != "https://127.0.0.1:1" {
		t.Errorf("decoded %+v", c)
	}
	if b, _ := json.Marshal(c); strings.Contains(string(b), testSecret) || strings.Contains(fmt.Sprintf("%+v %#v", c, c), testSecret) {
		t.Error("printing the configuration shows the secret")
	}
}

func TestBlobPatterns(t *testing.T) {
	for _, tc := range []struct {
		pattern, url string
		want         bool
	}{
		{"https://*.blob.core.windows.net", "https://md-abc.z1.blob.core.windows.net/x/abcd?sv=1&sig=s", true},
		{"https://*.blob.core.windows.net", "https://blob.core.windows.net/x", false},
		{"https://*.blob.core.windows.net", "https://md-abc.blob.core.windows.net.evil.example/x", false},
		{"https://*.blob.core.windows.net", "http://md-abc.blob.core.windows.net/x", false},
		{"https://*.blob.core.windows.net", "https://md-abc.blob.core.windows.net:8443/x", false},
		{"http://127.0.0.1:10000/devstoreaccount1", "http://127.0.0.1:10000/devstoreaccount1/c/b.vhd?sig=s", true},
		{"http://127.0.0.1:10000/devstoreaccount1", "http://127.0.0.1:10000/devstoreaccount2/c/b.vhd", false},
		{"http://127.0.0.1:10000/devstoreaccount1", "http://127.0.0.1:10001/devstoreaccount1/c/b.vhd", false},
		{"http://127.0.0.1:10000/devstoreaccount1", "http://127.0.0.1:10000/devstoreaccount1x/b", false},
	} {
		p, err := parseBlobPattern(tc.pattern)
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(tc.url)
		if got := p.matches(u); got != tc.want {
			t.Errorf("%s matches %s: %v, want %v", tc.pattern, tc.url, got, tc.want)
		}
	}
	// The public cloud's managed disk hosts pass by default; others not.
	pr, err := NewProvider("p", Config{SubscriptionID: testSubscription}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pr.checkSAS("https://md-impexp-x.z23.blob.storage.azure.net/c/abcd?sv=2018-03-28&sr=b&sig=SECRETSIG&se=2030-01-01T00:00:00Z&sp=r"); err != nil {
		t.Errorf("a public cloud managed disk SAS is refused: %v", err)
	}
	_, err = pr.checkSAS("https://169.254.169.254/metadata?sig=SECRETSIG")
	if err == nil || strings.Contains(err.Error(), "SECRETSIG") {
		t.Errorf("a SAS at the metadata service: %v", err)
	}
}

// A wrong client secret is refused at Connect as ErrAuth (permanent),
// without the secret in the error.
func TestConnectRefusedCredentials(t *testing.T) {
	f := newFixture(t, testSpec(t), fakeBlobs(t, azblobfake.Options{}), azurefake.Faults{})
	const wrong = "wrong~secret.that-must-not-show"
	p := f.provider(t, f.config(wrong))
	err := p.Connect(context.Background())
	if !errors.Is(err, providers.ErrAuth) || !providers.IsPermanent(err) {
		t.Fatalf("Connect with a wrong secret: %v, want a permanent ErrAuth", err)
	}
	if strings.Contains(err.Error(), wrong) || strings.Contains(f.logs.String(), wrong) {
		t.Errorf("the refused secret shows: %v", err)
	}
	// An ARM call without a token is refused by the endpoint.
	pool, err := loadCAFile(f.caFile)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := hc.Get(f.arm.URL() + "/subscriptions/" + testSubscription + "/providers/Microsoft.Compute/virtualMachines?api-version=2025-04-01")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("ARM without a token: %d", resp.StatusCode)
	}
}

// A service principal with a certificate signs in with a client assertion
// the endpoint verifies against the registered certificate.
func TestCertificateCredential(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes := selfSignedPEM(t, key)
	block, _ := pem.Decode(pemBytes)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "sp.pem")
	if err := os.WriteFile(file, append(pemBytes, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})...), 0o600); err != nil {
		t.Fatal(err)
	}
	blobs := fakeBlobs(t, azblobfake.Options{})
	srv, err := azurefake.New(azurefake.Options{
		SubscriptionID: testSubscription, TenantID: testTenant, ClientID: testClientID, ClientCertificate: cert,
		Blob: blobs.account, Spec: testSpec(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, srv.CACertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := NewProvider("cert", Config{
		SubscriptionID: testSubscription, TenantID: testTenant,
		Credential: Credential{Type: CredentialCertificate, ClientID: testClientID, CertificateFile: file},
		Endpoints:  Endpoints{ARM: srv.URL(), Login: srv.URL(), Blob: blobs.account.URL}, CAFile: ca,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Connect(context.Background()); err != nil {
		t.Fatalf("Connect with a certificate: %v", err)
	}
	defer p.Disconnect()
	if srv.Stats().Tokens != 1 {
		t.Errorf("%d tokens issued", srv.Stats().Tokens)
	}
}

// The Azure CLI credential runs `az account get-access-token`; here an az
// on PATH hands out a token the endpoint issued.
func TestAzureCLICredential(t *testing.T) {
	f := newFixture(t, testSpec(t), fakeBlobs(t, azblobfake.Options{}), azurefake.Faults{})
	tok := issueToken(t, f)
	dir := t.TempDir()
	script := fmt.Sprintf("#!/bin/sh\ncat <<'EOF'\n{\"accessToken\": %q, \"expiresOn\": %q, \"expires_on\": %d, \"subscription\": %q, \"tenant\": %q, \"tokenType\": \"Bearer\"}\nEOF\n",
		tok, time.Now().Add(time.Hour).Format("2006-01-02 15:04:05.000000"), time.Now().Add(time.Hour).Unix(), testSubscription, testTenant)
	if err := os.WriteFile(filepath.Join(dir, "az"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	cfg := f.config(testSecret)
	cfg.Credential = Credential{Type: CredentialAzureCLI}
	p := f.provider(t, cfg)
	if err := p.Connect(context.Background()); err != nil {
		t.Fatalf("Connect through the Azure CLI: %v", err)
	}
	defer p.Disconnect()
	vms, err := p.ListVMs(context.Background(), providers.VMFilter{Name: "web-*"})
	if err != nil || len(vms) != 1 {
		t.Fatalf("ListVMs: %v %v", vms, err)
	}
}

// issueToken asks the fake's token endpoint for an access token.
func issueToken(t *testing.T, f *fixture) string {
	t.Helper()
	pool, err := loadCAFile(f.caFile)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := hc.PostForm(f.arm.URL()+"/"+testTenant+"/oauth2/v2.0/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {testClientID}, "client_secret": {testSecret}, "scope": {f.arm.URL() + "/.default"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || v.AccessToken == "" {
		t.Fatalf("token: %v %+v", err, v)
	}
	return v.AccessToken
}

// selfSignedPEM is a self-signed certificate's PEM, for key (a new one
// when nil).
func selfSignedPEM(t testing.TB, key *rsa.PrivateKey) []byte {
	t.Helper()
	if key == nil {
		var err error
		if key, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			t.Fatal(err)
		}
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "hypersdk exporter"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
