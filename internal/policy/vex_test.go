package policy

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/scangate/scangate/internal/scan"
)

func TestParseVEX(t *testing.T) {
	got, err := ParseVEX(readTestdata(t, "openvex-v0.2.0.json"))
	if err != nil {
		t.Fatal(err)
	}
	docTime := time.Date(2026, 1, 10, 9, 0, 0, 0, time.UTC)
	const author, doc = "App Security Team <security@example.com>", "https://example.com/vex/app-2026-01"
	want := []VEXStatement{
		{
			Vulnerability: "CVE-2023-45853", Aliases: []string{"DEBIAN-CVE-2023-45853"},
			Products: []VEXProduct{{
				VEXComponent:  VEXComponent{ID: "pkg:oci/app@sha256%3A1111111111111111111111111111111111111111111111111111111111111111?repository_url=registry.example.com/app"},
				Subcomponents: []VEXComponent{{ID: "pkg:deb/debian/zlib1g?arch=amd64"}},
			}},
			Status: VEXNotAffected, Justification: "vulnerable_code_not_present",
			ImpactStatement: "minizip is not built into zlib1g", Timestamp: docTime, Author: author, Document: doc,
		},
		{
			Vulnerability: "CVE-2024-4741",
			Products:      []VEXProduct{{VEXComponent: VEXComponent{ID: "pkg:deb/debian/libssl3", PURL: "pkg:deb/debian/libssl3"}}},
			Status:        VEXUnderInvestigation, Timestamp: time.Date(2026, 1, 9, 9, 0, 0, 0, time.UTC), Author: author, Document: doc,
		},
		{
			Vulnerability: "CVE-2024-2961",
			Products:      []VEXProduct{{VEXComponent: VEXComponent{ID: "registry.example.com/app:1.4"}}},
			Status:        VEXAffected, Timestamp: docTime, Author: author, Document: doc,
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%+v\nwant\n%+v", got, want)
	}
}

func TestParseVEXv001(t *testing.T) {
	got, err := ParseVEX(readTestdata(t, "openvex-v0.0.1.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("%d statements", len(got))
	}
	st := got[0]
	wantProducts := []VEXProduct{
		{VEXComponent: VEXComponent{ID: "pkg:apk/wolfi/git@2.39.0-r1?arch=armv7"}},
		{VEXComponent: VEXComponent{ID: "pkg:apk/wolfi/git@2.39.0-r1?arch=x86_64"}},
	}
	if st.Vulnerability != "CVE-2023-12345" || st.Status != VEXFixed || !reflect.DeepEqual(st.Products, wantProducts) {
		t.Errorf("%+v", st)
	}
	if want := time.Date(2023, 1, 9, 0, 2, 3, 647787998, time.UTC); !st.Timestamp.Equal(want) {
		t.Errorf("timestamp %v, want %v", st.Timestamp, want)
	}
}

// vexDocument wraps statements in a v0.2.0 document.
func vexDocument(statements ...string) string {
	return `{"@context": "https://openvex.dev/ns/v0.2.0", "@id": "https://example.com/vex/1", "author": "A",
		"timestamp": "2026-01-01T00:00:00Z", "version": 1, "statements": [` + strings.Join(statements, ",") + `]}`
}

func TestParseVEXErrors(t *testing.T) {
	okStatement := `{"vulnerability": {"name": "CVE-1"}, "status": "fixed"}`
	many := strings.Repeat(okStatement+",", MaxVEXStatements) + okStatement
	for _, tc := range []struct {
		name, in, want string
	}{
		{"not json", "- id: CVE-1", "vex: invalid character"},
		{"not openvex", `{"bomFormat": "CycloneDX"}`, `unknown field "bomFormat"`},
		{"no context", `{"statements": []}`, `@context "" is not OpenVEX's`},
		{"other context", `{"@context": "https://example.com/ns", "statements": []}`, "is not OpenVEX's"},
		{"typo in statement", vexDocument(`{"vulnerability": {"name": "CVE-1"}, "product": [{"@id": "pkg:deb/debian/x"}], "status": "fixed"}`),
			`unknown field "product"`},
		{"typo in product", vexDocument(`{"vulnerability": {"name": "CVE-1"}, "products": [{"id": "pkg:deb/debian/x"}], "status": "fixed"}`),
			`unknown field "id"`},
		{"typo in subcomponent", vexDocument(`{"vulnerability": {"name": "CVE-1"}, "products": [{"@id": "x", "subcomponents": [{"purl": "pkg:deb/debian/x"}]}], "status": "fixed"}`),
			`unknown field "purl"`},
		{"typo in vulnerability", vexDocument(`{"vulnerability": {"nmae": "CVE-1"}, "status": "fixed"}`), `unknown field "nmae"`},
		{"no vulnerability", vexDocument(`{"status": "fixed"}`), "statement 1: vulnerability has no name"},
		{"vulnerability with blank", vexDocument(`{"vulnerability": "CVE 1", "status": "fixed"}`), `vulnerability name "CVE 1" is not an ID`},
		{"unknown status", vexDocument(okStatement, `{"vulnerability": "CVE-2", "status": "resolved"}`),
			`statement 2: status "resolved" is not one of not_affected, affected, fixed, under_investigation`},
		{"no status", vexDocument(`{"vulnerability": "CVE-2"}`), `status "" is not one of`},
		{"not_affected without why", vexDocument(`{"vulnerability": "CVE-1", "status": "not_affected"}`),
			"not_affected needs a justification or an impact_statement"},
		{"unknown justification", vexDocument(`{"vulnerability": "CVE-1", "status": "not_affected", "justification": "not_reachable"}`),
			`justification "not_reachable" is not a VEX justification label`},
		{"product identifies nothing", vexDocument(`{"vulnerability": "CVE-1", "status": "fixed", "products": [{"hashes": {"sha-256": "00"}}]}`),
			"statement 1: product 1: no @id or purl identifier"},
		{"subcomponent identifies nothing", vexDocument(`{"vulnerability": "CVE-1", "status": "fixed", "products": [{"@id": "x", "subcomponents": [{}]}]}`),
			"product 1: subcomponent 1: no @id or purl identifier"},
		{"bad purl id", vexDocument(`{"vulnerability": "CVE-1", "status": "fixed", "products": ["pkg:deb"]}`), "product 1: @id: package URL type"},
		{"bad purl identifier", vexDocument(`{"vulnerability": "CVE-1", "status": "fixed", "products": [{"identifiers": {"purl": "deb/x"}}]}`),
			"purl identifier: package URL does not start"},
		{"bad document time", strings.Replace(vexDocument(okStatement), "2026-01-01T00:00:00Z", "yesterday", 1), `vex: timestamp: "yesterday" is not an RFC 3339 time`},
		{"bad statement time", vexDocument(`{"vulnerability": "CVE-1", "status": "fixed", "timestamp": "2026-01-01"}`), "statement 1: timestamp:"},
		{"wrong type", vexDocument(`{"vulnerability": "CVE-1", "status": 1}`), "cannot unmarshal number"},
		{"trailing data", vexDocument(okStatement) + "{}", "data after the JSON document"},
		{"too many aliases", vexDocument(`{"vulnerability": {"name": "CVE-1", "aliases": [` + strings.Repeat(`"a",`, maxVEXAliases) + `"a"]}, "status": "fixed"}`),
			"257 aliases is more than 256"},
		{"too many statements", vexDocument(many), "20001 statements is more than 20000"},
		{"too big", `{"@context": "https://openvex.dev/ns", "author": "` + strings.Repeat("x", MaxVEXSize) + `"}`, "more than 8388608"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseVEX([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want it to contain %q", err, tc.want)
			}
			if got != nil {
				t.Errorf("returned %v with the error", got)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "vex: ") {
				t.Errorf("error %q lacks context", err)
			}
		})
	}
}

func TestParseVEXEmpty(t *testing.T) {
	got, err := ParseVEX([]byte(vexDocument()))
	if err != nil || len(got) != 0 {
		t.Errorf("%v, %v", got, err)
	}
}

func TestVEXStatuses(t *testing.T) {
	for _, tc := range []struct {
		status     string
		suppressed bool
	}{
		{`"not_affected", "justification": "vulnerable_code_not_in_execute_path"`, true},
		{`"fixed"`, true},
		{`"affected", "action_statement": "upgrade"`, false},
		{`"under_investigation"`, false},
	} {
		vex := mustVEX(t, vexDocument(`{"vulnerability": "CVE-2024-2511", "products": ["pkg:deb/debian/libssl3"], "status": `+tc.status+`}`))
		r := testReport()
		d := Evaluate(r, Policy{VEX: vex}, testNow)
		s := r.Findings[findIdx(t, r, "CVE-2024-2511", pkgLibssl)].Suppressed
		if (s != nil) != tc.suppressed {
			t.Errorf("status %s: suppressed %+v, want %v", tc.status, s, tc.suppressed)
		}
		if s != nil && (s.Kind != KindVEX || !strings.HasPrefix(s.Reason, string(vex[0].Status))) {
			t.Errorf("status %s: %+v", tc.status, s)
		}
		if tc.suppressed && d.Suppressed[KindVEX] != 1 {
			t.Errorf("status %s: suppressed counts %v", tc.status, d.Suppressed)
		}
	}
}

func mustVEX(t *testing.T, doc string) []VEXStatement {
	t.Helper()
	vex, err := ParseVEX([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return vex
}

func TestVEXProductMatching(t *testing.T) {
	zlib := findIdx(t, testReport(), "CVE-2023-45853", pkgZlib)
	libssl := findIdx(t, testReport(), "CVE-2024-4741", pkgLibssl)
	openssl := findIdx(t, testReport(), "CVE-2024-4741", pkgOpenssl)
	xnet := findIdx(t, testReport(), "GHSA-4v7x-pqxf-cx7m", pkgXNet)
	ociApp := "pkg:oci/app@" + strings.Replace(testDigest, ":", "%3A", 1)
	for _, tc := range []struct {
		name     string
		vuln     string // the vulnerability field
		products string // the products field, or "" for none
		image    *scan.ImageInfo
		want     []int
	}{
		{"no products", `"CVE-2024-4741"`, "", nil, []int{libssl, openssl}},
		{"package without version", `"CVE-2024-4741"`, `["pkg:deb/debian/openssl"]`, nil, []int{openssl}},
		{"package with its version", `"CVE-2024-4741"`, `["pkg:deb/debian/openssl@3.0.11-1~deb12u2"]`, nil, []int{openssl}},
		{"package at another version", `"CVE-2024-4741"`, `["pkg:deb/debian/openssl@3.0.14-1~deb12u1"]`, nil, nil},
		{"qualifier the package has", `"CVE-2024-4741"`, `["pkg:deb/debian/openssl?arch=amd64&distro=debian-12"]`, nil, []int{openssl}},
		{"qualifier it does not", `"CVE-2024-4741"`, `["pkg:deb/debian/openssl?arch=arm64"]`, nil, nil},
		{"purl identifier", `"CVE-2024-4741"`, `[{"@id": "https://example.com/products/openssl", "identifiers": {"purl": "pkg:deb/debian/libssl3"}}]`, nil, []int{libssl}},
		{"two products", `"CVE-2024-4741"`, `["pkg:deb/debian/openssl", "pkg:deb/debian/libssl3"]`, nil, []int{libssl, openssl}},
		{"other package", `"CVE-2024-4741"`, `["pkg:deb/debian/zlib1g"]`, nil, nil},
		{"name is not a prefix", `"CVE-2023-45853"`, `["pkg:deb/debian/zlib"]`, nil, nil},
		{"alias in the finding", `"CVE-2023-45288"`, `["pkg:golang/golang.org/x/net"]`, nil, []int{xnet}},
		{"alias in the statement", `{"name": "CVE-2099-0001", "aliases": ["GO-2024-2687"]}`, `["pkg:golang/golang.org/x/net@v0.17.0"]`, nil, []int{xnet}},
		{"image by oci purl", `"CVE-2024-4741"`, `["` + ociApp + `"]`, nil, []int{libssl, openssl}},
		{"image by oci purl and repository", `"CVE-2024-4741"`, `["` + ociApp + `?repository_url=registry.example.com/app&tag=1.4"]`, nil, []int{libssl, openssl}},
		{"oci purl of another repository", `"CVE-2024-4741"`, `["` + ociApp + `?repository_url=registry.example.com/other"]`, nil, nil},
		{"oci purl of another tag", `"CVE-2024-4741"`, `["pkg:oci/app?tag=2.0"]`, nil, nil},
		{"oci purl of another name", `"CVE-2024-4741"`, `["pkg:oci/other@` + strings.Replace(testDigest, ":", "%3A", 1) + `"]`, nil, nil},
		{"oci purl of another digest", `"CVE-2024-4741"`, `["pkg:oci/app@sha256%3A3333"]`, nil, nil},
		{"oci purl of the config digest", `"CVE-2024-4741"`, `["pkg:oci/app@` + strings.Replace(testConfig, ":", "%3A", 1) + `"]`, nil, []int{libssl, openssl}},
		{"archive by oci digest", `"CVE-2024-4741"`, `["pkg:oci/whatever@` + strings.Replace(testConfig, ":", "%3A", 1) + `"]`,
			&scan.ImageInfo{Ref: "docker-archive:app.tar", ConfigDigest: testConfig}, []int{libssl, openssl}},
		{"archive by oci name only", `"CVE-2024-4741"`, `["pkg:oci/app"]`,
			&scan.ImageInfo{Ref: "docker-archive:app.tar", ConfigDigest: testConfig}, nil},
		{"image by reference", `"CVE-2024-4741"`, `["registry.example.com/app:1.4"]`, nil, []int{libssl, openssl}},
		{"image by digest reference", `"CVE-2024-4741"`, `["registry.example.com/app@` + testDigest + `"]`, nil, []int{libssl, openssl}},
		{"image by digest", `"CVE-2024-4741"`, `["` + testDigest + `"]`, nil, []int{libssl, openssl}},
		{"reference is exact", `"CVE-2024-4741"`, `["registry.example.com/app:*"]`, nil, nil},
		{"image and subcomponent", `"CVE-2024-4741"`, `[{"@id": "` + ociApp + `", "subcomponents": ["pkg:deb/debian/libssl3"]}]`, nil, []int{libssl}},
		{"subcomponent in another image", `"CVE-2024-4741"`, `[{"@id": "registry.example.com/other:1", "subcomponents": ["pkg:deb/debian/libssl3"]}]`, nil, nil},
		{"subcomponent under a package", `"CVE-2024-4741"`, `[{"@id": "pkg:deb/debian/openssl", "subcomponents": ["pkg:deb/debian/libssl3"]}]`, nil, nil},
		{"image with other subcomponent", `"CVE-2024-4741"`, `[{"@id": "registry.example.com/app:1.4", "subcomponents": ["pkg:deb/debian/zlib1g"]}]`, nil, nil},
		{"other vulnerability", `"CVE-2024-0001"`, "", nil, nil},
		{"vulnerability without case", `"cve-2023-45853"`, "", nil, []int{zlib}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := `{"vulnerability": ` + tc.vuln + `, "status": "fixed"`
			if tc.products != "" {
				st += `, "products": ` + tc.products
			}
			vex := mustVEX(t, vexDocument(st+"}"))
			r := testReport()
			if tc.image != nil {
				r.Image = *tc.image
			}
			Evaluate(r, Policy{VEX: vex}, testNow)
			var got []int
			for i, f := range r.Findings {
				if f.Suppressed != nil {
					got = append(got, i)
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("suppressed %v, want %v", got, tc.want)
			}
		})
	}
}

func TestVEXLatestStatementDecides(t *testing.T) {
	stmt := func(status, ts string) string {
		s := fmt.Sprintf(`{"vulnerability": "CVE-2024-2511", "products": ["pkg:deb/debian/libssl3"], "status": %q`, status)
		if status == "not_affected" {
			s += `, "justification": "inline_mitigations_already_exist"`
		}
		if ts != "" {
			s += fmt.Sprintf(`, "timestamp": %q`, ts)
		}
		return s + "}"
	}
	for _, tc := range []struct {
		name       string
		statements []string
		suppressed bool
	}{
		{"affected after not_affected", []string{stmt("not_affected", "2026-01-01T00:00:00Z"), stmt("affected", "2026-02-01T00:00:00Z")}, false},
		{"later first in the file", []string{stmt("affected", "2026-02-01T00:00:00Z"), stmt("not_affected", "2026-01-01T00:00:00Z")}, false},
		{"fixed after under_investigation", []string{stmt("under_investigation", "2026-01-01T00:00:00Z"), stmt("fixed", "2026-01-02T00:00:00Z")}, true},
		{"equal times: last wins", []string{stmt("affected", ""), stmt("fixed", "")}, true},
		{"equal times: last wins, reversed", []string{stmt("fixed", ""), stmt("affected", "")}, false},
		{"statement time over document time", []string{stmt("fixed", "2025-01-01T00:00:00Z"), stmt("affected", "")}, false},
	} {
		vex := mustVEX(t, vexDocument(tc.statements...))
		r := testReport()
		Evaluate(r, Policy{VEX: vex}, testNow)
		if s := r.Findings[findIdx(t, r, "CVE-2024-2511", pkgLibssl)].Suppressed; (s != nil) != tc.suppressed {
			t.Errorf("%s: suppressed %+v, want %v", tc.name, s, tc.suppressed)
		}
	}
}

func TestVEXReason(t *testing.T) {
	long := strings.Repeat("é", 400)
	vex := mustVEX(t, vexDocument(`{"vulnerability": "CVE-2024-2511", "status": "not_affected", "impact_statement": "`+long+`"}`))
	r := testReport()
	Evaluate(r, Policy{VEX: vex}, testNow)
	s := r.Findings[findIdx(t, r, "CVE-2024-2511", pkgLibssl)].Suppressed
	want := "not_affected; " + strings.Repeat("é", maxVEXText/2) + "… (VEX by A)"
	if s == nil || s.Reason != want {
		t.Errorf("reason %+v\nwant %q", s, want)
	}
}

func FuzzParseVEX(f *testing.F) {
	f.Add(readTestdata(f, "openvex-v0.2.0.json"))
	f.Add(readTestdata(f, "openvex-v0.0.1.json"))
	f.Add([]byte(vexDocument(`{"vulnerability": "CVE-2024-2511", "products": [{"@id": "registry.example.com/app:1.4", "subcomponents": ["pkg:deb/debian/libssl3"]}], "status": "fixed"}`)))
	f.Add([]byte(vexDocument(`{"vulnerability": {"name": "CVE-2023-45288"}, "status": "not_affected", "justification": "component_not_present"}`)))
	f.Add([]byte(`{"@context": "https://openvex.dev/ns", "statements": null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ParseVEX(data)
		if err != nil {
			if got != nil {
				t.Fatalf("statements %v with error %v", got, err)
			}
			return
		}
		p := Policy{VEX: got, Thresholds: map[string]int{"CRITICAL": 0}}
		if err := p.Validate(); err != nil {
			t.Fatalf("parsed statements do not validate: %v", err)
		}
		d := Evaluate(testReport(), p, testNow)
		_ = d.Summary()
	})
}
