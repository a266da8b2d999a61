package feed

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestNVDMatch(t *testing.T) {
	tests := []struct {
		name, head string
		want       bool
	}{
		{"full page", string(vulndataFile(t, nvdFullPage)), true},
		{"single-entry page", string(vulndataFile(t, nvdSingleEntry)), true},
		{"cve object", string(vulndataFile(t, "nvd/CVE-2023-45853.json")), true},
		{"page without format", `{"resultsPerPage": 0, "startIndex": 0, "totalResults": 0, "vulnerabilities": []}`, true},
		{"cve object cut short", `{"id": "CVE-2023-45853", "sourceIdentifier": "cve@mitre.org", "published": "2023-`, true},
		{"cve id without sourceIdentifier", `{"id": "CVE-2023-45853", "modified": "2023-10-14T02:15:09Z", "affected": []}`, false},
		{"cve id not a string", `{"id": 12, "sourceIdentifier": "x"}`, false},
		{"other NVD API", `{"resultsPerPage": 1, "format": "NVD_CPE", "products": []}`, false},
		{"debian tracker", string(vulndataFile(t, trackerSample)), false},
		{"wolfi secdb", string(vulndataFile(t, wolfiSample)), false},
		{"osv", string(testdataFile(t, "osv/GO-2022-1059.json")), false},
		{"array", `[{"format": "NVD_CVE"}]`, false},
	}
	for _, tt := range tests {
		if got := (NVD{}).Match("x.json", []byte(tt.head)); got != tt.want {
			t.Errorf("%s: Match = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestFeedDetection checks that among all formats, each of these
// parsers' upstream files is claimed by its own, as an import detects it.
func TestFeedDetection(t *testing.T) {
	want := map[string][]string{
		"debian": {"debian", "formats/debian"},
		"alpine": {"alpine", "formats/alpine"},
		"nvd":    {"nvd", "formats/nvd"},
		"ghsa":   {"ghsa"},
	}
	for format, dirs := range want {
		n := 0
		vulndataWalk(t, func(path string, d fs.DirEntry) {
			name := d.Name()
			if !strings.HasSuffix(name, ".json") && !strings.HasSuffix(name, ".yaml") {
				return
			}
			n++
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			f := detect(name, data)
			if f == nil || f.Name() != format {
				t.Errorf("%s detected as %v, want %s", path, f, format)
			}
		}, dirs...)
		if n == 0 {
			t.Errorf("no %s file in %v", format, dirs)
		}
	}
}

// TestNVDUpstreamFiles parses every NVD file of the repository's upstream
// data: the cve objects of nvd/ and the API response pages of formats/nvd.
func TestNVDUpstreamFiles(t *testing.T) {
	n := 0
	vulndataWalk(t, func(path string, d fs.DirEntry) {
		if !strings.HasSuffix(path, ".json") {
			return
		}
		n++
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !(NVD{}).Match(d.Name(), data[:min(len(data), 4096)]) {
			t.Errorf("%s: not recognised", path)
		}
		res, err := NVD{}.Parse(path, data)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			return
		}
		if len(res.Advisories) == 0 || len(res.Skipped) != 0 {
			t.Errorf("%s: %d advisories, skipped %v", path, len(res.Advisories), res.Skipped)
			return
		}
		for _, a := range res.Advisories {
			// Records awaiting analysis may have no metrics yet.
			if a.Feed != "nvd" || a.Summary == "" || a.Published.IsZero() || a.Modified.IsZero() || len(a.Affected) != 0 {
				t.Errorf("%s: %s incomplete: %+v", path, a.ID, a)
			}
		}
		if strings.HasPrefix(d.Name(), "CVE-") && res.Advisories[0].ID+".json" != d.Name() {
			t.Errorf("%s: id %s", path, res.Advisories[0].ID)
		}
	}, "nvd", "formats/nvd")
	if n != 25 {
		t.Errorf("found %d NVD files, want 25", n)
	}
}

func TestNVDRecords(t *testing.T) {
	tests := []struct {
		file, id            string
		published, modified string
		summary             string
		severities          []string
		refs                int
	}{
		{"nvd/CVE-2023-45853.json", "CVE-2023-45853", "2023-10-14T02:15:09.323Z", "2024-08-01T13:44:58.99Z", "MiniZip in zlib through 1.3 has an integer overflow",
			[]string{"nvd@nist.gov CVSS_V3.1 9.8 CRITICAL primary", "134c704f-9b21-4f2e-91b3-4a467353bcc0 CVSS_V3.1 8.8 HIGH"}, 11},
		{"nvd/CVE-2005-2541.json", "CVE-2005-2541", "2005-08-10T04:00:00Z", "2024-11-20T23:59:47.53Z", "Tar 1.15.1 does not properly warn",
			[]string{"nvd@nist.gov CVSS_V2 10.0 HIGH primary"}, 2}, // 4 references, 2 distinct URLs
		{"nvd/CVE-2016-2781.json", "CVE-2016-2781", "2017-02-07T15:59:00.333Z", "2026-05-13T00:24:29.033Z", "chroot in GNU coreutils",
			[]string{"134c704f-9b21-4f2e-91b3-4a467353bcc0 CVSS_V3.1 4.6 MEDIUM", "nvd@nist.gov CVSS_V3.0 6.5 MEDIUM primary", "nvd@nist.gov CVSS_V2 2.1 LOW primary"}, 3},
		{"nvd/CVE-2024-2236.json", "CVE-2024-2236", "2024-03-06T22:15:57.977Z", "2024-04-25T17:15:49.467Z", "A timing-based side-channel flaw was found in libgcrypt",
			[]string{"secalert@redhat.com CVSS_V3.1 5.9 MEDIUM"}, 3},
		{nvdSingleEntry, "CVE-2022-1576", "2022-07-11T13:15:08.503Z", "2024-11-21T06:41:00.133Z", "The WP Maintenance Mode & Coming Soon WordPress plugin before 2.4.5",
			[]string{"nvd@nist.gov CVSS_V3.1 6.5 MEDIUM primary", "nvd@nist.gov CVSS_V2 4.3 MEDIUM primary"}, 1},
		{nvdFullPage, "CVE-2023-27314", "2023-10-12T19:15:11.747Z", "2023-10-18T18:00:24.9Z", "ONTAP 9 versions prior to 9.8P19",
			[]string{"nvd@nist.gov CVSS_V3.1 7.5 HIGH primary", "security-alert@netapp.com CVSS_V3.1 7.5 HIGH"}, 1},
	}
	for _, tt := range tests {
		res, err := NVD{}.Parse(tt.file, vulndataFile(t, tt.file))
		if err != nil {
			t.Fatal(err)
		}
		a, ok := testByID(t, res.Advisories)[tt.id]
		if !ok {
			t.Errorf("%s: %s missing", tt.file, tt.id)
			continue
		}
		if p := a.Published.Format(time.RFC3339Nano); p != tt.published {
			t.Errorf("%s: published %s, want %s", tt.id, p, tt.published)
		}
		if m := a.Modified.Format(time.RFC3339Nano); m != tt.modified {
			t.Errorf("%s: modified %s, want %s", tt.id, m, tt.modified)
		}
		if a.IsWithdrawn() {
			t.Errorf("%s: withdrawn", tt.id)
		}
		if !strings.HasPrefix(a.Summary, tt.summary) {
			t.Errorf("%s: summary %q, want it to start %q", tt.id, a.Summary, tt.summary)
		}
		if s := testSeverities(a); !slices.Equal(s, tt.severities) {
			t.Errorf("%s: severities\n %q\nwant\n %q", tt.id, s, tt.severities)
		}
		if len(a.References) != tt.refs {
			t.Errorf("%s: %d references, want %d", tt.id, len(a.References), tt.refs)
		}
	}
	res, err := NVD{}.Parse("full-page.json", vulndataFile(t, nvdFullPage))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Advisories) != 38 {
		t.Errorf("full page: %d advisories, want 38", len(res.Advisories))
	}
}

// TestNVDScores compares every score computed from a vector with the
// baseScore NVD publishes beside it.
func TestNVDScores(t *testing.T) {
	// Where the score computed from the vector differs from NVD's, the
	// parser keeps the computed one; in this data set none differ.
	var known []string
	var got []string
	checked := 0
	vulndataWalk(t, func(path string, d fs.DirEntry) {
		if !strings.HasSuffix(path, ".json") {
			return
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		res, err := NVD{}.Parse(path, data)
		if err != nil {
			t.Fatal(err)
		}
		var raw struct {
			Vulnerabilities []struct{ CVE json.RawMessage }
		}
		json.Unmarshal(data, &raw)
		cves := []json.RawMessage{data}
		if raw.Vulnerabilities != nil {
			cves = cves[:0]
			for _, v := range raw.Vulnerabilities {
				cves = append(cves, v.CVE)
			}
		}
		for i, c := range cves {
			var cve struct {
				ID      string
				Metrics map[string][]struct {
					Source   string
					CVSSData struct {
						VectorString string
						BaseScore    float64
					}
				}
			}
			if err := json.Unmarshal(c, &cve); err != nil {
				t.Fatal(err)
			}
			base := map[string]float64{}
			for _, list := range cve.Metrics {
				for _, m := range list {
					if m.CVSSData.VectorString != "" {
						base[m.Source+" "+m.CVSSData.VectorString] = m.CVSSData.BaseScore
					}
				}
			}
			a := res.Advisories[i]
			if a.ID != cve.ID || len(a.Severities) != len(base) {
				t.Errorf("%s: %d severities for %d metrics", cve.ID, len(a.Severities), len(base))
			}
			for _, s := range a.Severities {
				checked++
				want, ok := base[s.Source+" "+s.Vector]
				if !ok {
					want, ok = base[s.Source+" ("+s.Vector+")"]
				}
				if !ok || want != s.Score {
					got = append(got, fmt.Sprintf("%s %s %s: ours %.1f, NVD %.1f", a.ID, s.Source, s.Vector, s.Score, want))
				}
			}
		}
	}, "nvd", "formats/nvd")
	if !slices.Equal(got, known) {
		t.Errorf("scores that differ from NVD's:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(known, "\n"))
	}
	if checked < 90 {
		t.Errorf("checked %d scores, want the 91 of the data set", checked)
	}
}

// TestNVDDebianFindings checks the NVD ratings the bookworm findings list,
// one per CVE as a naive scanner picks it, against the parsed severities.
func TestNVDDebianFindings(t *testing.T) {
	sc := bufio.NewScanner(strings.NewReader(string(vulndataFile(t, "debian/expected-findings.naive.txt"))))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		id := f[0]
		// nvd-cvss:3.1 9.8 CRITICAL (Primary)
		var version, rating, kind string
		var score float64
		if _, err := fmt.Sscanf(f[4], "nvd-cvss:%s %f %s %s", &version, &score, &rating, &kind); err != nil {
			t.Fatalf("%s: %v", f[4], err)
		}
		res, err := NVD{}.Parse(id+".json", vulndataFile(t, "nvd/"+id+".json"))
		if err != nil || len(res.Advisories) != 1 {
			t.Fatalf("%s: %v", id, err)
		}
		if version == "2.0" {
			version = "2" // CVSS_V2
		}
		want := fmt.Sprintf("CVSS_V%s %.1f %s %v", version, score, rating, kind == "(Primary)")
		var have []string
		for _, s := range res.Advisories[0].Severities {
			have = append(have, fmt.Sprintf("%s %.1f %s %v", s.Type, s.Score, s.Rating, s.Primary))
		}
		if !slices.Contains(have, want) {
			t.Errorf("%s: severities %q, want one %q", id, have, want)
		}
	}
}

func TestNVDRejectedAndSkipped(t *testing.T) {
	data := `{"resultsPerPage": 6, "startIndex": 0, "totalResults": 6, "format": "NVD_CVE", "version": "2.0", "vulnerabilities": [
	  {"cve": {"id": "CVE-2023-0001", "published": "2023-01-01T00:00:00.000", "lastModified": "2023-02-01T10:20:30.400", "vulnStatus": "Rejected",
	    "descriptions": [{"lang": "es", "value": "Rechazada"}, {"lang": "en", "value": "** REJECT ** Not a vulnerability."}]}},
	  {"cve": {"id": "CVE-2023-0002", "published": "2023-01-01T00:00:00Z",
	    "metrics": {"cvssMetricV31": [{"source": "cna@example.com", "type": "Secondary", "cvssData": {"vectorString": "CVSS:3.1/AV:X"}},
	      {"source": "nvd@nist.gov", "type": "Primary", "cvssData": {"vectorString": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "baseScore": 1.0}}],
	      "cvssMetricV40": [{"source": "cna@example.com", "type": "Secondary", "cvssData": {"vectorString": "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"}}]},
	    "references": [{"url": "https://example.com/a"}, {"url": "https://example.com/a"}, {"url": ""}]}},
	  {"cve": {"id": "GHSA-xxxx-xxxx-xxxx"}},
	  {"cve": {"id": "CVE-2023-0003", "published": "yesterday"}},
	  {"cve": {"id": "CVE-2023-0004", "vulnStatus": "Rejected"}},
	  {"cve": {"id": 5}},
	  null
	]}`
	res, err := NVD{}.Parse("page.json", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	got := testByID(t, res.Advisories)
	if len(got) != 2 {
		t.Errorf("got %d advisories, want 2", len(got))
	}
	rej := got["CVE-2023-0001"]
	if w := rej.Withdrawn.Format(time.RFC3339Nano); w != "2023-02-01T10:20:30.4Z" || rej.Summary != "** REJECT ** Not a vulnerability." {
		t.Errorf("rejected: withdrawn %s, summary %q", w, rej.Summary)
	}
	// The score is computed from the vector, not taken from baseScore.
	a := got["CVE-2023-0002"]
	want := []string{"cna@example.com CVSS_V4.0 9.3 CRITICAL", "nvd@nist.gov CVSS_V3.1 9.8 CRITICAL primary"}
	if s := testSeverities(a); !slices.Equal(s, want) || !slices.Equal(a.References, []string{"https://example.com/a"}) {
		t.Errorf("severities %q, references %q", s, a.References)
	}
	var skips []string
	for _, s := range res.Skipped {
		skips = append(skips, s.Record+": "+s.Reason)
	}
	wantSkips := []string{
		`CVE-2023-0002: metric from cna@example.com: cvss "CVSS:3.1/AV:X": invalid metric value`,
		`vulnerabilities[2]: id "GHSA-xxxx-xxxx-xxxx" is not a CVE id`,
		`CVE-2023-0003: published: timestamp "yesterday"`,
		`CVE-2023-0004: rejected without a date`,
		`vulnerabilities[5]: json: cannot unmarshal number into Go struct field nvdCVE.id of type string`,
		`vulnerabilities[6]: unexpected end of JSON input`,
	}
	if !slices.Equal(skips, wantSkips) {
		t.Errorf("skipped\n %q\nwant\n %q", skips, wantSkips)
	}
}

func TestReadNVDPage(t *testing.T) {
	tests := []struct {
		name, data string
		want       NVDPage
		wantErr    bool
	}{
		{"full page", string(vulndataFile(t, nvdFullPage)), NVDPage{TotalResults: 38, StartIndex: 0, Count: 38}, false},
		{"middle page", `{"resultsPerPage": 2000, "startIndex": 4000, "totalResults": 250123, "format": "NVD_CVE", "version": "2.0", "vulnerabilities": [`, NVDPage{TotalResults: 250123, StartIndex: 4000, Count: 2000}, false},
		{"past the end", `{"resultsPerPage": 0, "startIndex": 300000, "totalResults": 250123, "format": "NVD_CVE", "vulnerabilities": []}`, NVDPage{TotalResults: 250123, StartIndex: 300000}, false},
		{"cve object", string(vulndataFile(t, "nvd/CVE-2023-45853.json")), NVDPage{}, true},
		{"fields after the results", `{"vulnerabilities": [], "resultsPerPage": 0, "startIndex": 0, "totalResults": 0}`, NVDPage{}, true},
		{"other format", `{"resultsPerPage": 1, "startIndex": 0, "totalResults": 1, "format": "NVD_CPE"}`, NVDPage{}, true},
		{"negative", `{"resultsPerPage": -1, "startIndex": 0, "totalResults": 1}`, NVDPage{}, true},
		{"fraction", `{"resultsPerPage": 1.5, "startIndex": 0, "totalResults": 1}`, NVDPage{}, true},
		{"string", `{"resultsPerPage": "1", "startIndex": 0, "totalResults": 1}`, NVDPage{}, true},
		{"array", `[]`, NVDPage{}, true},
	}
	for _, tt := range tests {
		got, err := ReadNVDPage([]byte(tt.data))
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("%s: ReadNVDPage = %+v, %v; want %+v, error %v", tt.name, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestNVDBadInput(t *testing.T) {
	huge := strings.Repeat("x", 1<<20)
	tests := []badInput{
		{"empty", ``, true},
		{"array at top", `[{"id": "CVE-2023-0001"}]`, true},
		{"malformed", `{"format": "NVD_CVE", "vulnerabilities": [`, true},
		{"empty object", `{}`, true},
		{"other format", `{"format": "NVD_CPE", "products": []}`, true},
		{"vulnerabilities not a list", `{"format": "NVD_CVE", "vulnerabilities": {}}`, true},
		{"trailing data", `{"id": "CVE-2023-0001"} x`, true},
		{"empty page", `{"format": "NVD_CVE", "vulnerabilities": []}`, false},
		{"huge strings", `{"id": "CVE-2023-0001", "descriptions": [{"lang": "en", "value": "` + huge + `"}], "metrics": {"cvssMetricV31": [{"source": "` + huge + `", "cvssData": {"vectorString": "CVSS:3.1/` + huge + `"}}]}, "references": [{"url": "` + huge + `"}]}`, false},
		{"huge id", `{"id": "CVE-2023-` + strings.Repeat("1", 1<<20) + `"}`, false},
	}
	checkBadInput(t, NVD{}, "bad.json", tests)
}

func FuzzNVDParse(f *testing.F) {
	f.Add([]byte(`{"id": "CVE-2023-0001", "sourceIdentifier": "x", "published": "2023-01-01T00:00:00.000", "vulnStatus": "Rejected", "metrics": {"cvssMetricV2": [{"source": "nvd@nist.gov", "type": "Primary", "cvssData": {"vectorString": "AV:N/AC:L/Au:N/C:C/I:C/A:C"}}]}}`))
	for _, name := range []string{nvdSingleEntry, "nvd/CVE-2023-45853.json", "nvd/CVE-2005-2541.json", "nvd/CVE-2013-4392.json"} {
		f.Add(vulndataFile(f, name))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		NVD{}.Match("x.json", data)
		ReadNVDPage(data)
		res, err := NVD{}.Parse("fuzz.json", data)
		if err != nil {
			return
		}
		checkParsed(t, res)
	})
}
