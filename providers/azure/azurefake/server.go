package azurefake

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8/fake"
)

// Options configure a Server.
type Options struct {
	// SubscriptionID and TenantID are the subscription served and the
	// tenant that signs in to it.
	SubscriptionID, TenantID string
	// ClientID is the service principal allowed to sign in, with
	// ClientSecret and/or (client assertions) ClientCertificate.
	ClientID          string
	ClientSecret      string
	ClientCertificate *x509.Certificate
	// Blob is the storage account the grants' blobs live in.
	Blob   BlobAccount
	Spec   Spec
	Faults Faults
	// PageSize is how many items a list page holds (100 when 0).
	PageSize int
	// TokenLifetime is how long access tokens live (1 hour when 0).
	TokenLifetime time.Duration
	Log           *slog.Logger
}

// Faults are failures the server injects, for tests.
type Faults struct {
	// FailSnapshots fails the next N snapshot creations with 500.
	FailSnapshots int
	// LoseSnapshotAnswers carries out the next N snapshot creations (or
	// updates, as a retried creation is) but answers 500, as when an
	// answer is lost.
	LoseSnapshotAnswers int
	// FailGrants fails the next N grants with 500.
	FailGrants int
	// RefuseGrantsOn refuses with 409 every grant on a disk whose name
	// contains it, or on a snapshot of such a disk.
	RefuseGrantsOn string
	// SnapshotCopyPolls is how many Gets an incremental snapshot reports
	// its background copy unfinished.
	SnapshotCopyPolls int
	// SASLifetime, when set, replaces every grant's duration: a short one
	// makes SAS URLs expire mid-download.
	SASLifetime time.Duration
	// BadFooter uploads the next grants' blobs with a damaged VHD footer
	// (its checksum off by one).
	BadFooter bool
}

// Stats count what the server was asked.
type Stats struct {
	// Requests counts ARM operations by API name ("DisksClient.BeginGrantAccess").
	Requests map[string]int
	// Tokens is the number of access tokens issued.
	Tokens                                              int
	Grants, Revokes, SnapshotsCreated, SnapshotsDeleted int
}

// Server is an ARM endpoint (the compute operations an export uses,
// served by armcompute's own fake servers over HTTPS) with a Microsoft
// Entra token endpoint, over one subscription's inventory.
type Server struct {
	opts  Options
	spec  Spec
	log   *slog.Logger
	blobs *blobStore
	http  *httptest.Server
	arm   *fake.ServerFactoryTransport

	// session numbers each ARM call's path namespace (see ServeHTTP).
	session atomic.Int64

	mu        sync.Mutex
	vms       map[string]*vm
	disks     map[string]*disk
	snapshots map[string]*snapshot
	tokens    map[string]time.Time
	faults    Faults
	stats     Stats
	grantSeq  int
	// sigs are the signatures of every SAS handed out.
	sigs []string
}

// New builds the server from opts and starts it on a loopback port with
// a TLS certificate of its own (CACertPEM).
func New(opts Options) (*Server, error) {
	switch {
	case opts.SubscriptionID == "" || opts.TenantID == "" || opts.ClientID == "":
		return nil, errors.New("azurefake: a subscription, a tenant and a client id are required")
	case opts.ClientSecret == "" && opts.ClientCertificate == nil:
		return nil, errors.New("azurefake: the client needs a secret or a certificate")
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	blobs, err := newBlobStore(opts.Blob)
	if err != nil {
		return nil, err
	}
	s := &Server{
		opts: opts, log: opts.Log, blobs: blobs, faults: opts.Faults,
		vms: map[string]*vm{}, disks: map[string]*disk{}, snapshots: map[string]*snapshot{}, tokens: map[string]time.Time{},
		stats: Stats{Requests: map[string]int{}},
	}
	if err := s.load(opts.Spec); err != nil {
		return nil, err
	}
	s.arm = fake.NewServerFactoryTransport(s.factory())
	s.http = httptest.NewTLSServer(s)
	return s, nil
}

// URL is the server's base URL: the ARM endpoint and the login authority
// host at once.
func (s *Server) URL() string { return s.http.URL }

// CACertPEM is the PEM certificate the server's TLS certificate chains to:
// what a client's ca_file must trust.
func (s *Server) CACertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.http.Certificate().Raw})
}

