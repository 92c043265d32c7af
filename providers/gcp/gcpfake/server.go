package gcpfake

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fsouza/fake-gcs-server/fakestorage"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Options configure a Server.
type Options struct {
	// Project is the project id every path must name.
	Project string
	// Spec is the inventory.
	Spec Spec
	// Faults start active; SetFaults changes them.
	Faults Faults
	// Log receives the server's log lines; nil discards them.
	Log *slog.Logger
}

// Spec is what the project holds at start.
type Spec struct {
	Instances []Instance
	// Buckets are created in the in-process GCS server.
	Buckets []string
}

// Instance is a VM of the spec. Its disks are attached in order, the
// first as the boot disk.
type Instance struct {
	ID   uint64
	Name string
	Zone string
	// MachineType is a predefined type of machineTypes (e2-medium,
	// n2-standard-4, …) or custom-<vCPUs>-<MiB>.
	MachineType string
	// Status is RUNNING (default), TERMINATED, STOPPING, SUSPENDED…
	Status string
	Labels map[string]string
	Disks  []*Disk
	// Network is the VPC network's name ("default" when empty).
	Network string
}

// Faults make the fake misbehave the way the platform does.
type Faults struct {
	// BuildDelay is how long a build works before it writes the image;
	// builds whose timeout is shorter end TIMEOUT.
	BuildDelay time.Duration
	// BuildError makes every build fail, its log ending with this line
	// as the builder prints it.
	BuildError string
	// DenyBuilderCompute makes builds fail as when the Cloud Build service
	// account lacks roles/compute.admin: the builder's 403 on creating
	// its buffer disk.
	DenyBuilderCompute bool
	// DenyComputeStorage makes builds fail as when the Compute Engine
	// default service account cannot write the bucket.
	DenyComputeStorage bool
	// DenySnapshots answers snapshots.insert 403, as to a caller without
	// compute.snapshots.create.
	DenySnapshots bool
	// CorruptObjects flips the middle byte of every image object
	// (.tar.gz) as Cloud Storage serves it: its metadata keeps the
	// CRC32C of the true bytes.
	CorruptObjects bool
	// PartSize > 0 uploads an image in parts of this size and composes
	// them into the destination, as the builder's buffered writer does: a
	// composite object, which on GCS carries a CRC32C and no MD5.
	PartSize int64
	// PendingPolls is how many polls a Compute operation answers RUNNING
	// before DONE.
	PendingPolls int
}

// Server is the fake Compute Engine and Cloud Build endpoint, with an
// in-process fake-gcs-server for Cloud Storage.
type Server struct {
	project string
	log     *slog.Logger
	http    *httptest.Server
	gcs     *fakestorage.Server
	gcsFace *httptest.Server // the storage endpoint clients use: a proxy to gcs
	buckets []string
	key     *rsa.PrivateKey
	keyID   string
	email   string

	mu        sync.Mutex
	faults    Faults
	tokens    map[string]bool
	instances []*instance
	disks     map[string]*diskRes // zone/name
	snapshots map[string]*snapshotRes
	images    map[string]*imageRes
	ops       map[string]*operation
	builds    map[string]*build
	requests  map[string]int
	seq       int
	cache     imageCache
}

