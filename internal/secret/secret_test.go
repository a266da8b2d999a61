package secret_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scangate/scangate/internal/storetest"

	"github.com/scangate/scangate/internal/secret"
	"github.com/scangate/scangate/internal/store"
)

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// A sealed value opens to what was sealed, only for its purpose, and only
// whole; the key is a private file in a private folder, and the value does
// not hold the plaintext.
func TestSealOpensOnlyWholeAndForItsPurpose(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	keys, err := secret.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m := mode(t, dir); m != 0o700 {
		t.Errorf("keys folder mode %#o, want 0700", m)
	}
	if m := mode(t, filepath.Join(dir, "1.key")); m != 0o600 {
		t.Errorf("key file mode %#o, want 0600", m)
	}
	const plain = "https://hooks.example.com/services/T000/B000/XXXXsecretXXXX"
	sealed, err := keys.SealString("events.target", plain)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(sealed, "sealed:k1:") || strings.Contains(sealed, "hooks.example.com") {
		t.Fatalf("sealed value %q: want the key id in front and no plaintext", sealed)
	}
	again, _ := keys.SealString("events.target", plain)
	if again == sealed {
		t.Error("two seals of one value are equal: the nonce is not fresh")
	}
	got, err := keys.UnsealString("events.target", sealed)
	if err != nil || got != plain {
		t.Fatalf("unseal: %q, %v", got, err)
	}
	if _, err := keys.Unseal("pipeline.definition", sealed); err == nil {
		t.Error("a value sealed for events.target opened as a pipeline definition")
	}
	b := []byte(sealed)
	b[len(b)-3] ^= 'A' ^ 'B'
	if b[len(b)-3] == sealed[len(sealed)-3] {
		b[len(b)-3] = 'C'
	}
	if _, err := keys.Unseal("events.target", string(b)); err == nil {
		t.Error("a changed value opened")
	}
	// Another process's view of the same folder opens it too.
	other, err := secret.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := other.UnsealString("events.target", sealed); err != nil || got != plain {
		t.Errorf("second Keys: %q, %v", got, err)
	}
}

// A key file other users can read is refused, with what to do.
func TestLooseKeyFileIsRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	if _, err := secret.Open(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "1.key"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := secret.Open(dir)
	if err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("open with a 0644 key: %v, want a refusal saying chmod 600", err)
	}
}

// things is a table of sealed values, as a package that keeps secrets has
// one, with its Resealer.
const thingPurpose = "test.thing"

