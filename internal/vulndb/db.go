package vulndb

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/scangate/scangate/internal/store"
)

// A Feed is one feed's advisories as a single import or download delivers
// them. Feeds are named for what they hold: "osv:Go", "osv:PyPI", "debian",
// "alpine:v3.10/main", "nvd", "ghsa:npm".
type Feed struct {
	Name   string
	Format string
	// Source says where the data came from: a path or a URL.
	Source     string
	Advisories []Advisory
	// Skipped counts records left out of the feed as unusable.
	Skipped int
	// Merge keeps stored records that this delivery does not contain, as
	// for an incremental NVD update; otherwise the feed is replaced whole.
	Merge bool
}

// FeedStatus describes a stored feed.
type FeedStatus struct {
	Name    string
	Format  string
	Source  string
	Records int
	Skipped int
	Digest  string
	Updated time.Time
}

// Version identifies the database's content: when it last changed and a
// digest over every feed, so that a scan can say which data it used.
type Version struct {
	Built  time.Time `json:"built"`
	Digest string    `json:"digest"`
}

// A Download records HTTP validators of a fetched feed file, kept so the
// next update can make a conditional request.
type Download struct {
	URL          string
	ETag         string
	LastModified string
}

// DB is the vulnerability database inside a scangate store.
type DB struct {
	st  *store.Store
	now func() time.Time
}

// New returns the vulnerability database kept in st.
func New(st *store.Store) *DB {
	return &DB{st: st, now: time.Now}
}

// ReplaceOptions tune Replace.
type ReplaceOptions struct {
	// Downloads are validators to record with the data they fetched.
	Downloads []Download
	// InTx runs in the replace's transaction once the feeds are stored, so
	// that what must follow a change of the database (the server queues a
	// re-evaluation of stored images) commits with it or not at all.
	InTx func(context.Context, *sql.Tx) error
}

