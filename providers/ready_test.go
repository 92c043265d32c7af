package providers_test

import (
	"context"
	"errors"
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

// Until an instance has connected, its platform calls answer "not connected
// yet" (transient, 503 from the API) with the last connection error, not
// whatever a provider without clients would say.
func TestInstanceRefusesCallsUntilConnected(t *testing.T) {
	down := &providers.Instance{Provider: refusing{providertest.NewFake("down")}}
	later := &providers.Instance{Provider: providertest.NewFake("later")}
	set, err := providers.NewSet(slog.New(slog.NewTextHandler(io.Discard, nil)), down, later)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, err = later.ListVMs(ctx, providers.VMFilter{})
	if !errors.Is(err, providers.ErrNotConnected) || errclass.Of(err).Class != errclass.Unavailable {
		t.Fatalf("before any connection attempt: %v", err)
	}
	if err := set.ConnectAll(ctx); err == nil {
		t.Fatal("connecting an unreachable platform succeeded")
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
		if !errors.Is(err, providers.ErrNotConnected) || providers.IsPermanent(err) ||
			!strings.Contains(err.Error(), "provider down") || !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("%s on an unreachable provider: %v", name, err)
		}
	}
	if _, err := later.ListVMs(ctx, providers.VMFilter{}); err != nil {
		t.Fatalf("after connecting: %v", err)
	}
}
