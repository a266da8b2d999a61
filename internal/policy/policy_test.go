package policy

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/scangate/scangate/internal/scan"
	"github.com/scangate/scangate/internal/vulndb"
)

// now is the time the tests evaluate at.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	testDigest = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	testConfig = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
)

// Package indexes in testReport.
const (
	pkgZlib = iota
	pkgLibssl
	pkgOpenssl
	pkgLibc
	pkgXNet
)

// testReport builds a report of a Debian 12 image by hand: a CRITICAL zlib
// finding without a fix (CVE-2023-45853, minizip), a CRITICAL and two HIGH
// OpenSSL findings fixed in newer point releases (the HIGH one in both
// libssl3 and openssl), a HIGH glibc finding, a MEDIUM Go module finding
// known by its GHSA ID, a LOW glibc finding Debian will not fix and one
// without a rating. Versions and scores are as the feeds published them;
// the set is chosen to exercise the policy, not copied from a scan.
func testReport() *scan.Report {
	deb := func(name, version, source string) scan.Package {
		return scan.Package{
			Name: name, Version: version, Type: "deb", Ecosystem: "Debian:12",
			PURL:       "pkg:deb/debian/" + name + "@" + strings.ReplaceAll(version, ":", "%3A") + "?arch=amd64&distro=debian-12",
			SourceName: source, Path: "var/lib/dpkg/status",
		}
	}
	return &scan.Report{
		SchemaVersion: scan.SchemaVersion,
		Image: scan.ImageInfo{
			Ref: "registry.example.com/app:1.4", Repository: "registry.example.com/app",
			Tags: []string{"1.4"}, Digest: testDigest, ConfigDigest: testConfig,
		},
		Packages: []scan.Package{
			pkgZlib:    deb("zlib1g", "1:1.2.13.dfsg-1", "zlib"),
			pkgLibssl:  deb("libssl3", "3.0.11-1~deb12u2", "openssl"),
			pkgOpenssl: deb("openssl", "3.0.11-1~deb12u2", "openssl"),
			pkgLibc:    deb("libc6", "2.36-9+deb12u3", "glibc"),
			pkgXNet: {Name: "golang.org/x/net", Version: "v0.17.0", Type: "go-module", Ecosystem: "Go",
				PURL: "pkg:golang/golang.org/x/net@v0.17.0", Path: "app/server"},
		},
		Findings: []scan.Finding{
			{ID: "CVE-2023-45853", Feed: "debian", Package: pkgZlib, Status: vulndb.StatusUnfixed,
				Severity: vulndb.Critical, Score: 9.8, Aliases: []string{"DEBIAN-CVE-2023-45853"}},
			{ID: "CVE-2024-5535", Feed: "debian", Package: pkgLibssl, Status: vulndb.StatusFixed,
				Fixed: []string{"3.0.15-1~deb12u1"}, Severity: vulndb.Critical, Score: 9.1},
			{ID: "CVE-2024-4741", Feed: "debian", Package: pkgLibssl, Status: vulndb.StatusFixed,
				Fixed: []string{"3.0.14-1~deb12u1"}, Severity: vulndb.High, Score: 7.5},
			{ID: "CVE-2024-4741", Feed: "debian", Package: pkgOpenssl, Status: vulndb.StatusFixed,
				Fixed: []string{"3.0.14-1~deb12u1"}, Severity: vulndb.High, Score: 7.5},
			{ID: "CVE-2024-2511", Feed: "debian", Package: pkgLibssl, Status: vulndb.StatusFixed,
				Fixed: []string{"3.0.14-1~deb12u1"}, Severity: vulndb.High, Score: 5.9},
			{ID: "CVE-2024-2961", Feed: "debian", Package: pkgLibc, Status: vulndb.StatusFixed,
				Fixed: []string{"2.36-9+deb12u7"}, Severity: vulndb.High, Score: 8.8},
			{ID: "GHSA-4v7x-pqxf-cx7m", Feed: "ghsa", Package: pkgXNet, Status: vulndb.StatusFixed,
				Aliases: []string{"CVE-2023-45288", "GO-2024-2687"}, Fixed: []string{"0.23.0"},
				Severity: vulndb.Medium, Score: 5.3},
			{ID: "CVE-2010-4756", Feed: "debian", Package: pkgLibc, Status: vulndb.StatusWillNotFix,
				Severity: vulndb.Low, Score: 4.0},
			{ID: "CVE-2019-1010022", Feed: "debian", Package: pkgLibc, Status: vulndb.StatusUnfixed,
				Severity: vulndb.Unknown},
		},
	}
}

