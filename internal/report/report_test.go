package report

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scangate/scangate/internal/scan"
	"github.com/scangate/scangate/internal/vulndb"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// The digests of the test image; made up, but well-formed.
const (
	testDigest       = "sha256:5b7a3ef4c2a1d6e89f0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5"
	testConfigDigest = "sha256:0e5574283393c5f5d4e9f5c5a9a8d0d8c7a7e3b1b0f9c8d7e6f5a4b3c2d1e0f9"
	testLayer0       = "sha256:1d0d14e2b5e7c26ebd0f86b6a4e62a9b4ad3d9d3bd4d2b9bd4a3f87e1b1e2c3d"
	testLayer1       = "sha256:9a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9"
	testDBDigest     = "sha256:c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00"
)

// testReport builds the report of a Debian bookworm image with a Go
// binary and a Node.js app: zlib1g's CVE-2023-45853 (CRITICAL by NVD's
// CVSS 3.1 9.8, no fix in bookworm), a fixable golang.org/x/net advisory,
// a standard-library advisory with no rating at all (UNKNOWN), a glibc CVE
// Debian rates low though NVD says critical, and two suppressed findings:
// express's open redirect (a VEX statement) and a glibc CVE listed in the
// ignore file.
func testReport(t testing.TB) *scan.Report {
	t.Helper()
	nvd31 := func(vector string) vulndb.Severity {
		s, err := vulndb.CVSS(vector)
		if err != nil {
			t.Fatal(err)
		}
		s.Source, s.Primary = "nvd@nist.gov", true
		return s
	}
	ghsa31 := func(vector string) vulndb.Severity {
		s, err := vulndb.CVSS(vector)
		if err != nil {
			t.Fatal(err)
		}
		s.Source = "ghsa"
		return s
	}
	debian := func(urgency string) vulndb.Severity {
		return vulndb.Severity{Source: "debian", Type: vulndb.VendorRating, Rating: vulndb.UrgencyRating(urgency)}
	}
	critical := nvd31("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H")
	xnet := nvd31("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H")
	express := ghsa31("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N")

	r := &scan.Report{
		SchemaVersion: scan.SchemaVersion,
		CreatedAt:     time.Date(2024, 6, 3, 10, 15, 0, 0, time.UTC),
		Image: scan.ImageInfo{
			Ref:          "127.0.0.1:5000/acme/shop:1.4.2",
			Repository:   "127.0.0.1:5000/acme/shop",
			Tags:         []string{"1.4.2"},
			Digest:       testDigest,
			ConfigDigest: testConfigDigest,
			Platform:     "linux/amd64",
			Layers:       []string{testLayer0, testLayer1},
		},
		OS: &scan.OS{ID: "debian", VersionID: "12", PrettyName: "Debian GNU/Linux 12 (bookworm)", Ecosystem: "Debian:12"},
		VulnDB: vulndb.Version{
			Built:  time.Date(2024, 6, 3, 6, 0, 0, 0, time.UTC),
			Digest: testDBDigest,
		},
		Packages: []scan.Package{
			0: {Name: "base-files", Version: "12.4+deb12u5", Type: "deb", Ecosystem: "Debian:12",
				PURL: "pkg:deb/debian/base-files@12.4%2Bdeb12u5?arch=amd64&distro=debian-12", SourceName: "base-files", SourceVersion: "12.4+deb12u5",
				Path: "/var/lib/dpkg/status", Layer: testLayer0},
			1: {Name: "libc6", Version: "2.36-9+deb12u4", Type: "deb", Ecosystem: "Debian:12",
				PURL: "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12", SourceName: "glibc", SourceVersion: "2.36-9+deb12u4",
				Path: "/var/lib/dpkg/status", Layer: testLayer0},
			2: {Name: "zlib1g", Version: "1:1.2.13.dfsg-1", Type: "deb", Ecosystem: "Debian:12",
				PURL: "pkg:deb/debian/zlib1g@1%3A1.2.13.dfsg-1?arch=amd64&distro=debian-12", SourceName: "zlib", SourceVersion: "1:1.2.13.dfsg-1",
				Path: "/var/lib/dpkg/status", Layer: testLayer0},
			3: {Name: "golang.org/x/net", Version: "0.17.0", Type: "go-module", Ecosystem: "Go",
				PURL: "pkg:golang/golang.org/x/net@v0.17.0", Path: "/usr/local/bin/shop", Layer: testLayer1},
			4: {Name: "stdlib", Version: "1.21.3", Type: "go-stdlib", Ecosystem: "Go",
				PURL: "pkg:golang/stdlib@v1.21.3", Path: "/usr/local/bin/shop", Layer: testLayer1},
			5: {Name: "express", Version: "4.18.2", Type: "npm", Ecosystem: "npm",
				PURL: "pkg:npm/express@4.18.2", Path: "/app/node_modules/express/package.json", Layer: testLayer1},
			// No purl: the writers build one.
			6: {Name: "urllib3", Version: "1.26.18", Type: "python", Ecosystem: "PyPI",
				Path: "/usr/lib/python3/dist-packages/urllib3-1.26.18.dist-info/METADATA", Layer: testLayer0},
		},
		Findings: []scan.Finding{
			{
				ID: "CVE-2023-45853", Feed: "debian", Package: 2, Status: vulndb.StatusUnfixed,
				Severity: vulndb.Critical, SeveritySource: "nvd@nist.gov", Score: critical.Score, Vector: critical.Vector,
				Severities: []vulndb.Severity{critical},
				Title:      "zlib: integer overflow and resultant heap-based buffer overflow in zipOpenNewFileInZip4_6",
				URL:        "https://security-tracker.debian.org/tracker/CVE-2023-45853",
			},
			{
				ID: "GO-2024-2687", Aliases: []string{"CVE-2023-45288", "GHSA-4v7x-pqxf-cx7m"}, Feed: "osv:Go", Package: 3,
				Fixed:    []string{"0.23.0"},
				Severity: vulndb.High, SeveritySource: "nvd@nist.gov", Score: xnet.Score, Vector: xnet.Vector,
				Severities: []vulndb.Severity{xnet, {Source: "ghsa", Type: vulndb.GHSARating, Rating: vulndb.Medium}},
				Title:      "HTTP/2 CONTINUATION flood in net/http",
				URL:        "https://pkg.go.dev/vuln/GO-2024-2687",
			},
			{
				ID: "GO-2024-2610", Aliases: []string{"CVE-2024-24785"}, Feed: "osv:Go", Package: 4,
				Fixed:    []string{"1.21.8", "1.22.1"},
				Severity: vulndb.Unknown,
				Title:    "Errors returned from JSON marshaling may break template escaping in html/template",
				URL:      "https://pkg.go.dev/vuln/GO-2024-2610",
			},
			{
				ID: "CVE-2019-1010022", Feed: "debian", Package: 1, Status: vulndb.StatusUnfixed,
				Severity: vulndb.Low, SeveritySource: "debian",
				Severities: []vulndb.Severity{debian("unimportant"), nvd31("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H")},
				Title:      "glibc: stack guard protection bypass",
				URL:        "https://security-tracker.debian.org/tracker/CVE-2019-1010022",
			},
			{
				ID: "CVE-2010-4756", Feed: "debian", Package: 1, Status: vulndb.StatusUnfixed,
				Severity: vulndb.Low, SeveritySource: "debian",
				Severities: []vulndb.Severity{debian("unimportant"), func() vulndb.Severity {
					s, err := vulndb.CVSS("AV:N/AC:L/Au:S/C:N/I:N/A:P")
					if err != nil {
						t.Fatal(err)
					}
					s.Source, s.Primary = "nvd@nist.gov", true
					return s
				}()},
				Title: "glibc: glob implementation can cause excessive CPU and memory consumption due to crafted glob expressions",
				URL:   "https://security-tracker.debian.org/tracker/CVE-2010-4756",
				Suppressed: &scan.Suppression{Kind: "ignore-file", Reason: "glob patterns never come from users",
					Expires: time.Date(2024, 12, 31, 0, 0, 0, 0, time.UTC)},
			},
			{
				ID: "GHSA-rv95-896h-c2vc", Aliases: []string{"CVE-2024-29041"}, Feed: "ghsa:npm", Package: 5,
				Fixed:    []string{"4.19.2"},
				Severity: vulndb.Medium, SeveritySource: "ghsa", Score: express.Score, Vector: express.Vector,
				Severities: []vulndb.Severity{express, {Source: "ghsa", Type: vulndb.GHSARating, Rating: vulndb.Medium}},
				Title:      "Express.js Open Redirect in malformed URLs",
				URL:        "https://github.com/advisories/GHSA-rv95-896h-c2vc",
				Suppressed: &scan.Suppression{Kind: "vex", Reason: "not_affected: vulnerable_code_not_in_execute_path"},
			},
		},
	}
	r.Recount()
	return r
}

