package feed

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/scangate/scangate/internal/vulndb"
)

func TestGHSAParseFiles(t *testing.T) {
	tests := []struct {
		file, cve, pkg, ranges, severities, published, modified string
	}{
		{"GHSA-29mw-wpgm-hmr9.json", "CVE-2020-28500", "lodash",
			"ECOSYSTEM >=4.0.0 <4.17.21",
			"ghsa GHSA MEDIUM; ghsa CVSS_V3.1 5.3 MEDIUM", "2022-01-06T20:30:46Z", "2025-09-29T20:19:46Z"},
		{"GHSA-35jh-r3h4-6jhm.json", "CVE-2021-23337", "lodash",
			"ECOSYSTEM >=0 <4.17.21",
			"ghsa GHSA HIGH; ghsa CVSS_V3.1 7.2 HIGH", "2021-05-06T16:05:51Z", "2024-02-14T18:59:10Z"},
		{"GHSA-6fc8-4gx4-v693.json", "CVE-2021-32640", "ws",
			"ECOSYSTEM >=5.0.0 <5.2.3; ECOSYSTEM >=6.0.0 <6.2.2; ECOSYSTEM >=7.0.0 <7.4.6",
			"ghsa GHSA MEDIUM; ghsa CVSS_V3.1 5.3 MEDIUM", "2021-05-28T19:19:03Z", "2023-02-03T05:02:42Z"},
		{"GHSA-c2qf-rxjj-qqgw.json", "CVE-2022-25883", "semver",
			"ECOSYSTEM >=7.0.0 <7.5.2; ECOSYSTEM >=0 <5.7.2; ECOSYSTEM >=6.0.0 <6.3.1",
			"ghsa GHSA HIGH; ghsa CVSS_V3.1 7.5 HIGH", "2023-06-21T06:30:28Z", "2024-12-06T20:34:33Z"},
		{"GHSA-hrpp-h998-j3pp.json", "CVE-2022-24999", "qs",
			"ECOSYSTEM >=0 <6.2.4; ECOSYSTEM >=6.3.0 <6.3.3; ECOSYSTEM >=6.4.0 <6.4.1; ECOSYSTEM >=6.5.0 <6.5.3; " +
				"ECOSYSTEM >=6.6.0 <6.6.1; ECOSYSTEM >=6.7.0 <6.7.3; ECOSYSTEM >=6.8.0 <6.8.3; ECOSYSTEM >=6.9.0 <6.9.7; ECOSYSTEM >=6.10.0 <6.10.3",
			"ghsa GHSA HIGH; ghsa CVSS_V3.1 7.5 HIGH", "2022-11-27T00:30:50Z", "2025-04-29T15:41:45Z"},
		{"GHSA-jf85-cpcp-j695.json", "CVE-2019-10744", "lodash",
			"ECOSYSTEM >=0 <4.17.12",
			"ghsa GHSA CRITICAL; ghsa CVSS_V3.1 9.1 CRITICAL", "2019-07-10T19:45:23Z", "2024-04-22T19:49:44Z"},
		{"GHSA-p6mc-m468-83gw.json", "CVE-2020-8203", "lodash",
			"ECOSYSTEM >=3.7.0 <4.17.19",
			"ghsa GHSA HIGH; ghsa CVSS_V3.1 7.4 HIGH", "2020-07-15T19:15:48Z", "2025-08-12T21:43:40Z"},
		{"GHSA-r683-j2x4-v87g.json", "CVE-2022-0235", "node-fetch",
			"ECOSYSTEM >=0 <2.6.7; ECOSYSTEM >=3.0.0 <3.1.1",
			"ghsa GHSA HIGH; ghsa CVSS_V3.0 8.8 HIGH", "2022-01-21T23:55:52Z", "2023-11-29T22:08:39Z"},
		{"GHSA-vh95-rmgr-6w4m.json", "CVE-2020-7598", "minimist",
			"ECOSYSTEM >=1.0.0 <1.2.3; ECOSYSTEM >=0 <0.2.1",
			"ghsa GHSA MEDIUM; ghsa CVSS_V3.1 5.6 MEDIUM", "2020-04-03T21:48:32Z", "2024-02-13T20:00:55Z"},
		{"GHSA-xvch-5gv4-984h.json", "CVE-2021-44906", "minimist",
			"ECOSYSTEM >=1.0.0 <1.2.6; ECOSYSTEM >=0 <0.2.4",
			"ghsa GHSA CRITICAL; ghsa CVSS_V3.1 9.8 CRITICAL", "2022-03-18T00:01:09Z", "2024-01-12T20:16:56Z"},
	}
	// testdata/vulndata/ghsa keeps vuln-list's layout, <package>/GHSA-*.json.
	files, _ := filepath.Glob(vulndata("ghsa/*/*.json"))
	if len(files) != len(tests) {
		t.Errorf("%d files in testdata/vulndata/ghsa, %d tests", len(files), len(tests))
	}
	paths := map[string]string{}
	for _, file := range files {
		paths[filepath.Base(file)] = file
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			if paths[tt.file] == "" {
				t.Fatalf("%s not in testdata/vulndata/ghsa", tt.file)
			}
			data, err := os.ReadFile(paths[tt.file])
			if err != nil {
				t.Fatal(err)
			}
			if !(GHSA{}).Match(tt.file, data) || !(GHSA{}).Match(tt.file, data[:512]) {
				t.Errorf("Match(%s) = false, want true", tt.file)
			}
			if (OSV{}).Match(tt.file, data) {
				t.Errorf("OSV claims %s", tt.file)
			}
			a, skipped := osvParseOne(t, GHSA{}, tt.file, data)
			if len(skipped) != 0 {
				t.Errorf("skipped %+v, want nothing", skipped)
			}
			id := strings.TrimSuffix(tt.file, ".json")
			if a.ID != id || a.Feed != "ghsa:npm" || !reflect.DeepEqual(a.Aliases, []string{tt.cve}) {
				t.Errorf("ID, Feed, Aliases = %q, %q, %q; want %q, ghsa:npm, [%s]", a.ID, a.Feed, a.Aliases, id, tt.cve)
			}
			if a.Summary == "" || a.Details == "" || a.IsWithdrawn() {
				t.Errorf("Summary %q, Details %.20q, Withdrawn %v", a.Summary, a.Details, a.Withdrawn)
			}
			if osvFormatTime(a.Published) != tt.published || osvFormatTime(a.Modified) != tt.modified {
				t.Errorf("Published, Modified = %v, %v; want %s, %s", a.Published, a.Modified, tt.published, tt.modified)
			}
			if !strings.HasSuffix(a.References[len(a.References)-1], "/advisories/"+id) {
				t.Errorf("last reference %q, want GitHub's advisory page", a.References[len(a.References)-1])
			}
			if len(a.Affected) != 1 || a.Affected[0].Ecosystem != "npm" || a.Affected[0].Package != tt.pkg {
				t.Fatalf("affected %+v, want one for npm %s", a.Affected, tt.pkg)
			}
			if got := osvRanges(a.Affected[0].Ranges); got != tt.ranges {
				t.Errorf("ranges\n%s\nwant\n%s", got, tt.ranges)
			}
			if got := osvSeverities(a.Severities); got != tt.severities {
				t.Errorf("severities %q, want %q", got, tt.severities)
			}
		})
	}
}

