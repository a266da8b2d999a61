package feed

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/scangate/scangate/internal/vulndb"
)

func TestRedHatVEXReal(t *testing.T) {
	data := testdataFile(t, "redhat/cve-2023-38545.json")
	if !(RedHatVEX{}).Match("cve-2023-38545.json", data[:4096]) {
		t.Fatal("Match refused Red Hat's VEX document")
	}
	for _, f := range Formats {
		if f.Name() != "redhat" && f.Match("cve-2023-38545.json", data[:4096]) {
			t.Errorf("format %s claims a CSAF VEX document", f.Name())
		}
	}
	res, err := RedHatVEX{}.Parse("cve-2023-38545.json", data)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Advisories) != 1 {
		t.Fatalf("%d advisories, want 1", len(res.Advisories))
	}
	a := res.Advisories[0]
	if a.ID != "CVE-2023-38545" || a.Feed != "redhat" || a.Summary == "" || len(a.Severities) != 1 || a.Severities[0].Rating != vulndb.High {
		t.Errorf("advisory = %s %s %q %+v", a.ID, a.Feed, a.Summary, a.Severities)
	}
	byKey := map[string]vulndb.Affected{}
	for _, af := range a.Affected {
		byKey[af.Ecosystem+" "+af.Package] = af
	}
	// The main stream's highest fix wins over 9.2 EUS's and 9.0 EUS's,
	// whose products carry the same CPE or an EUS one.
	if c := byKey["Red Hat:9 curl"]; c.Status != vulndb.StatusFixed || c.Fixed != "7.76.1-26.el9_3.2" || c.Urgency != "Important" {
		t.Errorf("RHEL 9 curl = %+v", c)
	}
	for _, rel := range []string{"6", "7", "8"} {
		if c := byKey["Red Hat:"+rel+" curl"]; c.Status != vulndb.StatusNotAffected {
			t.Errorf("RHEL %s curl = %+v, want not affected", rel, c)
		}
	}
	for k := range byKey {
		if eco := byKey[k].Ecosystem; !slices.Contains([]string{"Red Hat:6", "Red Hat:7", "Red Hat:8", "Red Hat:9"}, eco) {
			t.Errorf("entry outside RHEL's main streams: %s", k)
		}
	}
}