// render writes r in format f and returns the output.
func render(t testing.TB, r *scan.Report, f Format, opts Options) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, r, f, opts); err != nil {
		t.Fatalf("Write %s: %v", f, err)
	}
	return buf.Bytes()
}

// golden compares got with testdata/golden/name, or rewrites the file
// under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run go test -update after checking the change):\n%s", name, lineDiff(string(want), string(got)))
	}
}

// lineDiff shows the first lines where want and got differ.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			b.WriteString("line " + strconv.Itoa(i+1) + ":\n  want: " + wl + "\n  got:  " + gl + "\n")
			if shown++; shown == 5 {
				break
			}
		}
	}
	return b.String()
}

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]Format{
		"table": Table, "TABLE": Table, " json ": JSON, "sarif": SARIF,
		"cyclonedx": CycloneDX, "cyclonedx-json": CycloneDX, "cdx": CycloneDX,
		"spdx": SPDX, "spdx-json": SPDX,
	} {
		got, err := ParseFormat(in)
		if err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "xml", "cyclonedx-xml", "spdx-tag-value", "template"} {
		if f, err := ParseFormat(in); err == nil {
			t.Errorf("ParseFormat(%q) = %q, want an error", in, f)
		} else if !strings.Contains(err.Error(), "table, json, sarif, cyclonedx, spdx") {
			t.Errorf("ParseFormat(%q) error %q does not list the formats", in, err)
		}
	}
	for _, f := range Formats() {
		if got, err := ParseFormat(string(f)); err != nil || got != f {
			t.Errorf("ParseFormat(%q) = %q, %v", f, got, err)
		}
	}
}

