package store_test

import (
	"context"
	"database/sql"
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
