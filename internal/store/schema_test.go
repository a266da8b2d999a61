package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pressly/goose/v3"

	"github.com/scangate/scangate/internal/store"
	"github.com/scangate/scangate/internal/storetest"
)

// TestSchemaSameOnBothDatabases applies both migration folders up, down
// and up again, and compares the tables and columns they make: the two
// folders must keep the same versions and the same schema.
func TestSchemaSameOnBothDatabases(t *testing.T) {
	ctx := context.Background()
	lite, err := store.Open(ctx, filepath.Join(t.TempDir(), store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer lite.Close()
	pg, err := store.OpenPostgres(ctx, storetest.Postgres(t), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()

	want := columns(t, store.SQLite, lite.Writer())
	got := columns(t, store.Postgres, pg.Writer())
	if !reflect.DeepEqual(got, want) {
		t.Errorf("schemas differ:\npostgres: %v\nsqlite:   %v", got, want)
	}
	if len(want) < 20 {
		t.Errorf("only %d tables: %v", len(want), want)
	}

	for _, c := range []struct {
		d  store.Dialect
		db *sql.DB
	}{{store.SQLite, lite.Writer()}, {store.Postgres, pg.Writer()}} {
		p, err := store.Provider(c.d, c.db)
		if err != nil {
			t.Fatal(err)
		}
		srcs := p.ListSources()
		if _, err := p.DownTo(ctx, 0); err != nil {
			t.Fatalf("%s down: %v", c.d, err)
		}
		if left := columns(t, c.d, c.db); len(left) != 0 {
			t.Errorf("%s: tables left after down: %v", c.d, left)
		}
		if _, err := p.Up(ctx); err != nil {
			t.Fatalf("%s up again: %v", c.d, err)
		}
		if c.d == store.Postgres {
			if again := columns(t, c.d, c.db); !reflect.DeepEqual(again, want) {
				t.Errorf("postgres after down and up: %v", again)
			}
		}
		var versions []int64
		for _, s := range srcs {
			versions = append(versions, s.Version)
		}
		t.Logf("%s: versions %v", c.d, versions)
	}
	lp, _ := store.Provider(store.SQLite, lite.Writer())
	pp, _ := store.Provider(store.Postgres, pg.Writer())
	if a, b := versionsOf(lp), versionsOf(pp); !reflect.DeepEqual(a, b) {
		t.Errorf("migration versions differ: sqlite %v, postgres %v", a, b)
	}
}

func versionsOf(p interface {
	ListSources() []*goose.Source
}) []int64 {
	var out []int64
	for _, s := range p.ListSources() {
		out = append(out, s.Version)
	}
	return out
}

// columns maps each of scangate's tables to its columns, as
// "name type null|notnull" with types in a common vocabulary (integer,
// text, real, blob), goose's own table left out.
func columns(t *testing.T, d store.Dialect, db *sql.DB) map[string][]string {
	t.Helper()
	q := `SELECT m.name, p.name, upper(p.type), p."notnull" OR p.pk > 0
		FROM sqlite_master m, pragma_table_info(m.name) p
		WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name, p.cid`
	if d == store.Postgres {
		q = `SELECT table_name, column_name, upper(data_type), is_nullable = 'NO'
		FROM information_schema.columns WHERE table_schema = 'public'
		ORDER BY table_name, ordinal_position`
	}
	rows, err := db.Query(q)
	if err != nil {
		t.Fatalf("%s: %v", d, err)
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var table, col, typ string
		var notNull bool
		if err := rows.Scan(&table, &col, &typ, &notNull); err != nil {
			t.Fatal(err)
		}
		if table == "goose_db_version" {
			continue
		}
		out[table] = append(out[table], fmt.Sprintf("%s %s %v", col, common(typ), notNull))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func common(typ string) string {
	switch {
	case strings.Contains(typ, "INT"):
		return "integer"
	case typ == "TEXT" || strings.Contains(typ, "CHAR"):
		return "text"
	case typ == "REAL" || strings.Contains(typ, "DOUBLE"):
		return "real"
	case typ == "BLOB" || typ == "BYTEA":
		return "blob"
	}
	return typ
}
