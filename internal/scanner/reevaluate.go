package scanner

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/scangate/scangate/internal/events"
	"github.com/scangate/scangate/internal/jobs"
	"github.com/scangate/scangate/internal/scan"
	"github.com/scangate/scangate/internal/vulndb"
)

// Finding statuses, as the Finding event's finding-status carries them.
const (
	FindingCreated = "CREATED"
	FindingClosed  = "CLOSED"
)

// FindingDetail is the detail of a Finding event: one finding that a
// re-evaluation found new, or found gone.
type FindingDetail struct {
	FindingStatus  string   `json:"finding-status"`
	RepositoryName string   `json:"repository-name"`
	ImageDigest    string   `json:"image-digest"`
	Vulnerability  string   `json:"vulnerability-id"`
	Aliases        []string `json:"aliases,omitempty"`
	PackageName    string   `json:"package-name"`
	PackageVersion string   `json:"package-version"`
	PackageType    string   `json:"package-type"`
	Severity       string   `json:"severity"`
	Fixed          []string `json:"fixed-versions,omitempty"`
}

// reevaluateArgs asks for every monitored image to be matched again.
type reevaluateArgs struct{}

func (reevaluateArgs) Kind() string { return "reevaluate_images" }

func (reevaluateArgs) InsertOpts() river.InsertOpts {
	// Not unique: River's uniqueness counts a running job, which may have
	// read the database before this change, so a second one must run.
	// Re-evaluations running at once are safe (reevaluateOne records an
	// image once per database version), and one with nothing to do takes
	// milliseconds.
	return river.InsertOpts{Queue: Queue}
}

// QueueReevaluation queues a re-evaluation of stored images in tx, the
// transaction that changed the database. client may be an insert-only
// client, as in the CLI.
func QueueReevaluation(ctx context.Context, tx *sql.Tx, client *jobs.Client) error {
	if _, err := client.InsertTx(ctx, tx, reevaluateArgs{}, nil); err != nil {
		return fmt.Errorf("queue re-evaluation: %w", err)
	}
	return nil
}

type reevaluateWorker struct {
	river.WorkerDefaults[reevaluateArgs]
	s *Scanner
}

func (w *reevaluateWorker) Timeout(*river.Job[reevaluateArgs]) time.Duration { return time.Hour }

func (w *reevaluateWorker) Work(ctx context.Context, _ *river.Job[reevaluateArgs]) error {
	_, err := w.s.Reevaluate(ctx)
	return err
}

// Reevaluation counts what a re-evaluation did.
type Reevaluation struct {
	Images   int // monitored images looked at
	Changed  int // whose findings changed
	Rescans  int // failed scans queued again
	Created  int // findings new
	Closed   int // findings gone
	Duration time.Duration
}

// monitored is an image to re-evaluate; its report is read only if its
// result is older than the database.
type monitored struct {
	repository, digest, vulndbDigest string
	status                           Outcome
}

// errRecataloged says an image was queued to be cataloged again.
var errRecataloged = errors.New("queued to be cataloged again")

// Reevaluate matches the stored inventory of every monitored image (pushed
// or pulled within the rescan window) against the database as it is,
// without pulling any image. An image whose findings changed gets its new
// result, a Scan event (SCAN_COMPLETE) and a Finding event per finding
// created or closed; a failed scan is queued again, and so is an image
// whose inventory other extractors made (see scan.Outdated).
func (s *Scanner) Reevaluate(ctx context.Context) (Reevaluation, error) {
	start := time.Now()
	var res Reevaluation
	images, err := s.monitored(ctx)
	if err != nil {
		return res, err
	}
	m, err := scan.NewMatcher(ctx, vulndb.New(s.st), s.opts.Order)
	if err != nil {
		return res, err
	}
	for _, img := range images {
		res.Images++
		if img.status != Complete {
			if err := s.Rescan(ctx, img.repository, img.digest); err != nil {
				return res, err
			}
			res.Rescans++
			continue
		}
		if img.vulndbDigest == m.Version().Digest {
			continue // matched against this database already
		}
		created, closed, err := s.reevaluateOne(ctx, m, img)
		if errors.Is(err, errRecataloged) {
			res.Rescans++
			continue
		}
		if err != nil {
			return res, fmt.Errorf("re-evaluate %s@%s: %w", img.repository, img.digest, err)
		}
		if created+closed > 0 {
			res.Changed++
		}
		res.Created += created
		res.Closed += closed
	}
	res.Duration = time.Since(start)
	s.opts.Logger.Info("re-evaluated stored images", "images", res.Images, "changed", res.Changed,
		"created", res.Created, "closed", res.Closed, "rescans", res.Rescans, "took", res.Duration)
	return res, nil
}

