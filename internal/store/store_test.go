package store

import (
	"context"
	"database/sql"
	"errors"
	"os"
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

// TestOpenKeepsTheDataFolderPrivate: the data folder holds secrets (the
// database, the keys), so other users of the machine may not list or read
// it. A folder and a database left by an older scangate with looser modes
// (0755 and 0644) are tightened: the folder 0700, the database and its WAL
// and shared-memory files 0600.
func TestOpenKeepsTheDataFolderPrivate(t *testing.T) {
	ctx := context.Background()
	for _, existing := range []bool{false, true} {
		dir := filepath.Join(t.TempDir(), "data")
		path := filepath.Join(dir, FileName)
		if existing {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		st, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		// A write makes sure the WAL exists.
		if _, err := st.Writer().ExecContext(ctx, "INSERT INTO vuln_meta (key, value) VALUES ('k', 'v')"); err != nil {
			t.Fatal(err)
		}
		checkMode(t, dir, 0o700)
		for _, f := range []string{path, path + "-wal", path + "-shm"} {
			checkMode(t, f, 0o600)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s: mode %#o, want %#o", filepath.Base(path), got, want)
	}
}
