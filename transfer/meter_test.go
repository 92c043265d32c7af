package transfer

import (
	"math"
	"testing"
	"time"
)

func TestMeterRateAndETA(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0
	m := NewMeter(2 * time.Second)

	if _, ok := m.ETA(1000); ok {
		t.Fatal("ETA before any rate")
	}
	m.Observe(now, 0)
	if m.Rate() != 0 {
		t.Fatal("rate from a single sample")
	}
	// 10 MB/s, sampled irregularly.
	var done int64
	for _, step := range []time.Duration{100 * time.Millisecond, 250 * time.Millisecond, time.Second, 50 * time.Millisecond} {
		now = now.Add(step)
		done += int64(10e6 * step.Seconds())
		m.Observe(now, done)
	}
	if r := m.Rate(); math.Abs(r-10e6) > 1 {
		t.Fatalf("rate %v, want 10e6", r)
	}
	total := done + 50e6
	if eta, ok := m.ETA(total); !ok || eta != 5*time.Second {
		t.Fatalf("ETA %v %v, want 5s", eta, ok)
	}

	// The rate halves: after one half-life the average is half way there.
	now = now.Add(2 * time.Second)
	done += 10e6 // 5 MB/s over 2s
	m.Observe(now, done)
	if r := m.Rate(); math.Abs(r-7.5e6) > 1 {
		t.Fatalf("rate %v after one half-life at 5 MB/s, want 7.5e6", r)
	}
	for range 20 {
		now = now.Add(2 * time.Second)
		done += 10e6
		m.Observe(now, done)
	}
	if r := m.Rate(); math.Abs(r-5e6) > 10 {
		t.Fatalf("rate %v, want to converge on 5e6", r)
	}

	if eta, ok := m.ETA(done); !ok || eta != 0 {
		t.Errorf("ETA %v %v when the total is reached", eta, ok)
	}

	// No time passes: ignored. Bytes go back (restart): re-based, rate kept.
	m.Observe(now, done+1e9)
	if r := m.Rate(); math.Abs(r-5e6) > 10 {
		t.Fatalf("zero-interval sample changed the rate to %v", r)
	}
	m.Observe(now.Add(time.Second), 0)
	if r := m.Rate(); math.Abs(r-5e6) > 10 {
		t.Fatalf("restart changed the rate to %v", r)
	}
	if eta, ok := m.ETA(20e6); !ok || eta < 4*time.Second-time.Millisecond || eta > 4*time.Second+time.Millisecond {
		t.Fatalf("ETA %v %v after restart, want 4s", eta, ok)
	}
	if _, ok := m.ETA(-1); ok {
		t.Error("ETA with unknown total")
	}
}

func TestMeterStalledRateDecays(t *testing.T) {
	t0 := time.Unix(0, 0)
	m := NewMeter(time.Second)
	m.Observe(t0, 0)
	m.Observe(t0.Add(time.Second), 1000)
	m.Observe(t0.Add(2*time.Second), 1000) // nothing moved for a half-life
	if r := m.Rate(); math.Abs(r-500) > 1e-9 {
		t.Fatalf("rate %v, want 500", r)
	}
	for i := 3; i < 60; i++ {
		m.Observe(t0.Add(time.Duration(i)*time.Second), 1000)
	}
	// A rate this close to zero gives a huge ETA or none, never a small one.
	if eta, ok := m.ETA(2000); ok && eta < time.Hour {
		t.Fatalf("ETA %v with a dead transfer", eta)
	}
}
