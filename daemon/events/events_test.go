package events_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/daemon/events"
	"github.com/hypersdk/hypersdk/daemon/store"
	"github.com/hypersdk/hypersdk/daemon/store/storetest"
)

func insert(t *testing.T, db *store.DB, seq int64, typ string) {
	t.Helper()
	payload := fmt.Sprintf(`{"type":%q,"timestamp":"2026-01-01T00:00:00Z","data":{"n":%d}}`, typ, seq)
	if _, err := db.SQL.Exec("INSERT INTO webhook_events (id, type, payload, created_at, seq) VALUES ($1, $2, $3, 0, $4)",
		fmt.Sprintf("msg_%d", seq), typ, payload, seq); err != nil {
		t.Fatal(err)
	}
}

func seqs(evs []events.Event) []int64 {
	out := []int64{}
	for _, e := range evs {
		out = append(out, e.Seq)
	}
	return out
}

func expect(t *testing.T, c *events.Cursor, want ...int64) {
	t.Helper()
	evs, _, err := c.Next(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := seqs(evs); fmt.Sprint(got) != fmt.Sprint(append([]int64{}, want...)) {
		t.Fatalf("events %v, want %v", got, want)
	}
}

// A cursor passes events in order, waits for a gap in the numbering to
// fill (a transaction that committed late), and passes it after the grace
// (a transaction that rolled back).
func TestCursorOrderAndGaps(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		log := events.New(db, events.Options{Grace: 5 * time.Second, Batch: 3, Now: func() time.Time { return now }})
		c := log.Cursor(0, nil)
		expect(t, c)
		insert(t, db, 1, "job.created")
		insert(t, db, 3, "job.completed")
		expect(t, c, 1) // 2 is missing: wait
		insert(t, db, 2, "job.started")
		expect(t, c, 2, 3) // filled in time
		insert(t, db, 5, "job.progress")
		expect(t, c)
		now = now.Add(4 * time.Second)
		expect(t, c)
		now = now.Add(2 * time.Second)
		expect(t, c, 5) // 4 never came
		if c.Position() != 5 {
			t.Fatalf("position %d", c.Position())
		}
		// Batches are bounded; more says so.
		for s := int64(6); s <= 10; s++ {
			insert(t, db, s, "job.progress")
		}
		evs, more, err := c.Next(context.Background())
		if err != nil || !more || fmt.Sprint(seqs(evs)) != "[6 7 8]" {
			t.Fatalf("%v %v %v", seqs(evs), more, err)
		}
		expect(t, c, 9, 10)
		if n, err := log.Latest(context.Background()); err != nil || n != 10 {
			t.Fatalf("latest %d %v", n, err)
		}
		// Type filters; filtered events still advance the cursor.
		f := log.Cursor(0, []string{"job.created", "job.completed"})
		expect(t, f, 1, 3)
		if f.Position() != 3 {
			t.Fatalf("filtered position %d", f.Position())
		}
		g := log.Cursor(0, []string{"job.*"})
		expect(t, g, 1, 2, 3)
	})
}

// Events written the ordinary way (no explicit number) are numbered in
// insert order on both databases, and pruning the newest never makes a
// number come back.
func TestEventsAreNumbered(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ins := func(id string) {
			if _, err := db.SQL.Exec("INSERT INTO webhook_events (id, type, payload, created_at) VALUES ($1, 'job.created', '{}', 0)", id); err != nil {
				t.Fatal(err)
			}
		}
		ins("a")
		ins("b")
		if _, err := db.SQL.Exec("DELETE FROM webhook_events WHERE id = 'b'"); err != nil {
			t.Fatal(err)
		}
		ins("c")
		var a, c int64
		if err := db.SQL.QueryRow("SELECT seq FROM webhook_events WHERE id = 'a'").Scan(&a); err != nil {
			t.Fatal(err)
		}
		if err := db.SQL.QueryRow("SELECT seq FROM webhook_events WHERE id = 'c'").Scan(&c); err != nil {
			t.Fatal(err)
		}
		if a < 1 || c != a+2 {
			t.Fatalf("seq a=%d c=%d, want c=a+2", a, c)
		}
	})
}
