package providers_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/transfer"
)

func TestIsPermanent(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("connection reset"), false},
		{fmt.Errorf("export: %w", context.Canceled), false},
		{providers.Permanent(errors.New("bad disk")), true},
		{fmt.Errorf("vm web01: %w", providers.ErrNotFound), true},
		// What transfer and the SSH client mark as beyond any retry (a 404,
		// a refused certificate or host key, a wrong password) is permanent
		// wherever it surfaces, not retried by the job engine.
		{fmt.Errorf("download disks of web01: %w", transfer.ErrPermanent), true},
	} {
		if got := providers.IsPermanent(tc.err); got != tc.want {
			t.Errorf("IsPermanent(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
