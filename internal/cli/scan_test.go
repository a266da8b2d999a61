package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/scangate/scangate/internal/imagetest"
)

// scanSetup makes a data directory with the fixture feeds imported and a
// docker save archive of Debian bookworm with an npm app.
func scanSetup(t *testing.T) (dir, archive string) {
	t.Helper()
	dir = t.TempDir()
	run(t, dir, "db", "import", filepath.Join(fixtures, "go-vulndb.zip"), filepath.Join(fixtures, "debian"),
		filepath.Join(fixtures, "ghsa"), filepath.Join(fixtures, "nvd")).must(t)
	img, _ := imagetest.BookwormApp(t)
	archive = imagetest.WriteDockerArchive(t, filepath.Join(t.TempDir(), "app.tar"), "127.0.0.1:5000/app:1", img)
	return dir, archive
}

func TestScanGate(t *testing.T) {
	dir, archive := scanSetup(t)
	ref := "docker-archive:" + archive

	r := run(t, dir, "--format", "json", "scan", ref).must(t)
	var rep struct {
		SchemaVersion int
		Image         struct{ Repository string }
		Summary       map[string]int
		Findings      []struct{ ID, Severity string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("json report: %v\n%s", err, r.stdout)
	}
	if rep.SchemaVersion != 1 || rep.Summary["CRITICAL"] == 0 || len(rep.Findings) != rep.Summary["TOTAL"] {
		t.Errorf("report: schema %d, summary %v, %d findings", rep.SchemaVersion, rep.Summary, len(rep.Findings))
	}

	// The gate: any CRITICAL fails with exit 1 and says which and why.
	r = run(t, dir, "--format", "json", "scan", "--fail-on", "CRITICAL=0,HIGH=100", ref)
	if r.code != ExitPolicy || !strings.Contains(r.stderr, "CVE-2023-45853") || !strings.Contains(r.stderr, "zlib") {
		t.Errorf("--fail-on CRITICAL=0: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	// Ignoring the unfixed findings leaves no CRITICAL here: zlib's has no fix.
	r = run(t, dir, "--format", "json", "scan", "--fail-on", "CRITICAL=0", "--ignore-unfixed", ref)
	if r.code != ExitOK {
		t.Errorf("--ignore-unfixed: exit %d, stderr:\n%s", r.code, r.stderr)
	}

	out := filepath.Join(t.TempDir(), "app.sarif")
	run(t, dir, "--format", "sarif", "scan", "--output", out, ref).must(t)
	data, err := os.ReadFile(out)
	if err != nil || !json.Valid(data) || !strings.Contains(string(data), `"2.1.0"`) {
		t.Errorf("--output sarif: %v\n%.300s", err, data)
	}

	r = run(t, dir, "scan", ref).must(t)
	if !strings.Contains(r.stdout, "CVE-2023-45853") || !strings.Contains(r.stdout, "CRITICAL") {
		t.Errorf("table report lacks the zlib finding:\n%s", r.stdout)
	}
}

func TestScanBadInput(t *testing.T) {
	dir, archive := scanSetup(t)
	corrupt := filepath.Join(t.TempDir(), "corrupt.tar")
	data, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(corrupt, data[:len(data)/3], 0o644); err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir()
	tests := []struct {
		dir  string
		args []string
		code int
		msg  string
	}{
		{dir, []string{"scan", "docker-archive:" + filepath.Join(dir, "missing.tar")}, ExitBadInput, "missing.tar"},
		{dir, []string{"scan", "docker-archive:" + corrupt}, ExitBadInput, "corrupt.tar"},
		{dir, []string{"scan", "oci:" + t.TempDir()}, ExitBadInput, "oci:"},
		{dir, []string{"scan", "--fail-on", "CRITICAL=many", "docker-archive:" + archive}, ExitBadInput, "--fail-on"},
		{dir, []string{"scan", "--ignore-file", filepath.Join(dir, "none.yaml"), "docker-archive:" + archive}, ExitBadInput, "none.yaml"},
		{dir, []string{"scan", "--max-layer-files", "1", "docker-archive:" + archive}, ExitBadInput, "over the scan limit"},
		{dir, []string{"--format", "xml", "scan", "docker-archive:" + archive}, ExitBadInput, "--format"},
		{empty, []string{"scan", "docker-archive:" + archive}, ExitBadInput, "database is empty"},
		// Local inputs named as users first write them.
		{dir, []string{"scan", archive}, ExitBadInput, "is a file on disk: scan docker-archive:" + archive},
		{dir, []string{"scan", "oci-archive:" + archive}, ExitBadInput, archive + " is a docker save archive, not an OCI one: scan docker-archive:" + archive},
		{dir, []string{"scan", empty}, ExitBadInput, "is a folder on disk: scan dir:" + empty},
		{dir, []string{"--format", "sarif", "db", "status"}, ExitBadInput, "table, wide, json or yaml"},
	}
	for _, tt := range tests {
		r := run(t, tt.dir, tt.args...)
		if r.code != tt.code || !strings.Contains(r.stderr, tt.msg) {
			t.Errorf("scangate %s: exit %d, stderr %q; want exit %d mentioning %q", strings.Join(tt.args, " "), r.code, r.stderr, tt.code, tt.msg)
		}
	}
	// No temporary files are left behind by failed scans.
	left, _ := filepath.Glob(filepath.Join(os.TempDir(), "scangate-oci-*"))
	if len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}

// TestScanOutputToAPipe: --output naming something that is not a regular
// file (a pipe, /dev/null) writes to it rather than replacing it.
func TestScanOutputToAPipe(t *testing.T) {
	dir, archive := scanSetup(t)
	fifo := filepath.Join(t.TempDir(), "report.pipe")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte)
	go func() {
		data, _ := os.ReadFile(fifo)
		got <- data
	}()
	run(t, dir, "--format", "json", "scan", "--output", fifo, "docker-archive:"+archive).must(t)
	if data := <-got; !json.Valid(data) {
		t.Errorf("the pipe received %.200q", data)
	}
	if fi, err := os.Lstat(fifo); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("the pipe was replaced: %v %v", fi.Mode(), err)
	}
}
