package policy

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/scangate/scangate/internal/scan"
)

// The kinds of suppression Evaluate records in scan.Suppression.Kind.
const (
	KindIgnoreFile    = "ignore-file"
	KindVEX           = "vex"
	KindIgnoreUnfixed = "ignore-unfixed"
)

// A Policy says which findings an image may have.
type Policy struct {
	// Thresholds maps a severity (CRITICAL, HIGH, MEDIUM, LOW, UNKNOWN) to
	// the most findings of it allowed: CRITICAL=0 means any CRITICAL
	// finding fails. A severity without a threshold is not limited, so an
	// empty map passes every image. Findings rated NONE count as LOW, as in
	// scan.Counts.
	Thresholds map[string]int
	// IgnoreUnfixed suppresses the findings that have no fixed version.
	IgnoreUnfixed bool
	// Ignores suppress findings by vulnerability ID, as an ignore file
	// lists them.
	Ignores []Ignore
	// VEX statements suppress the findings they say are not_affected or
	// fixed.
	VEX []VEXStatement
}

// Validate reports the first problem with a policy built in code: a
// threshold that is not a severity or is negative, or an ignore entry or
// VEX statement that ParseIgnoreFile or ParseVEX would have refused.
// Evaluate rejects a report under invalid thresholds, and an invalid ignore
// entry or VEX product matches nothing.
func (p *Policy) Validate() error {
	if _, err := checkThresholds(p.Thresholds); err != nil {
		return err
	}
	for i := range p.Ignores {
		if err := p.Ignores[i].validate(); err != nil {
			return fmt.Errorf("ignore %d: %w", i+1, err)
		}
	}
	for i := range p.VEX {
		if err := p.VEX[i].validate(); err != nil {
			return fmt.Errorf("vex statement %d: %w", i+1, err)
		}
	}
	return nil
}

func (ig *Ignore) validate() error {
	if !ignoreIDRe.MatchString(ig.ID) {
		return fmt.Errorf("id %q is not a vulnerability ID", clip(ig.ID))
	}
	if ig.PURL != "" {
		if _, err := parsePURL(ig.PURL); err != nil {
			return fmt.Errorf("%s: purl: %w", ig.ID, err)
		}
	}
	return nil
}

func (st *VEXStatement) validate() error {
	if strings.TrimSpace(st.Vulnerability) == "" {
		return errors.New("vulnerability has no name")
	}
	if !st.Status.valid() {
		return fmt.Errorf("%s: status %q is not an OpenVEX status", st.Vulnerability, clip(string(st.Status)))
	}
	return nil
}

// A Decision is the outcome of evaluating a report against a policy.
type Decision struct {
	// Passed says whether the image may go on.
	Passed bool `json:"passed"`
	// Reasons say, one per threshold exceeded, what failed and what would
	// fix it; they are empty when Passed.
	Reasons []string `json:"reasons,omitempty"`
	// Notes are things to know that did not decide: expired or expiring
	// ignore entries, what was suppressed, a policy without thresholds.
	Notes []string `json:"notes,omitempty"`
	// Checks compare each threshold with the report, in severity order.
	Checks []Check `json:"checks,omitempty"`
	// Upgrades are the package upgrades that fix findings of the failing
	// severities, most fixes first.
	Upgrades []Upgrade `json:"upgrades,omitempty"`
	// Suppressed counts the suppressed findings by kind (KindVEX, …).
	Suppressed map[string]int `json:"suppressed,omitempty"`
	// Suppressions name every suppression the decision relied on, one per
	// vulnerability and reason: "CVE-2023-45853 in zlib1g excepted until
	// 2027-01-31: MiniZip is not built".
	Suppressions []string `json:"suppressions,omitempty"`
}

// A Check is one threshold compared with the findings that count.
type Check struct {
	Severity string `json:"severity"`
	// Count is the number of findings of the severity that are not
	// suppressed; Fixable, how many of them have a fixed version.
	Count   int `json:"count"`
	Max     int `json:"max"`
	Fixable int `json:"fixable"`
}

// Passed reports whether the count is within the threshold.
func (c Check) Passed() bool { return c.Count <= c.Max }

