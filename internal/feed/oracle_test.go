package feed

import (
	"slices"
	"strings"
	"testing"

	"github.com/scangate/scangate/internal/vulndb"
)

func oracleParse(t *testing.T, file string) Result {
	t.Helper()
	data := testdataFile(t, file)
	head := data[:min(len(data), 4096)]
	if !(OracleOVAL{}).Match(file, head) {
		t.Errorf("%s: not matched", file)
	}
	for _, f := range Formats {
		if f.Name() != "oracle" && f.Match(file, head) {
			t.Errorf("%s: claimed by %s too", file, f.Name())
		}
	}
	res, err := OracleOVAL{}.Parse(file, data)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Skipped) != 0 {
		t.Errorf("%s: skipped %v", file, res.Skipped)
	}
	for _, a := range res.Advisories {
		if _, err := vulndb.Clean(&a); err != nil {
			t.Errorf("%s: %v", a.ID, err)
		}
	}
	return res
}

// oracleEntry finds one affected entry of an advisory.
func oracleEntry(res Result, id, eco, pkg string) (vulndb.Affected, bool) {
	for _, a := range res.Advisories {
		if a.ID != id {
			continue
		}
		for _, af := range a.Affected {
			if af.Ecosystem == eco && af.Package == pkg {
				return af, true
			}
		}
	}
	return vulndb.Affected{}, false
}

func TestOracleOVALReal(t *testing.T) {
	// Oracle's own file, bzip2ed as Oracle serves it: 14 ELSAs of Oracle
	// Linux 5 to 7.
	res := oracleParse(t, "oracle/com.oracle.elsa-sample.xml.bz2")
	var ids []string
	for _, a := range res.Advisories {
		ids = append(ids, a.ID)
		if a.Feed != "oracle" || len(a.Affected) == 0 || a.Published.IsZero() || !strings.HasPrefix(a.References[0], "https://linux.oracle.com/errata/ELSA-") {
			t.Errorf("%s: %+v", a.ID, a)
		}
	}
	if len(ids) != 14 || ids[0] != "ELSA-2007-0057" || ids[13] != "ELSA-2019-4821" {
		t.Errorf("advisories %v", ids)
	}
	for _, tt := range []struct{ id, eco, pkg, fixed, urgency string }{
		{"ELSA-2007-0057", "Oracle Linux:5", "bind", "30:9.3.3-8.el5", "moderate"}, // the epoch kept
		{"ELSA-2012-1261", "Oracle Linux:6", "dbus", "1:1.2.24-7.0.1.el6_3", "moderate"},
		{"ELSA-2016-3646", "Oracle Linux:6", "kernel-uek", "2.6.39-400.290.2.el6uek", "important"}, // "0:" dropped
		{"ELSA-2019-4821", "Oracle Linux:7", "sudo", "1.8.23-4.0.1.el7", "important"},
	} {
		af, ok := oracleEntry(res, tt.id, tt.eco, tt.pkg)
		if !ok || af.Status != vulndb.StatusFixed || af.Fixed != tt.fixed || af.Urgency != tt.urgency {
			t.Errorf("%s %s %s: %+v", tt.id, tt.eco, tt.pkg, af)
		}
	}
	// One ELSA across releases: firefox fixed for Oracle Linux 5 and 6.
	if _, ok := oracleEntry(res, "ELSA-2011-1268", "Oracle Linux:6", "xulrunner"); !ok {
		t.Error("ELSA-2011-1268 has no Oracle Linux 6 entry")
	}
	if a := res.Advisories[0]; !slices.Equal(a.Aliases, []string{"CVE-2007-0493", "CVE-2007-0494"}) || a.Summary != "Moderate: bind security update (MODERATE)" {
		t.Errorf("ELSA-2007-0057: aliases %v summary %q", a.Aliases, a.Summary)
	}
}

func TestOracleOVALArchesAndFlavours(t *testing.T) {
	res := oracleParse(t, "oracle/elsa-per-arch.xml")
	if len(res.Advisories) != 3 {
		t.Fatalf("%d advisories", len(res.Advisories))
	}
	// rsyslog's builds differ by architecture: one entry each.
	for eco, fixed := range map[string]string{"Oracle Linux:7:x86_64": "8.24.0-57.0.1.el7_9.3", "Oracle Linux:7:aarch64": "8.24.0-57.0.4.el7_9.3"} {
		if af, ok := oracleEntry(res, "ELSA-2022-4803", eco, "rsyslog"); !ok || af.Fixed != fixed {
			t.Errorf("rsyslog in %s: %+v", eco, af)
		}
	}
	if _, ok := oracleEntry(res, "ELSA-2022-4803", "Oracle Linux:7", "rsyslog"); ok {
		t.Error("rsyslog has a release-wide entry though its architectures differ")
	}
	// osbuild: two "earlier than" tests in one branch (110-1.el8 and
	// 110-1.0.1.el8), the same on both architectures: the higher, once,
	// for the release.
	if af, ok := oracleEntry(res, "ELSA-2024-2961", "Oracle Linux:8", "osbuild"); !ok || af.Fixed != "110-1.0.1.el8" {
		t.Errorf("osbuild: %+v", af)
	}
	if af, ok := oracleEntry(res, "ELSA-2025-10073", "Oracle Linux:10", "firefox"); !ok || af.Fixed != "128.12.0-1.0.1.el10_0" {
		t.Errorf("firefox on Oracle Linux 10: %+v", af)
	}

	// A Ksplice userspace ELSA: its fixes keep their ksplice release, so
	// they only ever match Ksplice builds (vulndb.Flavour).
	res = oracleParse(t, "oracle/elsa-ksplice.xml")
	af, ok := oracleEntry(res, "ELSA-2021-9151", "Oracle Linux:8", "openssl")
	if !ok || af.Fixed != "2:1.1.1g-15.ksplice1.el8_3" || vulndb.Flavour(af.Ecosystem, af.Fixed) != "ksplice" {
		t.Errorf("openssl: %+v", af)
	}
	// openssl-debugsource is listed for aarch64 only: it is not fixed
	// for every architecture.
	if _, ok := oracleEntry(res, "ELSA-2021-9151", "Oracle Linux:8:aarch64", "openssl-debugsource"); !ok {
		t.Error("openssl-debugsource: no aarch64 entry")
	}
}

