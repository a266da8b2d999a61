package policy

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/scangate/scangate/internal/scan"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestParseIgnoreFile(t *testing.T) {
	got, err := ParseIgnoreFile(readTestdata(t, "ignore.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Ignore{
		{ID: "CVE-2023-45853", Package: "zlib1g", Line: 2,
			Reason:  "minizip is not built; zlib1g does not ship the vulnerable code",
			Expires: time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC)},
		{ID: "CVE-2024-2961", PURL: "pkg:deb/debian/libc6?distro=debian-12", Image: "registry.example.com/app:*", Line: 7,
			Reason:  "iconv ISO-2022-CN-EXT is removed from the image's gconv modules",
			Expires: time.Date(2026, 6, 30, 12, 0, 0, 0, time.FixedZone("", 2*60*60))},
		{ID: "GHSA-4v7x-pqxf-cx7m", Reason: "HTTP/2 server is not exposed", Line: 13},
	}
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if !g.Expires.Equal(w.Expires) {
			t.Errorf("entry %d expires %v, want %v", i+1, g.Expires, w.Expires)
		}
		g.Expires, w.Expires = time.Time{}, time.Time{}
		if g != w {
			t.Errorf("entry %d:\n got %+v\nwant %+v", i+1, g, w)
		}
	}
}

func TestParseIgnoreFileEmpty(t *testing.T) {
	for _, in := range []string{"", "\n", "# nothing ignored\n", "---\n", "~\n", "[]\n", "--- []\n"} {
		got, err := ParseIgnoreFile([]byte(in))
		if err != nil || len(got) != 0 {
			t.Errorf("%q: %v, %v", in, got, err)
		}
	}
}

func TestParseIgnoreFileErrors(t *testing.T) {
	bomb := "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n" +
		"c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
	for _, tc := range []struct {
		name, in, want string
	}{
		{"typo", "- id: CVE-1\n  expire: 2026-01-01\n",
			`entry 1 (line 1): line 2: unknown field "expire" (fields are id, package, purl, image, reason, expires)`},
		{"no id", "- id: CVE-1\n- package: zlib1g\n  reason: x\n", "entry 2 (line 2): no id"},
		{"repeated field", "- id: CVE-1\n  id: CVE-2\n", `entry 1 (line 1): line 2: field "id" given twice`},
		{"list value", "- id: [CVE-1, CVE-2]\n", "entry 1 (line 1): line 1: id is a list, not a string"},
		{"mapping value", "- id: CVE-1\n  package: {name: zlib1g}\n", "package is a mapping, not a string"},
		{"empty value", "- id: CVE-1\n  expires:\n", "line 2: expires is empty"},
		{"bad date", "- id: CVE-1\n  expires: 31/12/2026\n", `expires: "31/12/2026" is not a date (2026-12-31) or an RFC 3339 time`},
		{"bad time", "- id: CVE-1\n  expires: 2026-12-31 10:00\n", "is not a date"},
		{"bad purl", "- id: CVE-1\n  purl: deb/debian/zlib1g\n", `purl: package URL does not start with "pkg:"`},
		{"bad id", "- id: CVE 1\n", `id: "CVE 1" is not a vulnerability ID`},
		{"package with space", "- id: CVE-1\n  package: zlib 1g\n", "is not a package name"},
		{"entry is scalar", "- CVE-1\n", "entry 1 (line 1): want a mapping with id:, found a scalar"},
		{"top-level mapping", "vulnerabilities:\n  - id: CVE-1\n", "line 1: want a list of entries (- id: CVE-…), found a mapping"},
		{"top-level scalar", "CVE-1\n", "found a scalar"},
		{"alias entry", "- &e {id: CVE-1}\n- *e\n", "entry 2 (line 2): YAML aliases are not allowed"},
		{"alias value", "- id: &i CVE-1\n- id: *i\n", "entry 2 (line 2): line 2: YAML aliases are not allowed"},
		{"merge key", "- &e {id: CVE-1}\n- <<: *e\n", "YAML aliases are not allowed"},
		{"alias bomb", bomb, "want a list of entries"},
		{"alias bomb in entry", "- id: CVE-1\n  reason: &a [x, x]\n- id: CVE-2\n  reason: [*a, *a]\n", "reason is a list"},
		{"two documents", "- id: CVE-1\n---\n- id: CVE-2\n", "more than one YAML document"},
		{"syntax", "- id: CVE-1\n  reason: [\n", "ignore file: yaml:"},
		{"long reason", "- id: CVE-1\n  reason: " + strings.Repeat("x", maxIgnoreReason+1) + "\n", "reason of 4097 bytes is longer than 4096"},
		{"too big", "#" + strings.Repeat("x", MaxIgnoreFileSize), "more than 1048576"},
		{"too many", strings.Repeat("- id: CVE-1\n", MaxIgnoreEntries+1), "10001 entries is more than 10000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseIgnoreFile([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want it to contain %q", err, tc.want)
			}
			if got != nil {
				t.Errorf("returned %v with the error", got)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "ignore file: ") {
				t.Errorf("error %q lacks context", err)
			}
		})
	}
}

