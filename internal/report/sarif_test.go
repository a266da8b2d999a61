package report

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scangate/scangate/internal/scan"
)

const sarifSchemaID = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"

func TestSARIFGolden(t *testing.T) {
	golden(t, "report.sarif", render(t, testReport(t), SARIF, Options{ToolVersion: "1.2.3"}))
}

// TestSARIFValidates checks the output against the official OASIS schema.
func TestSARIFValidates(t *testing.T) {
	sch := compileSchemas(t, sarifSchemaID, filepath.Join("testdata", "schemas", "sarif-schema-2.1.0.json"))
	validate(t, sch, render(t, testReport(t), SARIF, Options{ToolVersion: "1.2.3"}))
	validate(t, sch, render(t, testReport(t), SARIF, Options{}))

	empty := testReport(t)
	empty.Findings = nil
	validate(t, sch, render(t, empty, SARIF, Options{}))

	odd := testReport(t)
	odd.Packages[2].Path = "/usr/share/doc/zlib 1g/copyright#1"
	odd.Packages[3].Path = ""
	validate(t, sch, render(t, odd, SARIF, Options{}))

	good := render(t, testReport(t), SARIF, Options{})
	run := func(m map[string]any) map[string]any { return m["runs"].([]any)[0].(map[string]any) }
	result := func(m map[string]any) map[string]any { return run(m)["results"].([]any)[0].(map[string]any) }
	rejects(t, sch, good, "level fatal", func(m map[string]any) { result(m)["level"] = "fatal" })
	rejects(t, sch, good, "no message", func(m map[string]any) { delete(result(m), "message") })
	rejects(t, sch, good, "version 2.0.0", func(m map[string]any) { m["version"] = "2.0.0" })
	rejects(t, sch, good, "a driver without a name", func(m map[string]any) {
		delete(run(m)["tool"].(map[string]any)["driver"].(map[string]any), "name")
	})
	rejects(t, sch, good, "suppression kind ignored", func(m map[string]any) {
		for _, r := range run(m)["results"].([]any) {
			if s, ok := r.(map[string]any)["suppressions"]; ok {
				s.([]any)[0].(map[string]any)["kind"] = "ignored"
			}
		}
	})
}

type sarifDoc struct {
	Schema string `json:"$schema"`
	Runs   []struct {
		Tool struct {
			Driver struct {
				Name, Version, InformationURI string
				Rules                         []struct {
					ID               string
					ShortDescription struct{ Text string }
					HelpURI          string
					Properties       struct {
						SecuritySeverity string `json:"security-severity"`
						Tags             []string
					}
					DefaultConfiguration struct{ Level string }
				}
			}
		}
		Results []struct {
			RuleID    string
			RuleIndex int
			Level     string
			Message   struct{ Text string }
			Locations []struct {
				PhysicalLocation struct {
					ArtifactLocation struct{ URI string }
				}
			}
			Suppressions []struct{ Kind, Status, Justification string }
		}
	}
}