// findIdx returns the index of the finding with id in package pkg.
func findIdx(t *testing.T, r *scan.Report, id string, pkg int) int {
	t.Helper()
	for i, f := range r.Findings {
		if f.ID == id && f.Package == pkg {
			return i
		}
	}
	t.Fatalf("no finding %s in package %d", id, pkg)
	return -1
}

func TestEvaluateRealisticReport(t *testing.T) {
	r := testReport()
	d := Evaluate(r, Policy{Thresholds: map[string]int{"CRITICAL": 0, "HIGH": 0, "MEDIUM": 5}}, testNow)
	if d.Passed {
		t.Fatal("passed, want rejected")
	}
	wantReasons := []string{
		"CRITICAL 2 > 0: zlib1g CVE-2023-45853 (unfixed), libssl3 CVE-2024-5535 (fixed in 3.0.15-1~deb12u1) — fixable: 1",
		"HIGH 4 > 0: libc6 CVE-2024-2961 (fixed in 2.36-9+deb12u7), libssl3+openssl CVE-2024-4741 (fixed in 3.0.14-1~deb12u1), " +
			"libssl3 CVE-2024-2511 (fixed in 3.0.14-1~deb12u1) — fixable: 4; upgrading libssl3 to 3.0.15-1~deb12u1 fixes 2",
	}
	if !reflect.DeepEqual(d.Reasons, wantReasons) {
		t.Errorf("reasons:\n%s\nwant:\n%s", strings.Join(d.Reasons, "\n"), strings.Join(wantReasons, "\n"))
	}
	wantChecks := []Check{
		{Severity: "CRITICAL", Count: 2, Max: 0, Fixable: 1},
		{Severity: "HIGH", Count: 4, Max: 0, Fixable: 4},
		{Severity: "MEDIUM", Count: 1, Max: 5, Fixable: 1},
	}
	if !reflect.DeepEqual(d.Checks, wantChecks) {
		t.Errorf("checks %+v, want %+v", d.Checks, wantChecks)
	}
	wantSummary := "Rejected: CRITICAL 2 > 0, HIGH 4 > 0 — 5 fixable; upgrading libssl3 to 3.0.15-1~deb12u1 fixes 1 CRITICAL, 2 HIGH"
	if got := d.Summary(); got != wantSummary {
		t.Errorf("summary\n%s\nwant\n%s", got, wantSummary)
	}
	wantUpgrades := []string{
		"upgrading libssl3 to 3.0.15-1~deb12u1 fixes 1 CRITICAL, 2 HIGH",
		"upgrading libc6 to 2.36-9+deb12u7 fixes 1 HIGH",
		"upgrading openssl to 3.0.14-1~deb12u1 fixes 1 HIGH",
	}
	var gotUpgrades []string
	for _, u := range d.Upgrades {
		gotUpgrades = append(gotUpgrades, u.String())
	}
	if !reflect.DeepEqual(gotUpgrades, wantUpgrades) {
		t.Errorf("upgrades:\n%s\nwant:\n%s", strings.Join(gotUpgrades, "\n"), strings.Join(wantUpgrades, "\n"))
	}
	if r.Summary != (scan.Counts{Critical: 2, High: 4, Medium: 1, Low: 1, Unknown: 1, Total: 9}) {
		t.Errorf("summary counts %+v", r.Summary)
	}
	if len(d.Notes) != 0 || d.Suppressed != nil {
		t.Errorf("notes %q, suppressed %v, want none", d.Notes, d.Suppressed)
	}
}

