package scanner

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/riverqueue/river"

	"github.com/scangate/scangate/internal/events"
	"github.com/scangate/scangate/internal/jobs"
	"github.com/scangate/scangate/internal/scan"
	"github.com/scangate/scangate/internal/vulndb"
)

// Scan statuses, as the Scan event's scan-status carries them (Amazon
// Inspector's names).
const (
	StatusInitialScanComplete = "INITIAL_SCAN_COMPLETE"
	StatusScanComplete        = "SCAN_COMPLETE"
	StatusScanError           = "SCAN_ERROR"
)

// ScanDetail is the detail of a Scan event.
type ScanDetail struct {
	ScanStatus     string         `json:"scan-status"`
	RepositoryName string         `json:"repository-name"`
	ImageDigest    string         `json:"image-digest"`
	ImageTags      []string       `json:"image-tags"`
	Counts         scan.Counts    `json:"finding-severity-counts"`
	Fixable        scan.Counts    `json:"fixable-severity-counts"`
	VulnDB         vulndb.Version `json:"vulndb"`
	Error          string         `json:"error,omitempty"`
}

// scanAttempts is how often a scan is tried before it is recorded as
// failed; a corrupt or over-limit image fails at once.
const scanAttempts = 3

// scanArgs asks for one image to be scanned; River keeps one such job per
// image, and the worker does nothing for an image that has a result.
type scanArgs struct {
	Repository string `json:"repository"`
	Digest     string `json:"digest"`
}

func (scanArgs) Kind() string { return "scan_image" }

func (scanArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: Queue, MaxAttempts: scanAttempts, UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: jobs.WaitingStates}}
}

type scanWorker struct {
	river.WorkerDefaults[scanArgs]
	s *Scanner
}

func (w *scanWorker) Timeout(*river.Job[scanArgs]) time.Duration { return 30 * time.Minute }

func (w *scanWorker) Work(ctx context.Context, job *river.Job[scanArgs]) error {
	s, a := w.s, job.Args
	if done, err := s.hasResult(ctx, a.Repository, a.Digest); err != nil || done {
		return err
	}
	_, mt, err := s.reg.RawManifest(ctx, a.Repository, a.Digest)
	if err != nil {
		return fmt.Errorf("scan %s@%s: %w", a.Repository, a.Digest, err)
	}
	if types.MediaType(mt).IsIndex() {
		return s.queuePlatforms(ctx, a)
	}
	start := time.Now()
	r, err := s.scan(ctx, a.Repository, a.Digest)
	if err != nil {
		permanent := errors.Is(err, scan.ErrLimit) || errors.Is(err, scan.ErrCorrupt) || errors.Is(err, scan.ErrInvalid)
		if !permanent && job.Attempt < job.MaxAttempts {
			return err
		}
		s.opts.Logger.Warn("scan failed", "image", a.Repository+"@"+a.Digest, "err", err)
		s.observe(StatusScanError, start)
		return s.recordError(ctx, a.Repository, a.Digest, err)
	}
	s.observe(StatusInitialScanComplete, start)
	return s.recordScan(ctx, r)
}

func (s *Scanner) observe(status string, start time.Time) {
	if s.opts.OnScan != nil {
		s.opts.OnScan(status, time.Since(start))
	}
}

// hasResult reports whether an image has been scanned already.
func (s *Scanner) hasResult(ctx context.Context, repository, digest string) (bool, error) {
	var n int
	err := s.st.Reader().QueryRowContext(ctx, `SELECT count(*) FROM scans WHERE repository = $1 AND digest = $2`, repository, digest).Scan(&n)
	return n > 0, err
}

// queuePlatforms queues a scan of every platform an index names; the
// attestations BuildKit adds name the platform unknown/unknown.
func (s *Scanner) queuePlatforms(ctx context.Context, a scanArgs) error {
	descs, err := s.reg.Index(ctx, a.Repository, a.Digest)
	if err != nil {
		return err
	}
	return s.st.InTx(ctx, func(tx *sql.Tx) error {
		for _, d := range descs {
			if d.Platform != nil && d.Platform.OS == "unknown" {
				continue
			}
			if err := s.queue(ctx, tx, a.Repository, d.Digest.String()); err != nil {
				return err
			}
		}
		// The index's own result says only that its platforms are
		// scanned, each under its own digest; without it the index would
		// look unscanned and be queued again at every start.
		return writeScan(ctx, tx, a.Repository, a.Digest, Index, "", nil)
	})
}

// scan catalogs and matches one stored image.
func (s *Scanner) scan(ctx context.Context, repository, digest string) (*scan.Report, error) {
	img, err := s.reg.Image(ctx, repository, digest)
	if err != nil {
		return nil, err
	}
	tags, err := s.reg.Tags(ctx, repository, digest)
	if err != nil {
		return nil, err
	}
	info := scan.ImageInfo{Ref: s.ref(repository, digest), Repository: repository, Tags: tags, Digest: digest}
	r, err := scan.CatalogWithCache(ctx, img, info, s.opts.Limits, s.opts.LayerCache)
	if err != nil {
		return nil, err
	}
	r.CreatedAt = time.Now().UTC()
	if err := scan.Match(ctx, r, vulndb.New(s.st), s.opts.Order); err != nil {
		return nil, err
	}
	if r.VulnDB.Digest == "" {
		// No findings from no data is not a clean image.
		return nil, errors.New("the vulnerability database is empty: run `scangate db update`, or `scangate db import PATH` offline; failed scans are retried when the database changes")
	}
	return r, nil
}