// New creates a server with the spec's instances and buckets; Start makes
// it listen.
func New(opts Options) (*Server, error) {
	if opts.Project == "" {
		return nil, errors.New("gcpfake: no project")
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	gcs, err := fakestorage.NewServerWithOptions(fakestorage.Options{Scheme: "http", Host: "127.0.0.1", Writer: discard{}})
	if err != nil {
		return nil, fmt.Errorf("gcpfake: fake-gcs-server: %w", err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	s := &Server{
		project: opts.Project, log: log, gcs: gcs, key: key,
		keyID: randomHex(20), email: "hypersdk-exporter@" + opts.Project + ".iam.gserviceaccount.com",
		faults: opts.Faults, tokens: map[string]bool{},
		disks: map[string]*diskRes{}, snapshots: map[string]*snapshotRes{}, images: map[string]*imageRes{},
		ops: map[string]*operation{}, builds: map[string]*build{}, requests: map[string]int{},
	}
	for _, b := range opts.Spec.Buckets {
		gcs.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: b})
		s.buckets = append(s.buckets, b)
	}
	for i, in := range opts.Spec.Instances {
		if in.Zone == "" || in.Name == "" {
			return nil, fmt.Errorf("gcpfake: instance %d: no name or zone", i)
		}
		if in.ID == 0 {
			in.ID = 4_000_000_000_000_000_000 + uint64(i)*7919
		}
		if in.Status == "" {
			in.Status = "RUNNING"
		}
		if in.Network == "" {
			in.Network = "default"
		}
		if _, _, err := machineType(in.MachineType); err != nil {
			return nil, err
		}
		vm := &instance{spec: in}
		for _, d := range in.Disks {
			key := in.Zone + "/" + d.Name
			if _, dup := s.disks[key]; dup {
				return nil, fmt.Errorf("gcpfake: disk %s attached twice", key)
			}
			s.disks[key] = &diskRes{disk: d, zone: in.Zone, id: s.nextID(), users: []string{"zones/" + in.Zone + "/instances/" + in.Name}, labels: d.Labels}
		}
		s.instances = append(s.instances, vm)
	}
	s.http = httptest.NewUnstartedServer(s.routes())
	s.gcsFace = httptest.NewUnstartedServer(s.storageProxy())
	return s, nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// Start makes the server listen on a loopback port.
func (s *Server) Start() {
	s.http.Start()
	s.gcsFace.Start()
}

// URL is the Compute Engine and Cloud Build endpoint (both APIs share it,
// their paths do not overlap).
func (s *Server) URL() string { return s.http.URL }

// StorageEndpoint is the Cloud Storage JSON API endpoint of the
// in-process fake-gcs-server, for option.WithEndpoint.
// Requests pass through a proxy that plays the storage faults
// (CorruptObjects).
func (s *Server) StorageEndpoint() string { return s.gcsFace.URL + "/storage/v1/" }

// GCS is the in-process fake-gcs-server.
func (s *Server) GCS() *fakestorage.Server { return s.gcs }

// Close stops both servers and every build.
func (s *Server) Close() {
	s.mu.Lock()
	for _, b := range s.builds {
		b.stop()
	}
	s.mu.Unlock()
	s.http.Close()
	s.gcsFace.Close()
	s.gcs.Stop()
}

// SetFaults replaces the active faults.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
}

func (s *Server) currentFaults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

// KeyJSON is a service-account key file the server accepts: its token_uri
// is this server's token endpoint, which grants tokens to JWT assertions
// signed with the key (the OAuth 2.0 JWT bearer flow Google's libraries
// use for service accounts).
func (s *Server) KeyJSON() []byte {
	der, err := x509.MarshalPKCS8PrivateKey(s.key)
	if err != nil {
		panic(err)
	}
	b, _ := json.Marshal(map[string]string{
		"type": "service_account", "project_id": s.project, "private_key_id": s.keyID,
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": s.email, "client_id": "100000000000000000001",
		"token_uri": s.URL() + "/token",
	})
	return b
}

// Stats counts the requests served, by method ("snapshots.insert",
// "builds.create", …).
func (s *Server) Stats() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.requests))
	for k, v := range s.requests {
		out[k] = v
	}
	return out
}

func (s *Server) count(method string) {
	s.mu.Lock()
	s.requests[method]++
	s.mu.Unlock()
}

func (s *Server) nextID() uint64 {
	s.seq++
	return 6_000_000_000_000_000_000 + uint64(s.seq)
}

func (s *Server) selfLink(rel string) string {
	return s.URL() + "/compute/v1/projects/" + s.project + "/" + rel
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", s.token)
	c := "/compute/v1/projects/{project}/"
	for pattern, h := range map[string]http.HandlerFunc{
		"GET " + c + "zones/{zone}/instances":                s.listInstances,
		"GET " + c + "zones/{zone}/instances/{name}":         s.getInstance,
		"DELETE " + c + "zones/{zone}/instances/{name}":      s.deleteInstance,
		"GET " + c + "zones/{zone}/machineTypes/{name}":      s.getMachineType,
		"GET " + c + "zones/{zone}/disks":                    s.listDisks,
		"GET " + c + "zones/{zone}/disks/{name}":             s.getDisk,
		"DELETE " + c + "zones/{zone}/disks/{name}":          s.deleteDisk,
		"GET " + c + "zones/{zone}/operations/{name}":        s.getOperation,
		"GET " + c + "global/operations/{name}":              s.getOperation,
		"POST " + c + "global/snapshots":                     s.insertSnapshot,
		"GET " + c + "global/snapshots":                      s.listSnapshots,
		"GET " + c + "global/snapshots/{name}":               s.getSnapshot,
		"DELETE " + c + "global/snapshots/{name}":            s.deleteSnapshot,
		"GET " + c + "global/images":                         s.listImages,
		"DELETE " + c + "global/images/{name}":               s.deleteImage,
		"POST /v1/projects/{project}/builds":                 s.createBuild,
		"GET /v1/projects/{project}/builds":                  s.listBuilds,
		"GET /v1/projects/{project}/builds/{id}":             s.getBuild,
		"POST /v1/projects/{project}/builds/{idcancel}":      s.cancelBuild,
		"GET /v1/operations/build/{project}/{opid}":          s.getBuildOperation,
		"POST /v1/projects/{project}/locations/{loc}/builds": s.regionalUnsupported,
	} {
		mux.HandleFunc(pattern, s.authorized(h))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.log.Warn("unknown request", "method", r.Method, "path", r.URL.Path)
		writeError(w, http.StatusNotFound, "NOT_FOUND", "notFound", fmt.Sprintf("The requested URL %s was not found on this server.", r.URL.Path))
	})
	return mux
}

// authorized checks the bearer token and the project.
func (s *Server) authorized(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		s.mu.Lock()
		valid := ok && s.tokens[tok]
		s.mu.Unlock()
		if !valid {
			writeError(w, http.StatusUnauthorized, "UNAUTHENTICATED", "authError",
				"Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.")
			return
		}
		if p := r.PathValue("project"); p != s.project {
			writeError(w, http.StatusForbidden, "PERMISSION_DENIED", "forbidden",
				fmt.Sprintf("Permission denied on resource project %s.", p))
			return
		}
		h(w, r)
	}
}