func TestEvaluateWithSuppressions(t *testing.T) {
	r := testReport()
	ignores, err := ParseIgnoreFile(readTestdata(t, "ignore.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	vex, err := ParseVEX(readTestdata(t, "openvex-v0.2.0.json"))
	if err != nil {
		t.Fatal(err)
	}
	p := Policy{
		Thresholds:    map[string]int{"CRITICAL": 0, "HIGH": 0},
		IgnoreUnfixed: true,
		Ignores:       ignores,
		VEX:           vex,
	}
	d := Evaluate(r, p, testNow)

	want := map[int]*scan.Suppression{
		// VEX (image product, zlib1g subcomponent) decides before the
		// ignore entry that also matches.
		findIdx(t, r, "CVE-2023-45853", pkgZlib): {Kind: KindVEX,
			Reason: "not_affected: vulnerable_code_not_present; minizip is not built into zlib1g (VEX by App Security Team <security@example.com>)"},
		findIdx(t, r, "CVE-2024-2961", pkgLibc): {Kind: KindIgnoreFile,
			Reason:  "iconv ISO-2022-CN-EXT is removed from the image's gconv modules",
			Expires: time.Date(2026, 6, 30, 10, 0, 0, 0, time.UTC)},
		// Matched through the alias.
		findIdx(t, r, "GHSA-4v7x-pqxf-cx7m", pkgXNet): {Kind: KindIgnoreFile, Reason: "HTTP/2 server is not exposed"},
		findIdx(t, r, "CVE-2010-4756", pkgLibc):       {Kind: KindIgnoreUnfixed, Reason: "no fixed version (will not be fixed)"},
		findIdx(t, r, "CVE-2019-1010022", pkgLibc):    {Kind: KindIgnoreUnfixed, Reason: "no fixed version (unfixed)"},
	}
	for i, f := range r.Findings {
		w := want[i]
		if w == nil {
			if f.Suppressed != nil {
				t.Errorf("%s in %d suppressed: %+v", f.ID, f.Package, f.Suppressed)
			}
			continue
		}
		if f.Suppressed == nil || f.Suppressed.Kind != w.Kind || f.Suppressed.Reason != w.Reason || !f.Suppressed.Expires.Equal(w.Expires) {
			t.Errorf("%s in %d: suppressed %+v, want %+v", f.ID, f.Package, f.Suppressed, w)
		}
	}
	if len(r.Findings) != 9 {
		t.Errorf("%d findings left in the report, want all 9", len(r.Findings))
	}
	if r.Summary != (scan.Counts{Critical: 1, High: 3, Total: 4}) || r.Fixable != (scan.Counts{Critical: 1, High: 3, Total: 4}) {
		t.Errorf("counts %+v fixable %+v", r.Summary, r.Fixable)
	}
	wantNotes := []string{"suppressed 5 findings: 1 by VEX, 2 by the ignore file, 2 without a fix"}
	if !reflect.DeepEqual(d.Notes, wantNotes) {
		t.Errorf("notes %q, want %q", d.Notes, wantNotes)
	}
	if want := map[string]int{KindVEX: 1, KindIgnoreFile: 2, KindIgnoreUnfixed: 2}; !reflect.DeepEqual(d.Suppressed, want) {
		t.Errorf("suppressed %v, want %v", d.Suppressed, want)
	}
	// Every suppression is named with its reason and expiry, not only
	// counted: a person reading the decision sees what was let through.
	wantLines := []string{
		"CVE-2024-2961 in libc6 excepted until 2026-06-30T12:00:00+02:00: iconv ISO-2022-CN-EXT is removed from the image's gconv modules",
		"GHSA-4v7x-pqxf-cx7m in golang.org/x/net excepted: HTTP/2 server is not exposed",
		"CVE-2010-4756 in libc6 not counted (ignore-unfixed): no fixed version (will not be fixed)",
		"CVE-2019-1010022 in libc6 not counted (ignore-unfixed): no fixed version (unfixed)",
		"CVE-2023-45853 in zlib1g suppressed by VEX: not_affected: vulnerable_code_not_present; minizip is not built into zlib1g (VEX by App Security Team <security@example.com>)",
	}
	if !reflect.DeepEqual(d.Suppressions, wantLines) {
		t.Errorf("suppressions:\n%s\nwant:\n%s", strings.Join(d.Suppressions, "\n"), strings.Join(wantLines, "\n"))
	}
	wantSummary := "Rejected: CRITICAL 1 > 0, HIGH 3 > 0 — 4 fixable; upgrading libssl3 to 3.0.15-1~deb12u1 fixes 1 CRITICAL, 2 HIGH"
	if got := d.Summary(); got != wantSummary {
		t.Errorf("summary\n%s\nwant\n%s", got, wantSummary)
	}
}

func TestEvaluateApproved(t *testing.T) {
	r := testReport()
	r.Findings = r.Findings[len(r.Findings)-2:] // LOW and UNKNOWN
	d := Evaluate(r, Policy{Thresholds: map[string]int{"HIGH": 0, "CRITICAL": 0}}, testNow)
	if !d.Passed || len(d.Reasons) != 0 {
		t.Fatalf("rejected: %q", d.Reasons)
	}
	if got, want := d.Summary(), "Approved: CRITICAL 0 ≤ 0, HIGH 0 ≤ 0"; got != want {
		t.Errorf("summary %q, want %q", got, want)
	}
	if len(d.Violations()) != 0 || d.Upgrades != nil {
		t.Errorf("violations %v upgrades %v", d.Violations(), d.Upgrades)
	}
}

func TestEvaluateThresholdBoundary(t *testing.T) {
	// HIGH has 4 findings: 4 is allowed, 3 is not.
	for _, tc := range []struct {
		max    int
		passed bool
	}{{4, true}, {3, false}, {100, true}, {0, false}} {
		d := Evaluate(testReport(), Policy{Thresholds: map[string]int{"HIGH": tc.max}}, testNow)
		if d.Passed != tc.passed {
			t.Errorf("HIGH=%d: passed %v, want %v (%s)", tc.max, d.Passed, tc.passed, d.Summary())
		}
	}
}

func TestEvaluateSeverityBuckets(t *testing.T) {
	// NONE counts as LOW and unknown ratings as UNKNOWN, as scan.Counts
	// counts them.
	r := &scan.Report{
		Packages: []scan.Package{{Name: "p", Version: "1"}},
		Findings: []scan.Finding{
			{ID: "CVE-1", Severity: vulndb.None},
			{ID: "CVE-2", Severity: "moderate"},
			{ID: "CVE-3", Severity: ""},
			{ID: "CVE-4", Package: 7, Severity: vulndb.Low}, // no such package
		},
	}
	d := Evaluate(r, Policy{Thresholds: map[string]int{"LOW": 1, "UNKNOWN": 1}}, testNow)
	want := []string{
		"LOW 2 > 1: p CVE-1 (unfixed), unknown package CVE-4 (unfixed) — fixable: 0",
		"UNKNOWN 2 > 1: p CVE-2 (unfixed), p CVE-3 (unfixed) — fixable: 0",
	}
	if !reflect.DeepEqual(d.Reasons, want) {
		t.Errorf("reasons:\n%s\nwant:\n%s", strings.Join(d.Reasons, "\n"), strings.Join(want, "\n"))
	}
}

func TestEvaluateManyFindings(t *testing.T) {
	r := &scan.Report{Packages: []scan.Package{{Name: "libfoo", Version: "1.0", Ecosystem: "Debian:12"}}}
	for i := range 8 {
		r.Findings = append(r.Findings, scan.Finding{
			ID: fmt.Sprintf("CVE-2024-%04d", i), Severity: vulndb.High, Score: float64(i),
			Fixed: []string{fmt.Sprintf("1.%d", i%3+1)},
		})
	}
	d := Evaluate(r, Policy{Thresholds: map[string]int{"HIGH": 0}}, testNow)
	want := "HIGH 8 > 0: libfoo CVE-2024-0007 (fixed in 1.2), libfoo CVE-2024-0006 (fixed in 1.1), " +
		"libfoo CVE-2024-0005 (fixed in 1.3), libfoo CVE-2024-0004 (fixed in 1.2), libfoo CVE-2024-0003 (fixed in 1.1), " +
		"and 3 more — fixable: 8; upgrading libfoo to 1.3 fixes 8"
	if len(d.Reasons) != 1 || d.Reasons[0] != want {
		t.Errorf("reasons %q\nwant %q", d.Reasons, want)
	}
}

func TestEvaluateUnorderableUpgrade(t *testing.T) {
	// Fixed versions an ecosystem cannot order give no upgrade hint.
	r := &scan.Report{Packages: []scan.Package{{Name: "thing", Version: "1", Ecosystem: "Nowhere"}}}
	for _, v := range []string{"2", "3"} {
		r.Findings = append(r.Findings, scan.Finding{ID: "CVE-" + v, Severity: vulndb.High, Fixed: []string{v}})
	}
	d := Evaluate(r, Policy{Thresholds: map[string]int{"HIGH": 0}}, testNow)
	if d.Upgrades != nil || strings.Contains(d.Reasons[0], "upgrading") {
		t.Errorf("upgrades %v, reason %q", d.Upgrades, d.Reasons[0])
	}
}

func TestEvaluateReplacesSuppressions(t *testing.T) {
	r := testReport()
	Evaluate(r, Policy{IgnoreUnfixed: true}, testNow)
	if r.Summary.Total != 6 {
		t.Fatalf("total %d after ignore-unfixed, want 6", r.Summary.Total)
	}
	r.Findings[0].Suppressed = &scan.Suppression{Kind: "stale"}
	Evaluate(r, Policy{}, testNow)
	for _, f := range r.Findings {
		if f.Suppressed != nil {
			t.Errorf("%s still suppressed: %+v", f.ID, f.Suppressed)
		}
	}
	if r.Summary.Total != 9 {
		t.Errorf("total %d, want 9", r.Summary.Total)
	}
}

func TestEvaluateInvalidPolicy(t *testing.T) {
	for _, th := range []map[string]int{
		{"SEVERE": 0},
		{"HIGH": -1},
		{"high": 0, "HIGH": 1},
	} {
		d := Evaluate(testReport(), Policy{Thresholds: th}, testNow)
		if d.Passed || len(d.Reasons) != 1 || !strings.HasPrefix(d.Reasons[0], "invalid policy: ") {
			t.Errorf("%v: %+v", th, d)
		}
		if !strings.HasPrefix(d.Summary(), "Rejected: invalid policy: ") {
			t.Errorf("%v: summary %q", th, d.Summary())
		}
		p := Policy{Thresholds: th}
		if p.Validate() == nil {
			t.Errorf("%v: Validate passed", th)
		}
	}
	// Lower case is fine.
	d := Evaluate(testReport(), Policy{Thresholds: map[string]int{"medium": 1}}, testNow)
	if !d.Passed || d.Summary() != "Approved: MEDIUM 1 ≤ 1" {
		t.Errorf("medium=1: %s", d.Summary())
	}
}

func TestEvaluateNoThresholds(t *testing.T) {
	d := Evaluate(testReport(), Policy{}, testNow)
	if !d.Passed || d.Summary() != "Approved: no thresholds set" {
		t.Errorf("%s", d.Summary())
	}
	if want := []string{"no thresholds set: every image passes"}; !reflect.DeepEqual(d.Notes, want) {
		t.Errorf("notes %q", d.Notes)
	}
}

func TestEvaluateNilReport(t *testing.T) {
	d := Evaluate(nil, Policy{}, testNow)
	if d.Passed || d.Summary() != "Rejected: no report to evaluate" {
		t.Errorf("%+v", d)
	}
}

func TestEvaluateDeterministic(t *testing.T) {
	ignores, err := ParseIgnoreFile(readTestdata(t, "ignore.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	p := Policy{Thresholds: map[string]int{"CRITICAL": 0, "HIGH": 0, "MEDIUM": 0, "LOW": 0, "UNKNOWN": 0}, Ignores: ignores}
	first, err := json.Marshal(Evaluate(testReport(), p, testNow))
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		again, _ := json.Marshal(Evaluate(testReport(), p, testNow))
		if string(again) != string(first) {
			t.Fatalf("decision changed:\n%s\n%s", first, again)
		}
	}
}

func TestPolicyValidate(t *testing.T) {
	ok := Policy{
		Thresholds: map[string]int{"critical": 0},
		Ignores:    []Ignore{{ID: "CVE-2023-45853", PURL: "pkg:deb/debian/zlib1g"}},
		VEX:        []VEXStatement{{Vulnerability: "CVE-1", Status: VEXFixed}},
	}
	if err := ok.Validate(); err != nil {
		t.Errorf("valid policy: %v", err)
	}
	for name, p := range map[string]Policy{
		"no id":      {Ignores: []Ignore{{Package: "zlib1g"}}},
		"bad purl":   {Ignores: []Ignore{{ID: "CVE-1", PURL: "deb/zlib1g"}}},
		"no vuln":    {VEX: []VEXStatement{{Status: VEXFixed}}},
		"bad status": {VEX: []VEXStatement{{Vulnerability: "CVE-1", Status: "ok"}}},
	} {
		if err := p.Validate(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestEvaluateInvalidEntriesMatchNothing(t *testing.T) {
	r := testReport()
	d := Evaluate(r, Policy{
		Ignores: []Ignore{{PURL: "pkg:deb/debian/zlib1g"}, {ID: "CVE-2023-45853", PURL: "zlib1g"}},
		VEX:     []VEXStatement{{Vulnerability: "CVE-2023-45853", Status: "maybe"}},
	}, testNow)
	for _, f := range r.Findings {
		if f.Suppressed != nil {
			t.Errorf("%s suppressed by an invalid entry", f.ID)
		}
	}
	want := []string{
		`ignore entry without an id (pkg:deb/debian/zlib1g) is invalid and matches nothing: id "" is not a vulnerability ID`,
		`ignore entry for CVE-2023-45853 (zlib1g) is invalid and matches nothing: CVE-2023-45853: purl: package URL does not start with "pkg:"`,
		`VEX statement 1 is invalid and matches nothing: CVE-2023-45853: status "maybe" is not an OpenVEX status`,
		"no thresholds set: every image passes",
	}
	if !reflect.DeepEqual(d.Notes, want) {
		t.Errorf("notes:\n%s\nwant:\n%s", strings.Join(d.Notes, "\n"), strings.Join(want, "\n"))
	}
}