// csafDocument wraps one vulnerability in a minimal CSAF VEX document with
// the RHEL 8 AppStream product, as Red Hat's files shape it. Constructed:
// the real samples have no module or will-not-fix entry for RHEL.
func csafDocument(status, remediations string) string {
	return `{"document": {"category": "csaf_vex", "tracking": {"id": "CVE-2024-0001", "current_release_date": "2024-02-01T00:00:00+00:00"}},
 "product_tree": {"branches": [{"category": "vendor", "name": "Red Hat", "branches": [{"category": "product_family", "name": "RHEL", "branches": [
   {"category": "product_name", "name": "Red Hat Enterprise Linux AppStream (v. 8)", "product": {"name": "x", "product_id": "AppStream-8.8.0.Z.MAIN", "product_identification_helper": {"cpe": "cpe:/a:redhat:enterprise_linux:8::appstream"}}},
   {"category": "product_name", "name": "Red Hat Enterprise Linux 8", "product": {"name": "x", "product_id": "red_hat_enterprise_linux_8", "product_identification_helper": {"cpe": "cpe:/o:redhat:enterprise_linux:8"}}},
   {"category": "product_name", "name": "RHEL 8.6 EUS", "product": {"name": "x", "product_id": "AppStream-8.6.0.Z.EUS", "product_identification_helper": {"cpe": "cpe:/a:redhat:rhel_eus:8.6::appstream"}}}]}]}],
  "relationships": [
   {"full_product_name": {"product_id": "AppStream-8.8.0.Z.MAIN:nodejs:18:8080020230725120544:63b34585:nodejs-1:18.17.1-1.module+el8.8.0+19757+8ca87034.src"}, "product_reference": "nodejs:18:8080020230725120544:63b34585:nodejs-1:18.17.1-1.module+el8.8.0+19757+8ca87034.src", "relates_to_product_reference": "AppStream-8.8.0.Z.MAIN"},
   {"full_product_name": {"product_id": "AppStream-8.8.0.Z.MAIN:nodejs:18:8080020230725120544:63b34585:nodejs-1:18.17.1-1.module+el8.8.0+19757+8ca87034.x86_64"}, "product_reference": "nodejs:18:8080020230725120544:63b34585:nodejs-1:18.17.1-1.module+el8.8.0+19757+8ca87034.x86_64", "relates_to_product_reference": "AppStream-8.8.0.Z.MAIN"},
   {"full_product_name": {"product_id": "AppStream-8.6.0.Z.EUS:openssl-1:1.1.1k-9.el8_6.src"}, "product_reference": "openssl-1:1.1.1k-9.el8_6.src", "relates_to_product_reference": "AppStream-8.6.0.Z.EUS"},
   {"full_product_name": {"product_id": "red_hat_enterprise_linux_8:nodejs:16/nodejs"}, "product_reference": "nodejs:16/nodejs", "relates_to_product_reference": "red_hat_enterprise_linux_8"},
   {"full_product_name": {"product_id": "red_hat_enterprise_linux_8:python2"}, "product_reference": "python2", "relates_to_product_reference": "red_hat_enterprise_linux_8"},
   {"full_product_name": {"product_id": "red_hat_enterprise_linux_8:libtiff"}, "product_reference": "libtiff", "relates_to_product_reference": "red_hat_enterprise_linux_8"}]},
 "vulnerabilities": [{"cve": "CVE-2024-0001", "product_status": ` + status + `, "remediations": ` + remediations + `,
   "threats": [{"category": "impact", "details": "Moderate", "product_ids": ["red_hat_enterprise_linux_8:python2"]}]}]}`
}

func TestRedHatVEXStatuses(t *testing.T) {
	doc := csafDocument(`{
	  "fixed": ["AppStream-8.8.0.Z.MAIN:nodejs:18:8080020230725120544:63b34585:nodejs-1:18.17.1-1.module+el8.8.0+19757+8ca87034.src",
	            "AppStream-8.8.0.Z.MAIN:nodejs:18:8080020230725120544:63b34585:nodejs-1:18.17.1-1.module+el8.8.0+19757+8ca87034.x86_64",
	            "AppStream-8.6.0.Z.EUS:openssl-1:1.1.1k-9.el8_6.src"],
	  "known_affected": ["red_hat_enterprise_linux_8:nodejs:16/nodejs", "red_hat_enterprise_linux_8:python2"],
	  "under_investigation": ["red_hat_enterprise_linux_8:libtiff"]}`,
		`[{"category": "no_fix_planned", "details": "Will not fix", "product_ids": ["red_hat_enterprise_linux_8:python2"]},
	  {"category": "none_available", "details": "Affected", "product_ids": ["red_hat_enterprise_linux_8:nodejs:16/nodejs"]}]`)
	res, err := RedHatVEX{}.Parse("cve-2024-0001.json", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Advisories) != 1 {
		t.Fatalf("%d advisories: %+v", len(res.Advisories), res.Skipped)
	}
	got := map[string]vulndb.Affected{}
	for _, af := range res.Advisories[0].Affected {
		got[af.Package] = af
	}
	want := map[string]vulndb.Affected{
		// A module's build is kept under its module and stream, and its
		// binary build (.x86_64) adds nothing.
		"nodejs:18/nodejs": {Ecosystem: "Red Hat:8", Package: "nodejs:18/nodejs", Status: vulndb.StatusFixed, Fixed: "1:18.17.1-1.module+el8.8.0+19757+8ca87034"},
		"nodejs:16/nodejs": {Ecosystem: "Red Hat:8", Package: "nodejs:16/nodejs", Status: vulndb.StatusUnfixed, Note: "Affected"},
		"python2":          {Ecosystem: "Red Hat:8", Package: "python2", Status: vulndb.StatusWillNotFix, Note: "Will not fix", Urgency: "Moderate"},
		"libtiff":          {Ecosystem: "Red Hat:8", Package: "libtiff", Status: vulndb.StatusUnfixed, Note: "under investigation"},
	}
	// openssl's fix is an EUS stream's: passed over.
	if len(got) != len(want) {
		t.Errorf("entries %v, want %v", got, want)
	}
	for k, w := range want {
		if !reflect.DeepEqual(got[k], w) {
			t.Errorf("%s = %+v, want %+v", k, got[k], w)
		}
	}
	for _, af := range res.Advisories[0].Affected {
		if _, err := vulndb.Clean(&vulndb.Advisory{ID: "x", Affected: []vulndb.Affected{af}}); err != nil {
			t.Errorf("%s: %v", af.Package, err)
		}
	}
}