func TestSARIFContent(t *testing.T) {
	var doc sarifDoc
	if err := json.Unmarshal(render(t, testReport(t), SARIF, Options{ToolVersion: "1.2.3"}), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Runs) != 1 {
		t.Fatalf("%d runs, want 1", len(doc.Runs))
	}
	run := doc.Runs[0]
	d := run.Tool.Driver
	if d.Name != "scangate" || d.Version != "1.2.3" || d.InformationURI != "https://github.com/scangate/scangate" {
		t.Errorf("driver = %q %q %q", d.Name, d.Version, d.InformationURI)
	}

	// A rule per advisory ID, sorted.
	var ids []string
	for _, r := range d.Rules {
		ids = append(ids, r.ID)
	}
	if got, want := strings.Join(ids, " "), "CVE-2010-4756 CVE-2019-1010022 CVE-2023-45853 GHSA-rv95-896h-c2vc GO-2024-2610 GO-2024-2687"; got != want {
		t.Errorf("rules = %s\nwant    %s", got, want)
	}
	rule := func(id string) int {
		for i, r := range d.Rules {
			if r.ID == id {
				return i
			}
		}
		t.Fatalf("no rule %s", id)
		return -1
	}
	for id, want := range map[string]struct{ score, level, tag string }{
		"CVE-2023-45853":      {"9.8", "error", "CRITICAL"},
		"GO-2024-2687":        {"7.5", "error", "HIGH"},
		"GHSA-rv95-896h-c2vc": {"6.1", "warning", "MEDIUM"},
		// Debian rates it low; GitHub should rank it low too, not by
		// NVD's 9.8 that does not count.
		"CVE-2019-1010022": {"2.0", "note", "LOW"},
		"GO-2024-2610":     {"", "note", "UNKNOWN"},
	} {
		r := d.Rules[rule(id)]
		if r.Properties.SecuritySeverity != want.score || r.DefaultConfiguration.Level != want.level {
			t.Errorf("rule %s: security-severity %q level %q, want %q %q", id, r.Properties.SecuritySeverity, r.DefaultConfiguration.Level, want.score, want.level)
		}
		if strings.Join(r.Properties.Tags, ",") != "vulnerability,security,"+want.tag {
			t.Errorf("rule %s tags = %q", id, r.Properties.Tags)
		}
		if r.HelpURI == "" || r.ShortDescription.Text == "" {
			t.Errorf("rule %s lacks helpUri or shortDescription", id)
		}
	}

	if len(run.Results) != 6 {
		t.Fatalf("%d results, want 6", len(run.Results))
	}
	suppressed := 0
	for _, res := range run.Results {
		if d.Rules[res.RuleIndex].ID != res.RuleID {
			t.Errorf("result %s has ruleIndex %d (%s)", res.RuleID, res.RuleIndex, d.Rules[res.RuleIndex].ID)
		}
		if len(res.Locations) != 1 || res.Locations[0].PhysicalLocation.ArtifactLocation.URI == "" {
			t.Errorf("result %s locations = %+v", res.RuleID, res.Locations)
		}
		if len(res.Suppressions) > 0 {
			suppressed++
			s := res.Suppressions[0]
			if s.Kind != "external" || s.Status != "accepted" || s.Justification == "" {
				t.Errorf("result %s suppression = %+v", res.RuleID, s)
			}
		}
	}
	if suppressed != 2 {
		t.Errorf("%d suppressed results, want 2", suppressed)
	}

	first := run.Results[0]
	if want := "Package zlib1g 1:1.2.13.dfsg-1 is affected by CVE-2023-45853 (CRITICAL); no fix yet"; first.Message.Text != want {
		t.Errorf("first message = %q\nwant            %q", first.Message.Text, want)
	}
	if first.Level != "error" || first.Locations[0].PhysicalLocation.ArtifactLocation.URI != "var/lib/dpkg/status" {
		t.Errorf("first result level %q uri %q", first.Level, first.Locations[0].PhysicalLocation.ArtifactLocation.URI)
	}
	second := run.Results[1]
	if want := "Package golang.org/x/net 0.17.0 is affected by GO-2024-2687 (HIGH); fixed in 0.23.0"; second.Message.Text != want {
		t.Errorf("second message = %q\nwant             %q", second.Message.Text, want)
	}
	if second.Locations[0].PhysicalLocation.ArtifactLocation.URI != "usr/local/bin/shop" {
		t.Errorf("second uri = %q", second.Locations[0].PhysicalLocation.ArtifactLocation.URI)
	}
	for _, res := range run.Results {
		if res.RuleID == "GHSA-rv95-896h-c2vc" {
			if len(res.Suppressions) != 1 || !strings.HasPrefix(res.Suppressions[0].Justification, "vex: not_affected") {
				t.Errorf("express suppression = %+v", res.Suppressions)
			}
		}
		if res.RuleID == "GO-2024-2610" && res.Level != "note" {
			t.Errorf("UNKNOWN level = %q, want note", res.Level)
		}
	}
}

func TestSARIFLevels(t *testing.T) {
	for sev, want := range map[string]string{
		"CRITICAL": "error", "HIGH": "error", "MEDIUM": "warning", "LOW": "note", "NONE": "note", "UNKNOWN": "note", "": "note",
	} {
		if got := sarifLevel(scan.Bucket(sev)); got != want {
			t.Errorf("level(%q) = %q, want %q", sev, got, want)
		}
	}
}

func TestSecuritySeverity(t *testing.T) {
	for _, c := range []struct {
		f    scan.Finding
		want string
	}{
		{scan.Finding{Severity: "CRITICAL", Score: 9.8}, "9.8"},
		{scan.Finding{Severity: "HIGH"}, "8.0"},
		{scan.Finding{Severity: "MEDIUM"}, "5.5"},
		{scan.Finding{Severity: "LOW"}, "2.0"},
		{scan.Finding{Severity: "UNKNOWN"}, ""},
		{scan.Finding{Severity: "HIGH", Score: 7}, "7.0"},
	} {
		if got := securitySeverity(&c.f); got != c.want {
			t.Errorf("securitySeverity(%+v) = %q, want %q", c.f, got, c.want)
		}
	}
}

func TestSARIFURI(t *testing.T) {
	for in, want := range map[string]string{
		"/var/lib/dpkg/status":   "var/lib/dpkg/status",
		"/app/my app/x.json":     "app/my%20app/x.json",
		"/opt/a#b?c":             "opt/a%23b%3Fc",
		"":                       ".",
		"/":                      ".",
		"relative/already/there": "relative/already/there",
	} {
		if got := sarifURI(in); got != want {
			t.Errorf("sarifURI(%q) = %q, want %q", in, got, want)
		}
	}
}
