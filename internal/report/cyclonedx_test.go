package report

import (
	"bytes"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	cdx "github.com/CycloneDX/cyclonedx-go"

	"github.com/scangate/scangate/internal/scan"
	"github.com/scangate/scangate/internal/vulndb"
)

const bomSchemaID = "http://cyclonedx.org/schema/bom-1.6.schema.json"

func bomSchemaFiles() []string {
	dir := filepath.Join("testdata", "schemas")
	return []string{
		filepath.Join(dir, "bom-1.6.schema.json"),
		filepath.Join(dir, "spdx.schema.json"),
		filepath.Join(dir, "jsf-0.82.schema.json"),
	}
}

func TestCycloneDXGolden(t *testing.T) {
	golden(t, "report.cdx.json", render(t, testReport(t), CycloneDX, Options{ToolVersion: "1.2.3"}))
}

// TestCycloneDXValidates checks the output against the official CycloneDX
// 1.6 schema (and the SPDX and JSF schemas it refers to).
func TestCycloneDXValidates(t *testing.T) {
	sch := compileSchemas(t, bomSchemaID, bomSchemaFiles()...)
	validate(t, sch, render(t, testReport(t), CycloneDX, Options{ToolVersion: "1.2.3"}))
	validate(t, sch, render(t, testReport(t), CycloneDX, Options{}))

	good := render(t, testReport(t), CycloneDX, Options{})
	vuln := func(m map[string]any) map[string]any { return m["vulnerabilities"].([]any)[0].(map[string]any) }
	rejects(t, sch, good, "a gadget component", func(m map[string]any) {
		m["components"].([]any)[0].(map[string]any)["type"] = "gadget"
	})
	rejects(t, sch, good, "method CVSSv5", func(m map[string]any) {
		vuln(m)["ratings"].([]any)[0].(map[string]any)["method"] = "CVSSv5"
	})
	rejects(t, sch, good, "severity CRITICAL in capitals", func(m map[string]any) {
		vuln(m)["ratings"].([]any)[0].(map[string]any)["severity"] = "CRITICAL"
	})
	rejects(t, sch, good, "an affects entry without ref", func(m map[string]any) {
		delete(vuln(m)["affects"].([]any)[0].(map[string]any), "ref")
	})
	rejects(t, sch, good, "a bad serial number", func(m map[string]any) { m["serialNumber"] = "1234" })
	rejects(t, sch, good, "a signature without value", func(m map[string]any) {
		m["signature"] = map[string]any{"algorithm": "ES256"}
	})

	// No OS, no findings, no manifest digest, no repository.
	bare := testReport(t)
	bare.OS, bare.Findings = nil, nil
	bare.Image.Digest, bare.Image.Repository = "", ""
	validate(t, sch, render(t, bare, CycloneDX, Options{}))

	// The same package twice, and packages without purls.
	dup := testReport(t)
	dup.Packages = append(dup.Packages, dup.Packages[2], dup.Packages[2], scan.Package{Name: "mystery", Version: "1", Type: "binary", Path: "/bin/mystery"})
	dup.Findings = append(dup.Findings, scan.Finding{ID: "CVE-2023-45853", Feed: "debian", Package: 7, Severity: vulndb.Critical})
	out := render(t, dup, CycloneDX, Options{})
	validate(t, sch, out)
	bom := decodeBOM(t, out)
	refs := map[string]bool{}
	for _, c := range *bom.Components {
		if refs[c.BOMRef] {
			t.Errorf("bom-ref %s is not unique", c.BOMRef)
		}
		refs[c.BOMRef] = true
	}
}

func decodeBOM(t *testing.T, data []byte) *cdx.BOM {
	t.Helper()
	var bom cdx.BOM
	if err := cdx.NewBOMDecoder(bytes.NewReader(data), cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
		t.Fatal(err)
	}
	return &bom
}