func TestIgnoreScope(t *testing.T) {
	zlib := findIdx(t, testReport(), "CVE-2023-45853", pkgZlib)
	libssl := findIdx(t, testReport(), "CVE-2024-4741", pkgLibssl)
	openssl := findIdx(t, testReport(), "CVE-2024-4741", pkgOpenssl)
	xnet := findIdx(t, testReport(), "GHSA-4v7x-pqxf-cx7m", pkgXNet)
	for _, tc := range []struct {
		name   string
		ig     Ignore
		image  *scan.ImageInfo // replaces the report's
		noPURL bool            // drop the packages' package URLs
		want   []int           // suppressed findings
	}{
		{"id only", Ignore{ID: "CVE-2024-4741"}, nil, false, []int{libssl, openssl}},
		{"id without case", Ignore{ID: "cve-2024-4741"}, nil, false, []int{libssl, openssl}},
		{"alias", Ignore{ID: "CVE-2023-45288"}, nil, false, []int{xnet}},
		{"second alias", Ignore{ID: "GO-2024-2687"}, nil, false, []int{xnet}},
		{"alias of the Debian record", Ignore{ID: "DEBIAN-CVE-2023-45853"}, nil, false, []int{zlib}},
		{"other id", Ignore{ID: "CVE-2024-0001"}, nil, false, nil},
		{"package name", Ignore{ID: "CVE-2024-4741", Package: "libssl3"}, nil, false, []int{libssl}},
		{"source package of two", Ignore{ID: "CVE-2024-4741", Package: "openssl"}, nil, false, []int{libssl, openssl}},
		{"source package", Ignore{ID: "CVE-2023-45853", Package: "zlib"}, nil, false, []int{zlib}},
		{"package name is exact", Ignore{ID: "CVE-2024-4741", Package: "libssl"}, nil, false, nil},
		{"other package", Ignore{ID: "CVE-2024-4741", Package: "zlib1g"}, nil, false, nil},
		{"purl without version", Ignore{ID: "CVE-2024-4741", PURL: "pkg:deb/debian/libssl3"}, nil, false, []int{libssl}},
		{"purl is not a prefix match", Ignore{ID: "CVE-2023-45853", PURL: "pkg:deb/debian/zlib"}, nil, false, nil},
		{"purl with the version", Ignore{ID: "CVE-2023-45853", PURL: "pkg:deb/debian/zlib1g@1%3A1.2.13.dfsg-1"}, nil, false, []int{zlib}},
		{"purl with an unescaped version", Ignore{ID: "CVE-2023-45853", PURL: "pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1"}, nil, false, []int{zlib}},
		{"purl with another version", Ignore{ID: "CVE-2023-45853", PURL: "pkg:deb/debian/zlib1g@1:1.3.dfsg-1"}, nil, false, nil},
		{"purl qualifier", Ignore{ID: "CVE-2024-4741", PURL: "pkg:deb/debian/openssl?arch=amd64"}, nil, false, []int{openssl}},
		{"purl other qualifier", Ignore{ID: "CVE-2024-4741", PURL: "pkg:deb/debian/openssl?arch=arm64"}, nil, false, nil},
		{"purl unknown qualifier", Ignore{ID: "CVE-2024-4741", PURL: "pkg:deb/debian/openssl?epoch=1"}, nil, false, nil},
		{"purl type without case", Ignore{ID: "CVE-2024-4741", PURL: "pkg:DEB/Debian/OpenSSL"}, nil, false, []int{openssl}},
		{"purl other type", Ignore{ID: "CVE-2024-4741", PURL: "pkg:rpm/debian/openssl"}, nil, false, nil},
		{"purl of Go module", Ignore{ID: "CVE-2023-45288", PURL: "pkg:golang/golang.org/x/net"}, nil, false, []int{xnet}},
		{"purl but package has none", Ignore{ID: "CVE-2024-4741", PURL: "pkg:deb/debian/openssl"}, nil, true, nil},
		{"package and purl both hold", Ignore{ID: "CVE-2024-4741", Package: "openssl", PURL: "pkg:deb/debian/openssl"}, nil, false, []int{openssl}},
		{"package and purl disagree", Ignore{ID: "CVE-2024-4741", Package: "libssl3", PURL: "pkg:deb/debian/openssl"}, nil, false, nil},
		{"image repository", Ignore{ID: "CVE-2024-4741", Image: "registry.example.com/app"}, nil, false, []int{libssl, openssl}},
		{"image tag glob", Ignore{ID: "CVE-2024-4741", Image: "registry.example.com/app:1.*"}, nil, false, []int{libssl, openssl}},
		{"image other tag", Ignore{ID: "CVE-2024-4741", Image: "registry.example.com/app:2.*"}, nil, false, nil},
		{"image path glob", Ignore{ID: "CVE-2024-4741", Image: "registry.example.com/*"}, nil, false, []int{libssl, openssl}},
		{"image other repository", Ignore{ID: "CVE-2024-4741", Image: "registry.example.com/app2"}, nil, false, nil},
		{"image digest", Ignore{ID: "CVE-2024-4741", Image: "*@" + testDigest}, nil, false, []int{libssl, openssl}},
		{"image config digest", Ignore{ID: "CVE-2024-4741", Image: testConfig}, nil, false, []int{libssl, openssl}},
		{"image of an archive", Ignore{ID: "CVE-2024-4741", Image: "docker-archive:*"},
			&scan.ImageInfo{Ref: "docker-archive:app.tar", ConfigDigest: testConfig}, false, []int{libssl, openssl}},
		{"image scope but no name", Ignore{ID: "CVE-2024-4741", Image: "registry.example.com/*"},
			&scan.ImageInfo{Ref: "docker-archive:app.tar", ConfigDigest: testConfig}, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := testReport()
			if tc.image != nil {
				r.Image = *tc.image
			}
			if tc.noPURL {
				for i := range r.Packages {
					r.Packages[i].PURL = ""
				}
			}
			Evaluate(r, Policy{Ignores: []Ignore{tc.ig}}, testNow)
			var got []int
			for i, f := range r.Findings {
				if f.Suppressed != nil {
					got = append(got, i)
					if f.Suppressed.Kind != KindIgnoreFile || f.Suppressed.Reason != "listed in the ignore file" {
						t.Errorf("suppression %+v", f.Suppressed)
					}
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("suppressed %v, want %v", got, tc.want)
			}
		})
	}
}

