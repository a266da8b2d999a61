package vulndb

import (
	"sort"
	"strings"
)

// orderOf names the ecosystem whose version order osv-scalibr's semantic
// package applies to ecosystem. Amazon Linux is an RPM distribution that
// OSV has no ecosystem for; its versions (epoch:version-release, with "~"
// and "^") are ordered as rpmvercmp orders them, as Red Hat's are.
func orderOf(ecosystem string) string {
	base, _, _ := strings.Cut(ecosystem, ":")
	switch base {
	case "Amazon Linux":
		return "Red Hat"
	}
	return ecosystem
}

// ubuntuPro is the prefix of the ecosystems of Ubuntu Pro (ESM) fixes, as
// Canonical's OSV records name them: "Ubuntu:Pro:18.04:LTS".
const ubuntuPro = "Ubuntu:Pro:"

// queried lists the ecosystems whose advisories a query in ecosystem reads,
// first the one asked for. An Ubuntu Pro machine gets both Pro's fixes and
// the release's standard ones: Canonical publishes a flaw fixed during
// standard support under "Ubuntu:18.04:LTS" and one fixed later under
// "Ubuntu:Pro:18.04:LTS" only. A machine without Pro is asked about the
// standard ecosystem alone, so a fix it cannot install is never offered.
func queried(ecosystem string) []string {
	if rest, ok := strings.CutPrefix(ecosystem, ubuntuPro); ok {
		return []string{ecosystem, "Ubuntu:" + rest}
	}
	return []string{ecosystem}
}

// mergeQueried adds the matches of the i-th queried ecosystem to out, ordered
// by ID. An advisory already matched in an earlier ecosystem (Pro's
// statement on the package) is not repeated from a later one.
func mergeQueried(out, ms []Match, i int) []Match {
	if i == 0 {
		return ms
	}
	seen := map[string]bool{}
	for _, m := range out {
		seen[m.ID+"\x00"+m.Package] = true
	}
	for _, m := range ms {
		if !seen[m.ID+"\x00"+m.Package] {
			out = append(out, m)
		}
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].ID < out[b].ID })
	return out
}