// recordScan keeps a first scan's result and publishes it, in one
// transaction, so that an image has one result and one
// INITIAL_SCAN_COMPLETE event whatever crashes in between.
func (s *Scanner) recordScan(ctx context.Context, r *scan.Report) error {
	repo, digest := r.Image.Repository, r.Image.Digest
	e, err := s.scanEvent(StatusInitialScanComplete, r, "")
	if err != nil {
		return err
	}
	return s.st.InTx(ctx, func(tx *sql.Tx) error {
		// The worker checked before scanning; check again where it counts,
		// so that two scans of one image (jobs are unique per image while
		// one waits or runs, but nothing else stops a second) still make
		// one first result and one event.
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM scans WHERE repository = $1 AND digest = $2`, repo, digest).Scan(&n); err != nil {
			return fmt.Errorf("record scan of %s@%s: %w", repo, digest, err)
		}
		if n > 0 {
			return nil
		}
		if err := scan.SaveInventory(ctx, tx, r); err != nil {
			return err
		}
		if err := writeScan(ctx, tx, repo, digest, Complete, "", r); err != nil {
			return err
		}
		return s.bus.Publish(ctx, tx, e)
	})
}

// recordError keeps a failed scan and publishes SCAN_ERROR.
func (s *Scanner) recordError(ctx context.Context, repository, digest string, cause error) error {
	tags, _ := s.reg.Tags(ctx, repository, digest)
	r := &scan.Report{Image: scan.ImageInfo{Ref: s.ref(repository, digest), Repository: repository, Digest: digest, Tags: tags}}
	e, err := s.scanEvent(StatusScanError, r, cause.Error())
	if err != nil {
		return err
	}
	return s.st.InTx(ctx, func(tx *sql.Tx) error {
		if err := writeScan(ctx, tx, repository, digest, Failed, cause.Error(), nil); err != nil {
			return err
		}
		return s.bus.Publish(ctx, tx, e)
	})
}

func (s *Scanner) scanEvent(status string, r *scan.Report, errText string) (events.Envelope, error) {
	d := ScanDetail{
		ScanStatus:     status,
		RepositoryName: r.Image.Repository,
		ImageDigest:    r.Image.Digest,
		ImageTags:      append([]string{}, r.Image.Tags...),
		Counts:         r.Summary,
		Fixable:        r.Fixable,
		VulnDB:         r.VulnDB,
		Error:          errText,
	}
	return events.New(events.SourceScanner, events.DetailTypeScan, []string{s.ref(r.Image.Repository, r.Image.Digest)}, d)
}

// writeScan keeps an image's latest result; r is nil for a failed scan.
func writeScan(ctx context.Context, tx *sql.Tx, repository, digest string, status Outcome, errText string, r *scan.Report) error {
	now := time.Now().UTC().Format(time.RFC3339)
	var summary, fixable, doc []byte
	var built, dbDigest string
	if r != nil {
		var err error
		if summary, err = json.Marshal(r.Summary); err != nil {
			return err
		}
		if fixable, err = json.Marshal(r.Fixable); err != nil {
			return err
		}
		if doc, err = json.Marshal(r); err != nil {
			return err
		}
		if !r.VulnDB.Built.IsZero() {
			built = r.VulnDB.Built.UTC().Format(time.RFC3339)
		}
		dbDigest = r.VulnDB.Digest
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO scans (repository, digest, status, error, summary, fixable, vulndb_built, vulndb_digest, report, first_scanned_at, scanned_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)
		ON CONFLICT (repository, digest) DO UPDATE SET status = excluded.status, error = excluded.error, summary = excluded.summary,
			fixable = excluded.fixable, vulndb_built = excluded.vulndb_built, vulndb_digest = excluded.vulndb_digest,
			report = excluded.report, scanned_at = excluded.scanned_at`,
		repository, digest, string(status), errText, orEmpty(summary), orEmpty(fixable), built, dbDigest, string(doc), now)
	if err != nil {
		return fmt.Errorf("record scan of %s@%s: %w", repository, digest, err)
	}
	return indexAdvisories(ctx, tx, repository, digest, r)
}

// indexAdvisories keeps scan_advisories in step with an image's result:
// each finding's id and aliases, so that AffectedBy finds the images of an
// advisory without reading every report.
func indexAdvisories(ctx context.Context, tx *sql.Tx, repository, digest string, r *scan.Report) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM scan_advisories WHERE repository = $1 AND digest = $2`, repository, digest); err != nil {
		return fmt.Errorf("record scan of %s@%s: %w", repository, digest, err)
	}
	if r == nil {
		return nil
	}
	seen := map[string]bool{}
	for _, f := range r.Findings {
		for _, id := range append([]string{f.ID}, f.Aliases...) {
			if id == "" || seen[id] {
				continue
			}
			seen[id] = true
			if _, err := tx.ExecContext(ctx, `INSERT INTO scan_advisories (repository, digest, advisory) VALUES ($1, $2, $3)`, repository, digest, id); err != nil {
				return fmt.Errorf("record scan of %s@%s: %w", repository, digest, err)
			}
		}
	}
	return nil
}

// deleteScan forgets an image's result.
func deleteScan(ctx context.Context, tx *sql.Tx, repository, digest string) error {
	for _, q := range []string{
		`DELETE FROM scans WHERE repository = $1 AND digest = $2`,
		`DELETE FROM scan_advisories WHERE repository = $1 AND digest = $2`,
	} {
		if _, err := tx.ExecContext(ctx, q, repository, digest); err != nil {
			return err
		}
	}
	return nil
}

func orEmpty(b []byte) string {
	if len(b) == 0 {
		return "{}"
	}
	return string(b)
}
