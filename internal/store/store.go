// Package store opens scangate's SQL database and keeps its schema current.
//
// SQLite (modernc.org/sqlite, pure Go) is the default, in WAL mode with one
// writer connection: SQLite allows one writer at a time, and a single pooled
// writer turns "database is locked" errors into an orderly queue, while reads
// go through their own pool and never wait for a writer.
//
// PostgreSQL (pgx through database/sql) is the store of several replicas
// sharing one database: `--database postgres://…`. The schema has two
// embedded migration folders, migrations/sqlite and migrations/postgres,
// with the same versions, applied by goose under its dialects on Open;
// a test applies both and compares their tables and columns. Time values
// are TEXT (RFC 3339) on both, so Go code reads and writes them the same.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	neturl "net/url"
	"os"
	"path/filepath"

	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrations embed.FS

// Dialect is the SQL database a store runs on.
type Dialect string

// The dialects: SQLite (the default, one process) and PostgreSQL
// (replicas sharing one database).
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// IsPostgres reports whether database (a --database value) names a
// PostgreSQL server rather than the default SQLite file.
func IsPostgres(database string) bool {
	return strings.HasPrefix(database, "postgres://") || strings.HasPrefix(database, "postgresql://")
}

// OpenDatabase opens the store that database names: empty is SQLite in
// dataDir (FileName), a postgres:// URL is that PostgreSQL database.
// dataDir is the data folder either way (it holds keys and blobs).
func OpenDatabase(ctx context.Context, database, dataDir string) (*Store, error) {
	switch {
	case database == "":
		return Open(ctx, filepath.Join(dataDir, FileName))
	case IsPostgres(database):
		return OpenPostgres(ctx, database, dataDir)
	default:
		// The URL may hold a password: never echo it.
		return nil, errors.New("open store: --database must be empty (SQLite in the data folder) or a postgres:// URL")
	}
}

// pgConns is how many connections each PostgreSQL pool keeps: River's
// producers, the HTTP handlers and the workers share the writer.
const pgConns = 16

// OpenPostgres opens the PostgreSQL database at url (postgres://…) and
// migrates it to the current schema. Replicas may call it at once: goose
// takes a session lock around the migration.
func OpenPostgres(ctx context.Context, url, dataDir string) (*Store, error) {
	dataDir, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	write, err := openPostgres(ctx, url, pgConns, false)
	if err != nil {
		return nil, err
	}
	s := &Store{dialect: Postgres, dataDir: dataDir, write: write}
	if err := s.migrate(ctx); err != nil {
		write.Close()
		return nil, err
	}
	read, err := openPostgres(ctx, url, pgConns, true)
	if err != nil {
		write.Close()
		return nil, err
	}
	s.read = read
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("open postgres: %w", redact(err, url))
	}
	cfg.MaxConns = 2
	if s.listen, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		s.Close()
		return nil, fmt.Errorf("open postgres: %w", redact(err, url))
	}
	return s, nil
}

// Listener is, on PostgreSQL, the pool River takes its LISTEN connection
// from, so that a job inserted by any replica wakes the workers at once
// rather than at their next poll; nil on SQLite.
func (s *Store) Listener() *pgxpool.Pool { return s.listen }

func openPostgres(ctx context.Context, url string, conns int, readOnly bool) (*sql.DB, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", redact(err, url))
	}
	if readOnly {
		// The read pool refuses writes, as SQLite's query_only does.
		cfg.RuntimeParams["default_transaction_read_only"] = "on"
	}
	db := stdlib.OpenDB(*cfg, stdlib.OptionAfterConnect(func(_ context.Context, c *pgx.Conn) error {
		m := c.TypeMap()
		m.TryWrapEncodePlanFuncs = append([]pgtype.TryWrapEncodePlanFunc{wrapBoolAsInt}, m.TryWrapEncodePlanFuncs...)
		return nil
	}))
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open postgres: %w", redact(err, url))
	}
	return db, nil
}

