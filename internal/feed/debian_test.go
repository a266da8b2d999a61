package feed

import (
	"bufio"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/scangate/scangate/internal/vulndb"
)

// testByID indexes advisories by ID, failing on duplicates.
func testByID(t testing.TB, advs []vulndb.Advisory) map[string]vulndb.Advisory {
	t.Helper()
	m := map[string]vulndb.Advisory{}
	for _, a := range advs {
		if _, dup := m[a.ID]; dup {
			t.Errorf("advisory %s appears twice", a.ID)
		}
		m[a.ID] = a
	}
	return m
}

// testAffected describes an advisory's affected entries one per line, as
// "ecosystem package status fixed [urgency] [note]".
func testAffected(a vulndb.Advisory) []string {
	var out []string
	for _, af := range a.Affected {
		s := fmt.Sprintf("%s %s %s %s", af.Ecosystem, af.Package, af.Status, af.Fixed)
		if af.Urgency != "" {
			s += " [" + af.Urgency + "]"
		}
		if af.Note != "" {
			s += " (" + af.Note + ")"
		}
		out = append(out, s)
	}
	return out
}

// testSeverities describes an advisory's severities.
func testSeverities(a vulndb.Advisory) []string {
	var out []string
	for _, s := range a.Severities {
		line := fmt.Sprintf("%s %s %.1f %s", s.Source, s.Type, s.Score, s.Rating)
		if s.Primary {
			line += " primary"
		}
		out = append(out, line)
	}
	return out
}

