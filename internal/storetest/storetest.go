// Package storetest gives tests a store on the database the test run
// chose: SQLite in the test's folder by default, or, when
// SCANGATE_TEST_DATABASE holds a postgres:// URL, a database of its own
// on that PostgreSQL server (made from template0 and dropped when the test
// ends), so tests stay independent and may run in parallel.
//
// `make test` starts a private cluster (scripts/postgres.sh) and runs the
// suite once per database. Tests about PostgreSQL itself call Postgres,
// which fails, never skips, when no server answers.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver

	"github.com/scangate/scangate/internal/store"
)

// Env selects the database of a test run: empty for SQLite, or the URL of
// a PostgreSQL server on which the tests may create databases.
const Env = "SCANGATE_TEST_DATABASE"

// DefaultPostgres is the server scripts/postgres.sh starts by default,
// which Postgres uses when Env names none.
const DefaultPostgres = "postgres://postgres@127.0.0.1:55432/postgres?sslmode=disable"

// OnPostgres reports whether this test run uses PostgreSQL.
func OnPostgres() bool { return store.IsPostgres(os.Getenv(Env)) }

// Database is the --database value for a server under test: empty
// (SQLite in the data folder) or the URL of a fresh PostgreSQL database.
func Database(t testing.TB) string {
	t.Helper()
	if !OnPostgres() {
		return ""
	}
	return Postgres(t)
}

// Open opens a store on this run's database, with dataDir as its data
// folder, and closes it when the test ends.
func Open(t testing.TB, dataDir string) *store.Store {
	t.Helper()
	st, err := store.OpenDatabase(context.Background(), Database(t), dataDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// Postgres returns the URL of a new, empty PostgreSQL database, dropped
// when the test ends. The server is Env's, or DefaultPostgres.
func Postgres(t testing.TB) string {
	t.Helper()
	u, drop, err := NewPostgres(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := drop(); err != nil {
			t.Error(err)
		}
	})
	return u
}

// NewPostgres makes a new, empty PostgreSQL database on Env's server (or
// DefaultPostgres) and returns its URL and the function that drops it:
// for a database shared by a test binary's tests, made outside any test.
func NewPostgres(ctx context.Context) (string, func() error, error) {
	admin := os.Getenv(Env)
	if !store.IsPostgres(admin) {
		admin = DefaultPostgres
	}
	u, err := url.Parse(admin)
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", Env, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	db, err := sql.Open("pgx", admin)
	if err != nil {
		return "", nil, fmt.Errorf("postgres: %w", err)
	}
	defer db.Close()
	var b [8]byte
	rand.Read(b[:])
	name := "scangate_test_" + hex.EncodeToString(b[:])
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name+" TEMPLATE template0"); err != nil {
		return "", nil, fmt.Errorf("postgres (start one: scripts/postgres.sh start, or set %s): %w", Env, err)
	}
	drop := func() error {
		db, err := sql.Open("pgx", admin)
		if err != nil {
			return err
		}
		defer db.Close()
		if _, err := db.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			return fmt.Errorf("drop test database: %w", err)
		}
		return nil
	}
	u.Path = "/" + name
	return u.String(), drop, nil
}
