package store_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/hypersdk/hypersdk/daemon/store"
	"github.com/hypersdk/hypersdk/daemon/store/storetest"
)

func TestOpenMigratesBothDialects(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		v, err := db.SchemaVersion(ctx)
		if err != nil || v < 1 {
			t.Fatalf("schema version %d, %v", v, err)
		}
		// River's tables exist too.
		var n int
		if err := db.SQL.QueryRowContext(ctx, "SELECT COUNT(*) FROM river_job").Scan(&n); err != nil {
			t.Fatalf("river_job: %v", err)
		}
		// Foreign keys are enforced (SQLite needs the pragma).
		_, err = db.SQL.ExecContext(ctx, "INSERT INTO job_logs (job_id, at, level, message) VALUES ('nope', 1, 'info', 'x')")
		if err == nil {
			t.Fatal("foreign key not enforced")
		}
	})
}

func TestMigrationsAreIdempotentAcrossOpens(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			opts := storetest.Options(t, d)
			ctx := context.Background()
			for i := range 2 {
				db, err := store.Open(ctx, opts)
				if err != nil {
					t.Fatalf("open #%d: %v", i+1, err)
				}
				db.Close()
			}
		})
	}
}

func TestSQLitePragmas(t *testing.T) {
	db := storetest.Open(t, store.SQLite)
	ctx := context.Background()
	var mode string
	var fk, busy int
	if err := db.SQL.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode %q %v", mode, err)
	}
	if err := db.SQL.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil || fk != 1 {
		t.Errorf("foreign_keys %d %v", fk, err)
	}
	if err := db.SQL.QueryRowContext(ctx, "PRAGMA busy_timeout").Scan(&busy); err != nil || busy < 1000 {
		t.Errorf("busy_timeout %d %v", busy, err)
	}
}

func TestTxRollsBackOnError(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		err := db.Tx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO jobs (id, provider, vm, spec, state, max_attempts, created_at, updated_at)
				VALUES ('a', 'p', 'v', '{}', 'queued', 1, 1, 1)`); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO jobs (id, provider, vm, spec, state, max_attempts, created_at, updated_at)
				VALUES ('a', 'p', 'v', '{}', 'queued', 1, 1, 1)`)
			return err
		})
		if !store.IsUniqueViolation(err) {
			t.Fatalf("want unique violation, got %v", err)
		}
		var n int
		_ = db.SQL.QueryRowContext(ctx, "SELECT COUNT(*) FROM jobs").Scan(&n)
		if n != 0 {
			t.Fatalf("rolled-back insert persisted: %d rows", n)
		}
	})
}

// A DSN's password never reaches an error or String, in any form, including
// pgx's parse errors (whose wrapped url.Error repeats the URL verbatim).
func TestPostgresPasswordNeverInMessages(t *testing.T) {
	const secret = "Pw-must-not-leak-7Q"
	quiet := storetest.Options(t, store.SQLite).Logger
	ctx := context.Background()
	for _, tc := range []struct{ dsn, want string }{
		{"postgres://postgres:" + secret + "@127.0.0.1:1/test?sslmode=disable&password=" + secret, "127.0.0.1"},
		{"host=127.0.0.1 port=1 user=postgres password='a " + secret + "' dbname=test sslmode=disable", "password=xxxxx"},
		{"postgres://postgres:" + secret + "@127.0.0.1:5432/test?port=notaport", "invalid connection string"},
		{"postgres://postgres:" + secret + "@127.0.0.1:5432/test%zz", "invalid connection string"},
		{"host=127.0.0.1 password='" + secret + "' target_session_attrs=bogus", "unknown target_session_attrs value"},
		{"host=127.0.0.1 password=two " + secret, "invalid connection string"},
	} {
		db, err := store.Open(ctx, store.Options{URL: tc.dsn, Logger: quiet})
		if err == nil {
			db.Close()
			t.Errorf("opened %s", tc.want)
			continue
		}
		if strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %q: want %q and no password", err, tc.want)
		}
		if testing.Verbose() {
			t.Log(err)
		}
	}
	db, err := store.Open(ctx, store.Options{URL: storetest.PostgresURL(t) + "&password=" + secret, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if s := db.String(); strings.Contains(s, secret) || !strings.Contains(s, "password=xxxxx") {
		t.Errorf("String() = %q", s)
	}
}
