package vulndb

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/google/osv-scalibr/semantic"
)

// A Match is one advisory that affects a queried package version.
type Match struct {
	ID        string   `json:"id"`
	Feed      string   `json:"feed"`
	Aliases   []string `json:"aliases,omitempty"`
	Summary   string   `json:"summary,omitempty"`
	Ecosystem string   `json:"ecosystem"`
	Package   string   `json:"package"`
	// Status is StatusFixed when a fixed version exists above the queried
	// one, otherwise the distribution's status or StatusUnfixed.
	Status Status `json:"status"`
	// Fixed lists the versions that fix the flaw above the queried version,
	// lowest first.
	Fixed   []string `json:"fixed,omitempty"`
	Urgency string   `json:"urgency,omitempty"`
	Note    string   `json:"note,omitempty"`
}

// A Reader answers Affected queries. It reads each (ecosystem, package)
// from the store once and keeps its advisories parsed, so a scan costs one
// query per distinct package. A Reader sees the database as it was when
// each package was first read: take a new one for each scan.
type Reader struct {
	db    *DB
	mu    sync.Mutex
	cache map[string][]*entry
}

// Reader returns a new Reader.
func (db *DB) Reader() *Reader {
	return &Reader{db: db, cache: map[string][]*entry{}}
}

// Affected returns the advisories that affect version of pkg in ecosystem,
// ordered by ID. Withdrawn advisories and not-affected statuses never match.
func (r *Reader) Affected(ctx context.Context, ecosystem, pkg, version string) ([]Match, error) {
	if ecosystem == "Go" {
		version = strings.TrimPrefix(version, "v")
	}
	v, err := ParseVersion(ecosystem, version)
	if err != nil {
		return nil, fmt.Errorf("affected %s/%s: %w", ecosystem, pkg, err)
	}
	var out []Match
	for i, eco := range queried(ecosystem) {
		entries, err := r.entries(ctx, eco, NormalizePackage(ecosystem, pkg))
		if err != nil {
			return nil, fmt.Errorf("affected %s/%s: %w", ecosystem, pkg, err)
		}
		var ms []Match
		flavour := Flavour(ecosystem, version)
		for _, e := range entries {
			if e.doc.Affected.Fixed != "" && Flavour(e.doc.Affected.Ecosystem, e.doc.Affected.Fixed) != flavour {
				continue // another flavour's fix (see Flavour)
			}
			if m, ok := e.match(v); ok {
				ms = append(ms, m)
			}
		}
		out = mergeQueried(out, mergeSame(ecosystem, ms), i)
	}
	return out, nil
}

func (r *Reader) entries(ctx context.Context, ecosystem, pkg string) ([]*entry, error) {
	key := ecosystem + "\x00" + pkg
	r.mu.Lock()
	es, ok := r.cache[key]
	r.mu.Unlock()
	if ok {
		return es, nil
	}
	es, err := r.load(ctx, ecosystem, pkg)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.cache[key] = es
	r.mu.Unlock()
	return es, nil
}

