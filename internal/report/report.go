// Package report writes a scan.Report in the formats users of Trivy and
// Grype expect: a table for people, scangate's own JSON, SARIF 2.1.0 for
// code-scanning dashboards, CycloneDX 1.6 (an SBOM with vulnerabilities,
// VEX-style analysis for suppressed findings) and SPDX 2.3 (an SBOM).
//
// Every format is deterministic: the same report always gives the same
// bytes, so outputs can be diffed, cached and compared in tests.
package report

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/scangate/scangate/internal/scan"
)

// Format names an output format.
type Format string

// The output formats.
const (
	Table     Format = "table"
	JSON      Format = "json"
	SARIF     Format = "sarif"
	CycloneDX Format = "cyclonedx"
	SPDX      Format = "spdx"
)

// Formats lists the output formats in the order help text shows them.
func Formats() []Format { return []Format{Table, JSON, SARIF, CycloneDX, SPDX} }

// ParseFormat returns the format s names, ignoring case and surrounding
// space. It also accepts the names Trivy and Grype use for the same formats
// ("cyclonedx-json", "spdx-json", "cdx").
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "table":
		return Table, nil
	case "json":
		return JSON, nil
	case "sarif":
		return SARIF, nil
	case "cyclonedx", "cyclonedx-json", "cdx", "cdx-json":
		return CycloneDX, nil
	case "spdx", "spdx-json":
		return SPDX, nil
	}
	names := make([]string, 0, len(Formats()))
	for _, f := range Formats() {
		names = append(names, string(f))
	}
	return "", fmt.Errorf("unknown report format %q (want one of %s)", s, strings.Join(names, ", "))
}

// Options tune the output.
type Options struct {
	// Color turns on ANSI colours in the table; other formats ignore it.
	Color bool
	// ToolVersion is scangate's version, recorded by the SARIF, CycloneDX
	// and SPDX writers as the producing tool's version.
	ToolVersion string
}

// Write writes r to w in format f.
func Write(w io.Writer, r *scan.Report, f Format, opts Options) error {
	if r == nil {
		return errors.New("report: nil report")
	}
	if err := check(r); err != nil {
		return err
	}
	switch f {
	case Table:
		return writeTable(w, r, opts)
	case JSON:
		return writeJSON(w, r)
	case SARIF:
		return writeSARIF(w, r, opts)
	case CycloneDX:
		return writeCycloneDX(w, r, opts)
	case SPDX:
		return writeSPDX(w, r, opts)
	}
	return fmt.Errorf("report: unknown format %q", f)
}

// check rejects a report whose findings point outside its package list;
// every writer relies on Finding.Package being a valid index.
func check(r *scan.Report) error {
	for i := range r.Findings {
		if p := r.Findings[i].Package; p < 0 || p >= len(r.Packages) {
			return fmt.Errorf("report: finding %d (%s) names package %d of %d", i, r.Findings[i].ID, p, len(r.Packages))
		}
	}
	return nil
}

const (
	toolName       = "scangate"
	toolInfoURI    = "https://github.com/scangate/scangate"
	toolVendor     = "scangate"
	unknownVersion = "unknown"
)

// toolVersion returns opts.ToolVersion, or "unknown" when unset.
func toolVersion(opts Options) string {
	if v := strings.TrimSpace(opts.ToolVersion); v != "" {
		return v
	}
	return unknownVersion
}

// sortedFindings returns the indexes of r's findings ordered by severity
// (most severe first), then package name, ID, installed version and path.
func sortedFindings(r *scan.Report) []int {
	idx := make([]int, len(r.Findings))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		fa, fb := &r.Findings[a], &r.Findings[b]
		if c := scan.SeverityRank(fa.Severity) - scan.SeverityRank(fb.Severity); c != 0 {
			return c
		}
		pa, pb := &r.Packages[fa.Package], &r.Packages[fb.Package]
		for _, c := range []int{
			strings.Compare(pa.Name, pb.Name),
			strings.Compare(fa.ID, fb.ID),
			strings.Compare(pa.Version, pb.Version),
			strings.Compare(pa.Path, pb.Path),
			strings.Compare(pa.Type, pb.Type),
		} {
			if c != 0 {
				return c
			}
		}
		return 0
	})
	return idx
}

// isOSPackage reports whether p is a distribution package.
func isOSPackage(p *scan.Package) bool {
	switch p.Type {
	case "deb", "apk", "rpm":
		return true
	}
	return false
}

// imageDigest returns the digest that identifies the image: the manifest
// digest where there is one, else the config digest (the image ID).
func imageDigest(r *scan.Report) string {
	if r.Image.Digest != "" {
		return r.Image.Digest
	}
	return r.Image.ConfigDigest
}

// imageName returns the image's name without tag or digest, for documents
// that want a name and a version apart.
func imageName(r *scan.Report) string {
	if r.Image.Repository != "" {
		return r.Image.Repository
	}
	return r.Image.Ref
}

// shortDigest trims "sha256:" digests to 12 hex digits for display.
func shortDigest(d string) string {
	algo, hexPart, ok := strings.Cut(d, ":")
	if !ok || len(hexPart) <= 12 {
		return d
	}
	return algo + ":" + hexPart[:12]
}

// stableID returns a short hash naming a package by what makes it unique
// in a report, for identifiers that must not depend on list order.
func stableID(p *scan.Package) string {
	h := sha256.Sum256([]byte(strings.Join([]string{p.Type, p.Ecosystem, p.Name, p.Version, p.Path}, "\x00")))
	return hex.EncodeToString(h[:8])
}

// nameUUID returns a name-based (version 5, SHA-1) UUID for name, so that
// documents can carry UUIDs that are stable across runs.
func nameUUID(name string) string {
	// The URL namespace of RFC 9562, appendix A.
	ns := [16]byte{0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}
	h := sha1.New()
	h.Write(ns[:])
	h.Write([]byte(name))
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	x := hex.EncodeToString(u[:])
	return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}

// fixedText says which versions fix a finding, or that none does yet.
func fixedText(f *scan.Finding) string {
	if !f.Fixable() {
		return "no fix yet"
	}
	return "fixed in " + strings.Join(f.Fixed, ", ")
}

// advisoryURL returns f's own URL, or the page that documents its ID at
// the database that issues such IDs.
func advisoryURL(f *scan.Finding) string {
	if f.URL != "" {
		return f.URL
	}
	return scan.AdvisoryURL(f.ID)
}

// suppressedKinds counts suppressed findings by kind, most frequent first.
func suppressedKinds(r *scan.Report) (total int, kinds []kindCount) {
	counts := map[string]int{}
	for i := range r.Findings {
		if s := r.Findings[i].Suppressed; s != nil {
			kind := s.Kind
			if kind == "" {
				kind = "unspecified"
			}
			counts[kind]++
			total++
		}
	}
	for k, n := range counts {
		kinds = append(kinds, kindCount{k, n})
	}
	slices.SortFunc(kinds, func(a, b kindCount) int {
		if a.n != b.n {
			return b.n - a.n
		}
		return strings.Compare(a.kind, b.kind)
	})
	return total, kinds
}

type kindCount struct {
	kind string
	n    int
}