// ghsaDoc is a vuln-list GHSA file with the given ecosystem, package, CVSS
// vector and Versions entries.
func ghsaDoc(eco, pkg, vector, withdrawn string, versions ...string) string {
	var vs []string
	for _, v := range versions {
		rng, patched, _ := strings.Cut(v, "|")
		fpv := "null"
		if patched != "" {
			fpv = `{"Identifier": "` + patched + `"}`
		}
		vs = append(vs, `{"FirstPatchedVersion": `+fpv+`, "VulnerableVersionRange": "`+rng+`"}`)
	}
	return `{"Severity": "LOW", "UpdatedAt": "2024-01-01T00:00:00Z",
		"Package": {"Ecosystem": "` + eco + `", "Name": "` + pkg + `"},
		"Advisory": {"GhsaId": "GHSA-xxxx-yyyy-zzzz",
			"Identifiers": [{"Type": "GHSA", "Value": "GHSA-xxxx-yyyy-zzzz"}, {"Type": "CVE", "Value": "CVE-2024-1"}],
			"PublishedAt": "2024-01-01T00:00:00Z", "WithdrawnAt": "` + withdrawn + `",
			"CVSS": {"Score": 0, "VectorString": "` + vector + `"}},
		"Versions": [` + strings.Join(vs, ", ") + `]}`
}

