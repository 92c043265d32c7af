package providers_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/hypersdk/hypersdk/internal/errclass"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/providers/providertest"
)

// refusing is a provider whose platform cannot be reached.
type refusing struct{ *providertest.Fake }

func (refusing) Connect(context.Context) error {
	return errors.New("dial tcp 10.0.0.9:443: connection refused")
}

// rejecting is a provider whose platform refuses the credentials.
type rejecting struct{ *providertest.Fake }

func (rejecting) Connect(context.Context) error { return fmt.Errorf("login: %w", providers.ErrAuth) }

// An instance connects on first use when the background check has not yet
// (a call right after the daemon starts waits for it); one whose platform
// cannot be reached answers "not connected yet" (transient, 503 from the
// API) with the connection error, not whatever a provider without clients
// would say; a refused login keeps its own class.
func TestInstanceConnectsOnFirstUse(t *testing.T) {
	down := &providers.Instance{Provider: refusing{providertest.NewFake("down")}}
	denied := &providers.Instance{Provider: rejecting{providertest.NewFake("denied")}}
	later := &providers.Instance{Provider: providertest.NewFake("later")}
	if _, err := providers.NewSet(slog.New(slog.NewTextHandler(io.Discard, nil)), down, denied, later); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := later.ListVMs(ctx, providers.VMFilter{}); err != nil {
		t.Fatalf("first call before any background check: %v", err)
	}
	if h := later.Health(); !h.Healthy {
		t.Errorf("health after connecting on first use: %+v", h)
	}
	for name, call := range map[string]func() error{
		"ListVMs":   func() error { _, err := down.ListVMs(ctx, providers.VMFilter{}); return err },
		"GetVM":     func() error { _, err := down.GetVM(ctx, "x"); return err },
		"SearchVMs": func() error { _, err := down.SearchVMs(ctx, "x"); return err },
		"PrepareExport": func() error {
			_, err := down.PrepareExport(ctx, "x", providers.ExportOptions{})
			return err
		},
	} {
		err := call()
		if !errors.Is(err, providers.ErrNotConnected) || errclass.Of(err).Class != errclass.Unavailable || providers.IsPermanent(err) ||
			!strings.Contains(err.Error(), "provider down") || !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("%s on an unreachable provider: %v", name, err)
		}
	}
	if h := down.Health(); h.Healthy || !strings.Contains(h.Error, "connection refused") {
		t.Errorf("health of the unreachable provider: %+v", h)
	}
	_, err := denied.ListVMs(ctx, providers.VMFilter{})
	if !errors.Is(err, providers.ErrAuth) || errors.Is(err, providers.ErrNotConnected) {
		t.Errorf("refused login: %v, want ErrAuth", err)
	}
}
