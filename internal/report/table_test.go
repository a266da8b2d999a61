package report

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/scangate/scangate/internal/scan"
	"github.com/scangate/scangate/internal/vulndb"
)

var ansiCode = regexp.MustCompile("\x1b\\[[0-9;]*m")

func TestTableGolden(t *testing.T) {
	golden(t, "table.txt", render(t, testReport(t), Table, Options{}))
	golden(t, "table-color.txt", render(t, testReport(t), Table, Options{Color: true}))
}

func TestTableLayout(t *testing.T) {
	out := string(render(t, testReport(t), Table, Options{}))
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")

	if want := "127.0.0.1:5000/acme/shop:1.4.2 (debian 12) — vulnerability DB built 2024-06-03T06:00:00Z (sha256:c0ffee00c0ff)"; lines[0] != want {
		t.Errorf("header = %q\nwant     %q", lines[0], want)
	}
	if got, want := lines[len(lines)-2], "Total: 4 (CRITICAL: 1, HIGH: 1, MEDIUM: 0, LOW: 1, UNKNOWN: 1) — fixable: 2"; got != want {
		t.Errorf("summary = %q\nwant      %q", got, want)
	}
	if got, want := lines[len(lines)-1], "2 suppressed: 1 ignore-file, 1 vex"; got != want {
		t.Errorf("suppressed = %q, want %q", got, want)
	}
	for _, id := range []string{"CVE-2010-4756", "GHSA-rv95-896h-c2vc"} {
		if strings.Contains(out, id) {
			t.Errorf("suppressed finding %s is in the table", id)
		}
	}

	// Targets: the OS first, then the Go binary; rows by severity.
	titles := []string{"debian 12 (deb)", "/usr/local/bin/shop (go)"}
	var at []int
	for _, title := range titles {
		i := indexLine(lines, title)
		if i < 0 || !strings.HasPrefix(lines[i+1], "===") {
			t.Fatalf("no target %q with an underline in\n%s", title, out)
		}
		at = append(at, i)
	}
	if at[0] > at[1] {
		t.Errorf("OS target comes after the Go binary")
	}
	osRows := lines[at[0]+3 : at[1]-1]
	if len(osRows) != 2 || !strings.HasPrefix(osRows[0], "zlib1g ") || !strings.HasPrefix(osRows[1], "libc6 ") {
		t.Errorf("OS rows = %q, want zlib1g (CRITICAL) then libc6 (LOW)", osRows)
	}
	header := lines[at[0]+2]
	for _, col := range []string{"PACKAGE", "ID", "SEVERITY", "STATUS", "INSTALLED", "FIXED", "TITLE"} {
		if !strings.Contains(header, col) {
			t.Errorf("header row %q lacks %s", header, col)
		}
	}
	// Columns line up: every row has ID and SEVERITY where the header does.
	idCol, sevCol := strings.Index(header, "ID"), strings.Index(header, "SEVERITY")
	for _, row := range osRows {
		if row[idCol-1] != ' ' || row[idCol] == ' ' || row[sevCol-1] != ' ' || row[sevCol] == ' ' {
			t.Errorf("row %q is not aligned with %q", row, header)
		}
	}
	zlib := osRows[0]
	for _, want := range []string{"CVE-2023-45853", "CRITICAL", "unfixed", "1:1.2.13.dfsg-1", "zlib: integer overflow"} {
		if !strings.Contains(zlib, want) {
			t.Errorf("zlib1g row %q lacks %q", zlib, want)
		}
	}
	goRows := strings.Join(lines[at[1]:], "\n")
	for _, want := range []string{"0.23.0", "1.21.8, 1.22.1", "UNKNOWN", "fixed"} {
		if !strings.Contains(goRows, want) {
			t.Errorf("Go rows lack %q:\n%s", want, goRows)
		}
	}
	if i, j := strings.Index(goRows, "GO-2024-2687"), strings.Index(goRows, "GO-2024-2610"); i < 0 || j < 0 || i > j {
		t.Errorf("HIGH GO-2024-2687 should come before UNKNOWN GO-2024-2610:\n%s", goRows)
	}
}

