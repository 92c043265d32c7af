package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/riverqueue/river/rivermigrate"
)

//go:embed migrations
var migrationFS embed.FS

// migration is one versioned schema change: migrations/<dialect>/NNNN_name.sql.
type migration struct {
	version int
	name    string
	sql     string
}

func loadMigrations(d Dialect) ([]migration, error) {
	dir := path.Join("migrations", string(d))
	entries, err := fs.ReadDir(migrationFS, dir)
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		num, name, ok := strings.Cut(strings.TrimSuffix(e.Name(), ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("store: bad migration file name %s", e.Name())
		}
		b, err := fs.ReadFile(migrationFS, path.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: name, sql: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i, m := range out {
		if m.version != i+1 {
			return nil, fmt.Errorf("store: migrations for %s are not numbered 1..n (found %d at position %d)", d, m.version, i+1)
		}
	}
	return out, nil
}

// advisoryLockKey serialises migrations of daemons starting together on one
// PostgreSQL database ("hypersdk" in ASCII).
const advisoryLockKey = 0x6879706572736466

func (db *DB) migrate(ctx context.Context) error {
	conn, err := db.SQL.Conn(ctx)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if db.Dialect == Postgres {
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", int64(advisoryLockKey)); err != nil {
			conn.Close()
			return fmt.Errorf("store: migration lock: %w", err)
		}
		defer func() {
			_, _ = conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", int64(advisoryLockKey))
			conn.Close()
		}()
	} else {
		// SQLite has one connection: release it so River's migrator can use it.
		conn.Close()
	}

	migrator, err := rivermigrate.New(db.driver, &rivermigrate.Config{Logger: db.log})
	if err != nil {
		return fmt.Errorf("store: river migrator: %w", err)
	}
	// River logs each migration it applies.
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("store: river migrations: %w", err)
	}

	migs, err := loadMigrations(db.Dialect)
	if err != nil {
		return err
	}
	if _, err := db.SQL.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS hypersdk_migrations (
		version INTEGER PRIMARY KEY,
		name TEXT NOT NULL,
		applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	var current int
	if err := db.SQL.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM hypersdk_migrations").Scan(&current); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if current > len(migs) {
		return fmt.Errorf("store: database schema version %d is newer than this binary knows (%d); upgrade hypersdk", current, len(migs))
	}
	for _, m := range migs[current:] {
		err := db.Tx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, "INSERT INTO hypersdk_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
				m.version, m.name, Micros(time.Now()))
			return err
		})
		if err != nil {
			return fmt.Errorf("store: migration %04d_%s: %w", m.version, m.name, err)
		}
		db.log.Info("applied migration", "version", m.version, "name", m.name)
	}
	return nil
}

// SchemaVersion returns HyperSDK's applied schema version.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := db.SQL.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM hypersdk_migrations").Scan(&v)
	return v, err
}
