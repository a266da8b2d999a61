package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scangate/scangate/internal/imagetest"
)

// fixtures is the repository's copy of real feed data.
var fixtures = imagetest.Fixtures

type result struct {
	stdout, stderr string
	code           int
}

// run runs scangate as a user would, against its own data directory.
func run(t *testing.T, dataDir string, args ...string) result {
	t.Helper()
	return runCtx(context.Background(), t, dataDir, args...)
}

func runCtx(ctx context.Context, t *testing.T, dataDir string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(ctx, append([]string{"--data-dir", dataDir}, args...), &out, &errb)
	return result{out.String(), errb.String(), code}
}

func (r result) must(t *testing.T) result {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	return r
}

func TestImportStatusShowAffected(t *testing.T) {
	dir := t.TempDir()
	r := run(t, dir, "db", "import", filepath.Join(fixtures, "ghsa"), filepath.Join(fixtures, "nvd"), filepath.Join(fixtures, "debian")).must(t)
	if !strings.Contains(r.stdout, "imported 53 records in 3 feeds") {
		t.Errorf("import said:\n%s", r.stdout)
	}

	r = run(t, dir, "--format", "json", "db", "status").must(t)
	var status struct {
		Version struct{ Digest string }
		Feeds   []struct {
			Name    string
			Records int
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &status); err != nil {
		t.Fatalf("status json: %v\n%s", err, r.stdout)
	}
	if len(status.Feeds) != 3 || !strings.HasPrefix(status.Version.Digest, "sha256:") {
		t.Errorf("status = %+v", status)
	}

	// show brings every rating with its source: GitHub's and NVD's.
	r = run(t, dir, "db", "show", "CVE-2021-44906").must(t)
	for _, want := range []string{"GHSA-xvch-5gv4-984h", "(feed ghsa:npm)", "CRITICAL", "from ghsa"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("db show CVE-2021-44906 lacks %q:\n%s", want, r.stdout)
		}
	}

	r = run(t, dir, "db", "affected", "Debian:12", "zlib", "1:1.2.13.dfsg-1").must(t)
	if !strings.Contains(r.stdout, "CVE-2023-45853") || !strings.Contains(r.stdout, "unfixed") {
		t.Errorf("db affected zlib:\n%s", r.stdout)
	}
	r = run(t, dir, "db", "affected", "npm", "minimist", "1.2.6").must(t)
	if !strings.Contains(r.stdout, "no known advisory") {
		t.Errorf("minimist 1.2.6 is fixed, got:\n%s", r.stdout)
	}
}

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	run(t, dir, "db", "import", filepath.Join(fixtures, "debian")).must(t)
	bad := filepath.Join(t.TempDir(), "broken.json")
	if err := os.WriteFile(bad, []byte(`{"id": "GO-2099-0001", "modified": "2024-01-01T00:00:00Z", "affected": [`), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"version"}, ExitOK, ""},
		{[]string{"no-such-command"}, ExitBadInput, "unknown command"},
		{[]string{"--no-such-flag"}, ExitBadInput, "unknown flag"},
		{[]string{"--format", "xml", "version"}, ExitBadInput, "--format"},
		{[]string{"--log-level", "loud", "version"}, ExitBadInput, "--log-level"},
		{[]string{"db", "show"}, ExitBadInput, "accepts 1 arg"},
		{[]string{"db", "show", "CVE-0000-0000"}, ExitBadInput, "no advisory CVE-0000-0000"},
		{[]string{"db", "import", filepath.Join(dir, "missing")}, ExitBadInput, "no such file"},
		{[]string{"db", "import", bad}, ExitBadInput, "broken.json"},
		{[]string{"db", "affected", "NoSuchEcosystem", "x", "1"}, ExitBadInput, "unknown ecosystem"},
		{[]string{"db", "update", "--feeds", filepath.Join(dir, "missing.yaml")}, ExitBadInput, "missing.yaml"},
		{[]string{"images", "lst"}, ExitBadInput, `unknown command "lst" for "scangate images"`},
		{[]string{"db", "frob"}, ExitBadInput, `unknown command "frob"`},
		{[]string{"--data-dir", filepath.Join(dir, "typo"), "db", "status"}, ExitBadInput, "no scangate database in " + filepath.Join(dir, "typo")},
		{[]string{"images", "list", "--server", "127.0.0.1:1"}, ExitBadInput, "no token for server http://127.0.0.1:1: run scangate login"},
	}
	for _, tt := range tests {
		r := run(t, dir, tt.args...)
		if _, err := os.Stat(filepath.Join(dir, "typo")); err == nil {
			t.Errorf("scangate %s made the mistyped data folder", strings.Join(tt.args, " "))
		}
		if r.code != tt.code || !strings.Contains(r.stderr, tt.msg) {
			t.Errorf("scangate %s: exit %d, stderr %q; want exit %d mentioning %q", strings.Join(tt.args, " "), r.code, r.stderr, tt.code, tt.msg)
		}
	}
}

func TestFlagsFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("SCANGATE_FORMAT", "json")
	var out, errb bytes.Buffer
	t.Setenv("SCANGATE_DATA_DIR", dir)
	if code := Main(context.Background(), []string{"db", "import", filepath.Join(fixtures, "debian")}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !json.Valid(out.Bytes()) {
		t.Errorf("SCANGATE_FORMAT=json gave:\n%s", out.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "scangate.db")); err != nil {
		t.Errorf("SCANGATE_DATA_DIR not used: %v", err)
	}
	// A flag on the command line wins over the environment.
	out.Reset()
	if code := Main(context.Background(), []string{"--format", "table", "version"}, &out, &errb); code != 0 || json.Valid(out.Bytes()) {
		t.Errorf("--format table with SCANGATE_FORMAT=json printed %q", out.String())
	}
	t.Setenv("SCANGATE_LOG_LEVEL", "shouting")
	if code := Main(context.Background(), []string{"version"}, &out, &errb); code != ExitBadInput {
		t.Errorf("a bad SCANGATE_LOG_LEVEL gave exit %d, want 2", code)
	}
}