func TestGHSAParseRecord(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		feed       string
		pkg        string
		ranges     string
		versions   []string
		severities string
		withdrawn  bool
		skips      []string // substrings of each Skip.Reason, in order
	}{
		{
			name: "all operators",
			in:   ghsaDoc("PIP", "Django_REST.framework", "", "", "< 1.0|1.0", ">= 2.0, <= 2.5|2.6", ">= 3.0", "= 0.5", "<= 0.1"),
			feed: "ghsa:PyPI", pkg: "django-rest-framework",
			ranges:     "ECOSYSTEM >=0 <1.0; ECOSYSTEM >=2.0 <=2.5; ECOSYSTEM >=3.0; ECOSYSTEM >=0 <=0.1",
			versions:   []string{"0.5"},
			severities: "ghsa GHSA LOW",
		},
		{
			name: "range bound wins over FirstPatchedVersion",
			in:   ghsaDoc("GO", "example.com/m", "", "", ">= 1.0.0, < 1.2.3|1.2.4", "< 0.9.0|", ">= 2.0.0|2.0.1"),
			feed: "ghsa:Go", pkg: "example.com/m",
			ranges:     "ECOSYSTEM >=1.0.0 <1.2.3; ECOSYSTEM >=0 <0.9.0; ECOSYSTEM >=2.0.0",
			severities: "ghsa GHSA LOW",
		},
		{
			name: "exclusive lower bound is skipped",
			in:   ghsaDoc("RUST", "smallvec", "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", "", "> 1.0, < 2.0", "< 0.5"),
			feed: "ghsa:crates.io", pkg: "smallvec",
			ranges:     "ECOSYSTEM >=0 <0.5",
			severities: "ghsa GHSA LOW; ghsa CVSS_V4.0 9.3 CRITICAL",
			skips:      []string{`"> 1.0, < 2.0": "> v" excludes v`},
		},
		{
			name: "bad vector is dropped, withdrawn kept",
			in:   ghsaDoc("MAVEN", "org.x:y", "CVSS:3.1/AV:N/AC:Q", "2024-02-01T00:00:00Z", "< 1"),
			feed: "ghsa:Maven", pkg: "org.x:y",
			ranges:     "ECOSYSTEM >=0 <1",
			severities: "ghsa GHSA LOW",
			withdrawn:  true,
			skips:      []string{`CVSS:3.1/AV:N/AC:Q`},
		},
		{
			name:  "nothing usable",
			in:    ghsaDoc("NPM", "x", "", "", "> 1.0", "garbage"),
			skips: []string{`"> 1.0"`, `"garbage" is not an operator and a version`, "no usable vulnerable version range"},
		},
		{
			name:  "no versions",
			in:    ghsaDoc("NPM", "x", "", ""),
			skips: []string{"no usable vulnerable version range"},
		},
		{
			name:  "unknown ecosystem",
			in:    ghsaDoc("ACTIONS", "actions/checkout", "", "", "< 2"),
			skips: []string{`unknown GitHub ecosystem "ACTIONS"`},
		},
		{
			name:  "no package name",
			in:    ghsaDoc("NPM", "", "", "", "< 2"),
			skips: []string{"no package name"},
		},
		{
			name:  "bad time",
			in:    ghsaDoc("NPM", "x", "", "soon", "< 2"),
			skips: []string{`withdrawn time "soon"`},
		},
		{
			name:  "no id",
			in:    `{"Package": {"Ecosystem": "NPM", "Name": "x"}, "Advisory": {}, "Versions": []}`,
			skips: []string{"no GhsaId"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := (GHSA{}).Parse("rec.json", []byte(tt.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(res.Skipped) != len(tt.skips) {
				t.Fatalf("skipped %+v, want %d", res.Skipped, len(tt.skips))
			}
			for i, s := range res.Skipped {
				if !strings.Contains(s.Reason, tt.skips[i]) || s.File != "rec.json" {
					t.Errorf("skip %+v, want reason with %q", s, tt.skips[i])
				}
			}
			if tt.feed == "" {
				if len(res.Advisories) != 0 {
					t.Fatalf("got %d advisories, want none", len(res.Advisories))
				}
				return
			}
			if len(res.Advisories) != 1 {
				t.Fatalf("got %d advisories, want 1", len(res.Advisories))
			}
			a := res.Advisories[0]
			if a.ID != "GHSA-xxxx-yyyy-zzzz" || a.Feed != tt.feed || !reflect.DeepEqual(a.Aliases, []string{"CVE-2024-1"}) {
				t.Errorf("ID, Feed, Aliases = %q, %q, %q", a.ID, a.Feed, a.Aliases)
			}
			if a.IsWithdrawn() != tt.withdrawn {
				t.Errorf("withdrawn %v, want %v", a.Withdrawn, tt.withdrawn)
			}
			if len(a.Affected) != 1 {
				t.Fatalf("%d affected, want 1", len(a.Affected))
			}
			af := a.Affected[0]
			if af.Package != tt.pkg || osvRanges(af.Ranges) != tt.ranges || !reflect.DeepEqual(af.Versions, tt.versions) {
				t.Errorf("affected %s %q %q, want %s %q %q", af.Package, osvRanges(af.Ranges), af.Versions, tt.pkg, tt.ranges, tt.versions)
			}
			if got := osvSeverities(a.Severities); got != tt.severities {
				t.Errorf("severities %q, want %q", got, tt.severities)
			}
		})
	}
}

func TestGHSARange(t *testing.T) {
	tests := []struct {
		in, ranges, exact string
		err               error // nil, errGHSAExclusive, or errOther
	}{
		{"< 4.17.21", "ECOSYSTEM >=0 <4.17.21", "", nil},
		{">= 7.0.0, < 7.5.2", "ECOSYSTEM >=7.0.0 <7.5.2", "", nil},
		{"<7.5.2 , >=7.0.0", "ECOSYSTEM >=7.0.0 <7.5.2", "", nil},
		{"<= 1.2", "ECOSYSTEM >=0 <=1.2", "", nil},
		{">= 1.2", "ECOSYSTEM >=1.2", "", nil},
		{">= 0", "ECOSYSTEM >=0", "", nil},
		{"= 1.0.0-beta.1", "", "1.0.0-beta.1", nil},
		{"> 1.2", "", "", errGHSAExclusive},
		{">= 1.0, > 1.2", "", "", errGHSAExclusive},
		{"", "", "", errOther},
		{"1.2.3", "", "", errOther},
		{"< 1, < 2", "", "", errOther},
		{">= 1, >= 2", "", "", errOther},
		{"= 1, < 2", "", "", errOther},
		{"= 1, = 2", "", "", errOther},
		{"== 1", "", "", errOther},
		{"=> 1", "", "", errOther},
		{"!= 1", "", "", errOther},
		{"< 1 2", "", "", errOther},
		{"<", "", "", errOther},
		{"< 1,", "", "", errOther},
	}
	for _, tt := range tests {
		r, exact, err := ghsaRange(tt.in)
		switch {
		case tt.err == nil && err != nil:
			t.Errorf("ghsaRange(%q): %v", tt.in, err)
		case tt.err == errGHSAExclusive && !errors.Is(err, errGHSAExclusive):
			t.Errorf("ghsaRange(%q) error %v, want %v", tt.in, err, errGHSAExclusive)
		case tt.err == errOther && err == nil:
			t.Errorf("ghsaRange(%q) = %+v, %q; want an error", tt.in, r, exact)
		case tt.err == nil && (exact != tt.exact || tt.exact == "" && osvRanges([]vulndb.Range{r}) != tt.ranges):
			t.Errorf("ghsaRange(%q) = %q, %q; want %q, %q", tt.in, osvRanges([]vulndb.Range{r}), exact, tt.ranges, tt.exact)
		}
	}
}

var errOther = errors.New("any error")

func TestGHSAParseErrors(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{`{"Advisory": {`, "unexpected end"},
		{`[]`, "not a JSON object"},
		{`null`, "not a JSON object"},
		{"Advisory: {}\n", "not a JSON object"},
		{`{"Advisory": [], "Package": {}, "Versions": []}`, "cannot unmarshal"},
		{`{"Advisory": {}, "Package": {}, "Versions": {"VulnerableVersionRange": "< 1"}}`, "cannot unmarshal"},
		{`{"Advisory": {"GhsaId": 7}}`, "cannot unmarshal"},
	}
	for _, tt := range tests {
		res, err := (GHSA{}).Parse("bad.json", []byte(tt.in))
		if err == nil {
			t.Errorf("Parse(%q) = %+v, want an error", tt.in, res)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "ghsa bad.json: ") {
			t.Errorf("Parse(%q) error %q, want one naming bad.json and saying %q", tt.in, err, tt.want)
		}
	}
}