func TestIgnoreExpiry(t *testing.T) {
	expires := time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)
	entry := Ignore{ID: "CVE-2024-4741", Package: "libssl3", Reason: "accepted until the next point release", Expires: expires, Line: 4}
	for _, tc := range []struct {
		name       string
		now        time.Time
		suppressed bool
		notes      []string
	}{
		{"well before", expires.AddDate(0, -1, 0), true, []string{
			"suppressed 1 finding: 1 by the ignore file"}},
		{"a week before", expires.AddDate(0, 0, -7).Add(-time.Hour), true, []string{
			"ignore entry for CVE-2024-4741 (package libssl3, line 4) expires 2026-03-10, in 8 days; 1 finding will count again",
			"suppressed 1 finding: 1 by the ignore file"}},
		{"a second before", expires.Add(-time.Second), true, []string{
			"ignore entry for CVE-2024-4741 (package libssl3, line 4) expires 2026-03-10, in 1 day; 1 finding will count again",
			"suppressed 1 finding: 1 by the ignore file"}},
		{"at expiry", expires, false, []string{
			"ignore entry for CVE-2024-4741 (package libssl3, line 4) expired 2026-03-10; it no longer applies (1 finding counts again)"}},
		{"after", expires.AddDate(1, 0, 0), false, []string{
			"ignore entry for CVE-2024-4741 (package libssl3, line 4) expired 2026-03-10; it no longer applies (1 finding counts again)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := testReport()
			d := Evaluate(r, Policy{Ignores: []Ignore{entry}, Thresholds: map[string]int{"HIGH": 4}}, tc.now)
			f := r.Findings[findIdx(t, r, "CVE-2024-4741", pkgLibssl)]
			if (f.Suppressed != nil) != tc.suppressed {
				t.Fatalf("suppressed %+v, want %v", f.Suppressed, tc.suppressed)
			}
			if tc.suppressed && (f.Suppressed.Reason != entry.Reason || !f.Suppressed.Expires.Equal(expires)) {
				t.Errorf("suppression %+v", f.Suppressed)
			}
			if !reflect.DeepEqual(d.Notes, tc.notes) {
				t.Errorf("notes:\n%s\nwant:\n%s", strings.Join(d.Notes, "\n"), strings.Join(tc.notes, "\n"))
			}
		})
	}
}