func (r *Reader) load(ctx context.Context, ecosystem, pkg string) ([]*entry, error) {
	rows, err := r.db.st.Reader().QueryContext(ctx,
		"SELECT doc FROM vuln_affected WHERE ecosystem = $1 AND package = $2 ORDER BY id, feed", ecosystem, pkg)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*entry
	for rows.Next() {
		var doc []byte
		if err := rows.Scan(&doc); err != nil {
			return nil, err
		}
		var d entryDoc
		if err := json.Unmarshal(doc, &d); err != nil {
			return nil, fmt.Errorf("stored entry: %w", err)
		}
		e, err := newEntry(d)
		if err != nil {
			// Import validated every version, so this is a damaged
			// database, which must not pass as "no findings".
			return nil, fmt.Errorf("stored entry %s: %w", d.ID, err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// entry is an affected row with its versions parsed once.
type entry struct {
	doc      entryDoc
	fixed    semantic.Version
	versions []semantic.Version
	ranges   [][]event
}

type event struct {
	kind string // "introduced", "fixed", "last_affected", "limit"
	raw  string
	v    semantic.Version // nil for introduced "0": below everything
}

func newEntry(d entryDoc) (*entry, error) {
	af := &d.Affected
	e := &entry{doc: d}
	var err error
	if af.Fixed != "" {
		if e.fixed, err = ParseVersion(af.Ecosystem, af.Fixed); err != nil {
			return nil, err
		}
	}
	for _, s := range af.Versions {
		v, err := ParseVersion(af.Ecosystem, s)
		if err != nil {
			return nil, err
		}
		e.versions = append(e.versions, v)
	}
	for _, rg := range af.Ranges {
		if rg.Type == RangeGit {
			continue
		}
		evs, err := parseEvents(af.Ecosystem, rg.Events)
		if err != nil {
			return nil, err
		}
		e.ranges = append(e.ranges, evs)
	}
	return e, nil
}

func parseEvents(ecosystem string, raw []Event) ([]event, error) {
	evs := make([]event, 0, len(raw))
	for _, r := range raw {
		ev := eventOf(r)
		if ev.kind == "" {
			continue
		}
		if !(ev.kind == "introduced" && ev.raw == "0") {
			v, err := ParseVersion(ecosystem, ev.raw)
			if err != nil {
				return nil, err
			}
			ev.v = v
		}
		evs = append(evs, ev)
	}
	// OSV evaluates events in version order; feeds need not list them so.
	var cmpErr error
	sort.SliceStable(evs, func(i, j int) bool {
		c, err := compareEvents(evs[i], evs[j])
		if err != nil {
			cmpErr = err
		}
		return c < 0
	})
	return evs, cmpErr
}

func eventOf(r Event) event {
	switch {
	case r.Introduced != "":
		return event{kind: "introduced", raw: r.Introduced}
	case r.Fixed != "":
		return event{kind: "fixed", raw: r.Fixed}
	case r.LastAffected != "":
		return event{kind: "last_affected", raw: r.LastAffected}
	case r.Limit != "":
		return event{kind: "limit", raw: r.Limit}
	}
	return event{}
}

func compareEvents(a, b event) (int, error) {
	switch {
	case a.v == nil && b.v == nil:
		return 0, nil
	case a.v == nil:
		return -1, nil
	case b.v == nil:
		return 1, nil
	}
	return a.v.Compare(b.v)
}

func (e *entry) match(v semantic.Version) (Match, bool) {
	af := &e.doc.Affected
	m := Match{
		ID: e.doc.ID, Feed: e.doc.Feed, Aliases: e.doc.Aliases, Summary: e.doc.Summary,
		Ecosystem: af.Ecosystem, Package: af.Package, Urgency: af.Urgency, Note: af.Note,
	}
	switch af.Status {
	case StatusNotAffected:
		return Match{}, false
	case StatusUnfixed, StatusWillNotFix, StatusEndOfLife:
		m.Status = af.Status
		return m, true
	case StatusFixed:
		if e.fixed == nil || cmp(v, e.fixed) >= 0 {
			return Match{}, false
		}
		m.Status, m.Fixed = StatusFixed, []string{af.Fixed}
		return m, true
	}
	hit := false
	for _, ev := range e.versions {
		if cmp(v, ev) == 0 {
			hit = true
		}
	}
	for _, evs := range e.ranges {
		in, fixed := inRange(v, evs)
		if in {
			hit = true
			if fixed != "" {
				m.Fixed = append(m.Fixed, fixed)
			}
		}
	}
	if !hit {
		return Match{}, false
	}
	m.Status = StatusUnfixed
	if len(m.Fixed) > 0 {
		m.Status = StatusFixed
	}
	return m, true
}

// inRange evaluates OSV events (sorted) for v, as the OSV schema's
// reference algorithm does, and returns the fix that ends the interval
// holding v, if any.
func inRange(v semantic.Version, evs []event) (bool, string) {
	affected := false
	for i, ev := range evs {
		switch ev.kind {
		case "introduced":
			if ev.v == nil || cmp(v, ev.v) >= 0 {
				affected = true
			}
		case "fixed":
			if cmp(v, ev.v) >= 0 {
				affected = false
			}
		case "last_affected":
			if cmp(v, ev.v) > 0 {
				affected = false
			}
		case "limit":
			if cmp(v, ev.v) >= 0 {
				affected = false
			}
		}
		if affected && i+1 < len(evs) && evs[i+1].kind == "fixed" && cmp(v, evs[i+1].v) < 0 {
			return true, evs[i+1].raw
		}
	}
	return affected, ""
}

// cmp compares two versions of one ecosystem; versions from one parser
// never fail to compare.
func cmp(a, b semantic.Version) int {
	c, err := a.Compare(b)
	if err != nil {
		return 0
	}
	return c
}