func TestRedHatVEXBadInput(t *testing.T) {
	deep := `{"document": {"category": "csaf_vex"}, "product_tree": {"branches": [` + repeat(`{"branches": [`, 40) + repeat(`]}`, 40) + `]}}`
	checkBadInput(t, RedHatVEX{}, "cve.json", []badInput{
		{"malformed", `{"document": {"category": "csaf_vex"`, true},
		{"not vex", `{"document": {"category": "csaf_security_advisory"}}`, true},
		{"deep product tree", deep, true},
		{"no vulnerabilities", `{"document": {"category": "csaf_vex"}}`, false},
		{"long component", csafDocument(`{"known_affected": ["red_hat_enterprise_linux_8:python2"]}`, `[]`), false},
	})
}

func repeat(s string, n int) string {
	out := ""
	for range n {
		out += s
	}
	return out
}

func FuzzRedHatVEXParse(f *testing.F) {
	f.Add([]byte(csafDocument(`{"fixed": ["AppStream-8.6.0.Z.EUS:openssl-1:1.1.1k-9.el8_6.src"], "known_affected": ["red_hat_enterprise_linux_8:python2"]}`, `[]`)))
	f.Add(testdataFile(f, "redhat/cve-2023-4154.json"))
	f.Fuzz(func(t *testing.T, data []byte) {
		RedHatVEX{}.Match("cve.json", data)
		res, err := RedHatVEX{}.Parse("cve.json", data)
		if err != nil {
			return
		}
		checkParsed(t, res)
	})
}

// TestRedHatVEXModuleStreams reads Red Hat's document of CVE-2023-2454
// (PostgreSQL), whose RHEL 8 fixes are builds of four module streams and
// whose RHEL 9 fixes are a non-modular build and a postgresql:15 build,
// none of them named by stream (a document of 2023).
func TestRedHatVEXModuleStreams(t *testing.T) {
	res, err := RedHatVEX{}.Parse("cve-2023-2454.json", testdataFile(t, "redhat/cve-2023-2454.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Advisories) != 1 {
		t.Fatalf("%d advisories", len(res.Advisories))
	}
	got := map[string]vulndb.Affected{}
	for _, af := range res.Advisories[0].Affected {
		got[af.Ecosystem+" "+af.Package] = af
	}
	if af := got["Red Hat:9 postgresql"]; af.Status != vulndb.StatusFixed || af.Fixed != "13.11-1.el9_2" {
		t.Errorf("RHEL 9 postgresql: %+v (the non-modular fix, never 15.3's module build)", af)
	}
	if af := got["Red Hat:9 postgresql:15/postgresql"]; af.Status != vulndb.StatusUnfixed {
		t.Errorf("RHEL 9 postgresql:15: %+v", af)
	}
	for k, af := range got {
		if strings.HasPrefix(k, "Red Hat:8 ") || strings.Contains(af.Fixed, ".module+") {
			t.Errorf("a module build without its stream was kept: %s %+v", k, af)
		}
	}
	var streamless []string
	for _, s := range res.Skipped {
		if strings.Contains(s.Reason, "stream the document does not name") {
			streamless = append(streamless, s.Reason)
		}
	}
	if !slices.Contains(streamless, "postgresql: module build of a stream the document does not name") {
		t.Errorf("skipped %v", streamless)
	}
}
