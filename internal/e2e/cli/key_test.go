package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scangate/scangate/internal/cli"
	"github.com/scangate/scangate/internal/servertest"
	"github.com/scangate/scangate/internal/store"

	_ "modernc.org/sqlite"
)

// rulesTargets returns the rules table's stored targets, as a copy of the
// database would show them.
func rulesTargets(t *testing.T, st *store.Store) string {
	t.Helper()
	var targets string
	if err := st.Reader().QueryRow(`SELECT targets FROM rules`).Scan(&targets); err != nil {
		t.Fatal(err)
	}
	return targets
}

// A rule put from the command line is sealed in the server's database;
// key rotate, on the server's machine while it runs, makes key 2 current,
// seals it again under it and deletes key 1, and the rule still reads
// whole. The server refuses a webhook on the metadata address or on
// loopback unless its --allow-private-targets lists it.
func TestKeyRotate(t *testing.T) {
	s := servertest.Start(t, servertest.Options{Feeds: []string{}, StrictEgress: true})
	dir := s.DataDir
	t.Setenv("SCANGATE_SERVER", s.Addr)
	t.Setenv("SCANGATE_TOKEN", s.Token)
	t.Setenv("SCANGATE_DATABASE", s.Database) // key rotate is local: the server's database
	hook := "https://93.184.215.14/services/T0/tok3nPATH"
	run(t, dir, "rules", "put", "chat", "--pattern", `{"detail-type": ["Scan"]}`, "--webhook", hook, "--secret", "sign-s3cret").must(t)
	if stored := rulesTargets(t, s.Store); !strings.Contains(stored, "sealed:k1:") || strings.Contains(stored, "tok3nPATH") || strings.Contains(stored, "sign-s3cret") {
		t.Fatalf("stored targets %s: want them sealed under key 1", stored)
	}
	r := run(t, dir, "key", "rotate").must(t)
	if r.stdout != "key 2 is current: 1 stored secrets sealed again under it; keys retired: [1]\n" {
		t.Errorf("key rotate said %q", r.stdout)
	}
	if stored := rulesTargets(t, s.Store); !strings.Contains(stored, "sealed:k2:") {
		t.Errorf("after the rotation: %s", stored)
	}
	if _, err := os.Stat(filepath.Join(dir, "keys", "1.key")); !os.IsNotExist(err) {
		t.Errorf("key 1 is still there: %v", err)
	}
	if out := run(t, dir, "--format", "json", "rules", "list").must(t).stdout; !strings.Contains(out, hook) || strings.Contains(out, "sign-s3cret") {
		t.Errorf("rules list after the rotation:\n%s", out)
	}

	for _, bad := range []string{"http://169.254.169.254/latest/meta-data", "http://127.0.0.1:9/x"} {
		r := run(t, dir, "rules", "put", "internal", "--pattern", `{"detail-type": ["Scan"]}`, "--webhook", bad)
		if r.code != cli.ExitBadInput || !strings.Contains(r.stderr, "--allow-private-targets") {
			t.Errorf("rules put --webhook %s: exit %d %s, want 2 and the refusal", bad, r.code, r.stderr)
		}
	}
}
