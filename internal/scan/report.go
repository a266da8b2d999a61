package scan

import (
	"time"

	"github.com/scangate/scangate/internal/vulndb"
)

// SchemaVersion is the version of the JSON report's schema; it changes only
// when a field changes meaning or goes away.
const SchemaVersion = 1

// A Report is the result of scanning one image: what it holds, what affects
// it, and counts per severity.
type Report struct {
	SchemaVersion int            `json:"schemaVersion"`
	CreatedAt     time.Time      `json:"createdAt"`
	Image         ImageInfo      `json:"image"`
	OS            *OS            `json:"os,omitempty"`
	VulnDB        vulndb.Version `json:"vulndb"`
	// Cataloger is the extractor set that listed the packages.
	Cataloger *Cataloger `json:"cataloger,omitempty"`
	Packages  []Package  `json:"packages"`
	Findings  []Finding  `json:"findings"`
	// Summary counts the findings that are not suppressed; Fixable counts
	// those of them with a fixed version.
	Summary Counts `json:"summary"`
	Fixable Counts `json:"fixable"`
}

// ImageInfo identifies the scanned image.
type ImageInfo struct {
	// Ref is the image as the user named it ("127.0.0.1:5000/app:1",
	// "docker-archive:app.tar").
	Ref string `json:"ref"`
	// Repository and Tags come from the reference or the archive's manifest.
	Repository string   `json:"repository,omitempty"`
	Tags       []string `json:"tags,omitempty"`
	// Digest is the manifest digest where the image has one (a registry or
	// an OCI layout); ConfigDigest, the image ID, always exists.
	Digest       string   `json:"digest,omitempty"`
	ConfigDigest string   `json:"configDigest"`
	Platform     string   `json:"platform,omitempty"`
	Layers       []string `json:"layers"` // DiffIDs, bottom first
}

// OS is the image's distribution, from /etc/os-release.
type OS struct {
	ID         string `json:"id"`                  // "debian", "alpine"
	VersionID  string `json:"versionId,omitempty"` // "12", "3.10.0"
	PrettyName string `json:"prettyName,omitempty"`
	// Ecosystem is the OSV ecosystem its packages match in: "Debian:12",
	// "Alpine:v3.10"; empty when scangate has no feed for it.
	Ecosystem string `json:"ecosystem,omitempty"`
}

// A Package is one installed package found in the image.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// Type says what kind of package: deb, apk, rpm, go-module, go-stdlib,
	// npm, python, java, cargo.
	Type string `json:"type"`
	// Ecosystem is the OSV ecosystem it matches in ("Debian:12", "Go").
	Ecosystem string `json:"ecosystem"`
	PURL      string `json:"purl,omitempty"`
	// SourceName and SourceVersion name the distribution's source package
	// (Debian's Source:, Alpine's origin), which is what advisories name.
	SourceName    string `json:"sourceName,omitempty"`
	SourceVersion string `json:"sourceVersion,omitempty"`
	// Path is the file the package was read from.
	Path string `json:"path"`
	// Locations lists every path the package was found at, Path first,
	// when there are several: the links that lead to one file.
	Locations []string `json:"locations,omitempty"`
	// Layer is the DiffID of the layer that introduced the package.
	Layer string `json:"layer,omitempty"`
}

// A Finding is one advisory affecting one package.
type Finding struct {
	ID      string   `json:"id"`
	Aliases []string `json:"aliases,omitempty"`
	Feed    string   `json:"feed"`
	// Package indexes Report.Packages.
	Package int           `json:"package"`
	Status  vulndb.Status `json:"status"`
	Fixed   []string      `json:"fixed,omitempty"`
	// Severity is the rating that counts, taken from SeveritySource by the
	// severity order in force; Score and Vector are its CVSS, if any.
	Severity       string  `json:"severity"`
	SeveritySource string  `json:"severitySource,omitempty"`
	Score          float64 `json:"score,omitempty"`
	Vector         string  `json:"vector,omitempty"`
	// Severities lists every rating known for the advisory and its aliases.
	Severities []vulndb.Severity `json:"severities,omitempty"`
	Title      string            `json:"title,omitempty"`
	URL        string            `json:"url,omitempty"`
	// Suppressed says why the finding does not count, if it does not.
	Suppressed *Suppression `json:"suppressed,omitempty"`
}

// Fixable reports whether a fixed version exists.
func (f *Finding) Fixable() bool { return len(f.Fixed) > 0 }

// A Suppression records why a finding does not count against the policy.
type Suppression struct {
	// Kind is "ignore-file", "vex" or "ignore-unfixed".
	Kind    string    `json:"kind"`
	Reason  string    `json:"reason,omitempty"`
	Expires time.Time `json:"expires,omitzero"`
}

// Counts are findings per severity, as the scan event carries them.
type Counts struct {
	Critical int `json:"CRITICAL"`
	High     int `json:"HIGH"`
	Medium   int `json:"MEDIUM"`
	Low      int `json:"LOW"`
	Unknown  int `json:"UNKNOWN"`
	Total    int `json:"TOTAL"`
}

// Severities are the ratings findings are counted under, most severe
// first.
var Severities = []string{vulndb.Critical, vulndb.High, vulndb.Medium, vulndb.Low, vulndb.Unknown}

// Bucket returns the rating a finding counts under: NONE counts as LOW, the
// lowest rating with a count, and anything unknown as UNKNOWN.
func Bucket(rating string) string {
	switch rating {
	case vulndb.Critical, vulndb.High, vulndb.Medium, vulndb.Low:
		return rating
	case vulndb.None:
		return vulndb.Low
	}
	return vulndb.Unknown
}

// SeverityRank orders ratings for sorting, most severe first.
func SeverityRank(rating string) int {
	for i, s := range Severities {
		if s == Bucket(rating) {
			return i
		}
	}
	return len(Severities)
}

// Add counts one finding of the given severity, under its Bucket.
func (c *Counts) Add(severity string) {
	switch Bucket(severity) {
	case vulndb.Critical:
		c.Critical++
	case vulndb.High:
		c.High++
	case vulndb.Medium:
		c.Medium++
	case vulndb.Low:
		c.Low++
	default:
		c.Unknown++
	}
	c.Total++
}

// Of returns the count for a severity name.
func (c Counts) Of(severity string) int {
	switch severity {
	case vulndb.Critical:
		return c.Critical
	case vulndb.High:
		return c.High
	case vulndb.Medium:
		return c.Medium
	case vulndb.Low:
		return c.Low
	case vulndb.Unknown:
		return c.Unknown
	}
	return c.Total
}

// Recount sets Summary and Fixable from the findings that are not
// suppressed.
func (r *Report) Recount() {
	r.Summary, r.Fixable = Counts{}, Counts{}
	for i := range r.Findings {
		f := &r.Findings[i]
		if f.Suppressed != nil {
			continue
		}
		r.Summary.Add(f.Severity)
		if f.Fixable() {
			r.Fixable.Add(f.Severity)
		}
	}
}
