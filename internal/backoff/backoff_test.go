package backoff

import (
	"context"
	"testing"
	"time"
)

func TestDelayGrowsAndIsCapped(t *testing.T) {
	p := Policy{Base: time.Second, Max: 10 * time.Second}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	for i, w := range want {
		if got := p.Delay(i + 1); got != w {
			t.Errorf("Delay(%d) = %v, want %v", i+1, got, w)
		}
	}
	if got := p.Delay(1000); got != 10*time.Second {
		t.Errorf("Delay(1000) = %v, want the cap", got)
	}
}

func TestJitterStaysInRange(t *testing.T) {
	p := Policy{Base: 8 * time.Second, Max: time.Minute, Jitter: 0.5}
	for range 1000 {
		d := p.Delay(1)
		if d < 4*time.Second || d > 8*time.Second {
			t.Fatalf("jittered delay %v outside [4s, 8s]", d)
		}
	}
}

func TestSleepStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := (Policy{Base: time.Hour}).Sleep(ctx, 1); err != context.Canceled {
		t.Fatalf("Sleep on a cancelled context returned %v", err)
	}
}

func TestWaitStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Wait(ctx, time.Hour); err != context.Canceled {
		t.Fatalf("Wait on a cancelled context returned %v", err)
	}
	if err := Wait(context.Background(), 0); err != nil {
		t.Fatalf("Wait(0) returned %v", err)
	}
}
