package jobs

import "time"

// rateMeter smooths a byte counter into a rate and an ETA.
type rateMeter struct {
	last     time.Time
	lastDone int64
	rate     float64
}

func newRateMeter() *rateMeter { return &rateMeter{} }

// observe records a sample and returns the smoothed rate (bytes/s) and the
// ETA in seconds (nil when unknown).
func (m *rateMeter) observe(now time.Time, done, total int64) (float64, *float64) {
	if !m.last.IsZero() {
		dt := now.Sub(m.last).Seconds()
		if dt > 0 {
			inst := float64(done-m.lastDone) / dt
			if inst < 0 {
				inst = 0
			}
			if m.rate == 0 {
				m.rate = inst
			} else {
				m.rate = 0.7*m.rate + 0.3*inst
			}
		}
	}
	m.last, m.lastDone = now, done
	if total > 0 && m.rate > 0 && done <= total {
		eta := float64(total-done) / m.rate
		return m.rate, &eta
	}
	return m.rate, nil
}
