package feed

import (
	"errors"
	"fmt"
	"strings"

	"github.com/scangate/scangate/internal/vulndb"
)

// GHSA reads GitHub Security Advisories in the shape of GitHub's GraphQL
// API, one vulnerable package of one advisory per file, as
// aquasecurity/vuln-list stores them (ghsa/<ecosystem>/<package>/GHSA-*.json).
// GitHub's advisories in OSV form (osv.dev's GHSA-*.json) are OSV's.
type GHSA struct{}

// Name returns "ghsa".
func (GHSA) Name() string { return "ghsa" }

// Match reports whether head starts a JSON object with top-level "Advisory",
// "Package" and "Versions". Versions comes last in vuln-list's files, so when
// head ends inside the object Advisory and Package suffice.
func (GHSA) Match(name string, head []byte) bool {
	keys, complete := osvTopKeys("", head)
	return keys["Advisory"] && keys["Package"] && (keys["Versions"] || !complete)
}

// ghsaRecord is a vuln-list GHSA file. Dropped: DatabaseId, Id, Origin,
// GitHub's precomputed CVSS score (scangate computes it from the vector) and
// FirstPatchedVersion, GitHub's copy of the range's upper bound: where the
// two disagree the range, which GitHub itself matches on, wins.
type ghsaRecord struct {
	Severity  string
	UpdatedAt string
	Package   struct {
		Ecosystem string
		Name      string
	}
	Advisory struct {
		GhsaID      string `json:"GhsaId"`
		Identifiers []struct {
			Type  string
			Value string
		}
		References []struct {
			URL string `json:"Url"`
		}
		Description string
		Summary     string
		PublishedAt string
		UpdatedAt   string
		WithdrawnAt string
		Severity    string
		CVSS        struct {
			VectorString string
		}
	}
	Versions []struct {
		VulnerableVersionRange string
	}
}

// ghsaEcosystems maps GitHub's ecosystem names to OSV's.
var ghsaEcosystems = map[string]string{
	"NPM": "npm", "PIP": "PyPI", "GO": "Go", "MAVEN": "Maven",
	"RUBYGEMS": "RubyGems", "NUGET": "NuGet", "COMPOSER": "Packagist",
	"RUST": "crates.io", "ERLANG": "Hex", "PUB": "Pub", "SWIFT": "SwiftURL",
}

// Parse decodes one vuln-list GHSA file into one advisory with one Affected
// holding a range per entry of Versions.
func (GHSA) Parse(name string, data []byte) (Result, error) {
	var rec ghsaRecord
	if err := osvDecode("", data, &rec); err != nil {
		return Result{}, fmt.Errorf("ghsa %s: %w", name, err)
	}
	var res Result
	a := &rec.Advisory
	id := strings.TrimSpace(a.GhsaID)
	if id == "" {
		res.Skipped = append(res.Skipped, Skip{File: name, Reason: "advisory has no GhsaId"})
		return res, nil
	}
	skip := func(format string, args ...any) {
		res.Skipped = append(res.Skipped, Skip{File: name, Record: id, Reason: fmt.Sprintf(format, args...)})
	}
	eco, ok := ghsaEcosystems[rec.Package.Ecosystem]
	if !ok {
		skip("unknown GitHub ecosystem %q", osvClip(rec.Package.Ecosystem))
		return res, nil
	}
	if rec.Package.Name == "" {
		skip("no package name")
		return res, nil
	}
	adv := vulndb.Advisory{
		ID:      id,
		Summary: a.Summary,
		Details: a.Description,
		Feed:    "ghsa:" + eco,
	}
	var ids []string
	for _, i := range a.Identifiers {
		ids = append(ids, i.Value)
	}
	adv.Aliases = osvAliases(id, ids)
	updated := a.UpdatedAt
	if updated == "" {
		updated = rec.UpdatedAt
	}
	var err error
	if adv.Published, adv.Modified, adv.Withdrawn, err = osvTimes(a.PublishedAt, updated, a.WithdrawnAt); err != nil {
		skip("%v", err)
		return res, nil
	}
	for _, r := range a.References {
		if r.URL != "" {
			adv.References = append(adv.References, r.URL)
		}
	}
	word := a.Severity
	if word == "" {
		word = rec.Severity
	}
	if sev, ok := ghsaRating(word); ok {
		adv.Severities = append(adv.Severities, sev)
	}
	if v := strings.TrimSpace(a.CVSS.VectorString); v != "" {
		sev, err := vulndb.CVSS(v)
		if err != nil {
			skip("dropped CVSS severity: %v", err)
		} else {
			sev.Source = "ghsa"
			adv.Severities = append(adv.Severities, sev)
		}
	}
	aff := vulndb.Affected{Ecosystem: eco, Package: vulndb.NormalizePackage(eco, rec.Package.Name)}
	for _, v := range rec.Versions {
		r, exact, err := ghsaRange(v.VulnerableVersionRange)
		switch {
		case err != nil:
			skip("dropped version range %q: %v", osvClip(v.VulnerableVersionRange), err)
		case exact != "":
			aff.Versions = append(aff.Versions, exact)
		default:
			aff.Ranges = append(aff.Ranges, r)
		}
	}
	if len(aff.Ranges) == 0 && len(aff.Versions) == 0 {
		skip("no usable vulnerable version range for %s", osvClip(rec.Package.Name))
		return res, nil
	}
	adv.Affected = []vulndb.Affected{aff}
	res.Advisories = append(res.Advisories, adv)
	return res, nil
}

