// Package vulndbtest gives tests a real vulnerability database: every
// bundled fixture feed (testdata/vulndata) imported once per test binary,
// into a SQLite file, or a PostgreSQL database when the run says so
// (storetest.Env).
package vulndbtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/scangate/scangate/internal/feed"
	"github.com/scangate/scangate/internal/imagetest"
	"github.com/scangate/scangate/internal/store"
	"github.com/scangate/scangate/internal/storetest"
	"github.com/scangate/scangate/internal/vulndb"
)

// Fixtures is the repository's feed fixture folder (imagetest.Fixtures).
var Fixtures = imagetest.Fixtures

// Feeds are the fixture feeds imported, relative to Fixtures.
var Feeds = []string{"go-vulndb.zip", "pypa-advisory-database.zip", "debian", "alpine", "ghsa", "nvd"}

var (
	once sync.Once
	dir  string
	drop func() error // the PostgreSQL database's, if one was made
	st   *store.Store
	db   *vulndb.DB
	err  error
)

// DB returns the shared fixture database, importing it on first use.
func DB(t testing.TB) *vulndb.DB {
	t.Helper()
	once.Do(func() { db, err = build(context.Background()) })
	if err != nil {
		t.Fatalf("import fixture feeds: %v", err)
	}
	return db
}

func build(ctx context.Context) (*vulndb.DB, error) {
	var e error
	if dir, e = os.MkdirTemp("", "scangate-vulndb-"); e != nil {
		return nil, e
	}
	database := ""
	if storetest.OnPostgres() {
		if database, drop, e = storetest.NewPostgres(ctx); e != nil {
			return nil, e
		}
	}
	if st, e = store.OpenDatabase(ctx, database, dir); e != nil {
		return nil, e
	}
	paths := make([]string, len(Feeds))
	for i, p := range Feeds {
		paths[i] = filepath.Join(Fixtures, p)
	}
	loaded, e := feed.Load(ctx, paths, "", feed.Options{})
	if e != nil {
		return nil, e
	}
	d := vulndb.New(st)
	return d, d.Replace(ctx, loaded.Feeds, vulndb.ReplaceOptions{})
}

// Main runs a package's tests and removes the shared database after:
// call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if st != nil {
		st.Close()
	}
	if drop != nil {
		if err := drop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	if dir != "" {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}
