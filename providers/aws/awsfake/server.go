package awsfake

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Options configure a Server.
type Options struct {
	// AccessKeyID and SecretAccessKey are the one credential pair whose
	// SigV4 signatures the server accepts. Required.
	AccessKeyID     string
	SecretAccessKey string
	// Region is the signing region ("us-east-1" when empty).
	Region string
	// AccountID is the owner id reported for instances, volumes and
	// snapshots ("123456789012" when empty).
	AccountID string
	// AvailabilityZone is reported for volumes and instances (Region + "a"
	// when empty).
	AvailabilityZone string

	Spec Spec

	// Faults injected from the start; SetFaults changes them later.
	Faults Faults

	// S3 is where export tasks write their objects; without an endpoint
	// CreateInstanceExportTask is refused.
	S3 S3Options

	// MaxBlocksPerPage caps the blocks one ListSnapshotBlocks page returns,
	// below the request's maxResults — the API allows a page to hold fewer
	// blocks than asked for, and this lets small test volumes span pages.
	// Zero means no cap.
	MaxBlocksPerPage int

	// StableSnapshotIDs derives a new snapshot's id from its volume id and
	// the tags of the CreateSnapshots call (and how many snapshots this
	// server already made from the same two) instead of drawing it at
	// random: two servers given the same spec and the same calls name
	// their snapshots alike. The demo sets it so that daemons of a cluster,
	// each simulating the account in its own process, agree on a job's
	// snapshot ids, and a job rescued on another daemon resumes from the
	// block journal the first one left (whose identity is the snapshot id).
	StableSnapshotIDs bool

	// Log receives one line per refused or faulted request; nil discards.
	// It never carries the secret key or a block token.
	Log *slog.Logger
}

// Faults are the failures the server injects. The zero value injects none.
type Faults struct {
	// ThrottleEC2 is the share (0–1) of EC2 requests answered
	// RequestLimitExceeded (HTTP 503).
	ThrottleEC2 float64
	// ThrottleEBS is the share (0–1) of EBS direct requests answered
	// RequestThrottledException (GetSnapshotBlock) or ThrottlingException
	// (ListSnapshotBlocks), both HTTP 400 as the EBS API reference lists them.
	ThrottleEBS float64
	// CorruptBlocks is the share (0–1) of snapshot blocks whose first
	// GetSnapshotBlock answer has a flipped byte in its body while
	// x-amz-Checksum stays the true checksum; later fetches are clean. Which
	// blocks is a fixed function of Seed, snapshot id and block index.
	CorruptBlocks float64
	// Latency delays every request before it is answered.
	Latency time.Duration
	// PendingPolls keeps a new snapshot pending until DescribeSnapshots
	// has reported it this many times.
	PendingPolls int
	// PendingFor keeps a new snapshot pending at least this long after its
	// creation.
	PendingFor time.Duration
	// ExportFor keeps a new export task active at least this long before
	// it writes its object.
	ExportFor time.Duration
	// ExportPolls keeps an export task active until DescribeExportTasks
	// has reported it this many times (besides writing its object).
	ExportPolls int
	// ExportFail, when set, makes export tasks fail after ExportFor: they
	// end cancelled with this status message and write nothing, as VM
	// Export ends a task it could not complete.
	ExportFail string
	// Seed drives throttling and corruption choices.
	Seed uint64
}

// Server is the fake EC2 + EBS direct endpoint. Both protocols share one
// listener: EC2 Query requests are POSTs of a form with Action=…, EBS direct
// requests are REST calls under /snapshots/.
type Server struct {
	opts   Options
	log    *slog.Logger
	srv    *httptest.Server
	tokKey []byte // keys block tokens to this server

	faultMu sync.Mutex
	faults  Faults
	rng     *mrand.Rand

	mu        sync.Mutex
	instances []Instance
	volumes   map[string]*Volume
	volOrder  []string
	snapshots map[string]*snapshot
	snapOrder []string
	tags      map[string]map[string]string // resource id → tags set by CreateTags
	stats     stats

	exportTasks map[string]*exportTask
	exportOrder []string
	taskWG      sync.WaitGroup // the export tasks' writers
}

type stats struct {
	requests  map[string]int
	throttled map[string]int
	refused   int
	corrupted map[blockKey]bool
	fetches   map[string]map[int64]int
}

type blockKey struct {
	snapshot string
	index    int64
}