func TestGHSAParseOddStrings(t *testing.T) {
	huge := strings.Repeat("<", 4<<20)
	tests := []string{
		ghsaDoc("NPM", "x", "", "", huge),
		ghsaDoc("NPM", "x", "", "", strings.Repeat("< 1, ", 100000)+"< 1"),
		ghsaDoc("NPM", strings.Repeat("\xff", 1<<20), strings.Repeat("A", 1<<20), "", "< 1"),
		ghsaDoc("NPM", "x\\u0000", "CVSS:3.1/\\u0000", "", "= \\u0000"),
		strings.Replace(ghsaDoc("NPM", "x", "", "", "< 1"), "GHSA-xxxx-yyyy-zzzz\"", strings.Repeat("G", 1<<20)+`"`, 1),
	}
	for i, in := range tests {
		res, err := (GHSA{}).Parse("odd.json", []byte(in))
		if err != nil {
			t.Errorf("%d: Parse: %v", i, err)
			continue
		}
		if len(res.Advisories)+len(res.Skipped) == 0 {
			t.Errorf("%d: no advisory and no skip", i)
		}
		for _, s := range res.Skipped {
			if len(s.Reason) > 1000 {
				t.Errorf("%d: skip reason of %d bytes", i, len(s.Reason))
			}
		}
		osvCheckResult(t, res)
	}
}