func TestIgnoreExpiredNoteWithoutMatches(t *testing.T) {
	// An expired entry is reported even where it matches nothing, so that
	// stale entries get cleaned up; RFC 3339 expiries print as given.
	exp := time.Date(2026, 1, 1, 9, 30, 0, 0, time.UTC)
	d := Evaluate(testReport(), Policy{Ignores: []Ignore{{ID: "CVE-2000-0001", Expires: exp}}}, testNow)
	want := "ignore entry for CVE-2000-0001 expired 2026-01-01T09:30:00Z; it no longer applies"
	if len(d.Notes) == 0 || d.Notes[0] != want {
		t.Errorf("notes %q, want %q first", d.Notes, want)
	}
}

func TestIgnoreLongestLastingWins(t *testing.T) {
	r := testReport()
	soon := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	later := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		ignores []Ignore
		reason  string
		expires time.Time
	}{
		{"later expiry", []Ignore{{ID: "CVE-2024-2511", Reason: "a", Expires: soon}, {ID: "CVE-2024-2511", Reason: "b", Expires: later}}, "b", later},
		{"never", []Ignore{{ID: "CVE-2024-2511", Reason: "a", Expires: soon}, {ID: "CVE-2024-2511", Reason: "b"}}, "b", time.Time{}},
		{"first of equals", []Ignore{{ID: "CVE-2024-2511", Reason: "a"}, {ID: "CVE-2024-2511", Reason: "b"}}, "a", time.Time{}},
		{"expired one skipped", []Ignore{{ID: "CVE-2024-2511", Reason: "a", Expires: testNow}, {ID: "CVE-2024-2511", Reason: "b", Expires: soon}}, "b", soon},
	} {
		Evaluate(r, Policy{Ignores: tc.ignores}, testNow)
		s := r.Findings[findIdx(t, r, "CVE-2024-2511", pkgLibssl)].Suppressed
		if s == nil || s.Reason != tc.reason || !s.Expires.Equal(tc.expires) {
			t.Errorf("%s: %+v, want reason %q expiring %v", tc.name, s, tc.reason, tc.expires)
		}
	}
}

func TestGlobMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, name string
		want          bool
	}{
		{"", "", true},
		{"*", "", true},
		{"*", "registry.example.com/team/app:1", true},
		{"app", "app", true},
		{"app", "app:1", false},
		{"app*", "app:1", true},
		{"app:?", "app:1", true},
		{"app:?", "app:10", false},
		{"*/app:*", "localhost:5000/app:1", true},
		{"*app*app*", "appxapp", true},
		{"*app*app*", "appxap", false},
		{"a*b*c", "abbbc", true},
		{"a*b*c", "abbbcd", false},
		{"é?", "éé", true},
		{"**", "x", true},
	} {
		if got := globMatch(tc.pattern, tc.name); got != tc.want {
			t.Errorf("globMatch(%q, %q) = %v", tc.pattern, tc.name, got)
		}
	}
}

func FuzzParseIgnoreFile(f *testing.F) {
	f.Add(readTestdata(f, "ignore.yaml"))
	for _, s := range []string{
		"", "[]", "- id: CVE-1\n", "- &e {id: CVE-1}\n- *e\n", "- id: CVE-1\n  expires: 2026-01-01T00:00:00+01:00\n",
		"- id: CVE-1\n  purl: pkg:npm/%40types/node@1?x=y#a/b\n", "- id: CVE-1\n  image: '*'\n",
		"a: &a [x, x]\nb: [*a, *a]\n", "- {id: !!binary aGVsbG8=}\n", "- id: 1\n  reason: |\n    multi\n    line\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ParseIgnoreFile(data)
		if err != nil {
			if got != nil {
				t.Fatalf("entries %v with error %v", got, err)
			}
			return
		}
		p := Policy{Ignores: got, Thresholds: map[string]int{"HIGH": 0}}
		if err := p.Validate(); err != nil {
			t.Fatalf("parsed entries do not validate: %v", err)
		}
		for _, ig := range got {
			if ig.ID == "" || ig.Line <= 0 {
				t.Fatalf("entry %+v", ig)
			}
		}
		d := Evaluate(testReport(), p, testNow)
		_ = d.Summary()
	})
}
