package feed

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/scangate/scangate/internal/vulndb"
)

// assemble groups parsed advisories into feeds, checks each with
// vulndb.Clean, and settles duplicate IDs within a feed by keeping the
// most recently modified record.
func assemble(results []parsed, source string, ignored int) *Loaded {
	out := &Loaded{Ignored: ignored, Files: len(results)}
	byName := map[string]*vulndb.Feed{}
	roots := map[string][]string{}         // feed → the paths that held it
	index := map[string]map[string]int{}   // feed → id → position
	from := map[string]map[string]string{} // feed → id → the file it came from
	for _, p := range results {
		out.Skipped = append(out.Skipped, p.res.Skipped...)
		for _, a := range p.res.Advisories {
			f := byName[a.Feed]
			if f == nil {
				f = &vulndb.Feed{Name: a.Feed, Format: p.format, Source: source}
				byName[a.Feed] = f
				index[a.Feed] = map[string]int{}
				from[a.Feed] = map[string]string{}
			}
			if !slices.Contains(roots[a.Feed], p.root) {
				roots[a.Feed] = append(roots[a.Feed], p.root)
			}
			dropped, err := vulndb.Clean(&a)
			if err != nil {
				out.skip(f, Skip{File: p.name, Record: a.ID, Reason: err.Error()})
				continue
			}
			for _, d := range dropped {
				out.Skipped = append(out.Skipped, Skip{File: p.name, Record: a.ID, Reason: "affected " + d})
			}
			i, dup := index[a.Feed][a.ID]
			if !dup {
				index[a.Feed][a.ID] = len(f.Advisories)
				from[a.Feed][a.ID] = p.name
				f.Advisories = append(f.Advisories, a)
				continue
			}
			kept, droppedFrom := &f.Advisories[i], p.name
			if a.Modified.Equal(kept.Modified) {
				// One advisory told in several files, as vuln-list stores
				// GitHub's: one file per affected package.
				mergeAffected(kept, a)
				continue
			}
			if a.Modified.After(kept.Modified) {
				*kept, a = a, *kept
				droppedFrom, from[a.Feed][a.ID] = from[a.Feed][a.ID], p.name
			}
			out.skip(f, Skip{File: droppedFrom, Record: a.ID, Reason: fmt.Sprintf("duplicate id in feed %s; kept the record modified %s", a.Feed, kept.Modified.Format("2006-01-02T15:04:05Z07:00"))})
		}
	}
	for name, f := range byName {
		if f.Source == "" {
			f.Source = strings.Join(roots[name], " ")
		}
		sort.Slice(f.Advisories, func(i, j int) bool { return f.Advisories[i].ID < f.Advisories[j].ID })
		out.Feeds = append(out.Feeds, *f)
	}
	sort.Slice(out.Feeds, func(i, j int) bool { return out.Feeds[i].Name < out.Feeds[j].Name })
	return out
}

func (l *Loaded) skip(f *vulndb.Feed, s Skip) {
	f.Skipped++
	l.Skipped = append(l.Skipped, s)
}

// mergeAffected adds to kept the affected packages, aliases and severities
// of a that it lacks; a copy of the same record adds nothing.
func mergeAffected(kept *vulndb.Advisory, a vulndb.Advisory) {
	for _, af := range a.Affected {
		if !slices.ContainsFunc(kept.Affected, func(k vulndb.Affected) bool { return reflect.DeepEqual(k, af) }) {
			kept.Affected = append(kept.Affected, af)
		}
	}
	for _, al := range a.Aliases {
		if !slices.Contains(kept.Aliases, al) {
			kept.Aliases = append(kept.Aliases, al)
		}
	}
	for _, s := range a.Severities {
		if !slices.Contains(kept.Severities, s) {
			kept.Severities = append(kept.Severities, s)
		}
	}
}