func TestGHSAMatch(t *testing.T) {
	tests := []struct {
		head string
		want bool
	}{
		{`{"Severity": "HIGH", "Package": {}, "Advisory": {}, "Versions": []}`, true},
		{`{"Severity": "HIGH", "Package": {}, "Advisory": {"Description": "long`, true}, // cut short
		{`{"Severity": "HIGH", "Package": {}, "Advisory": {}}`, false},
		{`{"Package": {}, "Versions": []}`, false},
		{`{"id": "GHSA-1", "modified": "x", "affected": []}`, false},
		{`[{"Package": {}, "Advisory": {}, "Versions": []}]`, false},
		{"Package: {}\nAdvisory: {}\nVersions: []\n", false},
	}
	for _, tt := range tests {
		if got := (GHSA{}).Match("x.json", []byte(tt.head)); got != tt.want {
			t.Errorf("Match(%q) = %v, want %v", tt.head, got, tt.want)
		}
	}
}

// TestGHSAMatchOthers checks that GHSA claims no other format's file in the
// repository's upstream data: every file of testdata/vulndata outside ghsa/,
// and the entries of its OSV zips (one in 20 of the Go database's records,
// which are all alike, and every other entry).
func TestGHSAMatchOthers(t *testing.T) {
	n := 0
	check := func(name, where string, head []byte) {
		n++
		if (GHSA{}).Match(name, head) {
			t.Errorf("GHSA claims %s", where)
		}
	}
	ghsa := vulndata("ghsa") + string(filepath.Separator)
	var zips []string
	vulndataWalk(t, func(file string, d fs.DirEntry) {
		switch {
		case strings.HasPrefix(file, ghsa):
		case strings.HasSuffix(file, ".zip"):
			zips = append(zips, file)
		default:
			head, err := osvHead(file)
			if err != nil {
				t.Fatal(err)
			}
			check(d.Name(), file, head)
		}
	}, ".")
	if len(zips) != 2 {
		t.Errorf("zips %q, want go-vulndb.zip and pypa-advisory-database.zip", zips)
	}
	records := 0
	for _, z := range zips {
		vulndataZip(t, filepath.Base(z), func(name string, data []byte) {
			if strings.HasPrefix(name, "data/osv/") {
				records++
				if records%20 != 1 {
					return
				}
			}
			check(path.Base(name), z+":"+name, data[:min(len(data), 4096)])
		})
	}
	// 59 files outside ghsa/ and the zips (NOTICE.md; alpine/ 3, debian/ 3,
	// formats/ 22, go-demo/ 4, npm/ 3, nvd/ 23), the zips' 4 other entries
	// (LICENSE twice, NOTICES, .id-allocator), 240 of the 4,789 Go records and
	// the 2,661 PyPA records. The shared data set this test used to walk also
	// held Node.js security-wg advisories and Debian tracker lists, which the
	// repository does not carry.
	// At least these: new fixtures may add more.
	if want := 59 + 4 + 240 + 2661; n < want {
		t.Errorf("checked %d files, want at least %d", n, want)
	}
}

func FuzzGHSAParse(f *testing.F) {
	seeds, err := filepath.Glob(vulndata("ghsa/*/*.json"))
	if err != nil || len(seeds) == 0 {
		f.Fatalf("no seeds: %v", err)
	}
	for _, path := range seeds {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(ghsaDoc("PIP", "X_y", "CVSS:3.0/AV:N", "", "> 1", "= 2", "<= 3|4", ">= 1, < 2")))
	f.Fuzz(func(t *testing.T, data []byte) {
		(GHSA{}).Match("fuzz.json", data)
		res, err := (GHSA{}).Parse("fuzz.json", data)
		if err != nil {
			if len(res.Advisories) != 0 {
				t.Fatalf("error %v with advisories", err)
			}
			return
		}
		osvCheckResult(t, res)
		for _, a := range res.Advisories {
			if a.Feed != "ghsa:"+a.Affected[0].Ecosystem || len(a.Affected) != 1 || len(a.Affected[0].Ranges)+len(a.Affected[0].Versions) == 0 {
				t.Fatalf("%s: affected %+v, want one with ranges or versions", a.ID, a.Affected)
			}
		}
	})
}