func TestWriteRejects(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, nil, JSON, Options{}); err == nil {
		t.Error("Write(nil report) succeeded")
	}
	r := testReport(t)
	if err := Write(&buf, r, Format("xml"), Options{}); err == nil {
		t.Error("Write(xml) succeeded")
	}
	r.Findings[0].Package = len(r.Packages)
	for _, f := range Formats() {
		if err := Write(&buf, r, f, Options{}); err == nil || !strings.Contains(err.Error(), "CVE-2023-45853") {
			t.Errorf("Write(%s) with a bad package index: %v, want an error naming the finding", f, err)
		}
	}
}

// TestDeterministic checks that every format gives the same bytes for the
// same report, and does not modify the report.
func TestDeterministic(t *testing.T) {
	for _, f := range Formats() {
		t.Run(string(f), func(t *testing.T) {
			r := testReport(t)
			first := render(t, r, f, Options{ToolVersion: "1.2.3"})
			for range 3 {
				if again := render(t, r, f, Options{ToolVersion: "1.2.3"}); !bytes.Equal(first, again) {
					t.Fatalf("second write differs:\n%s", lineDiff(string(first), string(again)))
				}
			}
			if again := render(t, testReport(t), f, Options{ToolVersion: "1.2.3"}); !bytes.Equal(first, again) {
				t.Fatalf("write of an equal report differs:\n%s", lineDiff(string(first), string(again)))
			}
			if got := render(t, r, JSON, Options{}); !bytes.Equal(got, render(t, testReport(t), JSON, Options{})) {
				t.Fatal("writing modified the report")
			}
		})
	}
}

// TestEmptyReport writes a report with nothing in it in every format.
func TestEmptyReport(t *testing.T) {
	r := &scan.Report{
		SchemaVersion: scan.SchemaVersion,
		CreatedAt:     time.Date(2024, 6, 3, 10, 15, 0, 0, time.UTC),
		Image:         scan.ImageInfo{Ref: "docker-archive:scratch.tar", ConfigDigest: testConfigDigest},
	}
	for _, f := range Formats() {
		if out := render(t, r, f, Options{}); len(out) == 0 {
			t.Errorf("%s: no output", f)
		}
	}
}

func TestNameUUID(t *testing.T) {
	// uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/scangate/scangate") in Python.
	if got, want := nameUUID("https://github.com/scangate/scangate"), "dfb3c8a4-52a3-520e-80b6-b66863187fb4"; got != want {
		t.Errorf("nameUUID = %s, want %s", got, want)
	}
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(nameUUID("x")) {
		t.Errorf("nameUUID(x) = %s is not a version 5 UUID", nameUUID("x"))
	}
}

func TestSortedFindings(t *testing.T) {
	r := testReport(t)
	var ids []string
	for _, i := range sortedFindings(r) {
		ids = append(ids, r.Findings[i].ID)
	}
	want := "CVE-2023-45853 GO-2024-2687 GHSA-rv95-896h-c2vc CVE-2010-4756 CVE-2019-1010022 GO-2024-2610"
	if got := strings.Join(ids, " "); got != want {
		t.Errorf("order = %s\nwant    %s", got, want)
	}
}