// oracleDef is one definition as Oracle writes them, with the criteria
// given.
func oracleDef(id, criteria string) string {
	return `<?xml version="1.0"?><oval_definitions><generator><product_name>Oracle Errata System</product_name></generator><definitions>
<definition id="oval:com.oracle.elsa:def:1" class="patch"><metadata><title>` + id + `: x security update (IMPORTANT)</title>
<reference source="elsa" ref_id="` + id + `" ref_url="https://linux.oracle.com/errata/` + id + `.html"/>
<advisory><severity>IMPORTANT</severity><issued date="2022-01-01"/><cve>CVE-2021-20231</cve></advisory></metadata>` +
		criteria + `</definition></definitions></oval_definitions>`
}

func TestOracleOVALModulesAndFIPS(t *testing.T) {
	// The FIPS build of ELSA-2022-9221 and a module stream's build, with
	// Oracle's criteria comments.
	res, err := OracleOVAL{}.Parse("elsa.xml", []byte(oracleDef("ELSA-2022-9221", `<criteria operator="AND">
<criterion comment="Oracle Linux 8 is installed"/><criteria operator="OR">
<criteria operator="AND"><criterion comment="gnutls is earlier than 10:3.6.16-4.0.1.el8_fips"/><criterion comment="gnutls is fips patched"/></criteria>
<criteria operator="AND"><criterion comment="Module nodejs:18 is enabled"/><criteria operator="OR">
<criteria operator="AND"><criterion comment="nodejs is earlier than 1:18.17.1-1.module+el8.8.0+21117+5b2bdc20"/><criterion comment="nodejs is signed with the Oracle Linux 8 key"/></criteria>
</criteria></criteria></criteria></criteria>`)))
	if err != nil {
		t.Fatal(err)
	}
	if af, ok := oracleEntry(res, "ELSA-2022-9221", "Oracle Linux:8", "gnutls"); !ok || vulndb.Flavour(af.Ecosystem, af.Fixed) != "fips" {
		t.Errorf("gnutls: %+v", af)
	}
	if af, ok := oracleEntry(res, "ELSA-2022-9221", "Oracle Linux:8", "nodejs:18/nodejs"); !ok || af.Fixed != "1:18.17.1-1.module+el8.8.0+21117+5b2bdc20" {
		t.Errorf("nodejs: %+v in %+v", af, res)
	}
}

func TestOracleOVALBadInput(t *testing.T) {
	deep := strings.Repeat(`<criteria>`, 40) + `<criterion comment="a is earlier than 1-1"/>` + strings.Repeat(`</criteria>`, 40)
	res := checkBadInput(t, OracleOVAL{}, "elsa.xml", []badInput{
		{"malformed", `<oval_definitions><definitions><definition>`, true},
		{"not oval", `<updates></updates>`, true},
		{"no definitions", `<oval_definitions><definitions></definitions></oval_definitions>`, true},
		{"truncated bzip2", string(testdataFile(t, "oracle/com.oracle.elsa-sample.xml.bz2")[:500]), true},
		{"not an ELSA id", oracleDef("RHSA-2020-1", `<criteria><criterion comment="Oracle Linux 8 is installed"/><criterion comment="a is earlier than 1-1"/></criteria>`), false},
		{"no release", oracleDef("ELSA-2020-0001", `<criteria><criterion comment="a is earlier than 1-1"/></criteria>`), false},
		{"bad version", oracleDef("ELSA-2020-0002", `<criteria><criterion comment="Oracle Linux 8 is installed"/><criterion comment="a is earlier than `+strings.Repeat("9", 300)+`"/></criteria>`), false},
		{"too deep", oracleDef("ELSA-2020-0003", `<criteria><criterion comment="Oracle Linux 8 is installed"/>`+deep+`</criteria>`), false},
	})
	for i, r := range res[4:] {
		if len(r.Advisories) != 0 || len(r.Skipped) == 0 {
			t.Errorf("case %d: %d advisories, skipped %v", i+4, len(r.Advisories), r.Skipped)
		}
	}
}

func FuzzOracleOVALParse(f *testing.F) {
	f.Add(testdataFile(f, "oracle/elsa-ksplice.xml"))
	f.Add([]byte(oracleDef("ELSA-2020-0001", `<criteria><criterion comment="Oracle Linux 8 is installed"/><criterion comment="Oracle Linux arch is x86_64"/><criterion comment="a is earlier than 1:1-1.el8_fips"/></criteria>`)))
	f.Fuzz(func(t *testing.T, data []byte) {
		OracleOVAL{}.Match("com.oracle.elsa-all.xml.bz2", data)
		res, err := OracleOVAL{}.Parse("elsa.xml", data)
		if err != nil {
			return
		}
		checkParsed(t, res)
	})
}
