// Package storetest gives tests a fresh, migrated database of each dialect:
// SQLite in a temporary directory and PostgreSQL in a schema of its own
// (dropped when the test ends) on the server named by
// HYPERSDK_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test).
//
// PostgreSQL is never skipped: when it is unreachable the test fails and
// says how to start it.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/config"
	"github.com/hypersdk/hypersdk/daemon/store"
)

// DefaultPostgresURL is the server used when HYPERSDK_TEST_POSTGRES_URL is unset.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// Dialects are the databases every store-backed test runs against.
var Dialects = []store.Dialect{store.SQLite, store.Postgres}

// ForEach runs fn as a subtest once per dialect with a fresh database.
func ForEach(t *testing.T, fn func(t *testing.T, db *store.DB)) {
	t.Helper()
	for _, d := range Dialects {
		t.Run(string(d), func(t *testing.T) { fn(t, Open(t, d)) })
	}
}

// Open returns a fresh migrated database, closed when the test ends.
func Open(t testing.TB, d store.Dialect) *store.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := store.Open(ctx, Options(t, d))
	if err != nil {
		t.Fatalf("open %s store: %v%s", d, err, hint(d))
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Options returns store options for a fresh, empty database of dialect d
// without opening it (for tests that start daemons in other processes).
func Options(t testing.TB, d store.Dialect) store.Options {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if d == store.SQLite {
		return store.Options{Path: filepath.Join(t.TempDir(), "hypersdk.db"), Logger: quiet}
	}
	return store.Options{URL: PostgresURL(t), MaxConns: 8, Logger: quiet}
}

// PostgresURL creates an empty schema on the test server and returns a URL
// whose connections use it; the schema is dropped when the test ends.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv("HYPERSDK_TEST_POSTGRES_URL")
	if base == "" {
		base = DefaultPostgresURL
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("postgres: %v%s", err, hint(store.Postgres))
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "hs_test_" + hex.EncodeToString(b[:])
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("postgres at %s: %v%s", config.RedactDSN(base), err, hint(store.Postgres))
	}
	t.Cleanup(func() {
		c, err := sql.Open("pgx", base)
		if err != nil {
			return
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = c.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE")
	})
	u, _ := url.Parse(base)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func hint(d store.Dialect) string {
	if d != store.Postgres {
		return ""
	}
	return "\n\tPostgreSQL is required for these tests. Start it with:\n\t  pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\n\tor point HYPERSDK_TEST_POSTGRES_URL at a server (trust auth, database test)."
}
