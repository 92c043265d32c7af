package vsphere

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/transfer"
)

// PoolConfig sizes and paces the session pool.
type PoolConfig struct {
	// Enabled false makes every call log in and out on its own (useful only
	// to measure what pooling saves).
	Enabled             bool
	MaxConnections      int
	IdleTimeout         time.Duration
	HealthCheckInterval time.Duration
}

// Session is one logged-in vSphere API session.
type Session struct {
	*govmomi.Client
	created  time.Time
	lastUsed time.Time
}

// Dialer opens and logs in a new session.
type Dialer func(ctx context.Context) (*govmomi.Client, error)

// Pool shares a bounded number of logged-in sessions between concurrent
// calls (seed 1.1). At most MaxConnections sessions exist at once; a caller
// that finds them all busy waits (counted in Stats.Waits). Idle sessions
// past IdleTimeout are logged out, and a health check asks vCenter whether
// each idle session is still alive, replacing dead ones.
type Pool struct {
	cfg  PoolConfig
	dial Dialer
	log  *slog.Logger

	slots chan struct{} // one token per session that may exist
	idle  chan *Session

	created, reused, evicted, waits, reconnects atomic.Int64
	inUse                                       atomic.Int64

	closeOnce sync.Once
	closed    chan struct{}
	wg        sync.WaitGroup
}

// NewPool creates a pool; it dials lazily on first use.
func NewPool(cfg PoolConfig, dial Dialer, log *slog.Logger) *Pool {
	if cfg.MaxConnections <= 0 {
		cfg.MaxConnections = 5
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 5 * time.Minute
	}
	if cfg.HealthCheckInterval <= 0 {
		cfg.HealthCheckInterval = 30 * time.Second
	}
	p := &Pool{
		cfg: cfg, dial: dial, log: log,
		slots:  make(chan struct{}, cfg.MaxConnections),
		idle:   make(chan *Session, cfg.MaxConnections),
		closed: make(chan struct{}),
	}
	for range cfg.MaxConnections {
		p.slots <- struct{}{}
	}
	if cfg.Enabled {
		p.wg.Go(p.healthLoop)
	}
	return p
}

// ErrPoolClosed is returned after Close.
var ErrPoolClosed = errors.New("vsphere: session pool closed")

// Get returns a session for exclusive use until Put.
func (p *Pool) Get(ctx context.Context) (*Session, error) {
	select {
	case <-p.closed:
		return nil, ErrPoolClosed
	default:
	}
	select {
	case <-p.slots:
	default:
		p.waits.Add(1)
		select {
		case <-p.slots:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-p.closed:
			return nil, ErrPoolClosed
		}
	}
	for {
		select {
		case s := <-p.idle:
			if time.Since(s.lastUsed) > p.cfg.IdleTimeout {
				p.discard(s, "idle timeout")
				continue
			}
			p.reused.Add(1)
			p.inUse.Add(1)
			return s, nil
		default:
		}
		break
	}
	c, err := p.dial(ctx)
	if err != nil {
		p.slots <- struct{}{}
		return nil, err
	}
	p.created.Add(1)
	p.inUse.Add(1)
	now := time.Now()
	return &Session{Client: c, created: now, lastUsed: now}, nil
}

// Put returns a session. A broken session (its call failed in a way that
// may have left it unusable) is logged out instead of reused.
func (p *Pool) Put(s *Session, broken bool) {
	p.inUse.Add(-1)
	s.lastUsed = time.Now()
	closed := false
	select {
	case <-p.closed:
		closed = true
	default:
	}
	if broken || closed || !p.cfg.Enabled {
		p.logout(s)
		p.slots <- struct{}{}
		return
	}
	p.idle <- s // never blocks: idle holds at most MaxConnections
	p.slots <- struct{}{}
}

// Do runs fn with a pooled session. If vCenter answers NotAuthenticated
// (the session expired or was terminated), the session is re-established
// and fn runs once more; other errors are returned as they are.
func (p *Pool) Do(ctx context.Context, fn func(ctx context.Context, c *vim25.Client) error) error {
	s, err := p.Get(ctx)
	if err != nil {
		return err
	}
	err = fn(ctx, s.Client.Client)
	if isNotAuthenticated(err) {
		p.reconnects.Add(1)
		p.log.Info("vSphere session expired; logging in again")
		if lerr := p.relogin(ctx, s); lerr != nil {
			p.Put(s, true)
			return lerr
		}
		err = fn(ctx, s.Client.Client)
	}
	p.Put(s, isNotAuthenticated(err))
	return err
}

