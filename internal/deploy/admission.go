package deploy

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/distribution/reference"
)

// Verdicts tell whether an image passed the gate; the pipeline's approvals
// and the scanner's results answer (wired at the composition root).
type Verdicts interface {
	// Verdict is the latest gate decision of repository@digest.
	Verdict(ctx context.Context, repository, digest string) (Verdict, error)
}

// Decisions of a Verdict.
const (
	DecisionApproved = "Approved"
	DecisionRejected = "Rejected"
	DecisionNone     = "" // scanned, never decided
)

// Verdict is what the gate said of an image.
type Verdict struct {
	// Scanned: the image has a scan result; ScanError is set when the
	// scan failed.
	Scanned   bool
	ScanError string
	Decision  string
	// Summary is the decision's summary ("Rejected: CRITICAL 2 > 0 …").
	Summary   string
	DecidedBy string
	DecidedAt time.Time
}

// FindingRef names a finding in events and messages.
type FindingRef struct {
	ID       string `json:"id"`
	Package  string `json:"package"`
	Version  string `json:"installedVersion,omitempty"`
	Severity string `json:"severity"`
	Fixed    string `json:"fixedVersion,omitempty"`
}

func (f FindingRef) String() string {
	s := fmt.Sprintf("%s %s in %s", f.Severity, f.ID, f.Package)
	if f.Fixed != "" {
		s += " (fixed in " + f.Fixed + ")"
	}
	return s
}

// Override lets an image that the gate did not approve run in one service,
// for a reason and until an expiry, as a policy exception does.
type Override struct {
	Cluster   string    `json:"clusterName"`
	Service   string    `json:"serviceName"`
	Digest    string    `json:"imageDigest"`
	Reason    string    `json:"reason"`
	CreatedBy string    `json:"createdBy"`
	CreatedAt time.Time `json:"createdAt"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// imageRef is an image of scangate's registry pinned by digest.
type imageRef struct {
	Repository string // shop/api
	Digest     string // sha256:…
}

// parseImage splits an image reference of scangate's registry (host
// registry) pinned by digest.
func parseImage(registry, image string) (imageRef, error) {
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return imageRef{}, fmt.Errorf("%w: image %q: %v", ErrInvalid, image, err)
	}
	if host := reference.Domain(named); host != registry {
		return imageRef{}, fmt.Errorf("%w: image %s is not in scangate's registry (%s): only images scangate scanned can run", ErrRefused, image, registry)
	}
	canon, ok := named.(reference.Canonical)
	if !ok {
		return imageRef{}, fmt.Errorf("%w: image %s is not pinned by digest", ErrInvalid, image)
	}
	return imageRef{Repository: reference.Path(named), Digest: canon.Digest().String()}, nil
}

// admit checks that image may run in the service: its latest verdict is
// Approved, or an admin's override covers it. The error says why not.
func (c *Controller) admit(ctx context.Context, q querier, cluster, service, image string) (string, error) {
	ref, err := parseImage(c.opts.Registry, image)
	if err != nil {
		return "", err
	}
	var reason, expires string
	err = q.QueryRowContext(ctx, `SELECT reason, expires_at FROM admission_overrides WHERE cluster = $1 AND service = $2 AND digest = $3`,
		cluster, service, ref.Digest).Scan(&reason, &expires)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", err
	}
	if err == nil && c.opts.Now().Before(parseTime(expires)) {
		return "admitted by an override until " + parseTime(expires).Format(time.RFC3339) + ": " + reason, nil
	}
	if why, err := c.noncompliantPastDeadline(ctx, q, cluster, service, ref.Digest); err != nil || why != "" {
		if err != nil {
			return "", err
		}
		c.opts.OnRefusal()
		return "", fmt.Errorf("%w: %s@%s %s", ErrRefused, ref.Repository, ref.Digest, why)
	}
	if c.opts.Verdicts == nil {
		return "", fmt.Errorf("%w: %s: no verdicts to check", ErrRefused, ref.Digest)
	}
	v, err := c.opts.Verdicts.Verdict(ctx, ref.Repository, ref.Digest)
	if err != nil {
		return "", fmt.Errorf("admission of %s: %w", image, err)
	}
	refuse := func(why string) (string, error) {
		c.opts.OnRefusal()
		return "", fmt.Errorf("%w: %s@%s %s", ErrRefused, ref.Repository, ref.Digest, why)
	}
	switch {
	case v.Decision == DecisionRejected:
		return refuse("was Rejected: " + strings.TrimPrefix(v.Summary, "Rejected: "))
	case v.Decision == DecisionApproved:
		return "approved: " + v.Summary, nil
	case !v.Scanned:
		return refuse("was never scanned")
	case v.ScanError != "":
		return refuse("could not be scanned: " + v.ScanError)
	}
	return refuse("was never approved: only images a pipeline's gate approved run (or an admin's override)")
}

// PutOverride records an admin's override for digest in a service.
func (c *Controller) PutOverride(ctx context.Context, o Override) (*Override, error) {
	if strings.TrimSpace(o.Reason) == "" {
		return nil, fmt.Errorf("%w: an override needs a reason", ErrInvalid)
	}
	now := c.opts.Now().UTC()
	if o.ExpiresAt.IsZero() || !o.ExpiresAt.After(now) || o.ExpiresAt.Sub(now) > defaultAdmissionOverrideMaxTerm {
		return nil, fmt.Errorf("%w: an override needs an expiry in the next %d days", ErrInvalid, int(defaultAdmissionOverrideMaxTerm.Hours()/24))
	}
	if !strings.HasPrefix(o.Digest, "sha256:") || len(o.Digest) != 71 {
		return nil, fmt.Errorf("%w: digest %q: want sha256:<64 hex>", ErrInvalid, o.Digest)
	}
	o.CreatedAt = now
	err := c.st.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := loadService(ctx, tx, o.Cluster, o.Service); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO admission_overrides (cluster, service, digest, reason, created_by, created_at, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (cluster, service, digest) DO UPDATE SET reason = excluded.reason,
			created_by = excluded.created_by, created_at = excluded.created_at, expires_at = excluded.expires_at`,
			o.Cluster, o.Service, o.Digest, o.Reason, o.CreatedBy, formatTime(now), formatTime(o.ExpiresAt)); err != nil {
			return err
		}
		return c.serviceEvent(ctx, tx, o.Cluster, o.Service, "WARN", "ADMISSION_OVERRIDE", fmt.Sprintf("admission override for %s by %s until %s: %s",
			o.Digest, o.CreatedBy, o.ExpiresAt.Format(time.RFC3339), o.Reason))
	})
	if err != nil {
		return nil, err
	}
	c.Trigger()
	return &o, nil
}

// Overrides lists a service's admission overrides.
func (c *Controller) Overrides(ctx context.Context, cluster, service string) ([]Override, error) {
	// An unknown service is not one without overrides: a typo in its name
	// must not read as "nothing overridden".
	if _, err := loadService(ctx, c.st.Reader(), cluster, service); err != nil {
		return nil, err
	}
	return queryAll(ctx, c.st.Reader(), func(r rowScanner) (Override, error) {
		var o Override
		var created, expires string
		err := r.Scan(&o.Cluster, &o.Service, &o.Digest, &o.Reason, &o.CreatedBy, &created, &expires)
		o.CreatedAt, o.ExpiresAt = parseTime(created), parseTime(expires)
		return o, err
	}, `SELECT cluster, service, digest, reason, created_by, created_at, expires_at FROM admission_overrides
		WHERE cluster = $1 AND service = $2 ORDER BY created_at`, cluster, service)
}
