package scan

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/scangate/scangate/internal/vulndb"
)

// SeverityOrder names which rating counts when an advisory has several.
type SeverityOrder string

// Severity orders. NVD: NVD's primary CVSS, then a secondary one, then the
// advisory's own (GitHub's, OSV's), then the distribution's. Vendor: the
// distribution's rating first, then as NVD.
const (
	OrderNVD    SeverityOrder = "nvd"
	OrderVendor SeverityOrder = "vendor"
)

// ParseSeverityOrder reads --severity-source.
func ParseSeverityOrder(s string) (SeverityOrder, error) {
	switch o := SeverityOrder(strings.ToLower(s)); o {
	case OrderNVD, OrderVendor:
		return o, nil
	}
	return "", fmt.Errorf("severity source %q: want nvd or vendor", s)
}

// Match fills r.Findings from the database for r.Packages: distribution
// packages by source package and release, language packages by ecosystem.
func Match(ctx context.Context, r *Report, db *vulndb.DB, order SeverityOrder) error {
	m, err := NewMatcher(ctx, db, order)
	if err != nil {
		return err
	}
	return m.Match(ctx, r)
}

// A Matcher matches reports against one state of the database, sharing
// what it reads between them: re-evaluating many stored inventories reads
// each package's advisories once.
type Matcher struct {
	db      *vulndb.DB
	reader  *vulndb.Reader
	version vulndb.Version
	order   SeverityOrder
	ratings map[string][]vulndb.Severity // by advisory id
}

// NewMatcher returns a matcher over db as it is now.
func NewMatcher(ctx context.Context, db *vulndb.DB, order SeverityOrder) (*Matcher, error) {
	v, err := db.Version(ctx)
	if err != nil {
		return nil, err
	}
	return &Matcher{db: db, reader: db.Reader(), version: v, order: order, ratings: map[string][]vulndb.Severity{}}, nil
}

// Version is the database version the matcher reads.
func (m *Matcher) Version() vulndb.Version { return m.version }

// Match fills r.Findings, as the package function does.
func (m *Matcher) Match(ctx context.Context, r *Report) error {
	r.VulnDB = m.version
	// A clean image has an empty list of findings, not null: readers of
	// the JSON report (and its schema) expect an array.
	r.Findings = make([]Finding, 0, len(r.Findings))
	type match struct {
		pkg int
		m   vulndb.Match
	}
	var matches []match
	var unrated []string
	queued := map[string]bool{}
	for i, p := range r.Packages {
		if p.Ecosystem == "" || !vulndb.KnownEcosystem(p.Ecosystem) {
			continue
		}
		name, version := p.Name, p.Version
		if p.SourceName != "" {
			name, version = p.SourceName, p.SourceVersion
		}
		ms, err := m.reader.Affected(ctx, p.Ecosystem, name, version)
		if err != nil {
			return fmt.Errorf("match %s %s: %w", p.Name, p.Version, err)
		}
		for _, a := range ms {
			matches = append(matches, match{i, a})
			if _, ok := m.ratings[a.ID]; !ok && !queued[a.ID] {
				queued[a.ID] = true
				unrated = append(unrated, a.ID)
			}
		}
	}
	// The ratings of every advisory found, and of those sharing an id with
	// it, in one lookup rather than one per advisory.
	if err := m.rate(ctx, unrated); err != nil {
		return err
	}
	for _, x := range matches {
		r.Findings = append(r.Findings, finding(x.pkg, x.m, m.ratings[x.m.ID], m.order))
	}
	slices.SortStableFunc(r.Findings, func(a, b Finding) int {
		if c := SeverityRank(a.Severity) - SeverityRank(b.Severity); c != 0 {
			return c
		}
		if a.Package != b.Package {
			return a.Package - b.Package
		}
		return strings.Compare(a.ID, b.ID)
	})
	r.Recount()
	return nil
}

// rate gathers, for each advisory id, the ratings of the advisory and of
// every record that shares an id with it (NVD's CVSS for a Debian CVE,
// GitHub's for a Go vulnerability), as vulndb.Lookup finds them.
func (m *Matcher) rate(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	related, err := m.db.LookupAll(ctx, ids)
	if err != nil {
		return err
	}
	for _, id := range ids {
		var out []vulndb.Severity
		for _, a := range related[id] {
			for _, s := range a.Severities {
				if !slices.Contains(out, s) {
					out = append(out, s)
				}
			}
		}
		m.ratings[id] = out
	}
	return nil
}

func finding(pkg int, m vulndb.Match, sevs []vulndb.Severity, order SeverityOrder) Finding {
	f := Finding{
		ID: m.ID, Aliases: m.Aliases, Feed: m.Feed, Package: pkg, Status: m.Status, Fixed: m.Fixed,
		Severities: sevs, Title: m.Summary, URL: AdvisoryURL(m.ID),
	}
	if m.Urgency != "" {
		rating := vulndb.UrgencyRating(m.Urgency)
		if !slices.ContainsFunc(sevs, func(s vulndb.Severity) bool { return s.Type == vulndb.VendorRating && s.Rating == rating }) {
			f.Severities = append(slices.Clone(sevs), vulndb.Severity{Source: distribution(m.Feed), Type: vulndb.VendorRating, Rating: rating})
		}
	}
	s, ok := pickSeverity(f.Severities, order)
	f.Severity = vulndb.Unknown
	if ok {
		f.Severity, f.SeveritySource, f.Score, f.Vector = s.Rating, s.Source, s.Score, s.Vector
	}
	return f
}