// Flags are integer columns (0 or 1) on both databases, as SQLite stores
// booleans, and Go code passes bool for them; SQLite's driver writes a
// bool as an integer, and wrapBoolAsInt makes pgx do the same for an
// integer parameter (for a boolean one pgx's own plan comes first).
func wrapBoolAsInt(value any) (pgtype.WrappedEncodePlanNextSetter, any, bool) {
	if _, ok := value.(bool); ok {
		return &boolAsInt{}, int64(0), true
	}
	return nil, nil, false
}

type boolAsInt struct{ next pgtype.EncodePlan }

func (p *boolAsInt) SetNext(next pgtype.EncodePlan) { p.next = next }

func (p *boolAsInt) Encode(value any, buf []byte) ([]byte, error) {
	var n int64
	if value.(bool) {
		n = 1
	}
	return p.next.Encode(n, buf)
}

// redact keeps a URL's password out of an error that quotes the URL.
type redacted struct {
	msg string
	err error
}

func (r redacted) Error() string { return r.msg }
func (r redacted) Unwrap() error { return r.err }

func redact(err error, raw string) error {
	u, perr := neturl.Parse(raw)
	if perr != nil || u.User == nil {
		return err
	}
	if _, ok := u.User.Password(); !ok {
		return err
	}
	pw, _ := u.User.Password()
	return redacted{msg: strings.ReplaceAll(err.Error(), pw, "xxxxx"), err: err}
}

// FileName is the database's name inside the data directory.
const FileName = "scangate.db"

// Store is an open scangate database.
type Store struct {
	dialect Dialect
	path    string // SQLite's file; empty on PostgreSQL
	dataDir string
	write   *sql.DB
	read    *sql.DB
	listen  *pgxpool.Pool // PostgreSQL: River's LISTEN connection
}

// Open opens (creating if needed) the database at path and migrates it to the
// current schema.
func Open(ctx context.Context, path string) (*Store, error) {
	// The driver takes a file: URI, in which a relative path's first
	// folder would read as a host name.
	path, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := private(path); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	write, err := openSQLite(path, 1, false)
	if err != nil {
		return nil, err
	}
	s := &Store{dialect: SQLite, path: path, dataDir: filepath.Dir(path), write: write}
	if err := s.migrate(ctx); err != nil {
		write.Close()
		return nil, err
	}
	read, err := openSQLite(path, 4, true)
	if err != nil {
		write.Close()
		return nil, err
	}
	s.read = read
	return s, nil
}

// Modes of the data folder and of the database's files: they hold
// secrets (sealed ones, and the keys that open them, in the same folder),
// so no other user of the machine may read or list them.
const (
	DirMode  os.FileMode = 0o700
	FileMode os.FileMode = 0o600
)

// private makes the folder of the database at path, which is the data
// folder, and the database file, readable by their owner only, tightening
// what an older scangate made with looser modes. SQLite gives the WAL and
// shared-memory files it creates the mode of the database file, so the
// file is made here, before SQLite opens it.
func private(path string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, DirMode); err != nil {
		return err
	}
	if err := os.Chmod(dir, DirMode); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, FileMode)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, FileMode); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

func openSQLite(path string, conns int, readOnly bool) (*sql.DB, error) {
	q := neturl.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(ON)")
	if readOnly {
		q.Add("_pragma", "query_only(ON)")
	} else {
		// Take the write lock when the transaction starts, not at its
		// first write, so two writers never deadlock upgrading a read lock.
		q.Set("_txlock", "immediate")
	}
	dsn := (&neturl.URL{Scheme: "file", Path: path, RawQuery: q.Encode()}).String()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	db.SetConnMaxLifetime(0)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return db, nil
}

func (s *Store) migrate(ctx context.Context) error {
	p, err := provider(s.dialect, s.write)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", s, err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate %s: %w", s, err)
	}
	return nil
}

