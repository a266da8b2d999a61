package scanner

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/scangate/scangate/internal/scan"
	"github.com/scangate/scangate/internal/store"
)

// Affected is an image whose latest scan has a finding of an advisory.
type Affected struct {
	Repository string
	Digest     string
	// Findings are the image's findings of the advisory (one per package).
	Findings []AffectedFinding
}

// AffectedFinding is one finding of an advisory in an image.
type AffectedFinding struct {
	scan.Finding
	Package scan.Package
}

// AffectedBy returns the images whose latest completed scan has a finding
// of the advisory id, as its id or one of its aliases ("CVE-2023-45853"
// finds Debian's and GitHub's records of it too), newest push first: at
// most limit images after the first offset.
//
// The images come from scan_advisories, the index of each result's ids
// and aliases; SQLite reads only that page's reports (json_each), so only
// the matching findings and their packages reach Go. Reading every stored
// report to find the id took 0.26 s for an advisory in every one of 1,000
// images of 100 findings.
func (rs *Results) AffectedBy(ctx context.Context, id string, offset, limit int) ([]Affected, error) {
	st := rs.st
	if id == "" || len(id) > 128 || strings.ContainsAny(id, `"\%_`) {
		return nil, fmt.Errorf("advisory id %q: want an id such as CVE-2023-45853", id)
	}
	limit = min(max(limit, 1), 1000)
	offset = max(offset, 0)
	// scan_advisories names the images (writeScan keeps it); json_each
	// picks the findings, on one page of them.
	q := `WITH hit AS (
			SELECT a.repository, a.digest, i.pushed_at FROM scan_advisories a
			JOIN images i ON i.repository = a.repository AND i.digest = a.digest
			WHERE a.advisory = $1
			ORDER BY i.pushed_at DESC, a.repository, a.digest LIMIT $2 OFFSET $3)
		SELECT h.repository, h.digest, f.value, json_extract(s.report, '$.packages[' || (f.value ->> '$.package') || ']')
		FROM hit h JOIN scans s ON s.repository = h.repository AND s.digest = h.digest, json_each(s.report, '$.findings') f
		WHERE f.value ->> '$.id' = $1 OR EXISTS (SELECT 1 FROM json_each(f.value, '$.aliases') a WHERE a.value = $1)
		ORDER BY h.pushed_at DESC, h.repository, h.digest`
	if st.Dialect() == store.Postgres {
		// The same query in PostgreSQL's JSON functions: jsonb arrays
		// for json_each, a report without findings read as none.
		q = `WITH hit AS (
			SELECT a.repository, a.digest, i.pushed_at FROM scan_advisories a
			JOIN images i ON i.repository = a.repository AND i.digest = a.digest
			WHERE a.advisory = $1
			ORDER BY i.pushed_at DESC, a.repository, a.digest LIMIT $2 OFFSET $3)
		SELECT h.repository, h.digest, f.value::text, (s.report::jsonb -> 'packages' -> ((f.value ->> 'package')::int))::text
		FROM hit h JOIN scans s ON s.repository = h.repository AND s.digest = h.digest,
			jsonb_array_elements(CASE WHEN jsonb_typeof(s.report::jsonb -> 'findings') = 'array' THEN s.report::jsonb -> 'findings' ELSE '[]' END) f(value)
		WHERE f.value ->> 'id' = $1 OR (jsonb_typeof(f.value -> 'aliases') = 'array'
			AND EXISTS (SELECT 1 FROM jsonb_array_elements_text(f.value -> 'aliases') a(value) WHERE a.value = $1))
		ORDER BY h.pushed_at DESC, h.repository, h.digest`
	}
	rows, err := st.Reader().QueryContext(ctx, q,
		id, limit, offset)
	if err != nil {
		return nil, fmt.Errorf("images affected by %s: %w", id, err)
	}
	defer rows.Close()
	var out []Affected
	for rows.Next() {
		var repo, digest, finding string
		var pkg sql.NullString
		if err := rows.Scan(&repo, &digest, &finding, &pkg); err != nil {
			return nil, fmt.Errorf("images affected by %s: %w", id, err)
		}
		var af AffectedFinding
		if err := json.Unmarshal([]byte(finding), &af.Finding); err != nil {
			return nil, fmt.Errorf("images affected by %s: report of %s@%s: %w", id, repo, digest, err)
		}
		if pkg.Valid {
			if err := json.Unmarshal([]byte(pkg.String), &af.Package); err != nil {
				return nil, fmt.Errorf("images affected by %s: report of %s@%s: %w", id, repo, digest, err)
			}
		}
		if n := len(out); n == 0 || out[n-1].Repository != repo || out[n-1].Digest != digest {
			out = append(out, Affected{Repository: repo, Digest: digest})
		}
		out[len(out)-1].Findings = append(out[len(out)-1].Findings, af)
	}
	return out, rows.Err()
}

// Seed records reports as the results of images pushed at pushed, each
// tagged with its report's tags, as scans of pushes would, without events
// or jobs: for benchmarks of the pages and commands that read many stored
// results (the console's). A report needs its image's repository and
// digest.
func Seed(ctx context.Context, st *store.Store, pushed time.Time, reports []*scan.Report) error {
	const batch = 100
	for first := 0; first < len(reports); first += batch {
		err := st.InTx(ctx, func(tx *sql.Tx) error {
			for _, r := range reports[first:min(first+batch, len(reports))] {
				repo, digest := r.Image.Repository, r.Image.Digest
				if repo == "" || digest == "" {
					return fmt.Errorf("seed: a report without its image's repository and digest")
				}
				if _, err := tx.ExecContext(ctx, `INSERT INTO images (repository, digest, media_type, pushed_at) VALUES ($1, $2, $3, $4)`,
					repo, digest, "application/vnd.oci.image.manifest.v1+json", pushed.UTC().Format(time.RFC3339)); err != nil {
					return fmt.Errorf("seed %s@%s: %w", repo, digest, err)
				}
				for _, tag := range r.Image.Tags {
					if err := setTag(ctx, tx, repo, tag, digest); err != nil {
						return err
					}
				}
				if err := writeScan(ctx, tx, repo, digest, Complete, "", r); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Repository sums up a registry repository's images.
type Repository struct {
	Name     string
	Images   int
	LastPush time.Time
	// Worst is the worst severity of a finding in the latest scan of any
	// of its images ("" if none has one).
	Worst string
}

// Repositories lists the registry's repositories, by name, in one query.
func (rs *Results) Repositories(ctx context.Context) ([]Repository, error) {
	st := rs.st
	var cols []string
	for _, sev := range scan.Severities {
		d := st.Dialect()
		cols = append(cols, d.AnyTrue(`coalesce(`+d.JSONInt("s.summary", string(sev))+`, 0) > 0`))
	}
	rows, err := st.Reader().QueryContext(ctx, `SELECT i.repository, count(*), max(i.pushed_at), `+strings.Join(cols, ", ")+`
		FROM images i LEFT JOIN scans s ON s.repository = i.repository AND s.digest = i.digest
		GROUP BY i.repository ORDER BY i.repository`)
	if err != nil {
		return nil, fmt.Errorf("list repositories: %w", err)
	}
	defer rows.Close()
	var out []Repository
	for rows.Next() {
		var r Repository
		var last string
		has := make([]bool, len(scan.Severities))
		dest := []any{&r.Name, &r.Images, &last}
		for i := range has {
			dest = append(dest, &has[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("list repositories: %w", err)
		}
		r.LastPush, _ = time.Parse(time.RFC3339, last)
		for i, h := range has {
			if h {
				r.Worst = scan.Severities[i]
				break
			}
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