// distribution names the distribution of a feed ("debian", "alpine").
func distribution(feed string) string {
	name, rest, _ := strings.Cut(feed, ":")
	if name == "osv" && rest == "Ubuntu" {
		return "ubuntu" // Canonical's OSV records carry Ubuntu's priorities
	}
	return name
}

// pickSeverity returns the rating that counts, or false when no source
// rated the advisory: then it is UNKNOWN, never silently LOW.
func pickSeverity(sevs []vulndb.Severity, order SeverityOrder) (vulndb.Severity, bool) {
	best, bestRank := vulndb.Severity{}, -1
	for _, s := range sevs {
		if s.Rating == "" || s.Rating == vulndb.Unknown {
			continue
		}
		if r := sourceRank(s, order); r > bestRank {
			best, bestRank = s, r
		}
	}
	return best, bestRank >= 0
}

// sourceRank orders ratings: higher wins. Within a source, newer CVSS
// versions win.
func sourceRank(s vulndb.Severity, order SeverityOrder) int {
	var tier int
	switch {
	case s.Source == "nvd@nist.gov" && s.Primary:
		tier = 4
	case s.Type != vulndb.VendorRating && s.Type != vulndb.GHSARating && s.Source != "ghsa" && s.Source != "osv" && !isDistribution(s.Source):
		tier = 3 // a CNA's CVSS that NVD publishes as secondary
	case s.Source == "ghsa" || s.Source == "osv":
		tier = 2
	default:
		tier = 1 // the distribution's
	}
	if order == OrderVendor && tier == 1 {
		tier = 5
	}
	return tier*10 + cvssRank(s.Type)
}

func isDistribution(source string) bool {
	switch source {
	case "debian", "alpine", "ubuntu", "redhat", "wolfi", "chainguard", "suse":
		return true
	}
	return false
}

func cvssRank(t vulndb.SeverityType) int {
	switch t {
	case vulndb.CVSSv40:
		return 4
	case vulndb.CVSSv31:
		return 3
	case vulndb.CVSSv30:
		return 2
	case vulndb.CVSSv2:
		return 1
	}
	return 0
}

// AdvisoryURL links an advisory ID to its canonical page. Distribution
// advisories that osv.dev does not carry (Oracle's ELSA, Amazon's ALAS,
// Bottlerocket's BRSA) link to their publisher: osv.dev has no page for them.
func AdvisoryURL(id string) string {
	switch {
	case strings.HasPrefix(id, "CVE-"):
		return "https://nvd.nist.gov/vuln/detail/" + id
	case strings.HasPrefix(id, "GHSA-"):
		return "https://github.com/advisories/" + id
	case strings.HasPrefix(id, "GO-"):
		return "https://pkg.go.dev/vuln/" + id
	case strings.HasPrefix(id, "ELSA-"):
		return "https://linux.oracle.com/errata/" + id + ".html"
	case strings.HasPrefix(id, "ALAS"):
		return amazonAdvisoryURL(id)
	case strings.HasPrefix(id, "BRSA-"):
		// Bottlerocket publishes one index of its advisories; each one's own
		// record is a file in a GitHub repository whose path (kit, release)
		// the id does not give.
		return "https://advisories.bottlerocket.aws/"
	default:
		return "https://osv.dev/vulnerability/" + id
	}
}

// amazonAdvisoryURL links an ALAS id to its page on alas.aws.amazon.com. The
// page of an Amazon Linux 2 or 2023 advisory sits in that release's folder and
// drops the release from its name: ALAS2-2019-1185 is AL2/ALAS-2019-1185.html,
// ALAS2KERNEL-5.15-2024-058 (an AL2 extra) AL2/ALASKERNEL-5.15-2024-058.html,
// ALAS2023-2023-223 AL2023/ALAS-2023-223.html; Amazon Linux 1's ALAS-2018-1000
// is at the top.
func amazonAdvisoryURL(id string) string {
	const site = "https://alas.aws.amazon.com/"
	switch {
	case strings.HasPrefix(id, "ALAS2023-"):
		return site + "AL2023/ALAS-" + strings.TrimPrefix(id, "ALAS2023-") + ".html"
	case strings.HasPrefix(id, "ALAS2"):
		return site + "AL2/ALAS" + strings.TrimPrefix(id, "ALAS2") + ".html"
	case strings.HasPrefix(id, "ALAS-"), strings.HasPrefix(id, "ALASKERNEL-"):
		return site + id + ".html"
	default:
		// Not an id shape Amazon uses (the feed parser rejects these): no guess.
		return "https://osv.dev/vulnerability/" + id
	}
}
