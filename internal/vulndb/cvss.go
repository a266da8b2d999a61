package vulndb

import (
	"fmt"
	"strings"

	cvss20 "github.com/pandatix/go-cvss/20"
	cvss30 "github.com/pandatix/go-cvss/30"
	cvss31 "github.com/pandatix/go-cvss/31"
	cvss40 "github.com/pandatix/go-cvss/40"
)

// maxVectorLen bounds a CVSS vector; the longest valid v4.0 vector with every
// metric set is under 300 bytes.
const maxVectorLen = 512

// CVSS parses a CVSS vector of any version (v2 has no prefix; v3.0, v3.1 and
// v4.0 start with "CVSS:3.0/", "CVSS:3.1/", "CVSS:4.0/") and returns a
// Severity with its type, base score and rating on that version's scale.
// The caller sets Source and Primary.
func CVSS(vector string) (Severity, error) {
	vector = strings.TrimSpace(vector)
	if len(vector) > maxVectorLen {
		return Severity{}, fmt.Errorf("cvss vector of %d bytes is too long", len(vector))
	}
	s := Severity{Vector: vector}
	switch {
	case strings.HasPrefix(vector, "CVSS:4.0/"):
		v, err := cvss40.ParseVector(vector)
		if err != nil {
			return Severity{}, fmt.Errorf("cvss %q: %w", vector, err)
		}
		s.Type, s.Score = CVSSv40, v.Score()
	case strings.HasPrefix(vector, "CVSS:3.1/"):
		v, err := cvss31.ParseVector(vector)
		if err != nil {
			return Severity{}, fmt.Errorf("cvss %q: %w", vector, err)
		}
		s.Type, s.Score = CVSSv31, v.BaseScore()
	case strings.HasPrefix(vector, "CVSS:3.0/"):
		v, err := cvss30.ParseVector(vector)
		if err != nil {
			return Severity{}, fmt.Errorf("cvss %q: %w", vector, err)
		}
		s.Type, s.Score = CVSSv30, v.BaseScore()
	default:
		// NVD and some OSV records write v2 vectors in parentheses.
		v2 := strings.TrimSuffix(strings.TrimPrefix(vector, "("), ")")
		v, err := cvss20.ParseVector(v2)
		if err != nil {
			return Severity{}, fmt.Errorf("cvss %q: %w", vector, err)
		}
		s.Vector, s.Type, s.Score = v2, CVSSv2, v.BaseScore()
	}
	s.Rating = ScoreRating(s.Type, s.Score)
	return s, nil
}

// ScoreRating maps a CVSS base score to a rating on its version's scale: v2
// (NVD's mapping) tops out at HIGH, v3.x and v4.0 have NONE and CRITICAL.
func ScoreRating(t SeverityType, score float64) string {
	if t == CVSSv2 {
		switch {
		case score >= 7.0:
			return High
		case score >= 4.0:
			return Medium
		default:
			return Low
		}
	}
	switch {
	case score >= 9.0:
		return Critical
	case score >= 7.0:
		return High
	case score >= 4.0:
		return Medium
	case score > 0:
		return Low
	default:
		return None
	}
}

// NormalizeRating maps the words feeds use for ratings onto scangate's five
// (GitHub's MODERATE is MEDIUM); anything else is UNKNOWN, never LOW.
func NormalizeRating(word string) string {
	switch strings.ToUpper(strings.TrimSpace(word)) {
	case "CRITICAL":
		return Critical
	case "HIGH", "IMPORTANT":
		return High
	case "MODERATE", "MEDIUM":
		return Medium
	case "LOW":
		return Low
	case "NONE", "NEGLIGIBLE":
		return None
	default:
		return Unknown
	}
}

// UrgencyRating maps a distribution's urgency to a rating: Debian's
// "unimportant" is LOW, and the "**" the Debian tracker adds to an urgency it
// took from NVD ("low**") is dropped. Support statuses ("end-of-life") and
// "not yet assigned" are UNKNOWN.
func UrgencyRating(urgency string) string {
	u := strings.TrimRight(strings.TrimSpace(urgency), "*")
	if u == "unimportant" {
		return Low
	}
	return NormalizeRating(u)
}
