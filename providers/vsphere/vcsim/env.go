package vcsim

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// DefaultUsername is the user Start accepts when Options.Username is empty.
const DefaultUsername = "administrator@vsphere.local"

// Env is a running simulated vCenter. All methods are safe for concurrent use.
type Env struct {
	opts     Options
	model    *simulator.Model
	server   *simulator.Server
	url      *url.URL // https://host:port/sdk, no user info
	user     string
	password string
	cert     *x509.Certificate
	certPEM  []byte
	thumb    string
	dir      string
	ownDir   bool
	dsDirs   []string // datastore directories Start created

	closeOnce sync.Once
	closed    chan struct{}

	// shimMu guards shims; it is never held while taking another lock.
	shimMu sync.Mutex
	shims  map[shimKey]int

	// mu guards everything below. Lock order: simulator object locks, then mu.
	mu        sync.Mutex
	vms       map[string]*vmRecord // by name
	specOrder []string             // names of Options.VMs, in order
	leases    []*lease             // in creation order
	byTicket  map[string]*lease
	byRef     map[types.ManagedObjectReference]*lease
	locked    map[types.ManagedObjectReference]*lease // VM or snapshot → active lease
	faults    []*faultRule
	nextFault int
	nfc       nfcState
}

// Start builds the inventory described by opts, writes every disk's bytes
// into the datastore directories and serves the vSphere API over TLS with a
// freshly generated self-signed certificate. Close releases everything.
func Start(ctx context.Context, opts Options) (*Env, error) {
	if opts.Datacenters <= 0 {
		opts.Datacenters = 1
	}
	if opts.Clusters < 0 || opts.HostsPerCluster < 0 || opts.StandaloneHosts < 0 || opts.GenericVMs < 0 {
		return nil, errors.New("vcsim: negative inventory size")
	}
	if opts.Clusters == 0 && opts.StandaloneHosts == 0 {
		opts.Clusters = 1
	}
	if opts.HostsPerCluster == 0 {
		opts.HostsPerCluster = 2
	}
	if opts.Datastores <= 0 {
		opts.Datastores = 1
	}
	if opts.LeaseTimeout <= 0 {
		opts.LeaseTimeout = 300 * time.Second
	}
	if opts.ListenAddr == "" {
		opts.ListenAddr = "127.0.0.1:0"
	}
	if opts.Username == "" {
		opts.Username = DefaultUsername
	}
	if opts.Password == "" {
		b := make([]byte, 18)
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("vcsim: generate password: %w", err)
		}
		opts.Password = base64.RawURLEncoding.EncodeToString(b)
	}

	e := &Env{
		opts:     opts,
		user:     opts.Username,
		password: opts.Password,
		closed:   make(chan struct{}),
		shims:    make(map[shimKey]int),
		vms:      make(map[string]*vmRecord),
		byTicket: make(map[string]*lease),
		byRef:    make(map[types.ManagedObjectReference]*lease),
		locked:   make(map[types.ManagedObjectReference]*lease),
	}
	e.nfc.init(opts.NFC)

	ok := false
	defer func() {
		if !ok {
			e.Close()
		}
	}()

	if opts.Dir == "" {
		d, err := os.MkdirTemp("", "hypersdk-vcsim-")
		if err != nil {
			return nil, fmt.Errorf("vcsim: %w", err)
		}
		e.dir, e.ownDir = d, true
	} else {
		if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("vcsim: %w", err)
		}
		e.dir = opts.Dir
	}

	host, _, err := net.SplitHostPort(opts.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("vcsim: listen address %q: %w", opts.ListenAddr, err)
	}
	names := []string{"localhost", "127.0.0.1", "::1"}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		// The simulator then advertises one of the machine's addresses.
		if addrs, err := net.InterfaceAddrs(); err == nil {
			for _, a := range addrs {
				if n, ok := a.(*net.IPNet); ok && !slices.Contains(names, n.IP.String()) {
					names = append(names, n.IP.String())
				}
			}
		}
	} else if !slices.Contains(names, host) {
		names = append(names, host)
	}
	tlsCert, cert, certPEM, err := selfSigned(names)
	if err != nil {
		return nil, fmt.Errorf("vcsim: certificate: %w", err)
	}
	e.cert, e.certPEM, e.thumb = cert, certPEM, thumbprint(cert)

	m := simulator.VPX()
	m.Datacenter = opts.Datacenters
	m.Cluster = opts.Clusters
	m.ClusterHost = opts.HostsPerCluster
	m.Host = opts.StandaloneHosts
	m.Datastore = 0 // created by us, in e.dir
	m.Machine = 0   // created by us
	m.Portgroup = 0
	m.Autostart = false
	if err := m.Create(); err != nil {
		return nil, fmt.Errorf("vcsim: create model: %w", err)
	}
	e.model = m

	svc := m.Service
	svc.TLS = &tls.Config{Certificates: []tls.Certificate{tlsCert}, MinVersion: tls.VersionTLS12}
	svc.Listen = &url.URL{Host: opts.ListenAddr, User: url.UserPassword(opts.Username, opts.Password)}
	reg := m.Map()
	reg.Handler = e.handle
	// vCenter's OvfManager.CreateDescriptor, which the simulator lacks: govc
	// export.ovf (the benchmark's anchor) asks for it.
	if ref := m.ServiceContent.OvfManager; ref != nil {
		if om, isOvf := reg.Get(*ref).(*simulator.OvfManager); isOvf {
			reg.Put(&ovfManager{OvfManager: om, env: e})
		}
	}
	svc.HandleFunc("/nfc/{ticket}/{file}", e.serveNFC)

	c, err := vim25.NewClient(ctx, svc)
	if err != nil {
		return nil, fmt.Errorf("vcsim: in-process client: %w", err)
	}
	if err := e.buildInventory(ctx, c); err != nil {
		return nil, err
	}

	e.server = svc.NewServer()
	e.url = &url.URL{Scheme: "https", Host: e.server.URL.Host, Path: "/sdk"}
	ok = true
	return e, nil
}