// Replace stores feeds, each replacing the stored feed of the same name,
// in one transaction: if anything fails, the database is left as it was.
func (db *DB) Replace(ctx context.Context, feeds []Feed, opts ReplaceOptions) error {
	now := db.now().UTC()
	err := db.st.InTx(ctx, func(tx *sql.Tx) error {
		for i := range feeds {
			if err := replaceFeed(ctx, tx, &feeds[i], now); err != nil {
				return fmt.Errorf("store feed %s: %w", feeds[i].Name, err)
			}
		}
		for _, d := range opts.Downloads {
			if _, err := tx.ExecContext(ctx, `INSERT INTO vuln_downloads (url, etag, last_modified, checked_at) VALUES ($1, $2, $3, $4)
				ON CONFLICT (url) DO UPDATE SET etag = excluded.etag, last_modified = excluded.last_modified, checked_at = excluded.checked_at`,
				d.URL, d.ETag, d.LastModified, now.Format(time.RFC3339)); err != nil {
				return fmt.Errorf("record download %s: %w", d.URL, err)
			}
		}
		if err := updateVersion(ctx, tx, now); err != nil {
			return err
		}
		if opts.InTx != nil {
			return opts.InTx(ctx, tx)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("vulndb: %w", err)
	}
	return nil
}

// entryDoc is what an affected row holds: the Affected and what a match
// reports of its advisory, so a match never reads the whole advisory.
type entryDoc struct {
	ID       string   `json:"id"`
	Feed     string   `json:"feed"`
	Aliases  []string `json:"aliases,omitempty"`
	Summary  string   `json:"summary,omitempty"`
	Affected Affected `json:"affected"`
}

func replaceFeed(ctx context.Context, tx *sql.Tx, f *Feed, now time.Time) error {
	if !f.Merge {
		for _, table := range []string{"vuln_advisories", "vuln_aliases", "vuln_affected"} {
			if _, err := tx.ExecContext(ctx, "DELETE FROM "+table+" WHERE feed = $1", f.Name); err != nil {
				return err
			}
		}
	}
	ins, err := prepareInserts(ctx, tx)
	if err != nil {
		return err
	}
	defer ins.close()
	for i := range f.Advisories {
		a := &f.Advisories[i]
		a.Feed = f.Name
		if f.Merge {
			if err := ins.remove(ctx, a.Feed, a.ID); err != nil {
				return err
			}
		}
		if err := ins.add(ctx, a); err != nil {
			return fmt.Errorf("advisory %s: %w", a.ID, err)
		}
	}
	return recordFeed(ctx, tx, f, now)
}

type inserts struct {
	advisory, alias, affected *sql.Stmt
	delAdvisory, delAlias     *sql.Stmt
	delAffected               *sql.Stmt
}

func prepareInserts(ctx context.Context, tx *sql.Tx) (*inserts, error) {
	var ins inserts
	for _, p := range []struct {
		stmt **sql.Stmt
		sql  string
	}{
		{&ins.advisory, "INSERT INTO vuln_advisories (feed, id, modified, withdrawn, doc) VALUES ($1, $2, $3, $4, $5)"},
		{&ins.alias, "INSERT INTO vuln_aliases (alias, feed, id) VALUES ($1, $2, $3)"},
		{&ins.affected, "INSERT INTO vuln_affected (ecosystem, package, feed, id, doc) VALUES ($1, $2, $3, $4, $5)"},
		{&ins.delAdvisory, "DELETE FROM vuln_advisories WHERE feed = $1 AND id = $2"},
		{&ins.delAlias, "DELETE FROM vuln_aliases WHERE feed = $1 AND id = $2"},
		{&ins.delAffected, "DELETE FROM vuln_affected WHERE feed = $1 AND id = $2"},
	} {
		s, err := tx.PrepareContext(ctx, p.sql)
		if err != nil {
			ins.close()
			return nil, err
		}
		*p.stmt = s
	}
	return &ins, nil
}

func (ins *inserts) close() {
	for _, s := range []*sql.Stmt{ins.advisory, ins.alias, ins.affected, ins.delAdvisory, ins.delAlias, ins.delAffected} {
		if s != nil {
			s.Close()
		}
	}
}

func (ins *inserts) remove(ctx context.Context, feed, id string) error {
	for _, s := range []*sql.Stmt{ins.delAdvisory, ins.delAlias, ins.delAffected} {
		if _, err := s.ExecContext(ctx, feed, id); err != nil {
			return err
		}
	}
	return nil
}

func (ins *inserts) add(ctx context.Context, a *Advisory) error {
	doc, err := json.Marshal(a)
	if err != nil {
		return err
	}
	withdrawn := 0
	if a.IsWithdrawn() {
		withdrawn = 1
	}
	if _, err := ins.advisory.ExecContext(ctx, a.Feed, a.ID, formatTime(a.Modified), withdrawn, string(doc)); err != nil {
		return err
	}
	for _, alias := range append([]string{a.ID}, a.Aliases...) {
		if _, err := ins.alias.ExecContext(ctx, alias, a.Feed, a.ID); err != nil {
			return err
		}
	}
	if a.IsWithdrawn() {
		return nil // never matches, so it needs no affected rows
	}
	for _, af := range a.Affected {
		doc, err := json.Marshal(entryDoc{ID: a.ID, Feed: a.Feed, Aliases: a.Aliases, Summary: a.Summary, Affected: af})
		if err != nil {
			return err
		}
		pkg := NormalizePackage(af.Ecosystem, af.Package)
		// SUSE's products are stored under their service pack (distro.go).
		if _, err := ins.affected.ExecContext(ctx, matchKey(af.Ecosystem), pkg, a.Feed, a.ID, string(doc)); err != nil {
			return err
		}
	}
	return nil
}

// recordFeed computes the feed's digest over its stored documents in ID
// order, so a merge and a full import of the same data agree.
func recordFeed(ctx context.Context, tx *sql.Tx, f *Feed, now time.Time) error {
	rows, err := tx.QueryContext(ctx, "SELECT id, doc FROM vuln_advisories WHERE feed = $1 ORDER BY id", f.Name)
	if err != nil {
		return err
	}
	defer rows.Close()
	h := sha256.New()
	n := 0
	for rows.Next() {
		var id, doc string
		if err := rows.Scan(&id, &doc); err != nil {
			return err
		}
		fmt.Fprintf(h, "%d:%s%d:%s", len(id), id, len(doc), doc)
		n++
	}
	if err := rows.Err(); err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO vuln_feeds (name, format, source, records, skipped, digest, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (name) DO UPDATE SET format = excluded.format, source = excluded.source, records = excluded.records,
		skipped = excluded.skipped, digest = excluded.digest, updated_at = excluded.updated_at`,
		f.Name, f.Format, f.Source, n, f.Skipped, "sha256:"+hex.EncodeToString(h.Sum(nil)), now.Format(time.RFC3339))
	return err
}

func updateVersion(ctx context.Context, tx *sql.Tx, now time.Time) error {
	rows, err := tx.QueryContext(ctx, "SELECT name, digest FROM vuln_feeds ORDER BY name")
	if err != nil {
		return err
	}
	defer rows.Close()
	h := sha256.New()
	for rows.Next() {
		var name, digest string
		if err := rows.Scan(&name, &digest); err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %s\n", name, digest)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	digest := "sha256:" + hex.EncodeToString(h.Sum(nil))
	var old string
	err = tx.QueryRowContext(ctx, "SELECT value FROM vuln_meta WHERE key = 'digest'").Scan(&old)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	if old == digest {
		return nil // same content: the database did not change
	}
	for k, v := range map[string]string{"digest": digest, "built": now.Format(time.RFC3339)} {
		if _, err := tx.ExecContext(ctx, `INSERT INTO vuln_meta (key, value) VALUES ($1, $2)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value`, k, v); err != nil {
			return err
		}
	}
	return nil
}

// Version returns the database's content version; the zero Version means
// nothing was ever imported.
func (db *DB) Version(ctx context.Context) (Version, error) {
	rows, err := db.st.Reader().QueryContext(ctx, "SELECT key, value FROM vuln_meta WHERE key IN ('built', 'digest')")
	if err != nil {
		return Version{}, fmt.Errorf("vulndb version: %w", err)
	}
	defer rows.Close()
	var v Version
	for rows.Next() {
		var k, val string
		if err := rows.Scan(&k, &val); err != nil {
			return Version{}, fmt.Errorf("vulndb version: %w", err)
		}
		switch k {
		case "built":
			v.Built, _ = time.Parse(time.RFC3339, val)
		case "digest":
			v.Digest = val
		}
	}
	return v, rows.Err()
}

// Feeds lists the stored feeds by name.
func (db *DB) Feeds(ctx context.Context) ([]FeedStatus, error) {
	rows, err := db.st.Reader().QueryContext(ctx,
		"SELECT name, format, source, records, skipped, digest, updated_at FROM vuln_feeds ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("vulndb feeds: %w", err)
	}
	defer rows.Close()
	var out []FeedStatus
	for rows.Next() {
		var f FeedStatus
		var updated string
		if err := rows.Scan(&f.Name, &f.Format, &f.Source, &f.Records, &f.Skipped, &f.Digest, &updated); err != nil {
			return nil, fmt.Errorf("vulndb feeds: %w", err)
		}
		f.Updated, _ = time.Parse(time.RFC3339, updated)
		out = append(out, f)
	}
	return out, rows.Err()
}

// LastDownload returns the validators recorded for url, if any.
func (db *DB) LastDownload(ctx context.Context, url string) (Download, error) {
	d := Download{URL: url}
	err := db.st.Reader().QueryRowContext(ctx, "SELECT etag, last_modified FROM vuln_downloads WHERE url = $1", url).
		Scan(&d.ETag, &d.LastModified)
	if errors.Is(err, sql.ErrNoRows) {
		return d, nil
	}
	if err != nil {
		return d, fmt.Errorf("vulndb download %s: %w", url, err)
	}
	return d, nil
}

// Lookup returns every advisory that is id or names it as an alias, and
// those that share an alias with them (one hop), so that "GO-2021-0113"
// brings the NVD record of its CVE. The advisory whose ID is id comes first.
func (db *DB) Lookup(ctx context.Context, id string) ([]Advisory, error) {
	first, err := db.byAlias(ctx, []string{id})
	if err != nil {
		return nil, fmt.Errorf("lookup %s: %w", id, err)
	}
	names := map[string]bool{id: true}
	for _, a := range first {
		names[a.ID] = true
		for _, al := range a.Aliases {
			names[al] = true
		}
	}
	all, err := db.byAlias(ctx, keys(names))
	if err != nil {
		return nil, fmt.Errorf("lookup %s: %w", id, err)
	}
	sortLookup(all, id)
	return all, nil
}

func (db *DB) byAlias(ctx context.Context, names []string) ([]Advisory, error) {
	if len(names) == 0 {
		return nil, nil
	}
	args := make([]any, len(names))
	marks := make([]string, len(names))
	for i, n := range names {
		args[i] = n
		marks[i] = fmt.Sprintf("$%d", i+1)
	}
	q := `SELECT a.doc FROM vuln_advisories a JOIN (SELECT DISTINCT feed, id FROM vuln_aliases
		WHERE alias IN (` + strings.Join(marks, ", ") + `)) l ON a.feed = l.feed AND a.id = l.id`
	rows, err := db.st.Reader().QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Advisory
	for rows.Next() {
		var doc string
		if err := rows.Scan(&doc); err != nil {
			return nil, err
		}
		var a Advisory
		if err := json.Unmarshal([]byte(doc), &a); err != nil {
			return nil, fmt.Errorf("stored advisory: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// sortLookup orders what a lookup of id found: id's own records first,
// then by feed and id.
func sortLookup(all []Advisory, id string) {
	sort.SliceStable(all, func(i, j int) bool {
		if (all[i].ID == id) != (all[j].ID == id) {
			return all[i].ID == id
		}
		if all[i].Feed != all[j].Feed {
			return all[i].Feed < all[j].Feed
		}
		return all[i].ID < all[j].ID
	})
}
