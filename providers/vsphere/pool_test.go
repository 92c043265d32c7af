package vsphere

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"

	"github.com/hypersdk/hypersdk/providers"
)

// plainSim starts govmomi's stock simulator (no HyperSDK extensions).
func plainSim(t testing.TB) *url.URL {
	t.Helper()
	m := simulator.VPX()
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	// Only these credentials log in (the default accepts any).
	m.Service.Listen = &url.URL{Host: "127.0.0.1:0", User: url.UserPassword("exporter", "s3cret-pw")}
	s := m.Service.NewServer()
	t.Cleanup(func() { s.Close(); m.Remove() })
	return s.URL
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func dialerFor(u *url.URL) Dialer {
	pw, _ := u.User.Password()
	return NewDialer(u, u.User.Username(), pw, true, "")
}

func TestPoolReusesSessions(t *testing.T) {
	u := plainSim(t)
	p := NewPool(PoolConfig{Enabled: true, MaxConnections: 2}, dialerFor(u), quiet())
	defer p.Close()
	ctx := context.Background()
	for range 10 {
		if err := p.Do(ctx, func(ctx context.Context, c *vim25.Client) error {
			_, err := session.NewManager(c).UserSession(ctx)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	st := p.Stats()
	if st.Created != 1 || st.Reused != 9 || st.InUse != 0 || st.Idle != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestPoolBoundsSessionsAndCountsWaits(t *testing.T) {
	u := plainSim(t)
	p := NewPool(PoolConfig{Enabled: true, MaxConnections: 2}, dialerFor(u), quiet())
	defer p.Close()
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	inside, most := 0, 0
	for range 8 {
		wg.Go(func() {
			_ = p.Do(ctx, func(ctx context.Context, c *vim25.Client) error {
				mu.Lock()
				inside++
				most = max(most, inside)
				mu.Unlock()
				time.Sleep(20 * time.Millisecond)
				mu.Lock()
				inside--
				mu.Unlock()
				return nil
			})
		})
	}
	wg.Wait()
	st := p.Stats()
	if most > 2 || st.Created > 2 || st.Waits == 0 {
		t.Fatalf("most %d concurrent, stats %+v", most, st)
	}
}

func TestPoolReestablishesExpiredSession(t *testing.T) {
	u := plainSim(t)
	p := NewPool(PoolConfig{Enabled: true, MaxConnections: 1}, dialerFor(u), quiet())
	defer p.Close()
	ctx := context.Background()
	var key string
	if err := p.Do(ctx, func(ctx context.Context, c *vim25.Client) error {
		us, err := session.NewManager(c).UserSession(ctx)
		if us != nil {
			key = us.Key
		}
		return err
	}); err != nil || key == "" {
		t.Fatal(err, key)
	}
	// An administrator terminates the pooled session behind our back.
	admin, err := dialerFor(u)(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.SessionManager.TerminateSession(ctx, []string{key}); err != nil {
		t.Fatal(err)
	}
	calls := 0
	err = p.Do(ctx, func(ctx context.Context, c *vim25.Client) error {
		calls++
		us, err := session.NewManager(c).UserSession(ctx)
		if err == nil && us == nil {
			return errNotAuth(ctx, c)
		}
		return err
	})
	if err != nil || calls != 2 || p.Stats().Reconnects != 1 {
		t.Fatalf("err %v, calls %d, stats %+v", err, calls, p.Stats())
	}
}

// errNotAuth provokes the server's NotAuthenticated fault with a real call
// (the simulator answers property reads without a session, vCenter does not).
func errNotAuth(ctx context.Context, c *vim25.Client) error {
	_, err := methods.GetCurrentTime(ctx, c)
	if err == nil {
		return errors.New("expected NotAuthenticated")
	}
	return err
}

func TestHealthCheckDropsDeadSessions(t *testing.T) {
	u := plainSim(t)
	p := NewPool(PoolConfig{Enabled: true, MaxConnections: 2, HealthCheckInterval: time.Hour}, dialerFor(u), quiet())
	defer p.Close()
	ctx := context.Background()
	s, err := p.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	us, _ := s.SessionManager.UserSession(ctx)
	p.Put(s, false)
	admin, _ := dialerFor(u)(ctx)
	_ = admin.SessionManager.TerminateSession(ctx, []string{us.Key})
	if n := p.CheckIdle(ctx); n != 1 {
		t.Fatalf("health check removed %d sessions, want 1", n)
	}
	if st := p.Stats(); st.Idle != 0 || st.Evicted != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestBadCredentialsAreAuthErrors(t *testing.T) {
	u := plainSim(t)
	bad := NewDialer(u, "exporter", "wrong", true, "")
	_, err := bad(context.Background())
	if !errors.Is(err, providers.ErrAuth) || !providers.IsPermanent(err) {
		t.Fatalf("bad login: %v", err)
	}
}

// BenchmarkPooledCall compares one cheap vCenter call through the pool with
// the same call on a fresh login (what a client without pooling pays).
func BenchmarkPooledCall(b *testing.B) {
	u := plainSim(b)
	call := func(ctx context.Context, c *vim25.Client) error {
		_, err := session.NewManager(c).UserSession(ctx)
		return err
	}
	ctx := context.Background()
	var fresh, pooled time.Duration
	b.Run("fresh-login", func(b *testing.B) {
		p := NewPool(PoolConfig{Enabled: false, MaxConnections: 1}, dialerFor(u), quiet())
		defer p.Close()
		start := time.Now()
		for range b.N {
			if err := p.Do(ctx, call); err != nil {
				b.Fatal(err)
			}
		}
		fresh = time.Since(start) / time.Duration(b.N)
	})
	b.Run("pooled", func(b *testing.B) {
		p := NewPool(PoolConfig{Enabled: true, MaxConnections: 1}, dialerFor(u), quiet())
		defer p.Close()
		start := time.Now()
		for range b.N {
			if err := p.Do(ctx, call); err != nil {
				b.Fatal(err)
			}
		}
		pooled = time.Since(start) / time.Duration(b.N)
		if fresh > 0 {
			b.ReportMetric(float64(fresh)/float64(pooled), "x_faster_than_fresh_login")
		}
	})
}
