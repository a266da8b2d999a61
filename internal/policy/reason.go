package policy

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/scangate/scangate/internal/scan"
	"github.com/scangate/scangate/internal/vulndb"
)

// Limits on a reason's length.
const (
	reasonItems    = 5 // findings named per severity
	reasonUpgrades = 2 // upgrade hints per severity
)

// reason explains a failed check: "CRITICAL 2 > 0: zlib1g CVE-2023-45853
// (unfixed), libssl3+openssl CVE-2024-1234 (fixed in 3.0.14-1~deb12u1) —
// fixable: 1; upgrading libssl3 to 3.0.14-1~deb12u1 fixes 2".
func reason(r *scan.Report, c Check, ups []Upgrade) string {
	items := reasonGroups(r, c.Severity)
	shown, more := items, 0
	if len(items) > reasonItems {
		shown = items[:reasonItems]
		for _, it := range items[reasonItems:] {
			more += len(it.pkgs)
		}
	}
	parts := make([]string, len(shown))
	for i, it := range shown {
		parts[i] = it.String()
	}
	list := strings.Join(parts, ", ")
	if more > 0 {
		list += fmt.Sprintf(", and %d more", more)
	}
	s := fmt.Sprintf("%s: %s — fixable: %d", c, list, c.Fixable)
	if hints := upgradeHints(ups, c.Severity); hints != "" {
		s += "; " + hints
	}
	return s
}

// A reasonGroup is one vulnerability in the packages it affects with the
// same fix, as a reason names it.
type reasonGroup struct {
	id    string
	fix   string
	score float64
	pkgs  []string
}

// String writes "libssl3+openssl CVE-2024-1234 (fixed in 3.0.14-1~deb12u1)".
func (g reasonGroup) String() string {
	return fmt.Sprintf("%s %s (%s)", strings.Join(g.pkgs, "+"), g.id, g.fix)
}

// reasonGroups returns the counting findings of a severity, grouped by ID
// and fix, highest CVSS score first, then by ID and fix.
func reasonGroups(r *scan.Report, severity string) []reasonGroup {
	var groups []reasonGroup
	index := map[[2]string]int{}
	for i := range r.Findings {
		f := &r.Findings[i]
		if f.Suppressed != nil || scan.Bucket(f.Severity) != severity {
			continue
		}
		key := [2]string{f.ID, fixText(f)}
		gi, ok := index[key]
		if !ok {
			gi = len(groups)
			index[key] = gi
			groups = append(groups, reasonGroup{id: f.ID, fix: key[1], score: f.Score})
		}
		g := &groups[gi]
		g.score = max(g.score, f.Score)
		g.pkgs = append(g.pkgs, packageName(r, f.Package))
	}
	for i := range groups {
		slices.Sort(groups[i].pkgs)
	}
	slices.SortFunc(groups, func(a, b reasonGroup) int {
		return cmp.Or(cmp.Compare(b.score, a.score), cmp.Compare(a.id, b.id), cmp.Compare(a.fix, b.fix))
	})
	return groups
}

// packageName returns the name of package i, or a stand-in when the report
// has no such package.
func packageName(r *scan.Report, i int) string {
	if i < 0 || i >= len(r.Packages) || r.Packages[i].Name == "" {
		return "unknown package"
	}
	return r.Packages[i].Name
}

// fixText says how a finding is fixed: "fixed in 1.2.3", or why it is not.
func fixText(f *scan.Finding) string {
	if f.Fixable() {
		return "fixed in " + f.Fixed[0]
	}
	return unfixedText(f)
}

// unfixedText says why a finding has no fix, from its status.
func unfixedText(f *scan.Finding) string {
	switch f.Status {
	case vulndb.StatusWillNotFix:
		return "will not be fixed"
	case vulndb.StatusEndOfLife:
		return "end of life"
	}
	return "unfixed"
}

// upgradeHints writes the upgrades that fix several findings of a severity:
// "upgrading libssl3 to 3.0.14-1~deb12u1 fixes 2".
func upgradeHints(ups []Upgrade, severity string) string {
	var hits []Upgrade
	for _, u := range ups {
		if u.Fixes.Of(severity) >= 2 {
			hits = append(hits, u)
		}
	}
	slices.SortStableFunc(hits, func(a, b Upgrade) int {
		return cmp.Compare(b.Fixes.Of(severity), a.Fixes.Of(severity))
	})
	var parts []string
	for _, u := range hits[:min(len(hits), reasonUpgrades)] {
		parts = append(parts, fmt.Sprintf("upgrading %s to %s fixes %d", u.Package, u.To, u.Fixes.Of(severity)))
	}
	return strings.Join(parts, ", ")
}

// upgrades returns, for each installed package with counting, fixable
// findings of the failing severities, the lowest version that fixes them
// all. Packages of the same name, ecosystem and version (copies at several
// paths) are one upgrade. A package whose fixed versions cannot be ordered
// gets none. Most fixes come first, counting higher severities first, then
// by name.
func upgrades(r *scan.Report, failing map[string]bool) []Upgrade {
	if len(failing) == 0 {
		return nil
	}
	type key struct{ name, eco, version string }
	byKey := map[key]*Upgrade{}
	broken := map[key]bool{}
	for i := range r.Findings {
		f := &r.Findings[i]
		if f.Suppressed != nil || !f.Fixable() || !failing[scan.Bucket(f.Severity)] || f.Package < 0 || f.Package >= len(r.Packages) {
			continue
		}
		pkg := &r.Packages[f.Package]
		k := key{pkg.Name, pkg.Ecosystem, pkg.Version}
		u := byKey[k]
		if u == nil {
			u = &Upgrade{Package: pkg.Name, Ecosystem: pkg.Ecosystem, From: pkg.Version, To: f.Fixed[0]}
			byKey[k] = u
		}
		u.Fixes.Add(scan.Bucket(f.Severity))
		if to, ok := higher(pkg.Ecosystem, u.To, f.Fixed[0]); ok {
			u.To = to
		} else {
			broken[k] = true
		}
	}
	var out []Upgrade
	for k, u := range byKey {
		if !broken[k] {
			out = append(out, *u)
		}
	}
	slices.SortFunc(out, compareUpgrades)
	return out
}

// higher returns the higher of two versions of an ecosystem; ok is false
// if they differ and cannot be ordered.
func higher(ecosystem, a, b string) (string, bool) {
	if a == b {
		return a, true
	}
	c, err := vulndb.CompareVersions(ecosystem, a, b)
	if err != nil {
		return "", false
	}
	if c < 0 {
		return b, true
	}
	return a, true
}

// compareUpgrades orders upgrades by fixes, most first and counting higher
// severities first, then by package, ecosystem and version.
func compareUpgrades(a, b Upgrade) int {
	if c := cmp.Compare(b.Fixes.Total, a.Fixes.Total); c != 0 {
		return c
	}
	for _, sev := range scan.Severities {
		if c := cmp.Compare(b.Fixes.Of(sev), a.Fixes.Of(sev)); c != 0 {
			return c
		}
	}
	return cmp.Or(cmp.Compare(a.Package, b.Package), cmp.Compare(a.Ecosystem, b.Ecosystem),
		cmp.Compare(a.From, b.From), cmp.Compare(a.To, b.To))
}