func TestDebianTrackerMatch(t *testing.T) {
	sample := vulndataFile(t, trackerSample)
	tests := []struct {
		name string
		head string
		want bool
	}{
		{"bookworm", string(vulndataFile(t, "debian/tracker-json-bookworm-minbase.json")), true},
		{"sample", string(sample), true},
		{"head cut inside the first record", string(sample[:300]), true},
		{"compact", `{"zlib":{"CVE-2023-45853":{"releases":{}}}}`, true},
		{"TEMP id", `{"bash":{"TEMP-0841856-B18BAF":{"description":"x","releases":{}}}}`, true},
		{"record without releases", `{"zlib":{"CVE-2023-45853":{"description":"x"}}}`, false},
		{"releases nested deeper", `{"zlib":{"CVE-2023-45853":{"x":{"releases":{}}}}}`, false},
		{"not an id", `{"zlib":{"DSA-1234-1":{"releases":{}}}}`, false},
		{"nvd page", string(vulndataFile(t, nvdSingleEntry)), false},
		{"nvd cve", string(vulndataFile(t, "nvd/CVE-2023-45853.json")), false},
		{"wolfi secdb", string(vulndataFile(t, wolfiSample)), false},
		{"osv", string(testdataFile(t, "osv/GO-2022-1059.json")), false},
		{"array", `[{"zlib":{}}]`, false},
		{"empty", ``, false},
	}
	for _, tt := range tests {
		if got := (DebianTracker{}).Match("debian.json", []byte(tt.head)); got != tt.want {
			t.Errorf("%s: Match = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestDebianTrackerBookworm checks the bookworm tracker data against the
// findings expected for a minbase bookworm: every CVE, its source package,
// urgency and no-dsa verdict.
func TestDebianTrackerBookworm(t *testing.T) {
	res, err := DebianTracker{}.Parse("tracker-json-bookworm-minbase.json", vulndataFile(t, "debian/tracker-json-bookworm-minbase.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Skipped) != 0 {
		t.Errorf("skipped %v", res.Skipped)
	}
	got := testByID(t, res.Advisories)
	ratings := map[string]string{"unimportant": vulndb.Low, "low": vulndb.Low, "not yet assigned": vulndb.Unknown}
	sc := bufio.NewScanner(strings.NewReader(string(vulndataFile(t, "debian/expected-findings.naive.txt"))))
	n := 0
	for sc.Scan() {
		// CVE-2016-2781	src:coreutils 9.1-1	binaries:coreutils	debian-urgency:low nodsa:ignored	nvd-cvss:...
		f := strings.Split(sc.Text(), "\t")
		id := f[0]
		pkg := strings.Fields(strings.TrimPrefix(f[1], "src:"))[0]
		urgency, nodsa, _ := strings.Cut(strings.TrimPrefix(f[3], "debian-urgency:"), " nodsa:")
		n++
		a, ok := got[id]
		if !ok {
			t.Errorf("%s: missing", id)
			continue
		}
		status := vulndb.StatusUnfixed
		if nodsa == "ignored" {
			status = vulndb.StatusWillNotFix
		}
		if len(a.Affected) != 1 {
			t.Errorf("%s: affected %v, want one", id, testAffected(a))
			continue
		}
		af := a.Affected[0]
		if af.Ecosystem != "Debian:12" || af.Package != pkg || af.Status != status || af.Fixed != "" || af.Urgency != urgency {
			t.Errorf("%s: affected %v, want Debian:12 %s %s [%s]", id, testAffected(a), pkg, status, urgency)
		}
		if nodsa != "" && !strings.HasPrefix(af.Note, nodsa+": ") {
			t.Errorf("%s: note %q, want the no-dsa reason %q", id, af.Note, nodsa)
		}
		want := []string{"debian VENDOR 0.0 " + ratings[urgency]}
		if s := testSeverities(a); !slices.Equal(s, want) {
			t.Errorf("%s: severities %v, want %v", id, s, want)
		}
		if a.Feed != "debian" || a.Summary == "" {
			t.Errorf("%s: feed %q, summary %q", id, a.Feed, a.Summary)
		}
	}
	if n != 20 || len(got) != n {
		t.Errorf("got %d advisories, expected findings list %d (want 20)", len(got), n)
	}
}

// TestDebianTrackerSample checks real tracker records over several
// releases: fixes, the not-affected "0", end-of-life, sid and an empty
// releases list.
func TestDebianTrackerSample(t *testing.T) {
	res, err := DebianTracker{}.Parse("debian.json", vulndataFile(t, trackerSample))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		id       string
		affected []string
		severity []string
	}{
		{"CVE-2008-7220", []string{
			"Debian:8 prototypejs fixed 1.6.0.2-1 [high**]",
			"Debian:9 prototypejs fixed 1.6.0.2-1 [high**]",
			"Debian:10 prototypejs fixed 1.6.0.2-1 [high**]",
		}, []string{"debian VENDOR 0.0 HIGH"}},
		{"CVE-2007-2383", []string{
			"Debian:8 prototypejs not-affected  [unimportant]",
			"Debian:9 prototypejs not-affected  [unimportant]",
			"Debian:10 prototypejs not-affected  [unimportant]",
		}, []string{"debian VENDOR 0.0 LOW"}},
		{"CVE-2005-3111", []string{
			"Debian:8 backupninja fixed 0.8-2 [medium]",
			"Debian:9 backupninja fixed 0.8-2 [medium]",
			"Debian:10 backupninja fixed 0.8-2 [medium]",
		}, []string{"debian VENDOR 0.0 MEDIUM"}},
		{"CVE-2022-0456", []string{
			"Debian:9 chromium end-of-life  [end-of-life]",
			"Debian:10 chromium end-of-life  [end-of-life]",
			"Debian:11 chromium fixed 98.0.4758.80-1~deb11u1 [not yet assigned]",
			"Debian:12 chromium fixed 98.0.4758.80-1 [not yet assigned]",
		}, []string{"debian VENDOR 0.0 UNKNOWN"}},
		{"CVE-2025-53603", []string{
			"Debian:11 sope fixed 5.0.1-2+deb11u1 [not yet assigned]",
			"Debian:12 sope fixed 5.8.0-1+deb12u1 [not yet assigned]",
			"Debian:13 sope fixed 5.12.1-2 [not yet assigned]",
		}, []string{"debian VENDOR 0.0 UNKNOWN"}},
	}
	got := testByID(t, res.Advisories)
	for _, tt := range tests {
		a := got[tt.id]
		if l := testAffected(a); !slices.Equal(l, tt.affected) {
			t.Errorf("%s affected:\n got %q\nwant %q", tt.id, l, tt.affected)
		}
		if s := testSeverities(a); !slices.Equal(s, tt.severity) {
			t.Errorf("%s severities %v, want %v", tt.id, s, tt.severity)
		}
	}
	if _, ok := got["CVE-2022-0358"]; ok {
		t.Errorf("CVE-2022-0358 has no release but was imported")
	}
	if len(got) != 6 {
		t.Errorf("got %d advisories, want 6", len(got))
	}
	var skips []string
	for _, s := range res.Skipped {
		skips = append(skips, s.File+": "+s.Record+": "+s.Reason)
	}
	want := []string{
		"debian.json: : releases without a Debian release number left out: sid (6)",
		"debian.json: : 1 records name no release",
	}
	if !slices.Equal(skips, want) {
		t.Errorf("skipped\n %q\nwant\n %q", skips, want)
	}
}

// TestDebianTrackerStatuses covers each verdict the tracker can give, and
// records it cannot use.
func TestDebianTrackerStatuses(t *testing.T) {
	data := `{
	  "openssl": {
	    "CVE-2024-0001": {"description": "first", "releases": {
	      "bookworm": {"status": "open", "urgency": "low", "nodsa": "Minor issue", "nodsa_reason": "ignored"},
	      "bullseye": {"status": "open", "urgency": "low", "nodsa": "Minor issue", "nodsa_reason": "postponed"},
	      "buster": {"status": "open", "urgency": "end-of-life", "nodsa_reason": "ignored"},
	      "trixie": {"status": "undetermined", "urgency": "not yet assigned"},
	      "forky": {"status": "resolved", "fixed_version": "0", "urgency": "unimportant"},
	      "duke": {"status": "resolved", "fixed_version": "3.5.0-1", "urgency": "low"},
	      "sid": {"status": "resolved", "fixed_version": "3.5.0-1", "urgency": "low"},
	      "experimental": {"status": "open"}
	    }},
	    "CVE-2024-0002": {"releases": {
	      "bookworm": {"status": "resolved", "urgency": "low"},
	      "bullseye": {"status": "resolved", "fixed_version": "a:b", "urgency": "low"},
	      "buster": {"status": "fixed?", "urgency": "low"},
	      "trixie": {"status": "open", "urgency": "high"}
	    }},
	    "TEMP-0841856-B18BAF": {"description": "temp", "releases": {"bookworm": {"status": "open", "urgency": "unimportant"}}},
	    "DSA-5000-1": {"releases": {"bookworm": {"status": "open"}}},
	    "CVE-2024-0003": {"description": 7, "releases": {}},
	    "CVE-2024-0004": {"releases": [1]},
	    "CVE-2024-0005": {"releases": null}
	  },
	  "openssl1.1": {
	    "CVE-2024-0001": {"description": "second", "releases": {"bullseye": {"status": "open", "urgency": "high"}}}
	  },
	  "empty": []
	}`
	res, err := DebianTracker{}.Parse("t.json", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		id       string
		affected []string
		severity []string
	}{
		{"CVE-2024-0001", []string{
			"Debian:10 openssl end-of-life  [end-of-life] (ignored)",
			"Debian:11 openssl unfixed  [low] (postponed: Minor issue)",
			"Debian:12 openssl will-not-fix  [low] (ignored: Minor issue)",
			"Debian:13 openssl unfixed  [not yet assigned] (undetermined)",
			"Debian:14 openssl not-affected  [unimportant]",
			"Debian:15 openssl fixed 3.5.0-1 [low]",
			"Debian:11 openssl1.1 unfixed  [high]",
		}, nil}, // low, unknown and high disagree
		{"CVE-2024-0002", []string{"Debian:13 openssl unfixed  [high]"}, []string{"debian VENDOR 0.0 HIGH"}},
		{"TEMP-0841856-B18BAF", []string{"Debian:12 openssl unfixed  [unimportant]"}, []string{"debian VENDOR 0.0 LOW"}},
	}
	got := testByID(t, res.Advisories)
	for _, tt := range tests {
		a := got[tt.id]
		if l := testAffected(a); !slices.Equal(l, tt.affected) {
			t.Errorf("%s affected:\n got %q\nwant %q", tt.id, l, tt.affected)
		}
		if s := testSeverities(a); !slices.Equal(s, tt.severity) {
			t.Errorf("%s severities %v, want %v", tt.id, s, tt.severity)
		}
	}
	if a := got["CVE-2024-0001"]; a.Summary != "first" {
		t.Errorf("summary %q, want the first package's description", a.Summary)
	}
	if len(got) != 3 {
		t.Errorf("got %d advisories, want 3", len(got))
	}
	var skips []string
	for _, s := range res.Skipped {
		skips = append(skips, s.Record+": "+s.Reason)
	}
	want := []string{
		"CVE-2024-0002 (openssl): bookworm: resolved without a fixed_version",
		`CVE-2024-0002 (openssl): bullseye: Debian:11 version "a:b": invalid version: failed to convert a to a number`,
		`CVE-2024-0002 (openssl): buster: unknown status "fixed?"`,
		"DSA-5000-1 (openssl): not a CVE or TEMP id",
		"CVE-2024-0003 (openssl): json: cannot unmarshal number into Go struct field debianRecord.description of type string",
		"CVE-2024-0004 (openssl): releases is not an object",
		": releases without a Debian release number left out: experimental (1), sid (1)",
		": 1 records name no release",
	}
	slices.Sort(skips)
	slices.Sort(want)
	if !slices.Equal(skips, want) {
		t.Errorf("skipped\n %q\nwant\n %q", skips, want)
	}
}

func TestDebianTrackerBadInput(t *testing.T) {
	huge := strings.Repeat("x", 1<<20)
	tests := []badInput{
		{"empty", ``, true},
		{"array at top", `[{"zlib": {}}]`, true},
		{"string at top", `"zlib"`, true},
		{"unterminated", `{"zlib": {"CVE-2023-45853": {"releases": {`, true},
		{"package not an object", `{"zlib": "CVE-2023-45853"}`, true},
		{"package a non-empty list", `{"zlib": ["CVE-2023-45853"]}`, true},
		{"trailing data", `{"zlib": {}} {}`, true},
		{"bad escape", `{"zl\ib": {}}`, true},
		{"deep nesting", `{"zlib": {"CVE-2023-45853": ` + strings.Repeat(`[`, 100000) + strings.Repeat(`]`, 100000) + `}}`, true},
		{"empty object", `{}`, false},
		{"huge names", `{"` + huge + `": {"CVE-2023-45853": {"description": "` + huge + `", "releases": {"bookworm": {"status": "open", "urgency": "` + huge + `"}, "` + huge + `": {}}}}}`, false},
		{"huge fixed version", `{"zlib": {"CVE-2023-45853": {"releases": {"bookworm": {"status": "resolved", "fixed_version": "1.` + huge + `"}}}}}`, false},
	}
	checkBadInput(t, DebianTracker{}, "bad.json", tests)
}

func FuzzDebianTrackerParse(f *testing.F) {
	f.Add([]byte(`{"zlib":{"CVE-2023-45853":{"releases":{"bookworm":{"status":"resolved","fixed_version":"1:1.3-1","urgency":"low"}}}}}`))
	for _, name := range []string{"debian/tracker-json-bookworm-minbase.json", trackerSample} {
		f.Add(vulndataFile(f, name))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		DebianTracker{}.Match("debian.json", data)
		res, err := DebianTracker{}.Parse("fuzz.json", data)
		if err != nil {
			return
		}
		checkParsed(t, res)
	})
}
