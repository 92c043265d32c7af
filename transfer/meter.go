package transfer

import (
	"math"
	"sync"
	"time"
)

// Meter turns successive (time, bytes done) samples into a smoothed transfer
// rate and an ETA. It knows nothing about HTTP: the job engine feeds it the
// progress it persists. Safe for concurrent use.
//
// The average is an exponentially weighted moving average over time, not
// over samples: a sample dt after the previous one weighs 1 − 2^(−dt/halfLife),
// so irregular or bursty reporting does not skew the rate.
type Meter struct {
	mu       sync.Mutex
	halfLife time.Duration
	started  bool
	lastT    time.Time
	lastB    int64
	rate     float64
	hasRate  bool
}

// NewMeter returns a Meter whose rate forgets half of its history every
// halfLife (default 5s when <= 0).
func NewMeter(halfLife time.Duration) *Meter {
	if halfLife <= 0 {
		halfLife = 5 * time.Second
	}
	return &Meter{halfLife: halfLife}
}

// Observe records that done bytes were complete at t. A sample that goes
// back in bytes (a restarted file) re-bases the meter without touching the
// rate; one that does not advance in time is ignored.
func (m *Meter) Observe(t time.Time, done int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.started || done < m.lastB {
		m.started, m.lastT, m.lastB = true, t, done
		return
	}
	dt := t.Sub(m.lastT)
	if dt <= 0 {
		return
	}
	inst := float64(done-m.lastB) / dt.Seconds()
	if !m.hasRate {
		m.rate, m.hasRate = inst, true
	} else {
		w := 1 - math.Exp2(-float64(dt)/float64(m.halfLife))
		m.rate += w * (inst - m.rate)
	}
	m.lastT, m.lastB = t, done
}

// Rate is the smoothed rate in bytes per second (0 until two samples).
func (m *Meter) Rate() float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rate
}

// ETA is the time left to reach total at the current rate. ok is false when
// it cannot be estimated: unknown total (<= 0) or no rate yet.
func (m *Meter) ETA(total int64) (eta time.Duration, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if total <= 0 || !m.hasRate {
		return 0, false
	}
	left := total - m.lastB
	if left <= 0 {
		return 0, true
	}
	if m.rate <= 0 {
		return 0, false
	}
	secs := float64(left) / m.rate
	if secs > float64(math.MaxInt64/int64(time.Second)) {
		return 0, false
	}
	return time.Duration(secs * float64(time.Second)), true
}
