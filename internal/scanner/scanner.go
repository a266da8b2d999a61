// Package scanner is scangate's scanning service: it turns manifest pushes
// into durable scan jobs, keeps each image's latest result, publishes Scan
// and Finding events, and re-evaluates stored inventories when the
// vulnerability database changes. The scanning itself is package scan's.
package scanner

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"

	"github.com/scangate/scangate/internal/events"
	"github.com/scangate/scangate/internal/jobs"
	"github.com/scangate/scangate/internal/layercache"
	"github.com/scangate/scangate/internal/registry"
	"github.com/scangate/scangate/internal/scan"
	"github.com/scangate/scangate/internal/store"
)

// Queue is the River queue scans run on; its worker count is the scan
// concurrency.
const Queue = "scan"

// Options tune the scanner.
type Options struct {
	// Host is the registry's address as clients name it, for the image
	// references in events ("127.0.0.1:5000").
	Host   string
	Limits scan.Limits
	Order  scan.SeverityOrder
	// LayerCache, if not nil, keeps layers between scans: images pushed
	// on a base already scanned cost only their new layers.
	LayerCache *layercache.Cache
	// RescanWindow keeps an image monitored for re-evaluation while it
	// was pushed or pulled within this long (30 days by default).
	RescanWindow time.Duration
	// OnScan hears of every finished scan, for metrics.
	OnScan func(status string, d time.Duration)
	Logger *slog.Logger
}

// Scanner scans what the registry receives.
type Scanner struct {
	st   *store.Store
	reg  *registry.Registry
	bus  *events.Bus
	jobs *jobs.Client
	opts Options
}

