package feed

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/scangate/scangate/internal/vulndb"
)

// TestSUSECVRFReal parses SUSE's own CVRF documents (testdata/suse, see
// SOURCES.md).
func TestSUSECVRFReal(t *testing.T) {
	type entry struct{ eco, pkg, fixed string }
	for _, tt := range []struct {
		file, id, urgency string
		cves, ecos        int
		affected          int
		has               []entry
	}{
		// Leap 15.0's glibc: 19 binaries of one source RPM, each its own
		// entry, as SUSE names them.
		{"cvrf-opensuse-su-2018-1633-1.xml", "openSUSE-SU-2018:1633-1", "moderate", 1, 1, 19, []entry{
			{"openSUSE:Leap 15.0", "glibc", "2.26-lp150.11.3.2"},
			{"openSUSE:Leap 15.0", "nscd", "2.26-lp150.11.3.2"},
		}},
		// SLE 15 SP1's real-time kernel, filed under two modules and no
		// server product at all: only the service pack's folding in
		// vulndb finds it on a server.
		{"cvrf-suse-su-2019-3295-1.xml", "SUSE-SU-2019:3295-1", "important", 20, 2, 27, []entry{
			{"SUSE:Linux Enterprise Module for Realtime packages 15 SP1", "kernel-rt", "4.12.14-14.14.3"},
			{"SUSE:Linux Enterprise Module for Realtime packages 15 SP1", "kernel-devel-rt", "4.12.14-14.14.2"},
			{"SUSE:Linux Enterprise Module for Open Buildservice Development Tools 15 SP1", "kernel-rt", "4.12.14-14.14.3"},
		}},
		{"cvrf-suse-su-2019-1608-1.xml", "SUSE-SU-2019:1608-1", "moderate", 1, 7, 15, []entry{
			{"SUSE:Linux Enterprise Module for Legacy Software 12", "compat-openssl098", "0.9.8j-106.12.1"},
		}},
		{"cvrf-suse-su-2019-14018-1.xml", "SUSE-SU-2019:14018-1", "important", 2, 3, 39, []entry{
			{"SUSE:Linux Enterprise Server 11 SP4-LTSS", "python", "2.6.9-40.24.1"},
		}},
	} {
		data := testdataFile(t, "suse/"+tt.file)
		if !(SUSECVRF{}).Match(tt.file, data[:512]) {
			t.Errorf("%s: not matched", tt.file)
		}
		for _, f := range Formats {
			if _, ok := f.(SUSECVRF); !ok && f.Match(tt.file, data) {
				t.Errorf("%s: also claimed by %s", tt.file, f.Name())
			}
		}
		res, err := SUSECVRF{}.Parse(tt.file, data)
		if err != nil {
			t.Fatal(err)
		}
		checkParsed(t, res)
		if len(res.Advisories) != 1 || len(res.Skipped) != 0 {
			t.Fatalf("%s: %d advisories, skipped %v", tt.file, len(res.Advisories), res.Skipped)
		}
		a := res.Advisories[0]
		if a.ID != tt.id || a.Feed != "suse" || len(a.Aliases) != tt.cves || a.Summary == "" || a.Details == "" || a.Published.IsZero() {
			t.Errorf("%s: %s feed %s %d aliases %q", tt.file, a.ID, a.Feed, len(a.Aliases), a.Summary)
		}
		if !strings.Contains(a.References[0], "/suse-su-") && !strings.Contains(a.References[0], "/opensuse-su-") {
			t.Errorf("%s: reference %s", tt.file, a.References[0])
		}
		ecos := map[string]bool{}
		var got []entry
		for _, af := range a.Affected {
			ecos[af.Ecosystem] = true
			got = append(got, entry{af.Ecosystem, af.Package, af.Fixed})
			if af.Status != vulndb.StatusFixed || af.Urgency != tt.urgency {
				t.Errorf("%s: %+v", tt.file, af)
			}
		}
		if len(a.Affected) != tt.affected || len(ecos) != tt.ecos {
			t.Errorf("%s: %d entries in %d products, want %d in %d: %v", tt.file, len(a.Affected), len(ecos), tt.affected, tt.ecos, got)
		}
		for _, e := range tt.has {
			if !slices.Contains(got, e) {
				t.Errorf("%s: no entry %v", tt.file, e)
			}
		}
	}
}

