package events

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/hypersdk/hypersdk/daemon/store"
)

// Event is one stored event.
type Event struct {
	// Seq orders events; SSE uses it as the event id.
	Seq  int64
	Type string
	// Payload is the exact webhook body: {"type", "timestamp", "data"}.
	Payload json.RawMessage
}

// Options tune a Log.
type Options struct {
	// Grace is how long a Cursor waits for a gap in the numbering to fill:
	// default 5 s on PostgreSQL; SQLite numbers events in commit order, so
	// there it never waits.
	Grace time.Duration
	// Batch is the most events one read returns (default 256).
	Batch int
	// Now is the clock (tests).
	Now func() time.Time
}

// Log reads the event log.
type Log struct {
	db   *store.DB
	opts Options
}

// New returns a reader of db's event log.
func New(db *store.DB, opts Options) *Log {
	if opts.Grace <= 0 && db.Dialect == store.Postgres {
		opts.Grace = 5 * time.Second
	}
	if opts.Batch <= 0 {
		opts.Batch = 256
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Log{db: db, opts: opts}
}

// Latest returns the number of the newest event, 0 when there is none.
func (l *Log) Latest(ctx context.Context) (int64, error) {
	var n int64
	err := l.db.SQL.QueryRowContext(ctx, "SELECT COALESCE(MAX(seq), 0) FROM webhook_events").Scan(&n)
	return n, err
}

// read returns up to limit events numbered above after, in order.
func (l *Log) read(ctx context.Context, after int64, limit int) ([]Event, error) {
	rows, err := l.db.SQL.QueryContext(ctx, "SELECT seq, type, payload FROM webhook_events WHERE seq > $1 ORDER BY seq LIMIT $2", after, limit)
	if err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var e Event
		var payload string
		if err := rows.Scan(&e.Seq, &e.Type, &payload); err != nil {
			return nil, fmt.Errorf("events: %w", err)
		}
		e.Payload = json.RawMessage(payload)
		out = append(out, e)
	}
	return out, rows.Err()
}

// Cursor reads the log after a position. It is not safe for concurrent use.
type Cursor struct {
	log   *Log
	after int64
	types []string
	// gapSince is when the cursor first saw a gap right after its
	// position, zero while there is none.
	gapSince time.Time
}

// Cursor returns a cursor positioned after event number after, passing
// only events whose type matches one of types ("job.*" selects a group;
// none selects every type).
func (l *Log) Cursor(after int64, types []string) *Cursor {
	return &Cursor{log: l, after: after, types: types}
}

// Position is the number of the last event the cursor passed.
func (c *Cursor) Position() int64 { return c.after }

// Next returns the next events in order (at most Options.Batch; none when
// there is nothing new) and advances past them. Events it filters out
// advance it too. more reports that another read may return more at once.
func (c *Cursor) Next(ctx context.Context) (evs []Event, more bool, err error) {
	batch, err := c.log.read(ctx, c.after, c.log.opts.Batch)
	if err != nil {
		return nil, false, err
	}
	for _, e := range batch {
		if e.Seq != c.after+1 && !c.passGap() {
			// Wait for the missing numbers; later events keep till then.
			return evs, false, nil
		}
		c.gapSince = time.Time{}
		c.after = e.Seq
		if c.matches(e.Type) {
			evs = append(evs, e)
		}
	}
	return evs, len(batch) == c.log.opts.Batch, nil
}

// passGap reports whether the gap after the position has been open longer
// than the grace.
func (c *Cursor) passGap() bool {
	now := c.log.opts.Now()
	if c.gapSince.IsZero() {
		c.gapSince = now
	}
	return now.Sub(c.gapSince) >= c.log.opts.Grace
}

func (c *Cursor) matches(typ string) bool {
	if len(c.types) == 0 {
		return true
	}
	for _, p := range c.types {
		if p == typ || p == "*" {
			return true
		}
		if g, ok := strings.CutSuffix(p, ".*"); ok && strings.HasPrefix(typ, g+".") {
			return true
		}
	}
	return false
}
