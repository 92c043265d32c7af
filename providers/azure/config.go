package azure

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"

	"github.com/hypersdk/hypersdk/config"
	"github.com/hypersdk/hypersdk/internal/netguard"
)

// Config is the settings of one Azure subscription: an item of
// `providers:` with type azure.
//
//	providers:
//	  - name: az1
//	    type: azure
//	    subscription_id: 00000000-0000-0000-0000-000000000000
//	    tenant_id: 11111111-1111-1111-1111-111111111111  # required for client_secret, certificate
//	    credential:                                      # optional: default is the SDK's default chain
//	      type: client_secret      # client_secret, certificate, managed_identity, azure_cli or default
//	      client_id: 22222222-2222-2222-2222-222222222222
//	      client_secret: {env: AZ1_CLIENT_SECRET}
//	    resource_groups: [prod-rg, web-rg]                # optional: only these groups' VMs
//	    cloud: public                                    # public (default), usgovernment or china
//	    endpoints: {arm: URL, login: URL, blob: URL}     # optional: Azure Stack Hub, private clouds, tests
//	    ca_file: /etc/hypersdk/azure-ca.pem              # optional: CAs trusted besides the system's
type Config struct {
	// SubscriptionID is the subscription whose VMs are exported (a GUID).
	SubscriptionID string `yaml:"subscription_id"`
	// TenantID is the Microsoft Entra tenant (a GUID or a domain name).
	TenantID   string     `yaml:"tenant_id"`
	Credential Credential `yaml:"credential"`
	// ResourceGroups, when set, limits discovery, exports and the orphan
	// sweep to these resource groups (case-insensitive, as in Azure).
	ResourceGroups []string `yaml:"resource_groups"`
	// Cloud picks the national cloud: "public" (default), "usgovernment"
	// or "china".
	Cloud     string    `yaml:"cloud"`
	Endpoints Endpoints `yaml:"endpoints"`
	// CAFile names a PEM file of CA certificates trusted besides the
	// system's for every endpoint (Azure Stack Hub, a TLS-inspecting
	// proxy, the test endpoints).
	CAFile string `yaml:"ca_file"`
}

// Credential selects how the provider signs in (azidentity).
type Credential struct {
	// Type is client_secret, certificate, managed_identity, azure_cli or
	// default (the SDK's chain: environment, workload identity, managed
	// identity, Azure CLI, Azure Developer CLI). Empty means default.
	Type string `yaml:"type"`
	// ClientID is the application (client) id of a service principal, or
	// of a user-assigned managed identity.
	ClientID     string        `yaml:"client_id"`
	ClientSecret config.Secret `yaml:"client_secret"`
	// CertificateFile is a PEM or PKCS#12 file holding the certificate and
	// its private key; CertificatePassword decrypts it when needed.
	CertificateFile     string        `yaml:"certificate_file"`
	CertificatePassword config.Secret `yaml:"certificate_password"`
}

// Credential types.
const (
	CredentialClientSecret    = "client_secret"
	CredentialCertificate     = "certificate"
	CredentialManagedIdentity = "managed_identity"
	CredentialAzureCLI        = "azure_cli"
	CredentialDefault         = "default"
)

// Endpoints override the cloud's endpoints. Empty means the cloud's own.
type Endpoints struct {
	// ARM is the Azure Resource Manager base URL; ARMAudience the audience
	// its tokens are requested for (default: the cloud's, or ARM's URL
	// when ARM is overridden).
	ARM         string `yaml:"arm"`
	ARMAudience string `yaml:"arm_audience"`
	// Login is the Microsoft Entra (or AD FS) authority host.
	Login string `yaml:"login"`
	// Blob is where the SAS URLs of disk grants may point: a URL whose
	// scheme, host, port and path prefix every SAS URL must share; a host
	// written "*.suffix" matches every host under suffix. Default: https
	// hosts under the cloud's blob suffixes (*.blob.core.windows.net and
	// *.blob.storage.azure.net in the public cloud). A SAS URL elsewhere
	// is refused before it is used.
	Blob string `yaml:"blob"`
}

// cloudEndpoints are a national cloud's defaults.
type cloudEndpoints struct {
	login, arm, audience string
	// blob are the patterns SAS URLs of disk grants match: managed disks
	// are served from md-*.blob.core.* and md-*.*.blob.storage.* hosts.
	blob []string
}