func (s *Scanner) monitored(ctx context.Context) ([]monitored, error) {
	cutoff := time.Now().Add(-s.opts.RescanWindow).UTC().Format(time.RFC3339)
	// Only the keys: 1,000 reports are over 100 MB of JSON, read one at a
	// time by reevaluateOne, and not at all for the images up to date.
	rows, err := s.st.Reader().QueryContext(ctx, `SELECT s.repository, s.digest, s.status, s.vulndb_digest FROM scans s
		JOIN images i ON i.repository = s.repository AND i.digest = s.digest
		WHERE (i.pushed_at >= $1 OR i.last_pulled_at >= $1) AND s.status <> $2
		ORDER BY s.repository, s.digest`, cutoff, Index)
	if err != nil {
		return nil, fmt.Errorf("monitored images: %w", err)
	}
	defer rows.Close()
	var out []monitored
	for rows.Next() {
		var m monitored
		if err := rows.Scan(&m.repository, &m.digest, &m.status, &m.vulndbDigest); err != nil {
			return nil, fmt.Errorf("monitored images: %w", err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

func (s *Scanner) reevaluateOne(ctx context.Context, m *scan.Matcher, img monitored) (created, closed int, err error) {
	var doc []byte
	err = s.st.Reader().QueryRowContext(ctx, `SELECT report FROM scans WHERE repository = $1 AND digest = $2`,
		img.repository, img.digest).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, nil // deleted since it was listed
	}
	if err != nil {
		return 0, 0, fmt.Errorf("stored report: %w", err)
	}
	var old scan.Report
	if err := json.Unmarshal(doc, &old); err != nil {
		return 0, 0, fmt.Errorf("stored report: %w", err)
	}
	if old.VulnDB.Digest == m.Version().Digest {
		return 0, 0, nil
	}
	r, err := scan.LoadInventory(ctx, s.st, img.digest)
	if errors.Is(err, scan.ErrNoInventory) {
		return 0, 0, s.Rescan(ctx, img.repository, img.digest)
	}
	if err != nil {
		return 0, 0, err
	}
	// An inventory listed by other extractors than this build's (or by a
	// scangate that did not say) may miss packages they now find: the
	// image is cataloged again rather than matched as it was.
	if outdated, err := scan.Outdated(r); err != nil {
		return 0, 0, err
	} else if outdated {
		if err := s.Rescan(ctx, img.repository, img.digest); err != nil {
			return 0, 0, err
		}
		return 0, 0, errRecataloged
	}
	r.Image.Repository, r.Image.Tags = img.repository, old.Image.Tags
	r.CreatedAt = time.Now().UTC()
	if err := m.Match(ctx, r); err != nil {
		return 0, 0, err
	}
	news, gone := diff(&old, r)
	var evs []events.Envelope
	if len(news)+len(gone) > 0 {
		e, err := s.scanEvent(StatusScanComplete, r, "")
		if err != nil {
			return 0, 0, err
		}
		evs = append(evs, e)
		for _, f := range news {
			if e, err = s.findingEvent(FindingCreated, r, f); err != nil {
				return 0, 0, err
			}
			evs = append(evs, e)
		}
		for _, f := range gone {
			if e, err = s.findingEvent(FindingClosed, &old, f); err != nil {
				return 0, 0, err
			}
			evs = append(evs, e)
		}
	}
	recorded := false
	err = s.st.InTx(ctx, func(tx *sql.Tx) error {
		// Another re-evaluation may have recorded this image since it was
		// read: the writer's transaction makes this check and the write one.
		var current string
		err := tx.QueryRowContext(ctx, `SELECT vulndb_digest FROM scans WHERE repository = $1 AND digest = $2 AND status = $3`,
			img.repository, img.digest, Complete).Scan(&current)
		if errors.Is(err, sql.ErrNoRows) || current != old.VulnDB.Digest {
			return nil
		}
		if err != nil {
			return err
		}
		if err := writeScan(ctx, tx, img.repository, img.digest, Complete, "", r); err != nil {
			return err
		}
		recorded = true
		return s.bus.PublishMany(ctx, tx, evs)
	})
	if err != nil || !recorded {
		return 0, 0, err
	}
	return len(news), len(gone), nil
}

// findingKey names a finding across two matches of the same inventory.
func findingKey(r *scan.Report, f scan.Finding) string {
	p := r.Packages[f.Package]
	return f.ID + "\x00" + p.Type + "\x00" + p.Name + "\x00" + p.Version + "\x00" + p.Path
}

// diff returns the findings of now that were not in before, and those of
// before that are not in now.
func diff(before, now *scan.Report) (news, gone []scan.Finding) {
	had := map[string]bool{}
	for _, f := range before.Findings {
		had[findingKey(before, f)] = true
	}
	has := map[string]bool{}
	for _, f := range now.Findings {
		k := findingKey(now, f)
		has[k] = true
		if !had[k] {
			news = append(news, f)
		}
	}
	for _, f := range before.Findings {
		if !has[findingKey(before, f)] {
			gone = append(gone, f)
		}
	}
	return news, gone
}

func (s *Scanner) findingEvent(status string, r *scan.Report, f scan.Finding) (events.Envelope, error) {
	p := r.Packages[f.Package]
	d := FindingDetail{
		FindingStatus:  status,
		RepositoryName: r.Image.Repository,
		ImageDigest:    r.Image.Digest,
		Vulnerability:  f.ID,
		Aliases:        f.Aliases,
		PackageName:    p.Name,
		PackageVersion: p.Version,
		PackageType:    p.Type,
		Severity:       f.Severity,
		Fixed:          f.Fixed,
	}
	return events.New(events.SourceScanner, events.DetailTypeFinding, []string{s.ref(r.Image.Repository, r.Image.Digest)}, d)
}

// Rescan drops an image's result and queues a new first scan of it.
func (s *Scanner) Rescan(ctx context.Context, repository, digest string) error {
	return s.st.InTx(ctx, func(tx *sql.Tx) error {
		if err := deleteScan(ctx, tx, repository, digest); err != nil {
			return fmt.Errorf("rescan %s@%s: %w", repository, digest, err)
		}
		return s.queue(ctx, tx, repository, digest)
	})
}