func TestCycloneDXContent(t *testing.T) {
	r := testReport(t)
	bom := decodeBOM(t, render(t, r, CycloneDX, Options{ToolVersion: "1.2.3"}))

	if bom.SpecVersion != cdx.SpecVersion1_6 || bom.BOMFormat != "CycloneDX" || bom.JSONSchema != bomSchemaID {
		t.Errorf("spec %v format %q schema %q", bom.SpecVersion, bom.BOMFormat, bom.JSONSchema)
	}
	if !regexp.MustCompile(`^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(bom.SerialNumber) {
		t.Errorf("serialNumber = %q", bom.SerialNumber)
	}
	md := bom.Metadata
	if md.Timestamp != "2024-06-03T10:15:00Z" {
		t.Errorf("timestamp = %q", md.Timestamp)
	}
	tools := *md.Tools.Components
	if len(tools) != 1 || tools[0].Name != "scangate" || tools[0].Version != "1.2.3" {
		t.Errorf("tools = %+v", tools)
	}
	img := md.Component
	if img.Type != cdx.ComponentTypeContainer || img.Name != "127.0.0.1:5000/acme/shop" || img.Version != testDigest {
		t.Errorf("image component = %s %q %q", img.Type, img.Name, img.Version)
	}
	if want := "pkg:oci/shop@" + testDigest + "?arch=amd64&repository_url=127.0.0.1:5000%2Facme%2Fshop"; img.PackageURL != want || img.BOMRef != want {
		t.Errorf("image purl = %q\nwant        %q", img.PackageURL, want)
	}

	comps := *bom.Components
	if len(comps) != 1+len(r.Packages) {
		t.Fatalf("%d components, want the OS and %d packages", len(comps), len(r.Packages))
	}
	if comps[0].Type != cdx.ComponentTypeOS || comps[0].Name != "debian" || comps[0].Version != "12" {
		t.Errorf("OS component = %+v", comps[0])
	}
	byName := map[string]cdx.Component{}
	for _, c := range comps[1:] {
		if c.Type != cdx.ComponentTypeLibrary {
			t.Errorf("%s has type %s", c.Name, c.Type)
		}
		byName[c.Name] = c
	}
	zlib := byName["zlib1g"]
	if zlib.PackageURL != r.Packages[2].PURL || zlib.BOMRef != zlib.PackageURL || zlib.Version != "1:1.2.13.dfsg-1" {
		t.Errorf("zlib1g component = %+v", zlib)
	}
	if got := byName["urllib3"].PackageURL; got != "pkg:pypi/urllib3@1.26.18" {
		t.Errorf("built purl = %q", got)
	}

	deps := *bom.Dependencies
	if len(deps) != 2 || deps[0].Ref != img.BOMRef || deps[1].Ref != comps[0].BOMRef {
		t.Fatalf("dependencies = %+v", deps)
	}
	if n := len(*deps[1].Dependencies); n != 3 {
		t.Errorf("the OS depends on %d packages, want its 3", n)
	}
	if n := len(*deps[0].Dependencies); n != 1+4 {
		t.Errorf("the image depends on %d, want the OS and 4 language packages", n)
	}

	vulns := map[string]cdx.Vulnerability{}
	var order []string
	for _, v := range *bom.Vulnerabilities {
		vulns[v.ID] = v
		order = append(order, v.ID)
	}
	if got, want := strings.Join(order, " "), "CVE-2023-45853 GO-2024-2687 GHSA-rv95-896h-c2vc CVE-2010-4756 CVE-2019-1010022 GO-2024-2610"; got != want {
		t.Errorf("vulnerabilities = %s\nwant              %s", got, want)
	}

	z := vulns["CVE-2023-45853"]
	if z.Source.Name != "Debian Security Tracker" || z.Source.URL != "https://security-tracker.debian.org/tracker/CVE-2023-45853" {
		t.Errorf("source = %+v", z.Source)
	}
	ratings := *z.Ratings
	if len(ratings) != 1 || ratings[0].Source.Name != "NVD" || *ratings[0].Score != 9.8 || ratings[0].Severity != cdx.SeverityCritical ||
		ratings[0].Method != cdx.ScoringMethodCVSSv31 || ratings[0].Vector != "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H" {
		t.Errorf("ratings = %+v", ratings)
	}
	if a := *z.Affects; len(a) != 1 || a[0].Ref != zlib.BOMRef || (*a[0].Range)[0].Status != cdx.VulnerabilityStatusAffected {
		t.Errorf("affects = %+v", a)
	}
	if z.Analysis != nil || z.Recommendation != "" {
		t.Errorf("unfixed, unsuppressed: analysis %+v recommendation %q", z.Analysis, z.Recommendation)
	}

	x := vulns["GO-2024-2687"]
	if x.Recommendation != "Upgrade golang.org/x/net to 0.23.0" {
		t.Errorf("recommendation = %q", x.Recommendation)
	}
	if refs := *x.References; len(refs) != 2 || refs[0].ID != "CVE-2023-45288" || refs[0].Source.Name != "NVD" {
		t.Errorf("references = %+v", refs)
	}
	if x.Source.Name != "Go Vulnerability Database" {
		t.Errorf("GO- source = %+v", x.Source)
	}
	methods := map[cdx.ScoringMethod]cdx.Severity{}
	for _, rt := range *x.Ratings {
		methods[rt.Method] = rt.Severity
	}
	if methods[cdx.ScoringMethodCVSSv31] != cdx.SeverityHigh || methods[cdx.ScoringMethodOther] != cdx.SeverityMedium {
		t.Errorf("x/net ratings = %+v", *x.Ratings)
	}

	glob := vulns["CVE-2010-4756"]
	if glob.Analysis == nil || glob.Analysis.State != cdx.IASFalsePositive || !strings.Contains(glob.Analysis.Detail, "glob patterns never come from users") {
		t.Errorf("ignore-file analysis = %+v", glob.Analysis)
	}
	var v2 bool
	for _, rt := range *glob.Ratings {
		v2 = v2 || (rt.Method == cdx.ScoringMethodCVSSv2 && rt.Severity == cdx.SeverityMedium && *rt.Score == 4.0)
	}
	if !v2 {
		t.Errorf("no CVSSv2 rating: %+v", *glob.Ratings)
	}

	ex := vulns["GHSA-rv95-896h-c2vc"]
	if ex.Analysis == nil || ex.Analysis.State != cdx.IASNotAffected || ex.Analysis.Justification != cdx.IAJCodeNotReachable ||
		!strings.Contains(ex.Analysis.Detail, "vulnerable_code_not_in_execute_path") {
		t.Errorf("vex analysis = %+v", ex.Analysis)
	}
	if a := *ex.Affects; (*a[0].Range)[0].Status != cdx.VulnerabilityStatusNotAffected {
		t.Errorf("VEX'd package status = %s", (*a[0].Range)[0].Status)
	}
	if ex.Recommendation != "" {
		t.Errorf("suppressed finding has a recommendation %q", ex.Recommendation)
	}

	unk := vulns["GO-2024-2610"]
	if r := *unk.Ratings; len(r) != 1 || r[0].Severity != cdx.SeverityUnknown || r[0].Method != cdx.ScoringMethodOther || r[0].Score != nil {
		t.Errorf("UNKNOWN ratings = %+v", r)
	}
	if unk.Recommendation != "Upgrade stdlib to 1.21.8 or 1.22.1" {
		t.Errorf("recommendation = %q", unk.Recommendation)
	}
}

// TestCycloneDXGrouping checks that findings of one ID become one
// vulnerability per suppression state.
func TestCycloneDXGrouping(t *testing.T) {
	r := testReport(t)
	r.Findings = append(r.Findings,
		scan.Finding{ID: "CVE-2023-45853", Feed: "debian", Package: 0, Severity: vulndb.Critical, Status: vulndb.StatusUnfixed},
		scan.Finding{ID: "CVE-2023-45853", Feed: "debian", Package: 1, Severity: vulndb.Critical, Status: vulndb.StatusUnfixed,
			Suppressed: &scan.Suppression{Kind: "ignore-unfixed", Reason: "no fixed version"}},
	)
	bom := decodeBOM(t, render(t, r, CycloneDX, Options{}))
	var got []cdx.Vulnerability
	for _, v := range *bom.Vulnerabilities {
		if v.ID == "CVE-2023-45853" {
			got = append(got, v)
		}
	}
	if len(got) != 2 {
		t.Fatalf("%d vulnerabilities for CVE-2023-45853, want 2", len(got))
	}
	if len(*got[0].Affects) != 2 || got[0].Analysis != nil {
		t.Errorf("counting findings: affects %d analysis %+v", len(*got[0].Affects), got[0].Analysis)
	}
	a := got[1].Analysis
	if len(*got[1].Affects) != 1 || a == nil || a.State != cdx.IASExploitable || a.Response == nil || (*a.Response)[0] != cdx.IARCanNotFix {
		t.Errorf("ignore-unfixed: affects %d analysis %+v", len(*got[1].Affects), a)
	}
}

func TestVEXAnalysis(t *testing.T) {
	for reason, want := range map[string]struct {
		state cdx.ImpactAnalysisState
		just  cdx.ImpactAnalysisJustification
	}{
		"not_affected: vulnerable_code_not_in_execute_path":                     {cdx.IASNotAffected, cdx.IAJCodeNotReachable},
		"not_affected: component_not_present (VEX by Acme)":                     {cdx.IASNotAffected, cdx.IAJCodeNotPresent},
		"not_affected: vulnerable_code_not_present; the parser is compiled out": {cdx.IASNotAffected, cdx.IAJCodeNotPresent},
		"not_affected: vulnerable_code_cannot_be_controlled_by_adversary":       {cdx.IASNotAffected, cdx.IAJRequiresEnvironment},
		"not_affected: inline_mitigations_already_exist":                        {cdx.IASNotAffected, cdx.IAJProtectedByMitigatingControl},
		"not_affected; an impact statement only":                                {cdx.IASNotAffected, ""},
		"fixed (VEX by Acme)":                                                   {cdx.IASResolved, ""},
		"fixed":                                                                 {cdx.IASResolved, ""},
		"":                                                                      {cdx.IASNotAffected, ""},
	} {
		state, just := vexAnalysis(reason)
		if state != want.state || just != want.just {
			t.Errorf("vexAnalysis(%q) = %s, %q; want %s, %q", reason, state, just, want.state, want.just)
		}
	}
}

func TestCycloneDXMaps(t *testing.T) {
	for typ, want := range map[vulndb.SeverityType]cdx.ScoringMethod{
		vulndb.CVSSv2: cdx.ScoringMethodCVSSv2, vulndb.CVSSv30: cdx.ScoringMethodCVSSv3, vulndb.CVSSv31: cdx.ScoringMethodCVSSv31,
		vulndb.CVSSv40: cdx.ScoringMethodCVSSv4, vulndb.GHSARating: cdx.ScoringMethodOther, vulndb.VendorRating: cdx.ScoringMethodOther,
	} {
		if got := cdxMethod(typ); got != want {
			t.Errorf("method(%s) = %s, want %s", typ, got, want)
		}
	}
	for rating, want := range map[string]cdx.Severity{
		"CRITICAL": cdx.SeverityCritical, "HIGH": cdx.SeverityHigh, "MEDIUM": cdx.SeverityMedium,
		"LOW": cdx.SeverityLow, "NONE": cdx.SeverityNone, "UNKNOWN": cdx.SeverityUnknown, "": cdx.SeverityUnknown,
	} {
		if got := cdxSeverity(rating); got != want {
			t.Errorf("severity(%q) = %s, want %s", rating, got, want)
		}
	}
	r := &scan.Report{OS: &scan.OS{ID: "alpine", VersionID: "3.20.1"}}
	for _, c := range []struct {
		p    scan.Package
		want string
	}{
		{scan.Package{Name: "musl", Version: "1.2.5-r0", Type: "apk"}, "pkg:apk/alpine/musl@1.2.5-r0?distro=alpine-3.20.1"},
		{scan.Package{Name: "github.com/sirupsen/logrus", Version: "1.9.3", Type: "go-module"}, "pkg:golang/github.com/sirupsen/logrus@v1.9.3"},
		{scan.Package{Name: "@babel/core", Version: "7.24.0", Type: "npm"}, "pkg:npm/%40babel/core@7.24.0"},
		{scan.Package{Name: "org.apache.logging.log4j:log4j-core", Version: "2.14.1", Type: "java"}, "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1"},
		{scan.Package{Name: "Jinja2", Version: "3.1.2", Type: "python"}, "pkg:pypi/jinja2@3.1.2"},
		{scan.Package{Name: "serde", Version: "1.0.197", Type: "cargo"}, "pkg:cargo/serde@1.0.197"},
		{scan.Package{Name: "thing", Version: "1", Type: "binary"}, ""},
	} {
		if got := packagePURL(r, &c.p); got != c.want {
			t.Errorf("purl(%s %s) = %q, want %q", c.p.Type, c.p.Name, got, c.want)
		}
	}
}

// TestIDSource: an alias from a distribution's own advisories names its
// publisher, not OSV, whose site has no page for it.
func TestIDSource(t *testing.T) {
	for id, want := range map[string]cdx.Source{
		"CVE-2021-44228":    {Name: "NVD", URL: "https://nvd.nist.gov/vuln/detail/CVE-2021-44228"},
		"ELSA-2022-4803":    {Name: "Oracle Linux Errata", URL: "https://linux.oracle.com/errata/ELSA-2022-4803.html"},
		"ALAS2-2018-942":    {Name: "Amazon Linux Security Center", URL: "https://alas.aws.amazon.com/AL2/ALAS-2018-942.html"},
		"ALAS2023-2023-001": {Name: "Amazon Linux Security Center", URL: "https://alas.aws.amazon.com/AL2023/ALAS-2023-001.html"},
		"BRSA-1bwujdrkn6nc": {Name: "Bottlerocket Security Advisories", URL: "https://advisories.bottlerocket.aws/"},
		"PYSEC-2021-59":     {Name: "OSV", URL: "https://osv.dev/vulnerability/PYSEC-2021-59"},
	} {
		if got := idSource(id); *got != want {
			t.Errorf("idSource(%q) = %+v, want %+v", id, *got, want)
		}
	}
}
