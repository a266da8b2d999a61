package vulndb

import "time"

// An Advisory is one vulnerability record as a feed publishes it: an OSV
// entry, a Debian tracker CVE, an Alpine secfix, an NVD CVE or a GitHub
// advisory. Feeds that describe the same flaw link to each other through IDs
// and Aliases (usually the CVE ID).
type Advisory struct {
	ID         string     `json:"id"`
	Aliases    []string   `json:"aliases,omitempty"`
	Summary    string     `json:"summary,omitempty"`
	Details    string     `json:"details,omitempty"`
	Published  time.Time  `json:"published,omitzero"`
	Modified   time.Time  `json:"modified,omitzero"`
	Withdrawn  time.Time  `json:"withdrawn,omitzero"`
	References []string   `json:"references,omitempty"`
	Affected   []Affected `json:"affected,omitempty"`
	Severities []Severity `json:"severities,omitempty"`
	Feed       string     `json:"feed"`
}

// IsWithdrawn reports whether the feed retracted the advisory; a withdrawn
// advisory never matches.
func (a *Advisory) IsWithdrawn() bool { return !a.Withdrawn.IsZero() }

// Affected names one package in one ecosystem and which of its versions the
// advisory covers.
type Affected struct {
	// Ecosystem is named as OSV names it, with the release for distributions:
	// "Debian:12", "Alpine:v3.10", "Go", "npm", "PyPI".
	Ecosystem string `json:"ecosystem"`
	// Package is the name matched against: the source package for Debian,
	// the origin package for Alpine, the module path for Go.
	Package string `json:"package"`
	PURL    string `json:"purl,omitempty"`
	// Ranges are ORed; a version is affected if any range or Versions holds it.
	Ranges []Range `json:"ranges,omitempty"`
	// Versions lists affected versions explicitly.
	Versions []string `json:"versions,omitempty"`
	// Status is the distribution's verdict. The zero value means the ranges
	// alone decide, as in OSV.
	Status Status `json:"status,omitempty"`
	// Fixed is the first version without the flaw, where the feed says so
	// outside ranges (Debian's fixed_version, Alpine's secfix).
	Fixed string `json:"fixed,omitempty"`
	// Urgency is the distribution's own rating ("low", "unimportant",
	// "not yet assigned"), kept as the feed spells it.
	Urgency string `json:"urgency,omitempty"`
	// Note carries the feed's reason for Status, such as Debian's nodsa text.
	Note string `json:"note,omitempty"`
}

// A Range is an OSV range: events in version order, evaluated as the OSV
// schema describes. GIT ranges are kept for reference but never match a
// package version.
type Range struct {
	Type   RangeType `json:"type"`
	Events []Event   `json:"events"`
}

// RangeType is an OSV range type.
type RangeType string

// The OSV range types.
const (
	RangeEcosystem RangeType = "ECOSYSTEM"
	RangeSemver    RangeType = "SEMVER"
	RangeGit       RangeType = "GIT"
)

// An Event is one OSV range event: exactly one field is set.
type Event struct {
	Introduced   string `json:"introduced,omitempty"`
	Fixed        string `json:"fixed,omitempty"`
	LastAffected string `json:"last_affected,omitempty"`
	Limit        string `json:"limit,omitempty"`
}

// Status is a distribution's verdict on a package for an advisory.
type Status string

// Distribution statuses. StatusFixed with Affected.Fixed covers versions below
// the fix; the unfixed kinds cover every version; not-affected covers none.
const (
	StatusFixed       Status = "fixed"
	StatusUnfixed     Status = "unfixed"
	StatusWillNotFix  Status = "will-not-fix"
	StatusNotAffected Status = "not-affected"
	StatusEndOfLife   Status = "end-of-life"
)

// Severity is one rating of an advisory, with where it came from.
type Severity struct {
	// Source names who rated: "nvd@nist.gov", "ghsa", "debian", or the CNA
	// an NVD secondary metric names.
	Source string       `json:"source"`
	Type   SeverityType `json:"type"`
	// Vector is the CVSS vector for CVSS types.
	Vector string `json:"vector,omitempty"`
	// Score is the CVSS base score computed from Vector.
	Score float64 `json:"score,omitempty"`
	// Rating is the qualitative rating: CRITICAL, HIGH, MEDIUM, LOW, NONE or
	// UNKNOWN; for CVSS it follows from Score on that version's own scale.
	Rating string `json:"rating"`
	// Primary marks NVD's own (Primary) metric as against a CNA's (Secondary).
	Primary bool `json:"primary,omitempty"`
}

// SeverityType says what kind of rating a Severity is.
type SeverityType string

// Severity types.
const (
	CVSSv2     SeverityType = "CVSS_V2"
	CVSSv30    SeverityType = "CVSS_V3.0"
	CVSSv31    SeverityType = "CVSS_V3.1"
	CVSSv40    SeverityType = "CVSS_V4.0"
	GHSARating SeverityType = "GHSA"
	// VendorRating is a distribution's urgency or an advisory's own word
	// without a vector.
	VendorRating SeverityType = "VENDOR"
)

// Ratings, highest first.
const (
	Critical = "CRITICAL"
	High     = "HIGH"
	Medium   = "MEDIUM"
	Low      = "LOW"
	None     = "NONE"
	Unknown  = "UNKNOWN"
)