// provider is goose over the migration folder of dialect d.
func provider(d Dialect, db *sql.DB) (*goose.Provider, error) {
	fsys, err := fs.Sub(migrations, "migrations/"+string(d))
	if err != nil {
		return nil, err
	}
	gd := goose.DialectSQLite3
	if d == Postgres {
		gd = goose.DialectPostgres
	}
	return goose.NewProvider(gd, db, fsys, goose.WithDisableGlobalRegistry(true))
}

// String names the store for errors: SQLite's file, or "postgres" (a
// PostgreSQL URL may hold a password).
func (s *Store) String() string {
	if s.dialect == Postgres {
		return "postgres"
	}
	return s.path
}

// Dialect is the database the store runs on.
func (s *Store) Dialect() Dialect { return s.dialect }

// DataDir is the data folder: SQLite's file is in it, and on either
// database it holds the keys that open sealed secrets.
func (s *Store) DataDir() string { return s.dataDir }

// Ping checks that the database answers (the server's /readyz).
func (s *Store) Ping(ctx context.Context) error {
	return s.write.PingContext(ctx)
}

// Execer runs statements: the writer, or a transaction of it.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// Path is the SQLite database file's path; empty on PostgreSQL.
func (s *Store) Path() string { return s.path }

// Reader is the pool for queries that only read.
func (s *Store) Reader() *sql.DB { return s.read }

// Writer is the pool that writes: one connection on SQLite.
func (s *Store) Writer() *sql.DB { return s.write }

// InTx runs fn in a write transaction, committing if fn returns nil and
// rolling back otherwise, so a failure leaves the database as it was.
func (s *Store) InTx(ctx context.Context, fn func(*sql.Tx) error) (err error) {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, ignoreDone(tx.Rollback()))
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func ignoreDone(err error) error {
	if errors.Is(err, sql.ErrTxDone) {
		return nil
	}
	return err
}

// Close closes the database.
func (s *Store) Close() error {
	var errs []error
	if s.listen != nil {
		s.listen.Close()
	}
	if s.read != nil {
		errs = append(errs, s.read.Close())
	}
	errs = append(errs, s.write.Close())
	return errors.Join(errs...)
}

// The few expressions that differ between the dialects; the rest of
// scangate's SQL runs unchanged on both.

// JSONText is SQL for the text at path (object keys, outermost first) in
// the JSON document expr (NULL when absent). Keys are the caller's
// constants, never user input.
func (d Dialect) JSONText(expr string, path ...string) string {
	if d == Postgres {
		return "((" + expr + ")::jsonb #>> '{" + strings.Join(path, ",") + "}')"
	}
	return "((" + expr + ") ->> '$." + strings.Join(path, ".") + "')"
}

// NowPlus is SQL for the current time plus secs seconds, as River's time
// columns hold it (SQLite: text, PostgreSQL: timestamptz).
func (d Dialect) NowPlus(secs int) string {
	if d == Postgres {
		return fmt.Sprintf("(now() + make_interval(secs => %d))", secs)
	}
	return fmt.Sprintf("datetime('now', 'subsec', '%+d seconds')", secs)
}

// JSONArrayAgg is SQL aggregating expr into a JSON array, in the order
// of the rows (NULL over no rows).
func (d Dialect) JSONArrayAgg(expr string) string {
	if d == Postgres {
		return "json_agg(" + expr + ")::text"
	}
	return "json_group_array(" + expr + ")"
}

// JSONInt is SQL for the integer at key in the JSON document expr (NULL
// when absent).
func (d Dialect) JSONInt(expr, key string) string {
	if d == Postgres {
		return "((" + expr + ")::jsonb ->> '" + key + "')::bigint"
	}
	return "((" + expr + ") ->> '$." + key + "')"
}

// AnyTrue is SQL aggregating a boolean expr: true if it holds for a row.
func (d Dialect) AnyTrue(expr string) string {
	if d == Postgres {
		return "bool_or(" + expr + ")"
	}
	return "max(" + expr + ")"
}

// IsUniqueViolation reports whether err is a write refused by a unique
// constraint, on either database.
func IsUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "23505"
	}
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}