// Close stops the server, ends every lease and removes the datastore
// directories (and Dir itself when Start created it). It waits for SOAP
// calls in flight: cancel clients' property-collector waits first.
func (e *Env) Close() error {
	e.closeOnce.Do(func() {
		close(e.closed)
		e.mu.Lock()
		for _, l := range e.leases {
			if l.timer != nil {
				l.timer.Stop()
			}
		}
		e.mu.Unlock()
		if e.server != nil {
			e.server.Close()
		}
		if e.model != nil {
			e.model.Remove()
		}
		if e.ownDir {
			_ = os.RemoveAll(e.dir)
		} else {
			// Only what Start created: the datastore directories, then the
			// per-datacenter directories if that left them empty.
			for _, d := range e.dsDirs {
				_ = os.RemoveAll(d)
				_ = os.Remove(filepath.Dir(d))
			}
		}
	})
	return nil
}

// URL returns the SDK endpoint, https://host:port/sdk, without credentials.
func (e *Env) URL() *url.URL { u := *e.url; return &u }

// Username returns the accepted user name.
func (e *Env) Username() string { return e.user }

// Password returns the accepted password.
func (e *Env) Password() string { return e.password }

// Certificate returns the server's self-signed certificate.
func (e *Env) Certificate() *x509.Certificate { return e.cert }

// CertificatePEM returns the server certificate in PEM form, for a CA file.
func (e *Env) CertificatePEM() []byte { return slices.Clone(e.certPEM) }

// CertPool returns a pool holding only the server certificate.
func (e *Env) CertPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(e.cert)
	return p
}

// Thumbprint returns the SHA-1 thumbprint of the server certificate as
// vSphere prints it ("AB:CD:…"). NFC lease URLs carry it too.
func (e *Env) Thumbprint() string { return e.thumb }

// Dir returns the directory that holds the datastores.
func (e *Env) Dir() string { return e.dir }

// Service returns the underlying govmomi simulator service, for the rare
// test that needs simulator features this package does not wrap. Its
// FaultInjector is not safe under concurrent SOAP calls in govmomi v0.56.0;
// prefer AddFault.
func (e *Env) Service() *simulator.Service { return e.model.Service }

// NewClient logs in over TLS, trusting the server certificate (and its
// thumbprint, which NFC URLs also carry), and returns the client. The caller
// logs out.
func (e *Env) NewClient(ctx context.Context) (*govmomi.Client, error) {
	sc := soap.NewClient(e.URL(), false)
	sc.DefaultTransport().TLSClientConfig.RootCAs = e.CertPool()
	sc.SetThumbprint(e.url.Host, e.thumb)
	vc, err := vim25.NewClient(ctx, sc)
	if err != nil {
		return nil, fmt.Errorf("vcsim: connect: %w", err)
	}
	c := &govmomi.Client{Client: vc, SessionManager: session.NewManager(vc)}
	if err := c.SessionManager.Login(ctx, url.UserPassword(e.user, e.password)); err != nil {
		return nil, fmt.Errorf("vcsim: login: %w", err)
	}
	return c, nil
}

// newCtx returns a fresh simulator context for work outside SOAP dispatch.
// Each use needs its own: the simulator's object locks are re-entrant per
// context.
func (e *Env) newCtx() *simulator.Context {
	return &simulator.Context{Context: context.Background(), Map: e.model.Map()}
}

// object returns the simulator object for ref, or nil.
func (e *Env) object(ref types.ManagedObjectReference) mo.Reference {
	return e.model.Map().Get(ref)
}
