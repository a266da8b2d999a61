package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// scanEventJSON is a scan summary as scangate's scanner emits it.
const scanEventJSON = `{
  "version": "0", "id": "2f1b0a4e-8c5d-4f7e-9b1a-0c6d3e2f1a9b", "detail-type": "Scan", "source": "scangate.scanner",
  "account": "", "time": "2026-05-01T12:00:00Z", "region": "",
  "resources": ["registry.local:5000/team/api@sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"],
  "detail": {
    "scan-status": "INITIAL_SCAN_COMPLETE", "repository-name": "team/api",
    "image-tags": ["1.4.2", "latest"],
    "finding-severity-counts": {"CRITICAL": 3, "HIGH": 16, "MEDIUM": 4, "LOW": 1, "UNKNOWN": 0, "TOTAL": 24}
  }
}`

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRulesTest(t *testing.T) {
	dir := t.TempDir()
	files := t.TempDir()
	eventFile := writeFile(t, files, "event.json", scanEventJSON)
	criticalFile := writeFile(t, files, "critical.json",
		`{"source": ["scangate.scanner"], "detail": {"finding-severity-counts": {"CRITICAL": [{"numeric": [">", 0]}]}}}`)
	tests := []struct {
		name           string
		pattern, event string
		want           string
	}{
		{"inline match", `{"source": ["scangate.scanner"], "detail-type": ["Scan"]}`, scanEventJSON, "true"},
		{"inline no match", `{"source": ["scangate.registry"]}`, scanEventJSON, "false"},
		{"files", "@" + criticalFile, "@" + eventFile, "true"},
		{"pattern file, inline event", "@" + criticalFile, strings.Replace(scanEventJSON, `"CRITICAL": 3`, `"CRITICAL": 0`, 1), "false"},
		{"prefix and anything-but", `{"detail": {"repository-name": [{"prefix": "team/"}], "image-tags": [{"anything-but": "latest"}]}}`, "@" + eventFile, "true"},
		{"$or", `{"$or": [{"detail": {"scan-status": ["FAILED"]}}, {"resources": [{"wildcard": "*/team/*"}]}]}`, "@" + eventFile, "true"},
	}
	for _, tt := range tests {
		r := run(t, dir, "rules", "test", "--pattern", tt.pattern, "--event", tt.event)
		if r.code != ExitOK || r.stdout != tt.want+"\n" || r.stderr != "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 0 and %q", tt.name, r.code, r.stdout, r.stderr, tt.want)
		}
	}
	// The output is the same valid JSON with --format json.
	r := run(t, dir, "--format", "json", "rules", "test", "--pattern", `{"source": ["scangate.scanner"]}`, "--event", "@"+eventFile).must(t)
	if r.stdout != "true\n" {
		t.Errorf("--format json: %q", r.stdout)
	}
}

func TestRulesTestBadInput(t *testing.T) {
	dir := t.TempDir()
	files := t.TempDir()
	eventFile := writeFile(t, files, "event.json", scanEventJSON)
	badPattern := writeFile(t, files, "bad-pattern.json", `{"detail": {"CRITICAL": [{"numeric": [">", "0"]}]}}`)
	bigFile := writeFile(t, files, "big.json", `{"x": "`+strings.Repeat("x", 5000)+`"}`)
	const ok = `{"source": ["scangate.scanner"]}`
	tests := []struct {
		name string
		args []string
		msg  string
	}{
		{"pattern not JSON", []string{"--pattern", `{"source": [`, "--event", scanEventJSON}, "--pattern: pattern: invalid JSON: unexpected end of input"},
		{"pattern not an object", []string{"--pattern", `["scangate.scanner"]`, "--event", scanEventJSON}, "a pattern is a JSON object, not an array"},
		{"pattern leaf not an array", []string{"--pattern", `{"source": "scangate.scanner"}`, "--event", scanEventJSON}, `pattern: source: want an array of match values`},
		{"pattern empty array", []string{"--pattern", `{"source": []}`, "--event", scanEventJSON}, "source: an empty array matches nothing"},
		{"unknown operator", []string{"--pattern", `{"source": [{"contains": "scan"}]}`, "--event", scanEventJSON}, `source[0]: unknown operator "contains"`},
		{"bad numeric in a file", []string{"--pattern", "@" + badPattern, "--event", scanEventJSON}, `--pattern @` + badPattern + `: pattern: detail.CRITICAL[0]: numeric: element 1: ">" needs a number, not a string`},
		{"double wildcard", []string{"--pattern", `{"f": [{"wildcard": "a**b"}]}`, "--event", scanEventJSON}, "consecutive wildcard characters"},
		{"pattern too big", []string{"--pattern", "@" + bigFile, "--event", scanEventJSON}, "is larger than the 4096 bytes allowed"},
		{"event not JSON", []string{"--pattern", ok, "--event", `{"source": `}, "--event: event: invalid JSON"},
		{"event not an object", []string{"--pattern", ok, "--event", `"scangate.scanner"`}, "an event is a JSON object, not a string"},
		{"event without envelope", []string{"--pattern", ok, "--event", `{"source": "scangate.scanner"}`}, `event: "id" is missing`},
		{"event bad time", []string{"--pattern", ok, "--event", strings.Replace(scanEventJSON, "2026-05-01T12:00:00Z", "May 1st", 1)}, `"time" "May 1st" is not an RFC 3339 time`},
		{"event file missing", []string{"--pattern", ok, "--event", "@" + filepath.Join(files, "missing.json")}, "missing.json: no such file"},
		{"event file a directory", []string{"--pattern", ok, "--event", "@" + files}, "--event: reading " + files},
		{"empty @", []string{"--pattern", "@", "--event", "@" + eventFile}, "--pattern @: name a file after the @"},
		{"empty pattern", []string{"--pattern", "", "--event", "@" + eventFile}, "pattern: invalid JSON: no value"},
		{"no event flag", []string{"--pattern", ok}, `required flag(s) "event" not set`},
		{"no flags", nil, `required flag(s) "event", "pattern" not set`},
		{"positional argument", []string{"--pattern", ok, "--event", "@" + eventFile, "extra"}, `unknown command "extra"`},
	}
	for _, tt := range tests {
		r := run(t, dir, append([]string{"rules", "test"}, tt.args...)...)
		if r.code != ExitBadInput || r.stdout != "" || !strings.Contains(r.stderr, tt.msg) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 2 mentioning %q", tt.name, r.code, r.stdout, r.stderr, tt.msg)
		}
	}
}
