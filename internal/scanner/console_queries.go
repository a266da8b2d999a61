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
// most limit images after the first offset. Images are counted before the
// findings are read: a report that names id only in passing (in a title)
// takes a place in the page and is left out of it, so a page may hold
// fewer than limit images when more follow.
//
// SQLite reads the stored reports' JSON itself (json_each), for one page
// of images, so only the matching findings and their packages reach Go;
// decoding each report whole took 3.5 s for an advisory in every one of
// 1,000 images of 100 findings. Finding the reports that name the id
// still reads every stored report (0.35 s there): an index of advisories
// per image, kept with each result, is what would make it fast.
func AffectedBy(ctx context.Context, st *store.Store, id string, offset, limit int) ([]Affected, error) {
	if id == "" || len(id) > 128 || strings.ContainsAny(id, `"\%_`) {
		return nil, fmt.Errorf("advisory id %q: want an id such as CVE-2023-45853", id)
	}
	limit = min(max(limit, 1), 1000)
	offset = max(offset, 0)
	// The id appears quoted wherever a finding names it: instr narrows the
	// reports to read, and json_each decides, on one page of them.
	rows, err := st.Reader().QueryContext(ctx, `WITH hit AS (
			SELECT s.repository, s.digest, i.pushed_at FROM scans s
			JOIN images i ON i.repository = s.repository AND i.digest = s.digest
			WHERE s.status = 'COMPLETE' AND instr(s.report, $1) > 0
			ORDER BY i.pushed_at DESC, s.repository, s.digest LIMIT $3 OFFSET $4)
		SELECT h.repository, h.digest, f.value, json_extract(s.report, '$.packages[' || (f.value ->> '$.package') || ']')
		FROM hit h JOIN scans s ON s.repository = h.repository AND s.digest = h.digest, json_each(s.report, '$.findings') f
		WHERE f.value ->> '$.id' = $2 OR EXISTS (SELECT 1 FROM json_each(f.value, '$.aliases') a WHERE a.value = $2)
		ORDER BY h.pushed_at DESC, h.repository, h.digest`,
		`"`+id+`"`, id, limit, offset)
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
				if err := writeScan(ctx, tx, repo, digest, "COMPLETE", "", r); err != nil {
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
func Repositories(ctx context.Context, st *store.Store) ([]Repository, error) {
	var cols []string
	for _, sev := range scan.Severities {
		cols = append(cols, fmt.Sprintf(`max(coalesce(json_extract(s.summary, '$.%s'), 0) > 0)`, sev))
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
