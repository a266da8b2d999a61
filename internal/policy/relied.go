package policy

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/scangate/scangate/internal/scan"
)

// suppressionLines names every suppression a decision relied on, one line
// per vulnerability and reason: "CVE-2023-45853 in zlib1g excepted until
// 2027-01-31: MiniZip is not built". A person reading why an image passed
// must see what was let through, not only the counts left after it.
func suppressionLines(r *scan.Report) []string {
	type key struct {
		kind, id, reason string
		expires          time.Time
	}
	pkgs := map[key][]string{}
	var keys []key
	for i := range r.Findings {
		f := &r.Findings[i]
		if f.Suppressed == nil {
			continue
		}
		k := key{f.Suppressed.Kind, f.ID, f.Suppressed.Reason, f.Suppressed.Expires}
		if _, ok := pkgs[k]; !ok {
			keys = append(keys, k)
		}
		name := packageName(r, f.Package)
		if !slices.Contains(pkgs[k], name) {
			pkgs[k] = append(pkgs[k], name)
		}
	}
	slices.SortFunc(keys, func(a, b key) int {
		return cmp.Or(cmp.Compare(a.kind, b.kind), cmp.Compare(a.id, b.id), cmp.Compare(a.reason, b.reason), a.expires.Compare(b.expires))
	})
	lines := make([]string, 0, len(keys))
	for _, k := range keys {
		names := pkgs[k]
		slices.Sort(names)
		what := k.id + " in " + strings.Join(names, "+")
		var line string
		switch k.kind {
		case KindIgnoreFile:
			line = what + " excepted"
			if !k.expires.IsZero() {
				line += " until " + formatExpiry(k.expires)
			}
		case KindVEX:
			line = what + " suppressed by VEX"
		case KindIgnoreUnfixed:
			line = what + " not counted (ignore-unfixed)"
		default:
			line = what + " suppressed (" + k.kind + ")"
		}
		if k.reason != "" {
			line += ": " + k.reason
		}
		lines = append(lines, line)
	}
	return lines
}