// String writes the check as "HIGH 3 > 0" or "HIGH 0 ≤ 0".
func (c Check) String() string {
	op := "≤"
	if !c.Passed() {
		op = ">"
	}
	return fmt.Sprintf("%s %d %s %d", c.Severity, c.Count, op, c.Max)
}

// An Upgrade is one package upgrade and the findings of failing severities
// it fixes.
type Upgrade struct {
	Package   string `json:"package"`
	Ecosystem string `json:"ecosystem,omitempty"`
	From      string `json:"from"`
	// To is the lowest version that fixes all of them.
	To    string      `json:"to"`
	Fixes scan.Counts `json:"fixes"`
}

// String writes the upgrade as "upgrading zlib1g to 1.3 fixes 1 CRITICAL,
// 2 HIGH".
func (u Upgrade) String() string {
	return fmt.Sprintf("upgrading %s to %s fixes %s", u.Package, u.To, CountsText(u.Fixes))
}

// Violations returns the checks that failed.
func (d *Decision) Violations() []Check {
	var out []Check
	for _, c := range d.Checks {
		if !c.Passed() {
			out = append(out, c)
		}
	}
	return out
}

// Summary is the decision in one line: "Rejected: CRITICAL 3 > 0, HIGH 16 >
// 0 — 12 fixable; upgrading zlib1g to 1:1.3.dfsg-1 fixes 1 CRITICAL" or
// "Approved: CRITICAL 0 ≤ 0, HIGH 0 ≤ 0".
func (d *Decision) Summary() string {
	if d.Passed {
		if len(d.Checks) == 0 {
			return "Approved: no thresholds set"
		}
		return "Approved: " + joinChecks(d.Checks)
	}
	bad := d.Violations()
	if len(bad) == 0 {
		return "Rejected: " + strings.Join(d.Reasons, "; ")
	}
	s := "Rejected: " + joinChecks(bad)
	fixable := 0
	for _, c := range bad {
		fixable += c.Fixable
	}
	s += fmt.Sprintf(" — %d fixable", fixable)
	if len(d.Upgrades) > 0 {
		s += "; " + d.Upgrades[0].String()
	}
	return s
}

func joinChecks(cs []Check) string {
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = c.String()
	}
	return strings.Join(parts, ", ")
}

// CountsText writes the non-zero counts, highest severity first: "1
// CRITICAL, 2 HIGH".
func CountsText(c scan.Counts) string {
	var parts []string
	for _, sev := range scan.Severities {
		if n := c.Of(sev); n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, sev))
		}
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ")
}

// Evaluate applies p to r at time now. It first marks in r the findings
// the policy suppresses, replacing any suppression an earlier evaluation
// left, and recounts r; suppressed findings stay in the report with their
// kind and reason. A finding that several rules suppress records the first
// of: a VEX statement (the latest matching statement decides, and only
// not_affected and fixed suppress), an ignore entry that has not expired
// (the one expiring last), and IgnoreUnfixed. Then each threshold is
// compared with the count of findings that are not suppressed; more than
// the threshold fails. Invalid thresholds, or a nil report, reject.
func Evaluate(r *scan.Report, p Policy, now time.Time) Decision {
	if r == nil {
		return Decision{Reasons: []string{"no report to evaluate"}}
	}
	e := newEvaluation(r, &p, now)
	e.suppress()
	r.Recount()
	d := Decision{Notes: e.notes(), Suppressed: e.suppressed, Suppressions: suppressionLines(r)}
	thresholds, err := checkThresholds(p.Thresholds)
	if err != nil {
		d.Reasons = []string{"invalid policy: " + err.Error()}
		return d
	}
	if len(thresholds) == 0 {
		d.Notes = append(d.Notes, "no thresholds set: every image passes")
	}
	for _, sev := range scan.Severities {
		if max, ok := thresholds[sev]; ok {
			d.Checks = append(d.Checks, Check{Severity: sev, Count: r.Summary.Of(sev), Max: max, Fixable: r.Fixable.Of(sev)})
		}
	}
	failing := map[string]bool{}
	for _, c := range d.Violations() {
		failing[c.Severity] = true
	}
	d.Upgrades = upgrades(r, failing)
	for _, c := range d.Violations() {
		d.Reasons = append(d.Reasons, reason(r, c, d.Upgrades))
	}
	d.Passed = len(d.Reasons) == 0
	return d
}