// New returns a server for opts; Start serves it. It refuses options
// without credentials and an inconsistent spec.
func New(opts Options) (*Server, error) {
	if opts.AccessKeyID == "" || opts.SecretAccessKey == "" {
		return nil, errors.New("awsfake: AccessKeyID and SecretAccessKey are required")
	}
	if err := opts.Spec.validate(); err != nil {
		return nil, err
	}
	opts.Region = orDefault(opts.Region, "us-east-1")
	opts.AccountID = orDefault(opts.AccountID, "123456789012")
	opts.AvailabilityZone = orDefault(opts.AvailabilityZone, opts.Region+"a")
	if len(opts.Spec.InstanceTypes) == 0 {
		opts.Spec.InstanceTypes = DefaultInstanceTypes()
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	s := &Server{
		opts:        opts,
		log:         log,
		tokKey:      key,
		volumes:     map[string]*Volume{},
		snapshots:   map[string]*snapshot{},
		tags:        map[string]map[string]string{},
		exportTasks: map[string]*exportTask{},
		instances:   append([]Instance(nil), opts.Spec.Instances...),
		stats: stats{
			requests:  map[string]int{},
			throttled: map[string]int{},
			corrupted: map[blockKey]bool{},
			fetches:   map[string]map[int64]int{},
		},
	}
	for _, v := range opts.Spec.Volumes {
		s.volumes[v.ID] = v
		s.volOrder = append(s.volOrder, v.ID)
		if len(v.Tags) > 0 {
			s.tags[v.ID] = maps.Clone(v.Tags)
		}
	}
	for _, in := range s.instances {
		if len(in.Tags) > 0 {
			s.tags[in.ID] = maps.Clone(in.Tags)
		}
	}
	s.SetFaults(opts.Faults)
	return s, nil
}

// Start serves the fake on a loopback port (plain HTTP).
func (s *Server) Start() {
	s.srv = httptest.NewServer(s)
}

// URL is the endpoint to give the SDK clients as BaseEndpoint (both ec2
// and ebs); empty before Start.
func (s *Server) URL() string {
	if s.srv == nil {
		return ""
	}
	return s.srv.URL
}

// Close stops serving, waits for requests in flight and stops the export
// tasks' writers.
func (s *Server) Close() {
	if s.srv != nil {
		s.srv.Close()
	}
	s.mu.Lock()
	for _, t := range s.exportTasks {
		t.cancel()
	}
	s.mu.Unlock()
	s.taskWG.Wait()
}

// Region is the signing region the server checks.
func (s *Server) Region() string { return s.opts.Region }

// SetFaults replaces the injected faults; safe while serving. Snapshots
// already created keep the pending rule they were created with.
func (s *Server) SetFaults(f Faults) {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	s.faults = f
	s.rng = mrand.New(mrand.NewPCG(f.Seed, 0x5eed))
}

func (s *Server) currentFaults() Faults {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	return s.faults
}

// throttle reports whether this request is to be throttled, drawing from
// the seeded generator.
func (s *Server) throttle(share float64) bool {
	if share <= 0 {
		return false
	}
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	return s.rng.Float64() < share
}

// chosenForCorruption is a fixed function of seed, snapshot and block, so
// which blocks are corrupted does not depend on request order.
func chosenForCorruption(f Faults, snapshotID string, index int64) bool {
	if f.CorruptBlocks <= 0 {
		return false
	}
	sum := sha256.Sum256(fmt.Appendf(nil, "%d/%s/%d", f.Seed, snapshotID, index))
	return float64(binary.BigEndian.Uint64(sum[:])>>11)/float64(1<<53) < f.CorruptBlocks
}

// maxBody bounds what the server reads of a request: EC2 Query forms are
// small, EBS reads have no body.
const maxBody = 1 << 20

// ServeHTTP dispatches on the request's shape, after reading the body (the
// signature covers its hash) and checking the signature.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(body) > maxBody {
		http.Error(w, "request body unreadable or too large", http.StatusRequestEntityTooLarge)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	if lat := s.currentFaults().Latency; lat > 0 {
		select {
		case <-time.After(lat):
		case <-r.Context().Done():
			return
		}
	}
	requestID := uuid.NewString()
	switch {
	case strings.HasPrefix(r.URL.Path, "/snapshots/"):
		s.serveEBS(w, r, body, requestID)
	case r.Method == http.MethodPost:
		s.serveEC2(w, r, body, requestID)
	default:
		// Neither protocol: answer as EC2 does a request it cannot parse.
		writeEC2Error(w, requestID, http.StatusBadRequest, "InvalidAction", "The action or operation requested is not valid.")
	}
}

func (s *Server) count(action string, throttled bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.requests[action]++
	if throttled {
		s.stats.throttled[action]++
	}
}

func (s *Server) countRefused() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.refused++
}

// stableSnapshotID is the id of the first snapshot of volumeID with tags
// that this server has not made yet, in the long EC2 id form: a hash of
// the three, so it is the same on every server given the same calls.
func (s *Server) stableSnapshotID(volumeID string, tags map[string]string) string {
	keys := slices.Sorted(maps.Keys(tags))
	for n := 0; ; n++ {
		h := sha256.New()
		fmt.Fprintf(h, "%s\x00%d", volumeID, n)
		for _, k := range keys {
			fmt.Fprintf(h, "\x00%s=%s", k, tags[k])
		}
		id := "snap-" + hex.EncodeToString(h.Sum(nil))[:17]
		if _, taken := s.snapshots[id]; !taken {
			return id
		}
	}
}

// newID returns prefix + 17 hex digits, the long EC2 id form.
func newID(prefix string) string {
	b := make([]byte, 9)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)[:17]
}
