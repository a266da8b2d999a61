// Package store opens scangate's SQL database and keeps its schema current.
//
// SQLite (modernc.org/sqlite, pure Go) is the default, in WAL mode with one
// writer connection: SQLite allows one writer at a time, and a single pooled
// writer turns "database is locked" errors into an orderly queue, while reads
// go through their own pool and never wait for a writer. The schema is plain
// SQL that also runs on PostgreSQL; migrations are embedded and applied by
// goose on Open.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"

	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

//go:embed migrations/*.sql
var migrations embed.FS

// FileName is the database's name inside the data directory.
const FileName = "scangate.db"

// Store is an open scangate database.
type Store struct {
	path  string
	write *sql.DB
	read  *sql.DB
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
	s := &Store{path: path, write: write}
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
	q := url.Values{}
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
	dsn := (&url.URL{Scheme: "file", Path: path, RawQuery: q.Encode()}).String()
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
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, s.write, fsys, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("migrate %s: %w", s.path, err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate %s: %w", s.path, err)
	}
	return nil
}

// Execer runs statements: the writer, or a transaction of it.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// Path is the database file's path.
func (s *Store) Path() string { return s.path }

// Reader is the pool for queries that only read.
func (s *Store) Reader() *sql.DB { return s.read }

// Writer is the single connection that writes.
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
	if s.read != nil {
		errs = append(errs, s.read.Close())
	}
	errs = append(errs, s.write.Close())
	return errors.Join(errs...)
}
