package scanner

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/scangate/scangate/internal/scan"
	"github.com/scangate/scangate/internal/store"
)

// Image is a manifest in the registry with its latest scan.
type Image struct {
	Repository   string      `json:"repository"`
	Digest       string      `json:"digest"`
	MediaType    string      `json:"mediaType"`
	Tags         []string    `json:"tags"`
	PushedAt     time.Time   `json:"pushedAt"`
	LastPulledAt *time.Time  `json:"lastPulledAt,omitempty"`
	ScanStatus   string      `json:"scanStatus"` // PENDING, COMPLETE, FAILED or INDEX
	ScanError    string      `json:"scanError,omitempty"`
	ScannedAt    *time.Time  `json:"scannedAt,omitempty"`
	Summary      scan.Counts `json:"summary"`
	Fixable      scan.Counts `json:"fixable"`
	VulnDBDigest string      `json:"vulndbDigest,omitempty"`
}

// Results reads what the scanner stored: images, their scans and tags.
// The API and the console read through it, not through the tables.
type Results struct{ st *store.Store }

// NewResults returns a reader of st's images and scans.
func NewResults(st *store.Store) *Results { return &Results{st: st} }

// ListImages returns the images pushed to the registry, newest push first,
// with their scans; repository, if not empty, keeps one repository's.
func (rs *Results) ListImages(ctx context.Context, repository string) ([]Image, error) {
	st := rs.st
	q := `SELECT i.repository, i.digest, i.media_type, i.pushed_at, i.last_pulled_at,
		coalesce(s.status, 'PENDING'), coalesce(s.error, ''), s.scanned_at, coalesce(s.summary, '{}'), coalesce(s.fixable, '{}'),
		coalesce(s.vulndb_digest, ''), (SELECT coalesce(` + st.Dialect().JSONArrayAgg("t.tag") + `, '[]') FROM (SELECT tag FROM image_tags WHERE repository = i.repository AND digest = i.digest ORDER BY tag) t)
		FROM images i LEFT JOIN scans s ON s.repository = i.repository AND s.digest = i.digest`
	var args []any
	if repository != "" {
		q += ` WHERE i.repository = $1`
		args = append(args, repository)
	}
	rows, err := st.Reader().QueryContext(ctx, q+` ORDER BY i.pushed_at DESC, i.repository, i.digest`, args...)
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	defer rows.Close()
	var out []Image
	for rows.Next() {
		var im Image
		var pushed, summary, fixable, tags string
		var pulled, scanned sql.NullString
		if err := rows.Scan(&im.Repository, &im.Digest, &im.MediaType, &pushed, &pulled, &im.ScanStatus, &im.ScanError,
			&scanned, &summary, &fixable, &im.VulnDBDigest, &tags); err != nil {
			return nil, fmt.Errorf("list images: %w", err)
		}
		im.PushedAt, _ = time.Parse(time.RFC3339, pushed)
		im.LastPulledAt = parseTime(pulled)
		im.ScannedAt = parseTime(scanned)
		_ = json.Unmarshal([]byte(summary), &im.Summary)
		_ = json.Unmarshal([]byte(fixable), &im.Fixable)
		_ = json.Unmarshal([]byte(tags), &im.Tags)
		if im.Tags == nil {
			im.Tags = []string{}
		}
		out = append(out, im)
	}
	return out, rows.Err()
}

func parseTime(s sql.NullString) *time.Time {
	if !s.Valid {
		return nil
	}
	t, err := time.Parse(time.RFC3339, s.String)
	if err != nil {
		return nil
	}
	return &t
}

// ErrNotScanned reports an image with no scan result yet.
var ErrNotScanned = errors.New("not scanned yet")

// ErrNoImage reports an image the registry has not received.
var ErrNoImage = errors.New("no such image")

// Findings returns the latest report of an image named REPOSITORY@DIGEST
// or REPOSITORY:TAG (the newest push of that tag).
func (rs *Results) Findings(ctx context.Context, name string) (*scan.Report, error) {
	st := rs.st
	repo, digest, err := resolve(ctx, st, name)
	if err != nil {
		return nil, err
	}
	r, ok, err := ReadResult(ctx, st.Reader(), repo, digest)
	if err != nil {
		return nil, fmt.Errorf("findings of %s: %w", name, err)
	}
	switch {
	case !ok:
		return nil, fmt.Errorf("%s@%s: %w", repo, digest, ErrNotScanned)
	case r.Outcome == Index:
		return nil, fmt.Errorf("%s@%s is a multi-platform index: ask for one platform's digest (scangate images list): %w", repo, digest, ErrNotScanned)
	case r.Outcome != Complete:
		return nil, fmt.Errorf("%s@%s: the scan failed: %s", repo, digest, r.Error)
	}
	if r.Report.Findings == nil { // a report stored before scans kept []
		r.Report.Findings = []scan.Finding{}
	}
	return r.Report, nil
}

// resolve finds the repository and digest an image name means.
func resolve(ctx context.Context, st *store.Store, name string) (repo, digest string, err error) {
	if r, d, ok := strings.Cut(name, "@"); ok {
		return r, d, nil
	}
	repo, tag := name, "latest"
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		repo, tag = name[:i], name[i+1:]
	}
	// The manifest the tag names now.
	err = st.Reader().QueryRowContext(ctx, `SELECT digest FROM image_tags WHERE repository = $1 AND tag = $2`, repo, tag).Scan(&digest)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", fmt.Errorf("%s:%s: %w", repo, tag, ErrNoImage)
	}
	if err != nil {
		return "", "", fmt.Errorf("image %s: %w", name, err)
	}
	return repo, digest, nil
}

// ResolveTag returns the digest repository:tag names now.
func (rs *Results) ResolveTag(ctx context.Context, repository, tag string) (string, error) {
	st := rs.st
	_, digest, err := resolve(ctx, st, repository+":"+tag)
	return digest, err
}
