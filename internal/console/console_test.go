package console

import (
	"net/url"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/scangate/scangate/internal/scan"
	"github.com/scangate/scangate/internal/vulndb"
)

// Every embedded template parses, with the layout, into a page.
func TestTemplatesParse(t *testing.T) {
	c, err := New(Deps{})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"login", "error", "pipelines", "pipeline", "execution", "repositories", "images", "findings",
		"vulnerability", "clusters", "service", "task", "taskdef", "events", "rules", "deadletters", "policies", "tokens"} {
		if c.pages[name] == nil {
			t.Errorf("no page %s", name)
		}
	}
}

// A redirect after login stays on the console.
func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/findings?image=a%40b": "/findings?image=a%40b",
		"//evil.example/":       "/pipelines",
		"/\\evil.example":       "/pipelines",
		"https://evil.example/": "/pipelines",
		"":                      "/pipelines",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func sampleReport() *scan.Report {
	return &scan.Report{
		Image: scan.ImageInfo{Repository: "shop/api", Digest: "sha256:aa", Layers: []string{"sha256:l1", "sha256:l2"}},
		Packages: []scan.Package{
			{Name: "zlib1g", Version: "1:1.2.13.dfsg-1", Type: "deb", Layer: "sha256:l1"},
			{Name: "golang.org/x/text", Version: "0.3.5", Type: "go-module", Layer: "sha256:l2"},
		},
		Findings: []scan.Finding{
			{ID: "CVE-2023-45853", Package: 0, Severity: "CRITICAL", SeveritySource: "nvd@nist.gov",
				Severities: []vulndb.Severity{{Source: "debian", Rating: "LOW"}, {Source: "nvd@nist.gov", Rating: "CRITICAL", Score: 9.8}}},
			{ID: "GO-2021-0113", Aliases: []string{"CVE-2021-38561"}, Package: 1, Severity: "HIGH", Fixed: []string{"0.3.7"}},
			{ID: "CVE-2000-0001", Package: 1, Severity: "LOW", Fixed: []string{"0.3.6"}},
		},
	}
}

// The findings table filters by severity, fixable, type, layer and text,
// sorts worst first by default, and marks the rating that counted.
func TestFindingRows(t *testing.T) {
	rep := sampleReport()
	ids := func(f findingFilter) string {
		var out []string
		for _, r := range rows(rep, f) {
			out = append(out, r.ID)
		}
		return strings.Join(out, " ")
	}
	for _, tc := range []struct {
		f    findingFilter
		want string
	}{
		{findingFilter{}, "CVE-2023-45853 GO-2021-0113 CVE-2000-0001"},
		{findingFilter{Severity: "HIGH"}, "GO-2021-0113"},
		{findingFilter{Fixable: "no"}, "CVE-2023-45853"},
		{findingFilter{Fixable: "yes"}, "GO-2021-0113 CVE-2000-0001"},
		{findingFilter{Type: "deb"}, "CVE-2023-45853"},
		{findingFilter{Layer: "2"}, "GO-2021-0113 CVE-2000-0001"},
		{findingFilter{Text: "cve-2021-38561"}, "GO-2021-0113"},
		{findingFilter{Text: "ZLIB"}, "CVE-2023-45853"},
		{findingFilter{Sort: "id"}, "CVE-2000-0001 CVE-2023-45853 GO-2021-0113"},
	} {
		if got := ids(tc.f); got != tc.want {
			t.Errorf("%+v: %s, want %s", tc.f, got, tc.want)
		}
	}
	if r := rows(rep, findingFilter{Severity: "CRITICAL"})[0]; r.Counted != 1 || r.LayerIndex != 1 {
		t.Errorf("counted rating %d, layer %d; want 1 (NVD's), 1", r.Counted, r.LayerIndex)
	}
}

// A CSV cell that a spreadsheet would run as a formula is quoted.
func TestCSVFormulaCells(t *testing.T) {
	rep := sampleReport()
	rep.Findings[0].Title = "=HYPERLINK(\"http://evil\")"
	var b strings.Builder
	if err := writeCSV(&b, rep); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `'=HYPERLINK`) || strings.Count(b.String(), "\n") != 4 {
		t.Errorf("csv:\n%s", b.String())
	}
}

// The findings query's bad values are refused with what is wanted.
func TestParseFilter(t *testing.T) {
	for _, q := range []string{"severity=SEVERE", "fixable=maybe", "sort=color", "page=0", "page=x", "q=" + strings.Repeat("a", 201)} {
		v, _ := url.ParseQuery(q)
		if _, err := parseFilter(v); err == nil {
			t.Errorf("%s: no error", q)
		}
	}
	v, _ := url.ParseQuery("severity=HIGH&fixable=yes&page=3&sort=layer")
	if f, err := parseFilter(v); err != nil || f.Page != 3 || f.Severity != "HIGH" {
		t.Errorf("%+v %v", f, err)
	}
}

func TestChange(t *testing.T) {
	if got := change(scan.Counts{Critical: 1, High: 3}, scan.Counts{Critical: 2, High: 1}); got != "CRITICAL −1, HIGH +2" {
		t.Errorf("change: %q", got)
	}
}

func TestParseTimeInput(t *testing.T) {
	for in, want := range map[string]string{"2026-12-04": "2026-12-04T00:00:00Z", "2026-12-04T10:30": "2026-12-04T10:30:00Z", "2026-12-04T10:30:00+01:00": "2026-12-04T09:30:00Z"} {
		got, err := parseTimeInput(in)
		if err != nil || got.UTC().Format(time.RFC3339) != want {
			t.Errorf("%s: %v %v", in, got, err)
		}
	}
	if _, err := parseTimeInput("yesterday"); err == nil {
		t.Error("yesterday: no error")
	}
}

// The console's readers of outside input never panic and answer within
// their limits.
func FuzzParseFilter(f *testing.F) {
	f.Add("severity=HIGH&fixable=yes&page=3&sort=layer&q=zlib")
	f.Add("page=99999999999999999999")
	f.Fuzz(func(t *testing.T, q string) {
		v, err := url.ParseQuery(q)
		if err != nil {
			return
		}
		if fl, err := parseFilter(v); err == nil {
			_ = rows(sampleReport(), fl)
			if fl.Page < 1 || len(fl.Text) > 200 {
				t.Fatalf("accepted %+v", fl)
			}
		}
	})
}

func FuzzMatchPattern(f *testing.F) {
	f.Add([]byte(`{"source": ["scangate.scanner"]}`), []byte(`{"id": "1", "source": "scangate.scanner", "detail-type": "Scan", "time": "2026-01-01T00:00:00Z", "detail": {}}`))
	f.Add([]byte(`{"detail": {"n": [{"numeric": [">", 0]}]}}`), []byte(`[[[[`))
	f.Fuzz(func(t *testing.T, pattern, event []byte) {
		_, _ = matchPattern(pattern, event)
	})
}

// Each layer gets the instruction that made it; instructions that made no
// layer are passed over.
func TestHistorySteps(t *testing.T) {
	got := historySteps([]v1.History{
		{CreatedBy: "/bin/sh -c #(nop) ADD file:abc in / "},
		{CreatedBy: "/bin/sh -c #(nop)  ENV MESSAGE=v1", EmptyLayer: true},
		{CreatedBy: "/bin/sh -c apt-get install -y zlib1g"},
		{CreatedBy: "COPY app /app # buildkit"},
	})
	want := []string{"ADD file:abc in /", "RUN apt-get install -y zlib1g", "COPY app /app # buildkit"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("steps %q, want %q", got, want)
	}
}
