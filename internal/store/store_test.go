package store

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
)

func TestOpenMigratesOnceAndUsesWAL(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "nested", FileName)
	for range 2 { // the second open finds the schema current
		st, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		var mode string
		if err := st.Reader().QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
			t.Errorf("journal_mode = %q, %v; want wal", mode, err)
		}
		var n int
		if err := st.Reader().QueryRowContext(ctx, "SELECT COUNT(*) FROM vuln_feeds").Scan(&n); err != nil {
			t.Errorf("schema missing: %v", err)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestInTxRollsBack(t *testing.T) {
	ctx := context.Background()
	st, err := Open(ctx, filepath.Join(t.TempDir(), FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	boom := errors.New("boom")
	err = st.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "INSERT INTO vuln_meta (key, value) VALUES ('k', 'v')"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx returned %v, want boom", err)
	}
	var n int
	if err := st.Reader().QueryRowContext(ctx, "SELECT COUNT(*) FROM vuln_meta").Scan(&n); err != nil || n != 0 {
		t.Errorf("rows after rollback: %d, %v; want 0", n, err)
	}
	// The reader pool cannot write.
	if _, err := st.Reader().ExecContext(ctx, "INSERT INTO vuln_meta (key, value) VALUES ('k', 'v')"); err == nil {
		t.Error("the read pool accepted a write")
	}
}

// TestOpenRelativePath: a relative data folder ("data", as --data-dir data
// gives) opens like an absolute one.
func TestOpenRelativePath(t *testing.T) {
	t.Chdir(t.TempDir())
	st, err := Open(context.Background(), filepath.Join("rel", "data", FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if !filepath.IsAbs(st.Path()) {
		t.Errorf("Path() = %q, want an absolute path", st.Path())
	}
}
