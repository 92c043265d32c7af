package scheduler

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// parser accepts standard 5-field expressions and descriptors (@daily,
// @hourly, @every 15m…).
var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// expectedForm is what an expression may be, for error messages.
const expectedForm = "use 5 fields: minute hour day-of-month month day-of-week, e.g. '30 2 * * *'; " +
	"a descriptor: @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly; or @every <duration>, e.g. @every 30m"

// Expr is a parsed schedule expression in a time zone.
//
// Cron expressions follow wall-clock time in the zone, and each matching
// wall-clock minute runs once:
//   - a time skipped by a spring-forward transition runs right after the
//     gap, shifted by it (02:30 on a day that jumps from 02:00 to 03:00 runs
//     at 03:30), so a daily 02:30 schedule runs once that day, not zero
//     times;
//   - a time repeated by a fall-back transition runs at its first
//     occurrence only, so a daily 01:30 schedule runs once, not twice.
//
// "@every <duration>" is absolute time: it runs every duration after the
// previous due time, whatever the clocks do.
type Expr struct {
	loc   *time.Location
	spec  *cron.SpecSchedule // nil for @every
	every time.Duration
}

// Parse validates expr and zone (an IANA name such as Europe/Berlin; ""
// means UTC).
func Parse(expr, zone string) (*Expr, error) {
	expr = strings.TrimSpace(expr)
	if expr == "" {
		return nil, fmt.Errorf("schedule: empty expression")
	}
	if strings.HasPrefix(expr, "CRON_TZ=") || strings.HasPrefix(expr, "TZ=") {
		return nil, fmt.Errorf("schedule %q: give the time zone in the timezone field, not in the expression", expr)
	}
	if zone == "" {
		zone = "UTC"
	}
	if zone == "Local" {
		// Each daemon (and each client) would read it in its own zone.
		return nil, fmt.Errorf("timezone Local means a different zone on every host; name the zone (e.g. Europe/Berlin)")
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return nil, fmt.Errorf("timezone %q is not an IANA time zone (e.g. UTC, Europe/Berlin, America/New_York)", zone)
	}
	if d, ok := strings.CutPrefix(expr, "@every "); ok {
		// Checked here: cron silently rounds sub-second intervals up.
		if v, err := time.ParseDuration(strings.TrimSpace(d)); err == nil && v < time.Second {
			return nil, fmt.Errorf("schedule %q: @every needs at least 1s between runs", expr)
		}
	}
	s, err := parser.Parse(expr)
	if err != nil {
		return nil, fmt.Errorf("schedule %q: %v (%s)", expr, err, expectedForm)
	}
	e := &Expr{loc: loc}
	switch v := s.(type) {
	case *cron.SpecSchedule:
		if why := neverFires(v); why != "" {
			return nil, fmt.Errorf("schedule %q: never fires: %s", expr, why)
		}
		e.spec = v
	case cron.ConstantDelaySchedule:
		e.every = v.Delay
	default:
		return nil, fmt.Errorf("schedule %q: unsupported", expr)
	}
	return e, nil
}

// Next returns the first due time strictly after t.
func (e *Expr) Next(t time.Time) time.Time {
	if e.spec == nil {
		return t.Add(e.every).Truncate(time.Second)
	}
	// Search on the wall clock: express local civil time as if in UTC
	// (which has no transitions), let cron find the next matching civil
	// minute, then turn that civil time back into an instant in the zone.
	local := t.In(e.loc)
	civil := time.Date(local.Year(), local.Month(), local.Day(), local.Hour(), local.Minute(), 0, 0, time.UTC)
	spec := *e.spec
	spec.Location = time.UTC
	for {
		civil = spec.Next(civil)
		if civil.IsZero() {
			return time.Time{} // no matching time within cron's search horizon
		}
		if inst := e.instant(civil); inst.After(t) {
			return inst
		}
	}
}

// instant maps a wall-clock time in the zone to an instant: the first
// occurrence when the clock shows it twice, the time shifted past the gap
// when the clock never shows it. (time.Date leaves both cases open.)
func (e *Expr) instant(civil time.Time) time.Time {
	y, mo, d := civil.Date()
	h, mi, _ := civil.Clock()
	probe := time.Date(y, mo, d, h, mi, 0, 0, e.loc)
	// The zone's offsets on either side of any transition near this time.
	_, before := probe.Add(-3 * time.Hour).Zone()
	_, after := probe.Add(3 * time.Hour).Zone()
	var best time.Time
	for _, off := range []int{before, after} {
		inst := civil.Add(-time.Duration(off) * time.Second)
		l := inst.In(e.loc)
		if l.Hour() == h && l.Minute() == mi && l.Day() == d && (best.IsZero() || inst.Before(best)) {
			best = inst
		}
	}
	if best.IsZero() {
		// In a spring-forward gap: read the time with the offset in force
		// before the gap, which lands just as far past it.
		best = civil.Add(-time.Duration(before) * time.Second)
	}
	return best
}

// NextN returns the next n due times after t.
func (e *Expr) NextN(t time.Time, n int) []time.Time {
	out := make([]time.Time, 0, n)
	for range n {
		t = e.Next(t)
		if t.IsZero() {
			break
		}
		out = append(out, t)
	}
	return out
}

// starBit marks a field given as * or ? (cron's own flag): for the day
// fields it changes how day-of-month and day-of-week combine.
const starBit = 1 << 63

// monthDays is each month's longest length (February: 29, leap years).
var monthDays = [13]int{0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}

// neverFires says why an expression matches no date at all ("" if it
// matches some), decided from the fields alone, so the answer does not
// depend on today's date or a search horizon. Minutes and hours always
// match something; only day-of-month × month can be empty. When
// day-of-week is restricted too, cron fires on either day field, so some
// weekday always matches; when day-of-month is *, any day does.
func neverFires(s *cron.SpecSchedule) string {
	if s.Dom&starBit != 0 || s.Dow&starBit == 0 {
		return ""
	}
	var days []string
	var months []string
	for m := 1; m <= 12; m++ {
		if s.Month&(1<<m) == 0 {
			continue
		}
		months = append(months, time.Month(m).String())
		for d := 1; d <= 31; d++ {
			if s.Dom&(1<<d) != 0 && d <= monthDays[m] {
				return ""
			}
		}
	}
	for d := 1; d <= 31; d++ {
		if s.Dom&(1<<d) != 0 {
			days = append(days, strconv.Itoa(d))
		}
	}
	verb := "has"
	if len(months) > 1 {
		verb = "have"
	}
	return fmt.Sprintf("%s %s no day %s", join(months, "and"), verb, join(days, "or"))
}

// join lists words as prose: "a", "a and b", "a, b and c".
func join(words []string, conj string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " " + conj + " " + words[len(words)-1]
}
