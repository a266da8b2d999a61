package scanner

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/scangate/scangate/internal/scan"
)

// Outcome is how an image's latest scan ended, as the scans table keeps it.
type Outcome string

const (
	// Complete: the image was read whole and matched; the result has a report.
	Complete Outcome = "COMPLETE"
	// Failed: the scan could not read or match everything; the result has
	// an error and no report.
	Failed Outcome = "FAILED"
	// Index: a multi-platform index, whose platforms' manifests are
	// scanned each on its own; no report.
	Index Outcome = "INDEX"
)

// Result is an image's latest scan.
type Result struct {
	Outcome Outcome
	// Error says why a Failed scan failed.
	Error string
	// Report is the Complete scan's report; nil for a Failed one.
	Report *scan.Report
}

// Querier is what Result reads through: the store's reader, or a
// transaction when a decision must see the scan it commits with.
type Querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// ReadResult is repository@digest's latest scan; ok is false when the image
// was never scanned. It is the scans table's read API for other packages.
func ReadResult(ctx context.Context, q Querier, repository, digest string) (r Result, ok bool, err error) {
	var outcome, errText, doc string
	err = q.QueryRowContext(ctx, `SELECT status, error, report FROM scans WHERE repository = $1 AND digest = $2`, repository, digest).
		Scan(&outcome, &errText, &doc)
	if errors.Is(err, sql.ErrNoRows) {
		return Result{}, false, nil
	}
	if err != nil {
		return Result{}, false, fmt.Errorf("scan of %s@%s: %w", repository, digest, err)
	}
	r = Result{Outcome: Outcome(outcome), Error: errText}
	if r.Outcome == Complete {
		var rep scan.Report
		if err := json.Unmarshal([]byte(doc), &rep); err != nil {
			return Result{}, false, fmt.Errorf("scan of %s@%s: %w", repository, digest, err)
		}
		r.Report = &rep
	}
	return r, true, nil
}