func TestSUSECVRFBadInput(t *testing.T) {
	doc := func(id, product, nvr, pid string) string {
		return fmt.Sprintf(`<cvrfdoc><DocumentTitle>x</DocumentTitle><DocumentTracking><Identification><ID>%s</ID></Identification></DocumentTracking>`+
			`<ProductTree><Relationship ProductReference="%s" RelationType="Default Component Of" RelatesToProductReference="%s"><FullProductName ProductID="%s:%s"/></Relationship></ProductTree>`+
			`<Vulnerability><CVE>CVE-2020-1</CVE><ProductStatuses><Status Type="Fixed"><ProductID>%s</ProductID></Status></ProductStatuses>`+
			`<CVSSScoreSets><ScoreSetV3><VectorV3>not a vector</VectorV3></ScoreSetV3></CVSSScoreSets></Vulnerability></cvrfdoc>`, id, nvr, product, product, nvr, pid)
	}
	ok := doc("SUSE-SU-2020:1-1", "SUSE Linux Enterprise Server 15 SP2", "a-1-1.1", "SUSE Linux Enterprise Server 15 SP2:a-1-1.1")
	res := checkBadInput(t, SUSECVRF{}, "cvrf.xml", []badInput{
		{"malformed", `<cvrfdoc><DocumentTracking>`, true},
		{"not xml", `{"id":"SUSE-SU-2020:1-1"}`, true},
		{"not a SUSE id", doc("RHSA-2020:1", "SUSE Linux Enterprise Server 15 SP2", "a-1-1.1", "SUSE Linux Enterprise Server 15 SP2:a-1-1.1"), false},
		{"fixed id not in tree", doc("SUSE-SU-2020:1-1", "SUSE Linux Enterprise Server 15 SP2", "a-1-1.1", "elsewhere:a-1-1.1"), false},
		{"not name-version-release", doc("SUSE-SU-2020:1-1", "SUSE Linux Enterprise Server 15 SP2", "a-1", "SUSE Linux Enterprise Server 15 SP2:a-1"), false},
		{"other product", doc("SUSE-SU-2020:1-1", "SUSE Manager Server 4.1", "a-1-1.1", "SUSE Manager Server 4.1:a-1-1.1"), false},
		{"long version", doc("SUSE-SU-2020:1-1", "openSUSE Leap 15.2", "a-1-"+strings.Repeat("9", 300), "openSUSE Leap 15.2:a-1-"+strings.Repeat("9", 300)), false},
		{"ok but a bad vector", ok, false},
	})
	for i, r := range res[2:7] {
		if len(r.Advisories) != 0 || len(r.Skipped) == 0 {
			t.Errorf("case %d: %d advisories, skipped %v", i+2, len(r.Advisories), r.Skipped)
		}
	}
	if last := res[7]; len(last.Advisories) != 1 || len(last.Skipped) != 1 || len(last.Advisories[0].Severities) != 0 {
		t.Errorf("a bad vector: %+v", last)
	}
	// Newer documents carry SUSE's CVSS v3 vectors: the advisory's
	// severities, from "suse".
	withVector := strings.Replace(ok, "not a vector", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 1)
	r, err := SUSECVRF{}.Parse("cvrf.xml", []byte(withVector))
	if err != nil || len(r.Advisories) != 1 || len(r.Advisories[0].Severities) != 1 || r.Advisories[0].Severities[0].Source != "suse" ||
		r.Advisories[0].Severities[0].Rating != vulndb.Critical {
		t.Errorf("a CVSS vector: %+v, %v", r, err)
	}
}

func FuzzSUSECVRFParse(f *testing.F) {
	f.Add(testdataFile(f, "suse/cvrf-opensuse-su-2018-1633-1.xml"))
	f.Add([]byte(`<cvrfdoc><DocumentTracking><Identification><ID>SUSE-SU-2020:1-1</ID></Identification></DocumentTracking><ProductTree><Relationship ProductReference="a-1-1" RelationType="Default Component Of" RelatesToProductReference="openSUSE Leap 15.2"><FullProductName ProductID="p"/></Relationship></ProductTree><Vulnerability><ProductStatuses><Status Type="Fixed"><ProductID>p</ProductID></Status></ProductStatuses></Vulnerability></cvrfdoc>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		SUSECVRF{}.Match("cvrf.xml", data)
		res, err := SUSECVRF{}.Parse("cvrf.xml", data)
		if err != nil {
			return
		}
		checkParsed(t, res)
	})
}
