package scheduler

import (
	"strings"
	"testing"
	"time"
)

func mustParse(t *testing.T, expr, zone string) *Expr {
	t.Helper()
	e, err := Parse(expr, zone)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// New York springs forward on 2026-03-08 at 02:00 (to 03:00) and falls back
// on 2026-11-01 at 02:00 (to 01:00).
func TestDSTDailyRunsOnceEachDay(t *testing.T) {
	ny, _ := time.LoadLocation("America/New_York")
	e := mustParse(t, "30 2 * * *", "America/New_York")
	runs := e.NextN(time.Date(2026, 3, 6, 12, 0, 0, 0, ny), 4)
	got := fmtAll(runs, ny)
	want := []string{"2026-03-07 02:30 EST", "2026-03-08 03:30 EDT", "2026-03-09 02:30 EDT", "2026-03-10 02:30 EDT"}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Errorf("spring forward:\n got %v\nwant %v", got, want)
	}
	e = mustParse(t, "30 1 * * *", "America/New_York")
	runs = e.NextN(time.Date(2026, 10, 30, 12, 0, 0, 0, ny), 4)
	got = fmtAll(runs, ny)
	want = []string{"2026-10-31 01:30 EDT", "2026-11-01 01:30 EDT", "2026-11-02 01:30 EST", "2026-11-03 01:30 EST"}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Errorf("fall back:\n got %v\nwant %v", got, want)
	}
	// Every 30 minutes across the fall-back hour: each wall-clock time once.
	e = mustParse(t, "*/30 * * * *", "America/New_York")
	runs = e.NextN(time.Date(2026, 11, 1, 0, 15, 0, 0, ny), 5)
	got = fmtAll(runs, ny)
	want = []string{"2026-11-01 00:30 EDT", "2026-11-01 01:00 EDT", "2026-11-01 01:30 EDT", "2026-11-01 02:00 EST", "2026-11-01 02:30 EST"}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Errorf("half-hourly over fall back:\n got %v\nwant %v", got, want)
	}
	for i := 1; i < len(runs); i++ {
		if !runs[i].After(runs[i-1]) {
			t.Errorf("not increasing: %v", runs)
		}
	}
}

func fmtAll(ts []time.Time, loc *time.Location) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.In(loc).Format("2006-01-02 15:04 MST"))
	}
	return out
}

func TestEveryIsAbsoluteTime(t *testing.T) {
	e := mustParse(t, "@every 90m", "America/New_York")
	ny, _ := time.LoadLocation("America/New_York")
	from := time.Date(2026, 11, 1, 0, 0, 0, 0, ny)
	runs := e.NextN(from, 3)
	for i, r := range runs {
		if d := r.Sub(from); d != time.Duration(i+1)*90*time.Minute {
			t.Errorf("run %d at +%v", i, d)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ expr, zone, want string }{
		{"61 * * * *", "", "use 5 fields"},
		{"* * *", "", "use 5 fields"},
		{"@sometimes", "", "use 5 fields"},
		{"@daily", "Mars/Olympus", "not an IANA time zone"},
		{"CRON_TZ=UTC 0 * * * *", "", "timezone field"},
		{"@every 500ms", "", "at least 1s"},
		{"", "", "empty"},
		{"7", "", "expected exactly 5 fields, found 1"},
		{"7", "", "@yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly; or @every <duration>"},
		{"0 0 31 2 *", "", `schedule "0 0 31 2 *": never fires: February has no day 31`},
		{"0 0 30 2 *", "", "never fires: February has no day 30"},
		{"0 0 30-31 2 *", "", "never fires: February has no day 30 or 31"},
		{"0 0 31 4,6,9,11 *", "", "never fires: April, June, September and November have no day 31"},
		{"0 0 31 2,4 ?", "", "never fires: February and April have no day 31"},
	} {
		if _, err := Parse(tc.expr, tc.zone); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q, %q) = %v, want %q", tc.expr, tc.zone, err, tc.want)
		}
	}
	for _, ok := range []string{"@daily", "@hourly", "@weekly", "0 3 * * 1-5", "*/15 * * * *", "@every 1h",
		"0 0 29 2 *", "0 0 31 2,3 *", "0 0 31 2 1", "0 0 30,31 2-4 *", "0 0 31 */2 *"} {
		if _, err := Parse(ok, "Europe/Berlin"); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}

// February 29 exists only in leap years; such a schedule is valid and
// fires then (the next after 2026 is 2028).
func TestLeapDayFires(t *testing.T) {
	e := mustParse(t, "0 0 29 2 *", "UTC")
	got := fmtAll(e.NextN(time.Date(2026, 3, 25, 12, 0, 0, 0, time.UTC), 2), time.UTC)
	if want := "2028-02-29 00:00 UTC, 2032-02-29 00:00 UTC"; strings.Join(got, ", ") != want {
		t.Errorf("got %v, want %s", got, want)
	}
}