// expiryWarning is how soon before an ignore entry expires the decision
// warns of it.
const expiryWarning = 14 * 24 * time.Hour

// evaluation is the state of one Evaluate.
type evaluation struct {
	r     *scan.Report
	p     *Policy
	now   time.Time
	image []string
	purls map[int]*purl // package index → its parsed package URL, or nil

	ignores   []ignoreMatcher
	ignoreIdx map[string][]int // upper-case ID → entries
	hits      []int            // per entry, findings it matches (expired or not)
	vex       []vexMatcher
	vexIdx    map[string][]int // upper-case name → statements

	suppressed map[string]int
	bad        []string // notes on entries that match nothing
}

func newEvaluation(r *scan.Report, p *Policy, now time.Time) *evaluation {
	e := &evaluation{
		r: r, p: p, now: now,
		image:     imageNames(r.Image),
		purls:     map[int]*purl{},
		ignoreIdx: map[string][]int{},
		vexIdx:    map[string][]int{},
		hits:      make([]int, len(p.Ignores)),
	}
	for i := range p.Ignores {
		ig := &p.Ignores[i]
		m := newIgnoreMatcher(ig)
		e.ignores = append(e.ignores, m)
		if err := ig.validate(); err != nil {
			e.bad = append(e.bad, fmt.Sprintf("%s is invalid and matches nothing: %v", ig.describe(), err))
			continue
		}
		key := strings.ToUpper(ig.ID)
		e.ignoreIdx[key] = append(e.ignoreIdx[key], i)
	}
	for i := range p.VEX {
		st := &p.VEX[i]
		e.vex = append(e.vex, newVEXMatcher(st, i))
		if err := st.validate(); err != nil {
			e.bad = append(e.bad, fmt.Sprintf("VEX statement %d is invalid and matches nothing: %v", i+1, err))
			continue
		}
		for _, name := range st.names() {
			key := strings.ToUpper(name)
			if l := e.vexIdx[key]; len(l) == 0 || l[len(l)-1] != i {
				e.vexIdx[key] = append(l, i)
			}
		}
	}
	return e
}

// suppress marks every finding the policy suppresses.
func (e *evaluation) suppress() {
	for i := range e.r.Findings {
		f := &e.r.Findings[i]
		f.Suppressed = e.suppression(f)
		if f.Suppressed != nil {
			if e.suppressed == nil {
				e.suppressed = map[string]int{}
			}
			e.suppressed[f.Suppressed.Kind]++
		}
	}
}

// suppression returns why f does not count, or nil.
func (e *evaluation) suppression(f *scan.Finding) *scan.Suppression {
	pkg, pkgPURL := e.pkg(f.Package)
	keys := findingKeys(f)
	// Ignore entries are matched even when VEX decides, to count the
	// findings expired entries would have covered.
	ig := e.matchIgnore(f, keys, pkg, pkgPURL)
	if st := e.matchVEX(keys, pkgPURL); st != nil && st.Status.Suppresses() {
		return &scan.Suppression{Kind: KindVEX, Reason: st.reason()}
	}
	if ig != nil {
		reason := ig.Reason
		if reason == "" {
			reason = "listed in the ignore file"
		}
		return &scan.Suppression{Kind: KindIgnoreFile, Reason: reason, Expires: ig.Expires}
	}
	if e.p.IgnoreUnfixed && !f.Fixable() {
		return &scan.Suppression{Kind: KindIgnoreUnfixed, Reason: "no fixed version (" + unfixedText(f) + ")"}
	}
	return nil
}

