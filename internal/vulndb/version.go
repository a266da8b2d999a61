package vulndb

import (
	"errors"
	"fmt"
	"strings"

	"github.com/google/osv-scalibr/semantic"
)

// MaxVersionLen bounds a version string from a feed or an image; no real
// package version comes near it, and the bound keeps hostile input from
// costing big-integer arithmetic on every comparison.
const MaxVersionLen = 256

// ErrUnknownEcosystem reports an ecosystem whose version order scangate does
// not know; its advisories cannot match and are skipped at import.
var ErrUnknownEcosystem = errors.New("unknown ecosystem")

// ParseVersion parses a version by the order of its ecosystem ("Debian:12" is
// ordered as Debian). The zero-version "0" used by OSV's introduced events
// parses in every ecosystem.
func ParseVersion(ecosystem, v string) (semantic.Version, error) {
	if strings.TrimSpace(v) == "" {
		// semantic trims blanks and would order "  " as "0".
		return nil, errors.New("empty version")
	}
	if len(v) > MaxVersionLen {
		return nil, fmt.Errorf("version of %d bytes is longer than %d", len(v), MaxVersionLen)
	}
	if !KnownEcosystem(ecosystem) {
		return nil, fmt.Errorf("%w %q", ErrUnknownEcosystem, ecosystem)
	}
	pv, err := semantic.Parse(v, orderOf(ecosystem))
	if err != nil {
		return nil, fmt.Errorf("%s version %q: %w", ecosystem, v, err)
	}
	return pv, nil
}

// CompareVersions orders two versions of one ecosystem: -1, 0 or +1.
func CompareVersions(ecosystem, a, b string) (int, error) {
	va, err := ParseVersion(ecosystem, a)
	if err != nil {
		return 0, err
	}
	vb, err := ParseVersion(ecosystem, b)
	if err != nil {
		return 0, err
	}
	return va.Compare(vb)
}

// ecosystems are the OSV ecosystem names (without a release suffix) whose
// version order scangate matches on.
var ecosystems = map[string]bool{
	"Alpine": true, "Debian": true, "Ubuntu": true, "Go": true, "npm": true,
	"PyPI": true, "Maven": true, "crates.io": true, "RubyGems": true,
	"NuGet": true, "Packagist": true, "Pub": true, "Hex": true,
	"Wolfi": true, "Chainguard": true, "Red Hat": true, "AlmaLinux": true,
	"Rocky Linux": true, "openSUSE": true, "SUSE": true,
	"CRAN": true, "Hackage": true,
	"Amazon Linux": true, // RPM order: see distro.go
	"Oracle Linux": true, // likewise
	"Bottlerocket": true, // likewise
}

// KnownEcosystem reports whether scangate can order versions of the
// ecosystem, named as OSV names it with an optional release ("Debian:12").
func KnownEcosystem(ecosystem string) bool {
	base, _, _ := strings.Cut(ecosystem, ":")
	return ecosystems[base]
}

// NormalizePackage puts a package name in the form its ecosystem compares
// names in: PyPI names are case-insensitive with runs of "-", "_" and "."
// equal (PEP 503); elsewhere names are exact.
func NormalizePackage(ecosystem, name string) string {
	base, _, _ := strings.Cut(ecosystem, ":")
	if base != "PyPI" {
		return name
	}
	var b strings.Builder
	sep := false
	for _, r := range strings.ToLower(name) {
		isSep := r == '-' || r == '_' || r == '.'
		if isSep && !sep {
			b.WriteByte('-')
		}
		if !isSep {
			b.WriteRune(r)
		}
		sep = isSep
	}
	return b.String()
}
