package scanner

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

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

// maxAffectedScan bounds the reports AffectedBy reads.
const maxAffectedScan = 10000

// AffectedBy returns the images whose latest completed scan has a finding
// of the advisory id, as its id or one of its aliases ("CVE-2023-45853"
// finds Debian's and GitHub's records of it too), newest push first.
func AffectedBy(ctx context.Context, st *store.Store, id string) ([]Affected, error) {
	if id == "" || len(id) > 128 || strings.ContainsAny(id, `"\%_`) {
		return nil, fmt.Errorf("advisory id %q: want an id such as CVE-2023-45853", id)
	}
	// The stored report is JSON: the id appears quoted wherever a finding
	// names it, so LIKE narrows the reports to read, and reading decides.
	rows, err := st.Reader().QueryContext(ctx, `SELECT s.repository, s.digest, s.report FROM scans s
		JOIN images i ON i.repository = s.repository AND i.digest = s.digest
		WHERE s.status = 'COMPLETE' AND s.report LIKE $1 ORDER BY i.pushed_at DESC LIMIT `+fmt.Sprint(maxAffectedScan),
		`%"`+id+`"%`)
	if err != nil {
		return nil, fmt.Errorf("images affected by %s: %w", id, err)
	}
	defer rows.Close()
	var out []Affected
	for rows.Next() {
		var a Affected
		var doc string
		if err := rows.Scan(&a.Repository, &a.Digest, &doc); err != nil {
			return nil, fmt.Errorf("images affected by %s: %w", id, err)
		}
		var r scan.Report
		if err := json.Unmarshal([]byte(doc), &r); err != nil {
			return nil, fmt.Errorf("images affected by %s: report of %s@%s: %w", id, a.Repository, a.Digest, err)
		}
		for _, f := range r.Findings {
			if (f.ID == id || slices.Contains(f.Aliases, id)) && f.Package >= 0 && f.Package < len(r.Packages) {
				a.Findings = append(a.Findings, AffectedFinding{Finding: f, Package: r.Packages[f.Package]})
			}
		}
		if len(a.Findings) > 0 {
			out = append(out, a)
		}
	}
	return out, rows.Err()
}
