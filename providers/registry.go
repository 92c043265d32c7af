package providers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/hypersdk/hypersdk/config"
	"github.com/hypersdk/hypersdk/internal/backoff"
	"github.com/hypersdk/hypersdk/internal/errclass"
)

// Deps are what the composition root hands every provider it creates.
type Deps struct {
	Logger *slog.Logger
	// Pool configures pooled sessions for providers that pool (vSphere).
	Pool config.Pool
}

// Registration is what a provider type contributes to a composition root,
// typed by its settings struct S: the decoder of its configuration, its
// factory and, optionally, a demo backend.
type Registration[S any] struct {
	// Decode checks and decodes an instance's settings, reporting every
	// problem with its key and line (config.ProviderSettings.Decode does
	// this for a struct with yaml tags).
	Decode func(s *config.ProviderSettings) (*S, error)
	// New creates an unconnected Provider named name.
	New func(name string, settings *S, deps Deps) (Provider, error)
	// Demo, when set, starts a simulated platform with demo VMs (for
	// --demo) and returns the settings that reach it and its stop function.
	Demo func(ctx context.Context, log *slog.Logger, opts DemoOptions) (*S, func(), error)
}

// DemoOptions tune the demo backends of --demo (configuration key demo).
type DemoOptions struct {
	// ExtraVMs adds this many small VMs to the demo inventory of the types
	// that can grow theirs (vSphere), e.g. for a benchmark that needs more
	// VMs than concurrent exports.
	ExtraVMs int
	// MaxConcurrent is every demo instance's max_concurrent (0: only the
	// jobs limits apply).
	MaxConcurrent int
}

// DemoWithoutOptions adapts a demo backend that takes no DemoOptions.
func DemoWithoutOptions[S any](start func(ctx context.Context, log *slog.Logger) (*S, func(), error)) func(context.Context, *slog.Logger, DemoOptions) (*S, func(), error) {
	return func(ctx context.Context, log *slog.Logger, _ DemoOptions) (*S, func(), error) { return start(ctx, log) }
}

// entry is a Registration with its settings type erased; the type
// assertion in create is the only place settings are converted back.
type entry struct {
	decode config.ProviderDecoder
	create func(name string, settings any, deps Deps) (Provider, error)
	demo   func(ctx context.Context, log *slog.Logger, opts DemoOptions) (any, func(), error)
}

// Registry maps provider types to their registrations. The composition
// root (cmd/hypervisord) registers the providers it is built with; nothing
// registers itself.
type Registry struct {
	types map[Type]entry
	// order is the order types were first registered in; it decides
	// which demo backend keeps the plain name DemoInstanceName.
	order []Type
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{types: map[Type]entry{}} }

// Register adds provider type t to r, replacing any earlier registration.
// (A function, not a method: methods cannot have type parameters.)
func Register[S any](r *Registry, t Type, reg Registration[S]) {
	e := entry{
		decode: func(s *config.ProviderSettings) (any, error) {
			v, err := reg.Decode(s)
			if err != nil {
				return nil, err
			}
			return v, nil
		},
		create: func(name string, settings any, deps Deps) (Provider, error) {
			s, ok := settings.(*S)
			if !ok || s == nil {
				return nil, fmt.Errorf("settings for type %s are %T, want %T", t, settings, s)
			}
			return reg.New(name, s, deps)
		},
	}
	if reg.Demo != nil {
		e.demo = func(ctx context.Context, log *slog.Logger, opts DemoOptions) (any, func(), error) {
			return reg.Demo(ctx, log, opts)
		}
	}
	if _, ok := r.types[t]; !ok {
		r.order = append(r.order, t)
	}
	r.types[t] = e
}