// Close stops the server.
func (s *Server) Close() { s.http.Close() }

// SetFaults replaces the injected faults.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
}

// SASSignatures returns the signature (sig) of every SAS URL the server
// handed out, for tests that prove none is shown anywhere.
func (s *Server) SASSignatures() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sigs)
}

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.stats
	out.Requests = maps.Clone(s.stats.Requests)
	return out
}

var (
	discoveryPath = regexp.MustCompile(`^/([^/]+)/v2\.0/\.well-known/openid-configuration$`)
	tokenPath     = regexp.MustCompile(`^/([^/]+)/oauth2/v2\.0/token$`)
	sessionPrefix = regexp.MustCompile(`^/_s/[0-9]+`)
	// The fake pager's and poller's path suffixes.
	fakeSuffix = regexp.MustCompile(`(/fake_page_[0-9]+|/get/fake/status)$`)
)

// ServeHTTP serves the login endpoints and ARM.
//
// armcompute's fake servers keep a pager's remaining pages (and a
// poller's state) by request path, which two clients listing the same
// collection at once would share. Every first request therefore gets a
// path namespace of its own, /_s/N/…, which the fake servers' unanchored
// path patterns ignore and which the next links they write carry on.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if m := discoveryPath.FindStringSubmatch(r.URL.Path); m != nil {
		s.discovery(w, r, m[1])
		return
	}
	if m := tokenPath.FindStringSubmatch(r.URL.Path); m != nil {
		s.token(w, r, m[1])
		return
	}
	path := r.URL.Path
	prefix := sessionPrefix.FindString(path)
	bare := fakeSuffix.ReplaceAllString(strings.TrimPrefix(path, prefix), "")
	api := armAPI(r.Method, bare)
	if api == "" {
		writeARMError(w, &armError{http.StatusBadRequest, "InvalidRequestUri", fmt.Sprintf("azurefake does not serve %s %s", r.Method, bare)})
		return
	}
	if !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer authorization_uri="`+s.URL()+"/"+s.opts.TenantID+`", error="invalid_token"`)
		writeARMError(w, &armError{http.StatusUnauthorized, "InvalidAuthenticationToken", "The access token is invalid or has expired."})
		return
	}
	if !strings.HasPrefix(strings.ToLower(bare), "/subscriptions/"+strings.ToLower(s.opts.SubscriptionID)+"/") {
		writeARMError(w, &armError{http.StatusNotFound, "SubscriptionNotFound", "The subscription could not be found."})
		return
	}
	s.mu.Lock()
	s.stats.Requests[api]++
	s.mu.Unlock()
	if prefix == "" {
		prefix = fmt.Sprintf("/_s/%d", s.session.Add(1))
	}
	req := r.Clone(context.WithValue(r.Context(), runtime.CtxAPINameKey{}, api))
	req.URL.Scheme, req.URL.Host = "https", r.Host
	req.URL.Path, req.URL.RawPath = prefix+strings.TrimPrefix(path, sessionPrefix.FindString(path)), ""
	resp, err := s.arm.Do(req)
	if err != nil {
		var ae *armError
		if !errors.As(err, &ae) {
			ae = &armError{http.StatusInternalServerError, "InternalServerError", err.Error()}
		}
		if ae.status >= 500 || ae.status == http.StatusConflict {
			s.log.Info("ARM call refused", "api", api, "status", ae.status, "code", ae.code)
		}
		writeARMError(w, ae)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.Header().Set("x-ms-request-id", newGUID())
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

func writeARMError(w http.ResponseWriter, e *armError) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("x-ms-error-code", e.code)
	w.WriteHeader(e.status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": e.code, "message": e.message}})
}

// armRoutes map ARM paths (without the subscription prefix) to the
// armcompute API names the fake servers dispatch on.
var armRoutes = []struct {
	method string
	path   *regexp.Regexp
	api    string
}{
	{"GET", regexp.MustCompile(`^/subscriptions/[^/]+/providers/Microsoft\.Compute/virtualMachines$`), "VirtualMachinesClient.NewListAllPager"},
	{"GET", regexp.MustCompile(`^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Compute/virtualMachines$`), "VirtualMachinesClient.NewListPager"},
	{"GET", regexp.MustCompile(`^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Compute/virtualMachines/[^/]+$`), "VirtualMachinesClient.Get"},
	{"GET", regexp.MustCompile(`^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Compute/virtualMachines/[^/]+/instanceView$`), "VirtualMachinesClient.InstanceView"},
	{"GET", regexp.MustCompile(`^/subscriptions/[^/]+/providers/Microsoft\.Compute/locations/[^/]+/vmSizes$`), "VirtualMachineSizesClient.NewListPager"},
	{"GET", regexp.MustCompile(`^/subscriptions/[^/]+/providers/Microsoft\.Compute/disks$`), "DisksClient.NewListPager"},
	{"GET", regexp.MustCompile(`^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Compute/disks$`), "DisksClient.NewListByResourceGroupPager"},
	{"GET", regexp.MustCompile(`^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Compute/disks/[^/]+$`), "DisksClient.Get"},
	{"PATCH", regexp.MustCompile(`^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Compute/disks/[^/]+$`), "DisksClient.BeginUpdate"},
	{"POST", regexp.MustCompile(`^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Compute/disks/[^/]+/beginGetAccess$`), "DisksClient.BeginGrantAccess"},
	{"POST", regexp.MustCompile(`^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Compute/disks/[^/]+/endGetAccess$`), "DisksClient.BeginRevokeAccess"},
	{"GET", regexp.MustCompile(`^/subscriptions/[^/]+/providers/Microsoft\.Compute/snapshots$`), "SnapshotsClient.NewListPager"},
	{"GET", regexp.MustCompile(`^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Compute/snapshots$`), "SnapshotsClient.NewListByResourceGroupPager"},
	{"GET", regexp.MustCompile(`^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Compute/snapshots/[^/]+$`), "SnapshotsClient.Get"},
	{"PUT", regexp.MustCompile(`^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Compute/snapshots/[^/]+$`), "SnapshotsClient.BeginCreateOrUpdate"},
	{"DELETE", regexp.MustCompile(`^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Compute/snapshots/[^/]+$`), "SnapshotsClient.BeginDelete"},
	{"POST", regexp.MustCompile(`^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Compute/snapshots/[^/]+/beginGetAccess$`), "SnapshotsClient.BeginGrantAccess"},
	{"POST", regexp.MustCompile(`^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Compute/snapshots/[^/]+/endGetAccess$`), "SnapshotsClient.BeginRevokeAccess"},
}

func armAPI(method, path string) string {
	for _, rt := range armRoutes {
		if rt.method == method && rt.path.MatchString(path) {
			return rt.api
		}
	}
	return ""
}

// authorized checks the request's bearer token.
func (s *Server) authorized(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.tokens[tok]
	return ok && time.Now().Before(exp)
}

// discovery serves the tenant's OpenID configuration, which MSAL reads to
// find the token endpoint.
func (s *Server) discovery(w http.ResponseWriter, r *http.Request, tenant string) {
	if !strings.EqualFold(tenant, s.opts.TenantID) {
		writeOAuthError(w, http.StatusBadRequest, "invalid_tenant", "AADSTS90002: Tenant '"+tenant+"' not found.")
		return
	}
	base := s.URL() + "/" + tenant
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"issuer":                                base + "/v2.0",
		"jwks_uri":                              base + "/discovery/v2.0/keys",
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"tenant_region_scope":                   "EU",
	})
}

// token is the client credentials grant: a client secret or a client
// assertion (a JWT signed with the registered certificate's key).
func (s *Server) token(w http.ResponseWriter, r *http.Request, tenant string) {
	if r.Method != http.MethodPost {
		writeOAuthError(w, http.StatusMethodNotAllowed, "invalid_request", "POST only")
		return
	}
	if !strings.EqualFold(tenant, s.opts.TenantID) {
		writeOAuthError(w, http.StatusBadRequest, "invalid_tenant", "AADSTS90002: Tenant '"+tenant+"' not found.")
		return
	}
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	f := r.PostForm
	switch {
	case f.Get("grant_type") != "client_credentials":
		writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type", "AADSTS70003: client_credentials only")
		return
	case f.Get("client_id") != s.opts.ClientID:
		writeOAuthError(w, http.StatusBadRequest, "unauthorized_client", "AADSTS700016: Application with identifier '"+f.Get("client_id")+"' was not found in the directory.")
		return
	}
	tokenURL := s.URL() + "/" + tenant + "/oauth2/v2.0/token"
	switch {
	case f.Get("client_secret") != "":
		if s.opts.ClientSecret == "" || subtle.ConstantTimeCompare([]byte(f.Get("client_secret")), []byte(s.opts.ClientSecret)) != 1 {
			writeOAuthError(w, http.StatusUnauthorized, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
			return
		}
	case f.Get("client_assertion") != "":
		if err := s.checkAssertion(f.Get("client_assertion"), tokenURL); err != nil {
			writeOAuthError(w, http.StatusUnauthorized, "invalid_client", "AADSTS700027: Client assertion failed signature validation: "+err.Error())
			return
		}
	default:
		writeOAuthError(w, http.StatusUnauthorized, "invalid_client", "AADSTS7000216: client_assertion or client_secret is required.")
		return
	}
	life := s.opts.TokenLifetime
	if life <= 0 {
		life = time.Hour
	}
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	tok := "fake." + hex.EncodeToString(b)
	s.mu.Lock()
	s.tokens[tok] = time.Now().Add(life)
	s.stats.Tokens++
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"token_type": "Bearer", "expires_in": int(life.Seconds()), "ext_expires_in": int(life.Seconds()), "access_token": tok,
	})
}

func writeOAuthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": code, "error_description": desc, "error_codes": []int{}})
}

// checkAssertion verifies a client assertion: an RS256 or PS256 JWT
// signed by the registered certificate's key, issued by and for the
// client, for the token endpoint, not expired.
func (s *Server) checkAssertion(jwt, tokenURL string) error {
	if s.opts.ClientCertificate == nil {
		return errors.New("no certificate registered")
	}
	pub, ok := s.opts.ClientCertificate.PublicKey.(*rsa.PublicKey)
	if !ok {
		return errors.New("the registered certificate's key is not RSA")
	}
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return errors.New("not a JWS compact serialization")
	}
	var hdr struct {
		Alg string `json:"alg"`
	}
	var claims struct {
		Aud any    `json:"aud"`
		Iss string `json:"iss"`
		Sub string `json:"sub"`
		Exp int64  `json:"exp"`
	}
	for i, v := range []any{&hdr, &claims} {
		raw, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			return err
		}
		if err := json.Unmarshal(raw, v); err != nil {
			return err
		}
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return err
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	switch hdr.Alg {
	case "RS256":
		err = rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig)
	case "PS256":
		err = rsa.VerifyPSS(pub, crypto.SHA256, digest[:], sig, nil)
	default:
		err = fmt.Errorf("algorithm %q", hdr.Alg)
	}
	if err != nil {
		return err
	}
	aud, _ := claims.Aud.(string)
	switch {
	case claims.Iss != s.opts.ClientID || claims.Sub != s.opts.ClientID:
		return errors.New("iss and sub must be the client id")
	case !strings.EqualFold(strings.TrimSuffix(aud, "/"), tokenURL):
		return fmt.Errorf("aud %q is not the token endpoint", aud)
	case time.Now().Unix() > claims.Exp:
		return errors.New("expired")
	}
	return nil
}