func thingsTable(t *testing.T, st *store.Store) {
	t.Helper()
	if _, err := st.Writer().Exec(`CREATE TABLE things (id INTEGER PRIMARY KEY, sealed TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
}

func resealThings(ctx context.Context, tx *sql.Tx, keys *secret.Keys) (int, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, sealed FROM things`)
	if err != nil {
		return 0, err
	}
	type row struct {
		id     int
		sealed string
	}
	var all []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.id, &r.sealed); err != nil {
			rows.Close()
			return 0, err
		}
		all = append(all, r)
	}
	rows.Close()
	n := 0
	for _, r := range all {
		s, changed, err := keys.Reseal(thingPurpose, r.sealed)
		if err != nil {
			return n, err
		}
		if changed {
			if _, err := tx.ExecContext(ctx, `UPDATE things SET sealed = $1 WHERE id = $2`, s, r.id); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

// Rotation: a new key becomes current, every stored value is sealed again
// under it and still opens to what it was, and the old key file is gone.
// A process that opened the folder before the rotation (the server, while
// `scangate key rotate` runs) seals under the new key at once.
func TestRotateResealsEveryValueAndRetiresTheOldKey(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	st := storetest.Open(t, data)
	thingsTable(t, st)
	server, err := secret.OpenIn(data)
	if err != nil {
		t.Fatal(err)
	}
	plain := []string{"alpha-secret", "beta-secret", "gamma-secret"}
	for i, p := range plain {
		s, err := server.SealString(thingPurpose, p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Writer().Exec(`INSERT INTO things (id, sealed) VALUES ($1, $2)`, i, s); err != nil {
			t.Fatal(err)
		}
	}
	cli, err := secret.OpenIn(data)
	if err != nil {
		t.Fatal(err)
	}
	rot, err := cli.Rotate(ctx, st, resealThings)
	if err != nil {
		t.Fatal(err)
	}
	if rot.Key != 2 || rot.Resealed != 3 || len(rot.Retired) != 1 || rot.Retired[0] != 1 {
		t.Fatalf("rotation %+v, want key 2, 3 values resealed, key 1 retired", rot)
	}
	if _, err := os.Stat(filepath.Join(data, secret.Dir, "1.key")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the old key file is still there: %v", err)
	}
	rows, err := st.Reader().Query(`SELECT id, sealed FROM things ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int
		var s string
		if err := rows.Scan(&id, &s); err != nil {
			t.Fatal(err)
		}
		if k, _ := secret.KeyID(s); k != 2 {
			t.Errorf("value %d under key %d after the rotation, want 2", id, k)
		}
		// The server had key 1 cached; it opens the new values from the
		// folder.
		if got, err := server.UnsealString(thingPurpose, s); err != nil || got != plain[id] {
			t.Errorf("value %d: %q, %v; want %q", id, got, err, plain[id])
		}
	}
	s, err := server.SealString(thingPurpose, "delta-secret")
	if err != nil {
		t.Fatal(err)
	}
	if k, _ := secret.KeyID(s); k != 2 {
		t.Errorf("the server sealed under key %d after the rotation, want 2", k)
	}
}

// A rotation that fails half way keeps the old key: nothing stored becomes
// unreadable, and a second rotation finishes the work.
func TestFailedRotationKeepsTheOldKeys(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	st := storetest.Open(t, data)
	thingsTable(t, st)
	keys, err := secret.OpenIn(data)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := keys.SealString(thingPurpose, "alpha-secret")
	if _, err := st.Writer().Exec(`INSERT INTO things (id, sealed) VALUES (1, $1)`, s); err != nil {
		t.Fatal(err)
	}
	boom := func(ctx context.Context, tx *sql.Tx, keys *secret.Keys) (int, error) {
		n, err := resealThings(ctx, tx, keys)
		if err != nil {
			return n, err
		}
		return n, errors.New("disk full")
	}
	if _, err := keys.Rotate(ctx, st, boom); err == nil || !strings.Contains(err.Error(), "old keys are kept") {
		t.Fatalf("failed rotation: %v", err)
	}
	var stored string
	if err := st.Reader().QueryRow(`SELECT sealed FROM things`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if got, err := keys.UnsealString(thingPurpose, stored); err != nil || got != "alpha-secret" {
		t.Fatalf("after a failed rotation: %q, %v", got, err)
	}
	rot, err := keys.Rotate(ctx, st, resealThings)
	if err != nil {
		t.Fatal(err)
	}
	if rot.Key != 3 || len(rot.Retired) != 2 {
		t.Errorf("second rotation %+v, want key 3 and keys 1 and 2 retired", rot)
	}
	if err := st.Reader().QueryRow(`SELECT sealed FROM things`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if got, err := keys.UnsealString(thingPurpose, stored); err != nil || got != "alpha-secret" {
		t.Fatalf("after the second rotation: %q, %v", got, err)
	}
}

// A value under a key that is gone says so.
func TestUnsealWithoutItsKey(t *testing.T) {
	keys, err := secret.Open(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = keys.Unseal("x", "sealed:k7:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	if !errors.Is(err, secret.ErrNoKey) {
		t.Fatalf("unseal under a missing key: %v, want ErrNoKey", err)
	}
}

// FuzzUnseal: whatever the database holds, Unseal answers with a value or
// an error, never a panic, and a value only for what Seal wrote.
func FuzzUnseal(f *testing.F) {
	keys, err := secret.Open(filepath.Join(f.TempDir(), "keys"))
	if err != nil {
		f.Fatal(err)
	}
	good, _ := keys.SealString("p", "hello")
	for _, s := range []string{good, "", "sealed:k", "sealed:k1:", "sealed:k0:AA", "sealed:k01:AA", "sealed:k99999999999:AA",
		"sealed:k1:!!", "sealed:k1:" + strings.Repeat("A", 40), "plain text"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := keys.UnsealString("p", s)
		if err == nil && (s != good || got != "hello") {
			t.Fatalf("%q opened to %q", s, got)
		}
		_ = secret.IsSealed(s)
	})
}

// The seeds of FuzzUnseal that once were findings: a sealed value with a
// line end in it is another value, and does not open.
func TestUnsealRefusesLineEnds(t *testing.T) {
	keys, err := secret.Open(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	good, _ := keys.SealString("p", "hello")
	bad := good[:15] + "\n" + good[15:]
	if _, err := keys.Unseal("p", bad); err == nil {
		t.Error("a sealed value with a line end opened")
	}
}