var clouds = map[string]cloudEndpoints{
	"public": {
		login: "https://login.microsoftonline.com/", arm: "https://management.azure.com", audience: "https://management.core.windows.net/",
		blob: []string{"https://*.blob.core.windows.net", "https://*.blob.storage.azure.net"},
	},
	"usgovernment": {
		login: "https://login.microsoftonline.us/", arm: "https://management.usgovcloudapi.net", audience: "https://management.core.usgovcloudapi.net/",
		blob: []string{"https://*.blob.core.usgovcloudapi.net", "https://*.blob.storage.azure.us"},
	},
	"china": {
		login: "https://login.chinacloudapi.cn/", arm: "https://management.chinacloudapi.cn", audience: "https://management.core.chinacloudapi.cn/",
		blob: []string{"https://*.blob.core.chinacloudapi.cn", "https://*.blob.storage.chinacloudapi.cn"},
	},
}

// endpointGuard checks endpoint URLs with the project's SSRF guard. An
// endpoint is set by the operator in the configuration file, never through
// the API, and private addresses are what Azure Stack Hub, private links
// and the test endpoints resolve to — the same trust as the vSphere URL.
// What the guard refuses whatever the settings (zone ids, odd IPv4
// spellings, bad host names, control characters) stays refused. SAS URLs,
// which come from the platform, are checked by it too (sasPolicy).
var endpointGuard = netguard.Guard{AllowPrivate: true}