// Types lists the registered types.
func (r *Registry) Types() []Type {
	out := make([]Type, 0, len(r.types))
	for t := range r.types {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// Decoders are the configuration decoders of the registered types, for
// config.Load.
func (r *Registry) Decoders() config.Decoders {
	d := make(config.Decoders, len(r.types))
	for t, e := range r.types {
		d[string(t)] = e.decode
	}
	return d
}

// Create builds the provider for inst, whose Settings its type's decoder
// produced.
func (r *Registry) Create(inst config.ProviderInstance, deps Deps) (Provider, error) {
	e, ok := r.types[Type(inst.Type)]
	if !ok {
		return nil, fmt.Errorf("provider %s: type %q is not available in this build (available: %v)", inst.Name, inst.Type, r.Types())
	}
	p, err := e.create(inst.Name, inst.Settings, deps)
	if err != nil {
		return nil, fmt.Errorf("provider %s: %w", inst.Name, err)
	}
	return p, nil
}

// DemoInstanceName is the instance name of the demo backend of --demo of
// the first registered type that has one; the others are "demo-<type>", so
// that adding a type's demo does not rename the demos that exist.
const DemoInstanceName = "demo"

// StartDemos starts the demo backend of every registered type that has one,
// in registration order, and returns their provider instances and a
// function that stops them all.
func (r *Registry) StartDemos(ctx context.Context, log *slog.Logger, opts DemoOptions) ([]config.ProviderInstance, func(), error) {
	var withDemo []Type
	for _, t := range r.order {
		if r.types[t].demo != nil {
			withDemo = append(withDemo, t)
		}
	}
	var stops []func()
	stopAll := func() {
		for _, stop := range slices.Backward(stops) {
			stop()
		}
	}
	var out []config.ProviderInstance
	for _, t := range withDemo {
		name := DemoInstanceName
		if t != withDemo[0] {
			name += "-" + string(t)
		}
		settings, stop, err := r.types[t].demo(ctx, log.With("provider", name), opts)
		if err != nil {
			stopAll()
			return nil, nil, fmt.Errorf("demo %s: %w", t, err)
		}
		stops = append(stops, stop)
		out = append(out, config.ProviderInstance{Name: name, Type: string(t), MaxConcurrent: opts.MaxConcurrent, Settings: settings})
	}
	if len(out) == 0 {
		return nil, nil, fmt.Errorf("no provider type of this build has a demo backend (registered: %v)", r.Types())
	}
	return out, stopAll, nil
}

// Health is the last known state of a provider's connection.
type Health struct {
	Healthy   bool      `json:"healthy"`
	Error     string    `json:"error,omitempty"`
	CheckedAt time.Time `json:"checked_at"`
}

// Instance is one live provider with its concurrency limit and health.
type Instance struct {
	Provider
	// Limit caps concurrent exports from this instance; 0 means no
	// instance-specific limit.
	Limit int

	connectMu sync.Mutex // one Connect at a time
	mu        sync.Mutex
	connected bool
	health    Health
	observer  Observer // set by Set.Observe before the set runs
}

// Observer hears the platform calls of a Set's instances and the outcome
// of their orphan sweeps; the daemon's metrics implement it. Calls must be
// cheap and must not block.
type Observer interface {
	// ProviderCall reports one call to the platform: op is connect,
	// validate_credentials, list_vms, get_vm, search_vms or
	// prepare_export; err is the call's error, nil on success.
	ProviderCall(provider, op string, d time.Duration, err error)
	// OrphanSweep reports one sweep: how many platform objects of ended
	// jobs it deleted, and its error (objects of ended jobs remain).
	OrphanSweep(provider string, deleted int, err error)
}

// observe times fn and reports it to the instance's observer.
func (i *Instance) observe(op string, fn func() error) error {
	if i.observer == nil {
		return fn()
	}
	start := time.Now()
	err := fn()
	i.observer.ProviderCall(i.Name(), op, time.Since(start), err)
	return err
}

// ready connects the instance on first use if the background check has
// not yet (one Connect at a time), so a call right after the daemon starts
// waits for the connection instead of reaching a provider without clients.
// A platform that cannot be reached answers ErrNotConnected (transient;
// 503 from the API, a job retries) with the connection error; an error
// that already has a class (ErrAuth) keeps it.
func (i *Instance) ready(ctx context.Context) error {
	if i.isConnected() {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := i.connect(cctx)
	if err == nil {
		i.setHealth(nil)
		return nil
	}
	i.setHealth(err)
	if errclass.Of(err) != nil {
		return fmt.Errorf("provider %s: %w", i.Name(), err)
	}
	return fmt.Errorf("provider %s: %w: %w", i.Name(), ErrNotConnected, err)
}

func (i *Instance) isConnected() bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.connected
}

// connect calls Connect unless the instance is connected, one caller at a
// time (the background check and on-demand calls share it).
func (i *Instance) connect(ctx context.Context) error {
	i.connectMu.Lock()
	defer i.connectMu.Unlock()
	if i.isConnected() {
		return nil
	}
	if err := i.observe("connect", func() error { return i.Connect(ctx) }); err != nil {
		return err
	}
	i.mu.Lock()
	i.connected = true
	i.mu.Unlock()
	return nil
}

// ListVMs is the provider's, once connected.
func (i *Instance) ListVMs(ctx context.Context, filter VMFilter) ([]*VMInfo, error) {
	if err := i.ready(ctx); err != nil {
		return nil, err
	}
	var out []*VMInfo
	err := i.observe("list_vms", func() (err error) {
		out, err = i.Provider.ListVMs(ctx, filter)
		return err
	})
	return out, err
}

// GetVM is the provider's, once connected.
func (i *Instance) GetVM(ctx context.Context, identifier string) (*VMInfo, error) {
	if err := i.ready(ctx); err != nil {
		return nil, err
	}
	var out *VMInfo
	err := i.observe("get_vm", func() (err error) {
		out, err = i.Provider.GetVM(ctx, identifier)
		return err
	})
	return out, err
}

// SearchVMs is the provider's, once connected.
func (i *Instance) SearchVMs(ctx context.Context, query string) ([]*VMInfo, error) {
	if err := i.ready(ctx); err != nil {
		return nil, err
	}
	var out []*VMInfo
	err := i.observe("search_vms", func() (err error) {
		out, err = i.Provider.SearchVMs(ctx, query)
		return err
	})
	return out, err
}

// PrepareExport is the provider's, once connected.
func (i *Instance) PrepareExport(ctx context.Context, identifier string, opts ExportOptions) (*Export, error) {
	if err := i.ready(ctx); err != nil {
		return nil, err
	}
	var out *Export
	err := i.observe("prepare_export", func() (err error) {
		out, err = i.Provider.PrepareExport(ctx, identifier, opts)
		return err
	})
	return out, err
}

// Health returns the last health check result.
func (i *Instance) Health() Health {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.health
}

func (i *Instance) setHealth(err error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.health = Health{Healthy: err == nil, CheckedAt: time.Now().UTC()}
	if err != nil {
		i.health.Error = err.Error()
	}
}

// Set holds the daemon's provider instances by name.
type Set struct {
	byName   map[string]*Instance
	log      *slog.Logger
	observer Observer
}

// NewSet returns a set of the given instances.
func NewSet(log *slog.Logger, instances ...*Instance) (*Set, error) {
	s := &Set{byName: map[string]*Instance{}, log: log}
	for _, in := range instances {
		if err := s.Add(in); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Add registers another instance; names are unique.
func (s *Set) Add(in *Instance) error {
	if _, dup := s.byName[in.Name()]; dup {
		return fmt.Errorf("provider %q is configured twice", in.Name())
	}
	in.health = Health{Error: ErrNotConnected.Error()}
	in.observer = s.observer
	s.byName[in.Name()] = in
	return nil
}

// Observe makes o hear every instance's platform calls and sweeps. Call
// it before the set is used (Run, SweepOrphans, jobs).
func (s *Set) Observe(o Observer) {
	s.observer = o
	for _, in := range s.byName {
		in.observer = o
	}
}

// Get returns the named instance.
func (s *Set) Get(name string) (*Instance, bool) {
	in, ok := s.byName[name]
	return in, ok
}

// List returns every instance, sorted by name.
func (s *Set) List() []*Instance {
	out := make([]*Instance, 0, len(s.byName))
	for _, in := range s.byName {
		out = append(out, in)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name() < out[b].Name() })
	return out
}

// Run connects every instance and then checks its health every interval
// until ctx ends, reconnecting instances that never connected. A platform
// that is down at start does not stop the daemon: its instance reports
// unhealthy and jobs for it fail with a transient error and are retried.
func (s *Set) Run(ctx context.Context, interval time.Duration) {
	var wg sync.WaitGroup
	for _, in := range s.List() {
		wg.Go(func() { s.watch(ctx, in, interval) })
	}
	wg.Wait()
}

func (s *Set) watch(ctx context.Context, in *Instance, interval time.Duration) {
	log := s.log.With("provider", in.Name())
	attempt := 0
	for {
		err := s.check(ctx, in)
		if ctx.Err() != nil {
			return
		}
		wait := interval
		if err != nil {
			attempt++
			log.Warn("provider unhealthy", "err", err, "attempt", attempt)
			wait = min(interval, backoff.Default.Delay(attempt))
		} else {
			if attempt > 0 {
				log.Info("provider healthy again")
			}
			attempt = 0
		}
		if backoff.Wait(ctx, wait) != nil {
			return
		}
	}
}

// Check runs one connection/health check of in now.
func (s *Set) check(ctx context.Context, in *Instance) error {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var err error
	if !in.isConnected() {
		err = in.connect(cctx)
	} else {
		err = in.observe("validate_credentials", func() error { return in.ValidateCredentials(cctx) })
	}
	in.setHealth(err)
	return err
}

// ConnectAll connects every instance once, returning the errors joined; the
// daemon uses Run instead, this is for tools and tests.
func (s *Set) ConnectAll(ctx context.Context) error {
	var errs []error
	for _, in := range s.List() {
		if err := s.check(ctx, in); err != nil {
			errs = append(errs, fmt.Errorf("provider %s: %w", in.Name(), err))
		}
	}
	return errors.Join(errs...)
}

// Close disconnects every connected instance.
func (s *Set) Close() {
	for _, in := range s.List() {
		in.mu.Lock()
		connected := in.connected
		in.connected = false
		in.mu.Unlock()
		if connected {
			if err := in.Disconnect(); err != nil {
				s.log.Warn("disconnect failed", "provider", in.Name(), "err", err)
			}
		}
	}
}