// New returns the scanner of reg's images, keeping results in st.
func New(st *store.Store, reg *registry.Registry, bus *events.Bus, client *jobs.Client, opts Options) *Scanner {
	if opts.Limits == (scan.Limits{}) {
		opts.Limits = scan.DefaultLimits
	}
	if opts.Order == "" {
		opts.Order = scan.OrderNVD
	}
	if opts.RescanWindow == 0 {
		opts.RescanWindow = 30 * 24 * time.Hour
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Scanner{st: st, reg: reg, bus: bus, jobs: client, opts: opts}
}

// Register adds the scanner's workers.
func (s *Scanner) Register(w *river.Workers) {
	river.AddWorker(w, &scanWorker{s: s})
	river.AddWorker(w, &reevaluateWorker{s: s})
}

// ImagePushDetail is the detail of an ECR Image Action event for a push.
type ImagePushDetail struct {
	ActionType     string `json:"action-type"`
	Result         string `json:"result"`
	RepositoryName string `json:"repository-name"`
	ImageDigest    string `json:"image-digest"`
	ImageTag       string `json:"image-tag"`
	MediaType      string `json:"media-type"`
}

// ManifestPushed records a pushed manifest, publishes Image Push and queues
// its scan, all in one transaction.
func (s *Scanner) ManifestPushed(ctx context.Context, m registry.Manifest) error {
	now := time.Now().UTC()
	push, err := events.New(events.SourceRegistry, events.DetailTypeImagePush, []string{s.ref(m.Repository, m.Digest)}, ImagePushDetail{
		ActionType:     "PUSH",
		Result:         "SUCCESS",
		RepositoryName: m.Repository,
		ImageDigest:    m.Digest,
		ImageTag:       m.Tag,
		MediaType:      m.MediaType,
	})
	if err != nil {
		return err
	}
	return s.st.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO images (repository, digest, media_type, pushed_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (repository, digest) DO UPDATE SET pushed_at = excluded.pushed_at`,
			m.Repository, m.Digest, m.MediaType, now.Format(time.RFC3339)); err != nil {
			return fmt.Errorf("record push of %s@%s: %w", m.Repository, m.Digest, err)
		}
		if err := setTag(ctx, tx, m.Repository, m.Tag, m.Digest); err != nil {
			return err
		}
		if err := s.bus.Publish(ctx, tx, push); err != nil {
			return err
		}
		return s.queue(ctx, tx, m.Repository, m.Digest)
	})
}

// setTag points a tag at digest (no tag does nothing).
func setTag(ctx context.Context, tx *sql.Tx, repository, tag, digest string) error {
	if tag == "" {
		return nil
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO image_tags (repository, tag, digest, updated_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (repository, tag) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at`,
		repository, tag, digest, time.Now().UTC().Format(time.RFC3339))
	if err != nil {
		return fmt.Errorf("tag %s:%s: %w", repository, tag, err)
	}
	return nil
}

// ManifestDeleted forgets a deleted tag, or a deleted manifest with its
// tags, result and, if no other repository holds it, its inventory.
func (s *Scanner) ManifestDeleted(ctx context.Context, m registry.Manifest) {
	err := s.st.InTx(ctx, func(tx *sql.Tx) error {
		if m.Digest == "" {
			_, err := tx.ExecContext(ctx, `DELETE FROM image_tags WHERE repository = $1 AND tag = $2`, m.Repository, m.Tag)
			return err
		}
		for _, q := range []string{
			`DELETE FROM image_tags WHERE repository = $1 AND digest = $2`,
			`DELETE FROM scans WHERE repository = $1 AND digest = $2`,
			`DELETE FROM scan_advisories WHERE repository = $1 AND digest = $2`,
			`DELETE FROM images WHERE repository = $1 AND digest = $2`,
		} {
			if _, err := tx.ExecContext(ctx, q, m.Repository, m.Digest); err != nil {
				return err
			}
		}
		var inUse bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM images WHERE digest = $1)`, m.Digest).Scan(&inUse); err != nil {
			return err
		}
		if inUse {
			return nil
		}
		return scan.DeleteInventory(ctx, tx, m.Digest)
	})
	if err != nil {
		s.opts.Logger.Warn("could not forget a deleted manifest", "repository", m.Repository, "digest", m.Digest, "tag", m.Tag, "err", err)
	}
}

// ManifestPulled notes the pull, which keeps the image in the rescan
// window. The window is counted in days, so a pull within the hour of the
// last one recorded is not written again: a burst of pulls makes no burst
// of writes.
func (s *Scanner) ManifestPulled(ctx context.Context, m registry.Manifest) {
	var last sql.NullString
	err := s.st.Reader().QueryRowContext(ctx, `SELECT last_pulled_at FROM images WHERE repository = $1 AND digest = $2`,
		m.Repository, m.Digest).Scan(&last)
	if err != nil {
		return // not an image scangate recorded, or no database to ask
	}
	if t := parseTime(last); t != nil && time.Since(*t) < time.Hour {
		return
	}
	_, err = s.st.Writer().ExecContext(ctx, `UPDATE images SET last_pulled_at = $1 WHERE repository = $2 AND digest = $3`,
		time.Now().UTC().Format(time.RFC3339), m.Repository, m.Digest)
	if err != nil {
		s.opts.Logger.Warn("could not record a pull", "image", m.Repository+"@"+m.Digest, "err", err)
	}
}

// queue inserts a scan job; River keeps one per image.
func (s *Scanner) queue(ctx context.Context, tx *sql.Tx, repository, digest string) error {
	if _, err := s.jobs.InsertTx(ctx, tx, scanArgs{Repository: repository, Digest: digest}, nil); err != nil {
		return fmt.Errorf("queue scan of %s@%s: %w", repository, digest, err)
	}
	return nil
}

// Reconcile queues a scan for every manifest in the registry that has no
// scan result, and returns how many it queued: pushes made while the
// server was not recording them (a crash at the wrong moment, a copy of
// the storage folder) are scanned too.
func (s *Scanner) Reconcile(ctx context.Context) (int, error) {
	scanned := map[string]bool{}
	rows, err := s.st.Reader().QueryContext(ctx, `SELECT repository, digest FROM scans`)
	if err != nil {
		return 0, fmt.Errorf("reconcile: %w", err)
	}
	for rows.Next() {
		var repo, d string
		if err := rows.Scan(&repo, &d); err != nil {
			rows.Close()
			return 0, fmt.Errorf("reconcile: %w", err)
		}
		scanned[repo+"@"+d] = true
	}
	rows.Close()
	var missing []registry.Manifest
	if err := s.reg.Manifests(ctx, func(m registry.Manifest) error {
		if !scanned[m.Repository+"@"+m.Digest] {
			missing = append(missing, m)
		}
		return nil
	}); err != nil {
		return 0, fmt.Errorf("reconcile: %w", err)
	}
	// Their tags, read before the transaction: the registry's storage is
	// not the database.
	tags := map[string][]string{}
	for _, m := range missing {
		t, err := s.reg.Tags(ctx, m.Repository, m.Digest)
		if err != nil {
			return 0, fmt.Errorf("reconcile: %w", err)
		}
		tags[m.Repository+"@"+m.Digest] = t
	}
	now := time.Now().UTC().Format(time.RFC3339)
	err = s.st.InTx(ctx, func(tx *sql.Tx) error {
		for _, m := range missing {
			if _, err := tx.ExecContext(ctx, `INSERT INTO images (repository, digest, media_type, pushed_at) VALUES ($1, $2, $3, $4)
				ON CONFLICT (repository, digest) DO NOTHING`, m.Repository, m.Digest, m.MediaType, now); err != nil {
				return err
			}
			for _, tag := range tags[m.Repository+"@"+m.Digest] {
				if err := setTag(ctx, tx, m.Repository, tag, m.Digest); err != nil {
					return err
				}
			}
			if err := s.queue(ctx, tx, m.Repository, m.Digest); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("reconcile: %w", err)
	}
	return len(missing), nil
}

// ref is an image's reference as clients of the registry pull it.
func (s *Scanner) ref(repository, digest string) string {
	return s.opts.Host + "/" + repository + "@" + digest
}