func TestTableColor(t *testing.T) {
	plain := string(render(t, testReport(t), Table, Options{}))
	if strings.Contains(plain, "\x1b") {
		t.Errorf("colour codes without Color:\n%q", plain)
	}
	color := string(render(t, testReport(t), Table, Options{Color: true}))
	for sev, code := range map[string]string{
		"CRITICAL": "\x1b[31m", "HIGH": "\x1b[91m", "LOW": "\x1b[34m", "UNKNOWN": "\x1b[90m",
	} {
		if !strings.Contains(color, code+sev+"\x1b[0m") {
			t.Errorf("%s is not coloured %q", sev, code)
		}
	}
	// Colours must not move columns: without the codes, the coloured
	// table is the plain one.
	if stripped := ansiCode.ReplaceAllString(color, ""); stripped != plain {
		t.Errorf("coloured table misaligned:\n%s", lineDiff(plain, stripped))
	}
}

func TestTableMedium(t *testing.T) {
	r := testReport(t)
	r.Findings[5].Suppressed = nil // express, MEDIUM
	r.Recount()
	out := string(render(t, r, Table, Options{Color: true}))
	for _, want := range []string{"Node.js (npm)", "\x1b[33mMEDIUM\x1b[0m", "GHSA-rv95-896h-c2vc", "4.19.2",
		"Total: 5 (CRITICAL: 1, HIGH: 1, MEDIUM: 1, LOW: 1, UNKNOWN: 1) — fixable: 3", "1 suppressed: 1 ignore-file"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestTableNoFindings(t *testing.T) {
	r := testReport(t)
	r.Findings = nil
	r.OS = nil
	r.VulnDB = vulndb.Version{}
	r.Recount()
	out := string(render(t, r, Table, Options{}))
	want := "127.0.0.1:5000/acme/shop:1.4.2 (unknown OS) — vulnerability DB unknown\n\nNo vulnerabilities found.\n\n" +
		"Total: 0 (CRITICAL: 0, HIGH: 0, MEDIUM: 0, LOW: 0, UNKNOWN: 0) — fixable: 0\n"
	if out != want {
		t.Errorf("got\n%q\nwant\n%q", out, want)
	}
}

func TestTableCells(t *testing.T) {
	r := &scan.Report{
		Image:    scan.ImageInfo{Ref: "app:1\x1b[2J"},
		Packages: []scan.Package{{Name: "evil\tpkg", Version: "1\n2", Type: "npm", Path: "/x"}},
		Findings: []scan.Finding{{
			ID: "CVE-2024-0001", Package: 0, Severity: "NONE",
			Title: "a title \x1b[31mwith escapes\x1b[0m and a tab\tthat goes on for far too long to fit in the column at all",
		}},
		CreatedAt: time.Unix(0, 0).UTC(),
	}
	out := string(render(t, r, Table, Options{}))
	if strings.Contains(out, "\x1b") {
		t.Errorf("control characters reach the terminal: %q", out)
	}
	if !strings.Contains(out, "evil pkg") || !strings.Contains(out, "1 2") {
		t.Errorf("tabs and newlines not replaced:\n%s", out)
	}
	if !strings.Contains(out, "LOW") || !strings.Contains(out, "LOW: 1") {
		t.Errorf("NONE should show and count as LOW:\n%s", out)
	}
	if !strings.Contains(out, "…") {
		t.Errorf("long title not truncated:\n%s", out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "a title") && !strings.HasSuffix(line, "…") {
			t.Errorf("title not cut at the end: %q", line)
		}
	}
}

func TestTruncate(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"a bit longer", 10, "a bit lon…"},
		{"cut at a space", 8, "cut at…"},
		{"héllo wörld", 6, "héllo…"},
	} {
		if got := truncate(c.in, c.n); got != c.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}

func indexLine(lines []string, s string) int {
	for i, l := range lines {
		if l == s {
			return i
		}
	}
	return -1
}