var (
	guidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	// A tenant is a GUID or a verified domain name (contoso.onmicrosoft.com);
	// "adfs" for Azure Stack Hub with AD FS.
	tenantPattern = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]{0,253}[A-Za-z0-9])?$`)
	// Azure's resource group names: letters, digits, underscores,
	// hyphens, periods and parentheses, up to 90, not ending in a period.
	resourceGroupPattern = regexp.MustCompile(`^[-\w.()]{0,89}[-\w()]$`)
)

// Decode is the configuration decoder of type azure: strict, every problem
// with its key and line.
func Decode(s *config.ProviderSettings) (*Config, error) {
	var c Config
	if err := s.Decode(&c); err != nil {
		return nil, err
	}
	return &c, nil
}

// credentialType is the credential type in effect.
func (c *Config) credentialType() string {
	if c.Credential.Type == "" {
		return CredentialDefault
	}
	return c.Credential.Type
}

// cloud returns the national cloud's endpoints ("public" when unset).
func (c *Config) cloud() cloudEndpoints {
	if c.Cloud == "" {
		return clouds["public"]
	}
	return clouds[c.Cloud]
}

// Validate checks the settings; each problem names its key (config.Validate
// prefixes the instance's path). It never quotes a secret.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	switch {
	case c.SubscriptionID == "":
		add("subscription_id: required (the subscription's GUID)")
	case !guidPattern.MatchString(c.SubscriptionID):
		add("subscription_id: %q is not a GUID such as 00000000-0000-0000-0000-000000000000", c.SubscriptionID)
	}
	if c.TenantID != "" && !tenantPattern.MatchString(c.TenantID) {
		add("tenant_id: %q is neither a GUID nor a domain name", c.TenantID)
	}
	errs = append(errs, c.Credential.validate(c.TenantID)...)
	for i, rg := range c.ResourceGroups {
		if !resourceGroupPattern.MatchString(rg) {
			add("resource_groups[%d]: %q is not a resource group name (letters, digits, _ - . ( ), up to 90, not ending in a period)", i, rg)
		}
	}
	if _, ok := clouds[c.Cloud]; c.Cloud != "" && !ok {
		add("cloud: %q is none of public, usgovernment, china", c.Cloud)
	}
	for _, e := range []struct{ key, url string }{
		{"endpoints.arm", c.Endpoints.ARM}, {"endpoints.login", c.Endpoints.Login},
	} {
		if e.url == "" {
			continue
		}
		if _, err := checkEndpoint(e.url); err != nil {
			add("%s: %w", e.key, err)
		}
	}
	if c.Endpoints.Login != "" && !strings.HasPrefix(c.Endpoints.Login, "https://") {
		add("endpoints.login: must be an https:// URL (the Azure SDK signs in over TLS only)")
	}
	if c.Endpoints.ARMAudience != "" {
		if u, err := url.Parse(c.Endpoints.ARMAudience); err != nil || u.Scheme == "" || u.Host == "" {
			add("endpoints.arm_audience: must be an absolute URL such as https://management.core.windows.net/")
		}
	}
	if c.Endpoints.Blob != "" {
		if _, err := parseBlobPattern(c.Endpoints.Blob); err != nil {
			add("endpoints.blob: %w", err)
		}
	}
	if c.CAFile != "" {
		if _, err := loadCAFile(c.CAFile); err != nil {
			add("ca_file: %w", err)
		}
	}
	return errors.Join(errs...)
}

// validate checks the credential settings against its type.
func (cr *Credential) validate(tenant string) []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	typ := cr.Type
	if typ == "" {
		typ = CredentialDefault
	}
	needs := func(key string, set bool) {
		if !set {
			add("credential.%s: required with credential type %s", key, typ)
		}
	}
	refuses := func(key string, set bool) {
		if set {
			add("credential.%s: not used by credential type %s", key, typ)
		}
	}
	if cr.ClientID != "" && !guidPattern.MatchString(cr.ClientID) {
		add("credential.client_id: %q is not a GUID", cr.ClientID)
	}
	switch typ {
	case CredentialClientSecret:
		if tenant == "" {
			add("tenant_id: required with credential type %s", typ)
		}
		needs("client_id", cr.ClientID != "")
		needs("client_secret", cr.ClientSecret.IsSet())
		refuses("certificate_file", cr.CertificateFile != "")
		refuses("certificate_password", cr.CertificatePassword.IsSet())
	case CredentialCertificate:
		if tenant == "" {
			add("tenant_id: required with credential type %s", typ)
		}
		needs("client_id", cr.ClientID != "")
		needs("certificate_file", cr.CertificateFile != "")
		refuses("client_secret", cr.ClientSecret.IsSet())
		if cr.CertificateFile != "" {
			if _, err := os.Stat(cr.CertificateFile); err != nil {
				add("credential.certificate_file: %v", err)
			}
		}
	case CredentialManagedIdentity, CredentialAzureCLI, CredentialDefault:
		// client_id picks a user-assigned managed identity; the default
		// chain takes it from AZURE_CLIENT_ID.
		if typ != CredentialManagedIdentity {
			refuses("client_id", cr.ClientID != "")
		}
		refuses("client_secret", cr.ClientSecret.IsSet())
		refuses("certificate_file", cr.CertificateFile != "")
		refuses("certificate_password", cr.CertificatePassword.IsSet())
	default:
		add("credential.type: %q is none of client_secret, certificate, managed_identity, azure_cli, default", cr.Type)
	}
	return errs
}

// checkEndpoint accepts an absolute http(s) URL of a service endpoint
// without credentials, query or fragment.
func checkEndpoint(raw string) (*url.URL, error) {
	// The guard's messages quote a URL it cannot parse, and a mistyped
	// endpoint may hold a credential: those are refused here unquoted.
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Opaque != "":
		return nil, errors.New("must be an absolute http:// or https:// URL (it does not parse; not quoted, it may hold a credential)")
	case u.User != nil:
		return nil, errors.New("must not contain credentials")
	}
	u, err = endpointGuard.CheckURL(raw)
	if err != nil {
		return nil, err
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("must not have a query or fragment")
	}
	return u, nil
}

// blobPattern is where SAS URLs may point: scheme, a host or "*." host
// suffix, a port ("" for the scheme's) and a path prefix.
type blobPattern struct {
	scheme, host, port, path string
	wildcard                 bool
}

// parseBlobPattern parses an endpoints.blob value.
func parseBlobPattern(raw string) (blobPattern, error) {
	wildcard := false
	checked := raw
	if rest, ok := strings.CutPrefix(raw, "https://*."); ok {
		wildcard, checked = true, "https://"+rest
	} else if rest, ok := strings.CutPrefix(raw, "http://*."); ok {
		wildcard, checked = true, "http://"+rest
	}
	u, err := checkEndpoint(checked)
	if err != nil {
		return blobPattern{}, err
	}
	return blobPattern{
		scheme: u.Scheme, host: strings.ToLower(u.Hostname()), port: u.Port(),
		path: strings.TrimSuffix(u.EscapedPath(), "/"), wildcard: wildcard,
	}, nil
}

// matches reports whether u (already parsed and guarded) points where p
// allows.
func (p blobPattern) matches(u *url.URL) bool {
	host := strings.ToLower(u.Hostname())
	switch {
	case u.Scheme != p.scheme, u.Port() != p.port:
		return false
	case p.wildcard && !strings.HasSuffix(host, "."+p.host):
		return false
	case !p.wildcard && host != p.host:
		return false
	}
	path := u.EscapedPath()
	return p.path == "" || path == p.path || strings.HasPrefix(path, p.path+"/")
}

// blobPatterns are the places SAS URLs may point for this configuration.
func (c *Config) blobPatterns() ([]blobPattern, error) {
	raw := c.cloud().blob
	if c.Endpoints.Blob != "" {
		raw = []string{c.Endpoints.Blob}
	}
	out := make([]blobPattern, 0, len(raw))
	for _, r := range raw {
		p, err := parseBlobPattern(r)
		if err != nil {
			return nil, fmt.Errorf("endpoints.blob: %w", err)
		}
		out = append(out, p)
	}
	return out, nil
}

// loadCAFile returns the system's certificate pool with the PEM
// certificates of path added.
func loadCAFile(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	n := 0
	for rest := b; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: certificate %d: %w", path, n+1, err)
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}