// token is the OAuth 2.0 token endpoint: a JWT bearer assertion signed
// (RS256) with the service account's key gets an access token.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	s.count("oauth2.token")
	if err := r.ParseForm(); err != nil {
		http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
		return
	}
	fail := func(desc string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]string{"error": "invalid_grant", "error_description": desc})
	}
	if r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		fail("unsupported grant_type")
		return
	}
	parts := strings.Split(r.PostForm.Get("assertion"), ".")
	if len(parts) != 3 {
		fail("malformed assertion")
		return
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		fail("malformed signature")
		return
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(&s.key.PublicKey, crypto.SHA256, sum[:], sig) != nil {
		fail("Invalid JWT Signature.")
		return
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	var claims struct {
		Iss   string `json:"iss"`
		Scope string `json:"scope"`
		Exp   int64  `json:"exp"`
	}
	if err != nil || json.Unmarshal(payload, &claims) != nil || claims.Iss != s.email {
		fail("Invalid JWT: issuer")
		return
	}
	if claims.Exp < time.Now().Unix() {
		fail("Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.")
		return
	}
	tok := "ya29.fake-" + randomHex(24)
	s.mu.Lock()
	s.tokens[tok] = true
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 3599})
}

// writeError answers with the google.rpc.Status JSON of Google's REST APIs.
func writeError(w http.ResponseWriter, code int, status, reason, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"code": code, "message": msg, "status": status,
		"errors": []map[string]string{{"message": msg, "domain": "global", "reason": reason}},
	}})
}

func notFound(w http.ResponseWriter, what string) {
	writeError(w, http.StatusNotFound, "NOT_FOUND", "notFound", fmt.Sprintf("The resource '%s' was not found", what))
}

// writeProto answers m as JSON the way the REST APIs do: lowerCamel
// names, int64 as strings, enums as numbers when the client asked for
// them ($alt=json;enum-encoding=int, which the Go REST clients send).
func writeProto(w http.ResponseWriter, r *http.Request, m proto.Message) {
	enumInt := strings.Contains(r.URL.Query().Get("$alt"), "enum-encoding=int")
	b, err := protojson.MarshalOptions{UseEnumNumbers: enumInt}.Marshal(m)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "INTERNAL", "backendError", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.Write(b)
}

// readProto decodes a request body into m.
func readProto(r *http.Request, m proto.Message) error {
	var buf strings.Builder
	if _, err := copyLimited(&buf, r); err != nil {
		return err
	}
	return protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal([]byte(buf.String()), m)
}

func copyLimited(dst *strings.Builder, r *http.Request) (int64, error) {
	b := make([]byte, 32<<10)
	var n int64
	for {
		m, err := r.Body.Read(b)
		dst.Write(b[:m])
		n += int64(m)
		if n > 1<<20 {
			return n, errors.New("request body too large")
		}
		if err != nil {
			if err.Error() == "EOF" {
				return n, nil
			}
			return n, err
		}
	}
}

// page cuts items for maxResults/pageToken (an offset, opaque to clients).
func page[T any](r *http.Request, items []T, sizeParam string) ([]T, string) {
	start, _ := strconv.Atoi(r.URL.Query().Get("pageToken"))
	size, _ := strconv.Atoi(r.URL.Query().Get(sizeParam))
	if size <= 0 || size > 500 {
		size = 500
	}
	start = min(max(start, 0), len(items))
	end := min(start+size, len(items))
	next := ""
	if end < len(items) {
		next = strconv.Itoa(end)
	}
	return items[start:end], next
}

// labelFilter is the part of Compute's list filter syntax the provider
// uses: `labels.KEY:*` (the label is present) and `labels.KEY="VALUE"`,
// joined by AND or spaces.
func labelFilter(filter string) (func(map[string]string) bool, error) {
	filter = strings.TrimSpace(filter)
	if filter == "" {
		return func(map[string]string) bool { return true }, nil
	}
	var tests []func(map[string]string) bool
	for _, term := range strings.Fields(strings.ReplaceAll(filter, " AND ", " ")) {
		term = strings.Trim(term, "()")
		rest, ok := strings.CutPrefix(term, "labels.")
		if !ok {
			return nil, fmt.Errorf("Invalid value for field 'filter': '%s'. Invalid list filter expression.", filter)
		}
		if k, ok := strings.CutSuffix(rest, ":*"); ok {
			tests = append(tests, func(l map[string]string) bool { _, has := l[k]; return has })
			continue
		}
		k, v, ok := strings.Cut(rest, "=")
		if !ok {
			return nil, fmt.Errorf("Invalid value for field 'filter': '%s'. Invalid list filter expression.", filter)
		}
		v = strings.Trim(v, `"`)
		tests = append(tests, func(l map[string]string) bool { return l[k] == v })
	}
	return func(l map[string]string) bool {
		for _, t := range tests {
			if !t(l) {
				return false
			}
		}
		return true
	}, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
