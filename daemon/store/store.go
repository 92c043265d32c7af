package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"modernc.org/sqlite" // also registers the "sqlite" database/sql driver
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/hypersdk/hypersdk/config"
)

// Dialect is the SQL flavour of the open database.
type Dialect string

// Supported dialects.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// Options selects and tunes the database.
type Options struct {
	// Path of the SQLite file; used when URL is empty.
	Path string
	// URL of a PostgreSQL database (postgres://… or a key/value DSN);
	// selects PostgreSQL.
	URL string
	// MaxConns caps PostgreSQL connections (SQLite always uses one).
	MaxConns int
	Logger   *slog.Logger
}

// DB is an open, migrated database.
type DB struct {
	SQL     *sql.DB
	Dialect Dialect
	driver  riverdriver.Driver[*sql.Tx]
	log     *slog.Logger
	where   string // path or redacted URL, for messages
}

// Open opens the database described by opts and applies all pending
// migrations (River's and HyperSDK's).
func Open(ctx context.Context, opts Options) (*DB, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	db := &DB{log: log}
	var err error
	if opts.URL != "" {
		err = db.openPostgres(opts)
	} else {
		err = db.openSQLite(opts)
	}
	if err != nil {
		return nil, err
	}
	if err := db.SQL.PingContext(ctx); err != nil {
		db.SQL.Close()
		return nil, dsnFree(fmt.Sprintf("store: connect to %s", db.where), err)
	}
	if err := db.migrate(ctx); err != nil {
		db.SQL.Close()
		return nil, err
	}
	return db, nil
}

func (db *DB) openSQLite(opts Options) error {
	if opts.Path == "" {
		return errors.New("store: no SQLite path given")
	}
	if err := os.MkdirAll(filepath.Dir(opts.Path), 0o700); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if err := privateFiles(opts.Path); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	// WAL lets readers proceed during writes, foreign keys enforce the
	// schema, busy_timeout absorbs a second process (hyperctl tools, a
	// backup) touching the file, and immediate transactions take the write
	// lock up front so a read-then-write transaction cannot deadlock.
	dsn := "file:" + opts.Path + "?" + url.Values{
		"_pragma": {"journal_mode(WAL)", "foreign_keys(1)", "busy_timeout(10000)", "synchronous(NORMAL)"},
		"_txlock": {"immediate"},
	}.Encode()
	sdb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return fmt.Errorf("store: open %s: %w", opts.Path, err)
	}
	// SQLite allows one writer at a time; one connection serialises all
	// access in the pool instead of surfacing SQLITE_BUSY (River's advice).
	sdb.SetMaxOpenConns(1)
	sdb.SetConnMaxLifetime(0)
	sdb.SetConnMaxIdleTime(0)
	db.SQL, db.Dialect, db.where = sdb, SQLite, opts.Path
	db.driver = riversqlite.New(sdb)
	return nil
}

// privateFiles makes the database file 0600 before SQLite opens it: the
// driver would create it 0644 (less the umask), readable by anyone who can
// enter the directory, and SQLite gives the -wal and -shm files the mode of
// the database file. Files left by an older version are tightened too.
// The mode is set on the open file, so neither the umask nor a link swapped
// in after the open changes what is chmod-ed.
func privateFiles(path string) error {
	for i, p := range []string{path, path + "-wal", path + "-shm"} {
		flags := os.O_RDWR
		if i == 0 {
			flags |= os.O_CREATE
		}
		f, err := os.OpenFile(p, flags, 0o600)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		err = f.Chmod(0o600)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (db *DB) openPostgres(opts Options) error {
	// The DSN may carry a password (userinfo, ?password=, password='…'):
	// only its redacted form goes into messages and String.
	where := config.RedactDSN(opts.URL)
	sdb, err := sql.Open("pgx", opts.URL)
	if err != nil {
		return dsnFree("store: open "+where, err)
	}
	maxConns := opts.MaxConns
	if maxConns <= 0 {
		maxConns = 10
	}
	sdb.SetMaxOpenConns(maxConns)
	sdb.SetMaxIdleConns(maxConns)
	sdb.SetConnMaxIdleTime(5 * time.Minute)
	db.SQL, db.Dialect, db.where = sdb, Postgres, where
	// database/sql for both dialects keeps one transaction type (*sql.Tx)
	// in the whole daemon, so job rows and River jobs commit together.
	// River runs poll-only on this driver (no LISTEN/NOTIFY).
	db.driver = riverdatabasesql.New(sdb)
	return nil
}

// dsnFree wraps err with context unless it is pgx's connection-string
// parse error: that one repeats the DSN with pgx's own best-effort
// redaction, and its wrapped cause may quote a piece of it verbatim (a word
// of an unquoted password with a space). Such an error is rebuilt from its
// fixed message only; where is already redacted.
func dsnFree(context string, err error) error {
	var pce *pgconn.ParseConfigError
	if !errors.As(err, &pce) {
		return fmt.Errorf("%s: %w", context, err)
	}
	detail := "invalid connection string"
	// Error() is "cannot parse `<DSN>`: <msg>[ (<cause>)]"; the message is
	// cut out only when no backtick in the DSN can fake the boundary.
	if !strings.Contains(pce.ConnString, "`") {
		if _, msg, ok := strings.Cut(pce.Error(), "`: "); ok {
			if cause := pce.Unwrap(); cause != nil {
				msg = strings.TrimSuffix(msg, " ("+cause.Error()+")")
			}
			detail += ": " + msg
		}
	}
	return fmt.Errorf("%s: %s", context, detail)
}

// RiverDriver is the River driver bound to this database.
func (db *DB) RiverDriver() riverdriver.Driver[*sql.Tx] { return db.driver }

// String describes the database without credentials.
func (db *DB) String() string { return string(db.Dialect) + " " + db.where }

// Close closes the database.
func (db *DB) Close() error { return db.SQL.Close() }

// Tx runs fn in a transaction, committing when fn returns nil.
func (db *DB) Tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.SQL.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// IsUniqueViolation reports whether err is a unique-constraint violation on
// either dialect.
func IsUniqueViolation(err error) bool {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code == "23505"
	}
	var lite *sqlite.Error
	if errors.As(err, &lite) {
		return lite.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || lite.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}

// Strings runs a query whose rows have one text column and returns them.
func (db *DB) Strings(ctx context.Context, query string, args ...any) ([]string, error) {
	return ScanStrings(db.SQL.QueryContext(ctx, query, args...))
}

// ScanStrings collects a one-column result (pass a QueryContext call
// straight in) and closes the rows.
func ScanStrings(rows *sql.Rows, err error) ([]string, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// Micros converts t to the stored representation.
func Micros(t time.Time) int64 { return t.UnixMicro() }

// Time converts a stored timestamp back; 0 is the zero time.
func Time(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

// NullTime converts a nullable stored timestamp.
func NullTime(v sql.NullInt64) *time.Time {
	if !v.Valid || v.Int64 == 0 {
		return nil
	}
	t := Time(v.Int64)
	return &t
}