// ghsaRating is GitHub's severity word as a Severity; ok is false for an
// empty or unknown word.
func ghsaRating(word string) (sev vulndb.Severity, ok bool) {
	rating := vulndb.NormalizeRating(word)
	if rating == vulndb.Unknown {
		return vulndb.Severity{}, false
	}
	return vulndb.Severity{Source: "ghsa", Type: vulndb.GHSARating, Rating: rating}, true
}

// errGHSAExclusive reports a "> v" constraint: OSV's introduced events are
// inclusive and versions have no successor to introduce instead.
var errGHSAExclusive = errors.New(`"> v" excludes v, which an OSV range cannot express`)

// ghsaRange translates a VulnerableVersionRange ("< 1.2.3", ">= 1.0, < 1.2")
// into an ECOSYSTEM range, or returns the one version of "= v" as exact.
func ghsaRange(s string) (r vulndb.Range, exact string, err error) {
	var lower, upper, upperOp string
	for _, c := range strings.Split(s, ",") {
		c = strings.TrimSpace(c)
		op := c[:len(c)-len(strings.TrimLeft(c, "<>="))]
		v := strings.TrimSpace(c[len(op):])
		switch {
		case op == "" || v == "" || strings.ContainsAny(v, " \t<>=!,"):
			return r, "", fmt.Errorf("constraint %q is not an operator and a version", osvClip(c))
		case op == ">":
			return r, "", errGHSAExclusive
		case op == ">=" && lower == "":
			lower = v
		case (op == "<" || op == "<=") && upper == "":
			upper, upperOp = v, op
		case op == "=" && exact == "":
			exact = v
		default:
			return r, "", fmt.Errorf("constraint %q is unknown or repeats a bound", osvClip(c))
		}
	}
	if exact != "" {
		if lower != "" || upper != "" {
			return r, "", errors.New(`"= v" combined with other bounds`)
		}
		return r, exact, nil
	}
	if lower == "" {
		lower = "0"
	}
	r = vulndb.Range{Type: vulndb.RangeEcosystem, Events: []vulndb.Event{{Introduced: lower}}}
	switch upperOp {
	case "<":
		r.Events = append(r.Events, vulndb.Event{Fixed: upper})
	case "<=":
		r.Events = append(r.Events, vulndb.Event{LastAffected: upper})
	}
	return r, "", nil
}