// findingKeys returns the finding's ID and aliases in upper case, without
// repeats.
func findingKeys(f *scan.Finding) []string {
	keys := []string{strings.ToUpper(f.ID)}
	for _, a := range f.Aliases {
		if k := strings.ToUpper(a); !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	return keys
}

// pkg returns the package at index i and its parsed package URL, each nil
// if there is none.
func (e *evaluation) pkg(i int) (*scan.Package, *purl) {
	if i < 0 || i >= len(e.r.Packages) {
		return nil, nil
	}
	pkg := &e.r.Packages[i]
	p, ok := e.purls[i]
	if !ok {
		if pkg.PURL != "" {
			if parsed, err := parsePURL(pkg.PURL); err == nil {
				p = &parsed
			}
		}
		e.purls[i] = p
	}
	return pkg, p
}

// matchIgnore returns the unexpired entry that suppresses f, the one
// expiring last (never is last of all), and counts the matches of every
// entry.
func (e *evaluation) matchIgnore(f *scan.Finding, keys []string, pkg *scan.Package, pkgPURL *purl) *Ignore {
	var best *Ignore
	for _, i := range candidates(e.ignoreIdx, keys) {
		m := &e.ignores[i]
		if !m.matches(f, pkg, pkgPURL, e.image) {
			continue
		}
		e.hits[i]++
		if m.Expired(e.now) {
			continue
		}
		if best == nil || outlasts(m.Ignore, best) {
			best = m.Ignore
		}
	}
	return best
}

// outlasts reports whether a expires after b; zero expiry is never.
func outlasts(a, b *Ignore) bool {
	switch {
	case b.Expires.IsZero():
		return false
	case a.Expires.IsZero():
		return true
	}
	return a.Expires.After(b.Expires)
}

// matchVEX returns the latest statement about f's vulnerability whose
// products take in f, or nil.
func (e *evaluation) matchVEX(keys []string, pkgPURL *purl) *VEXStatement {
	var best *vexMatcher
	for _, i := range candidates(e.vexIdx, keys) {
		m := &e.vex[i]
		if m.coversProduct(pkgPURL, e.r.Image, e.image) && (best == nil || m.later(best)) {
			best = m
		}
	}
	if best == nil {
		return nil
	}
	return best.st
}

// candidates returns the indexes listed under any of keys, ascending and
// without repeats.
func candidates(idx map[string][]int, keys []string) []int {
	var out []int
	for _, k := range keys {
		out = append(out, idx[k]...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// notes returns what the decision should mention about suppressions: bad
// entries, expired entries, entries expiring soon and what was suppressed.
func (e *evaluation) notes() []string {
	notes := slices.Clone(e.bad)
	for i := range e.ignores {
		ig := e.ignores[i].Ignore
		if ig.validate() != nil {
			continue // noted in e.bad
		}
		switch {
		case ig.Expired(e.now):
			n := fmt.Sprintf("%s expired %s; it no longer applies", ig.describe(), formatExpiry(ig.Expires))
			if e.hits[i] > 0 {
				verb := "count"
				if e.hits[i] == 1 {
					verb = "counts"
				}
				n += fmt.Sprintf(" (%s %s again)", plural(e.hits[i], "finding"), verb)
			}
			notes = append(notes, n)
		case !ig.Expires.IsZero() && e.hits[i] > 0 && ig.Expires.Sub(e.now) <= expiryWarning:
			days := int((ig.Expires.Sub(e.now) + 24*time.Hour - 1) / (24 * time.Hour))
			notes = append(notes, fmt.Sprintf("%s expires %s, in %s; %s will count again",
				ig.describe(), formatExpiry(ig.Expires), plural(days, "day"), plural(e.hits[i], "finding")))
		}
	}
	if len(e.suppressed) > 0 {
		notes = append(notes, e.suppressedNote())
	}
	return notes
}

// suppressedNote writes "suppressed 4 findings: 2 by VEX, 1 by the ignore
// file, 1 without a fix".
func (e *evaluation) suppressedNote() string {
	total := 0
	var parts []string
	for _, k := range []struct{ kind, text string }{
		{KindVEX, "by VEX"}, {KindIgnoreFile, "by the ignore file"}, {KindIgnoreUnfixed, "without a fix"},
	} {
		if n := e.suppressed[k.kind]; n > 0 {
			total += n
			parts = append(parts, fmt.Sprintf("%d %s", n, k.text))
		}
	}
	return fmt.Sprintf("suppressed %s: %s", plural(total, "finding"), strings.Join(parts, ", "))
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
