package policy

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/scangate/scangate/internal/scan"
)

// severityRank returns the position of a threshold severity in
// scan.Severities, or -1.
func severityRank(s string) int { return slices.Index(scan.Severities, s) }

// maxThreshold bounds a count in a threshold, so that it fits an int
// everywhere and a typo of many digits is not read as "no limit".
const maxThreshold = 1_000_000

// ParseThresholds parses thresholds as the --fail-on flag gives them: a
// comma-separated list of SEVERITY=COUNT, such as "CRITICAL=0,HIGH=0,MEDIUM=5",
// where COUNT is the most findings of that severity an image may have. A
// bare SEVERITY means SEVERITY=0. Severities are CRITICAL, HIGH, MEDIUM, LOW
// and UNKNOWN in any case; the map's keys are upper case. Blanks around
// items are allowed; an empty item, a severity given twice, an unknown
// severity and a count that is not a plain decimal number are errors.
func ParseThresholds(s string) (map[string]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("thresholds: empty; want SEVERITY=COUNT[,…], such as CRITICAL=0,HIGH=0")
	}
	out := map[string]int{}
	for i, item := range strings.Split(s, ",") {
		sev, n, err := parseThreshold(strings.TrimSpace(item))
		if err != nil {
			return nil, fmt.Errorf("thresholds: item %d: %w", i+1, err)
		}
		if _, dup := out[sev]; dup {
			return nil, fmt.Errorf("thresholds: item %d: %s given twice", i+1, sev)
		}
		out[sev] = n
	}
	return out, nil
}

// parseThreshold parses one SEVERITY=COUNT or SEVERITY.
func parseThreshold(item string) (string, int, error) {
	if item == "" {
		return "", 0, errors.New("empty; want SEVERITY=COUNT")
	}
	name, count, hasCount := strings.Cut(item, "=")
	sev := strings.ToUpper(strings.TrimSpace(name))
	if severityRank(sev) < 0 {
		return "", 0, fmt.Errorf("%q is not a severity; want one of %s", clip(strings.TrimSpace(name)), severityList())
	}
	if !hasCount {
		return sev, 0, nil
	}
	n, err := parseCount(strings.TrimSpace(count))
	if err != nil {
		return "", 0, fmt.Errorf("%s: %w", sev, err)
	}
	return sev, n, nil
}

// parseCount parses a count of findings: decimal digits only, at most
// maxThreshold.
func parseCount(s string) (int, error) {
	if s == "" {
		return 0, errors.New("no count after '='")
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("count %q is not a whole number ≥ 0", clip(s))
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n > maxThreshold {
		return 0, fmt.Errorf("count %q is more than %d", clip(s), maxThreshold)
	}
	return n, nil
}

func severityList() string {
	return strings.Join(scan.Severities, ", ")
}

// checkThresholds validates thresholds set in code rather than parsed:
// keys are severities in any case, each given once, and counts are ≥ 0. It
// returns them keyed by upper-case severity.
func checkThresholds(t map[string]int) (map[string]int, error) {
	out := make(map[string]int, len(t))
	keys := sortedKeys(t)
	for _, k := range keys {
		sev := strings.ToUpper(strings.TrimSpace(k))
		switch n := t[k]; {
		case severityRank(sev) < 0:
			return nil, fmt.Errorf("threshold for %q: not a severity; want one of %s", clip(k), severityList())
		case n < 0:
			return nil, fmt.Errorf("threshold for %s: count %d is negative", sev, n)
		}
		if _, dup := out[sev]; dup {
			return nil, fmt.Errorf("threshold for %s given twice", sev)
		}
		out[sev] = t[k]
	}
	return out, nil
}
