package vulndb

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// lookupChunk bounds the ids of one query: SQLite's limit on a
// statement's parameters is 32,766 (999 before 3.32); PostgreSQL's 65,535.
const lookupChunk = 500

// LookupAll is Lookup for many ids at once: the same advisories, in the
// same order, for each id, read in two queries per 500 ids rather than two
// per id. A scan rates its findings with it (a hundred findings took 200
// queries, each decoding whole advisories, a fifth of a cached rescan).
func (db *DB) LookupAll(ctx context.Context, ids []string) (map[string][]Advisory, error) {
	l := aliasLookup{db: db, byAlias: map[string][]advKey{}, docs: map[advKey]*Advisory{}}
	if err := l.query(ctx, ids); err != nil {
		return nil, fmt.Errorf("lookup: %w", err)
	}
	// One hop: the names of what each id found, as Lookup does.
	names := make(map[string]map[string]bool, len(ids))
	var more []string
	for _, id := range ids {
		ns := map[string]bool{id: true}
		for _, k := range l.byAlias[id] {
			a := l.docs[k]
			ns[a.ID] = true
			for _, al := range a.Aliases {
				ns[al] = true
			}
		}
		names[id] = ns
		for n := range ns {
			if !l.queried[n] {
				more = append(more, n)
				l.queried[n] = true
			}
		}
	}
	sort.Strings(more)
	if err := l.query(ctx, more); err != nil {
		return nil, fmt.Errorf("lookup: %w", err)
	}
	out := make(map[string][]Advisory, len(ids))
	for _, id := range ids {
		seen := map[advKey]bool{}
		var all []Advisory
		for n := range names[id] {
			for _, k := range l.byAlias[n] {
				if !seen[k] {
					seen[k] = true
					all = append(all, *l.docs[k])
				}
			}
		}
		sortLookup(all, id)
		out[id] = all
	}
	return out, nil
}

// advKey names a stored advisory.
type advKey struct{ feed, id string }

// aliasLookup gathers, by alias, the advisories that name it, decoding
// each advisory once.
type aliasLookup struct {
	db      *DB
	byAlias map[string][]advKey
	docs    map[advKey]*Advisory
	queried map[string]bool
}

func (l *aliasLookup) query(ctx context.Context, names []string) error {
	if l.queried == nil {
		l.queried = map[string]bool{}
	}
	for len(names) > 0 {
		chunk := names[:min(len(names), lookupChunk)]
		names = names[len(chunk):]
		args := make([]any, len(chunk))
		marks := make([]string, len(chunk))
		for i, n := range chunk {
			args[i] = n
			marks[i] = fmt.Sprintf("$%d", i+1)
			l.queried[n] = true
		}
		// A repeated row (an advisory naming an alias twice) is dropped
		// where the lists are put together.
		q := `SELECT l.alias, a.feed, a.id, a.doc FROM vuln_aliases l
			JOIN vuln_advisories a ON a.feed = l.feed AND a.id = l.id
			WHERE l.alias IN (` + strings.Join(marks, ", ") + `)`
		if err := l.rows(ctx, q, args); err != nil {
			return err
		}
	}
	return nil
}

func (l *aliasLookup) rows(ctx context.Context, q string, args []any) error {
	rows, err := l.db.st.Reader().QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var alias, doc string
		var k advKey
		if err := rows.Scan(&alias, &k.feed, &k.id, &doc); err != nil {
			return err
		}
		if _, ok := l.docs[k]; !ok {
			var a Advisory
			if err := json.Unmarshal([]byte(doc), &a); err != nil {
				return fmt.Errorf("stored advisory %s %s: %w", k.feed, k.id, err)
			}
			l.docs[k] = &a
		}
		l.byAlias[alias] = append(l.byAlias[alias], k)
	}
	return rows.Err()
}