// relogin replaces s's client with a freshly logged-in one.
func (p *Pool) relogin(ctx context.Context, s *Session) error {
	c, err := p.dial(ctx)
	if err != nil {
		return err
	}
	old := s.Client
	s.Client = c
	go func() { // best effort: the old session is most likely gone already
		lctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = old.Logout(lctx)
	}()
	return nil
}

func isNotAuthenticated(err error) bool {
	return err != nil && fault.Is(err, &types.NotAuthenticated{})
}

func (p *Pool) logout(s *Session) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Logout(ctx); err != nil && !isNotAuthenticated(err) {
		p.log.Debug("vSphere logout failed", "err", err)
	}
}

func (p *Pool) discard(s *Session, why string) {
	p.evicted.Add(1)
	p.log.Debug("vSphere session evicted", "reason", why, "age", time.Since(s.created).Round(time.Second).String())
	p.logout(s)
}

// healthLoop checks idle sessions every HealthCheckInterval.
func (p *Pool) healthLoop() {
	t := time.NewTicker(p.cfg.HealthCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-p.closed:
			return
		case <-t.C:
			p.CheckIdle(context.Background())
		}
	}
}

// CheckIdle asks vCenter about every idle session, logging out those idle
// too long and dropping those vCenter no longer knows. It returns how many
// were removed.
func (p *Pool) CheckIdle(ctx context.Context) int {
	var keep []*Session
	removed := 0
	for {
		select {
		case s := <-p.idle:
			if time.Since(s.lastUsed) > p.cfg.IdleTimeout {
				p.discard(s, "idle timeout")
				removed++
				continue
			}
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			us, err := session.NewManager(s.Client.Client).UserSession(cctx)
			cancel()
			if err != nil || us == nil {
				p.evicted.Add(1)
				removed++
				p.log.Info("dropping dead vSphere session", "err", err)
				continue
			}
			keep = append(keep, s)
			continue
		default:
		}
		break
	}
	for _, s := range keep {
		p.idle <- s
	}
	return removed
}

// PoolStats are the pool's counters since it was created.
type PoolStats = providers.PoolStats

// Stats returns the pool's counters.
func (p *Pool) Stats() PoolStats {
	return PoolStats{
		Created: p.created.Load(), Reused: p.reused.Load(), Evicted: p.evicted.Load(), Waits: p.waits.Load(),
		Reconnects: p.reconnects.Load(), InUse: p.inUse.Load(), Idle: int64(len(p.idle)), Max: int64(p.cfg.MaxConnections),
	}
}

// Close stops the health check and logs every idle session out; sessions
// in use are logged out when they are returned.
func (p *Pool) Close() {
	p.closeOnce.Do(func() {
		close(p.closed)
		p.wg.Wait()
		for {
			select {
			case s := <-p.idle:
				p.logout(s)
				continue
			default:
			}
			return
		}
	})
}

// NewDialer returns a Dialer for a vCenter or ESXi endpoint. The password
// travels only in the Login call, never in the URL given to logs.
func NewDialer(endpoint *url.URL, username, password string, insecure bool, thumbprint string) Dialer {
	return func(ctx context.Context) (*govmomi.Client, error) {
		u := *endpoint
		u.User = nil
		sc := soap.NewClient(&u, insecure)
		// The project's TLS policy, so a thumbprint pin costs one handshake
		// (govmomi's own fallback handshakes twice).
		tlsConf, err := transfer.TLSConfig(transfer.ClientOptions{InsecureSkipVerify: insecure, Thumbprint: thumbprint})
		if err != nil {
			return nil, providers.Permanent(fmt.Errorf("%w: thumbprint: %v", providers.ErrInvalidArgument, err))
		}
		sc.DefaultTransport().TLSClientConfig = tlsConf
		if thumbprint != "" {
			sc.SetThumbprint(u.Host, thumbprint)
		}
		vc, err := vim25.NewClient(ctx, sc)
		if err != nil {
			return nil, fmt.Errorf("connect to %s: %w", u.Host, err)
		}
		c := &govmomi.Client{Client: vc, SessionManager: session.NewManager(vc)}
		if err := c.Login(ctx, url.UserPassword(username, password)); err != nil {
			if fault.Is(err, &types.InvalidLogin{}) {
				return nil, fmt.Errorf("log in to %s as %s: %w", u.Host, username, providers.ErrAuth)
			}
			return nil, fmt.Errorf("log in to %s: %w", u.Host, err)
		}
		return c, nil
	}
}
