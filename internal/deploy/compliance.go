package deploy

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/scangate/scangate/internal/events"
	"github.com/scangate/scangate/internal/scanner"
)

// Judgement is an image's current findings weighed by the policy that
// approved it.
type Judgement struct {
	Passed  bool
	Summary string
	// Failing are the findings over the policy's thresholds.
	Failing []FindingRef
	// StopAfter, when set, stops the tasks of a service that has run a
	// noncompliant image for this long (on-new-findings-running).
	StopAfter time.Duration
	// Policy names where the policy comes from (pipeline shop-api v3).
	Policy string
}

// Judge weighs an image's current findings; the pipeline, which owns the
// policies, answers (wired at the composition root).
type Judge interface {
	Judge(ctx context.Context, repository, digest string) (Judgement, bool, error)
}

// ScanPattern routes re-evaluations to the compliance check.
const ScanPattern = `{"source": ["` + events.SourceScanner + `"], "detail-type": ["` + events.DetailTypeScan + `"], "detail": {"scan-status": ["` + scanner.StatusScanComplete + `"]}}`

// ComplianceHandler is the compliance check's built-in handler.
const ComplianceHandler = "deploy-service-compliance"

// HandleScan checks the services that run a re-evaluated image: findings
// past the policy that were not there before publish one Service
// Compliance Change per service.
func (c *Controller) HandleScan(ctx context.Context, e events.Envelope) error {
	var detail scanner.ScanDetail
	if err := json.Unmarshal(e.Detail, &detail); err != nil {
		return fmt.Errorf("scan event %s: %w", e.ID, err)
	}
	tasks, err := c.Tasks(ctx, TaskFilter{Digest: detail.ImageDigest})
	if err != nil || len(tasks) == 0 {
		return err
	}
	if c.opts.Judge == nil {
		return nil
	}
	j, ok, err := c.opts.Judge.Judge(ctx, detail.RepositoryName, detail.ImageDigest)
	if err != nil || !ok {
		return err
	}
	byService := map[[2]string][]string{}
	var keys [][2]string
	for _, t := range tasks {
		k := [2]string{t.Cluster, t.Service}
		if byService[k] == nil {
			keys = append(keys, k)
		}
		byService[k] = append(byService[k], t.ID)
	}
	for _, k := range keys {
		if err := c.judgeService(ctx, k[0], k[1], detail.RepositoryName, detail.ImageDigest, j, byService[k]); err != nil {
			return err
		}
	}
	return nil
}

func findingKey(f FindingRef) string { return f.ID + "\x00" + f.Package }

func (c *Controller) judgeService(ctx context.Context, cluster, service, repository, digest string, j Judgement, tasks []string) error {
	return c.st.InTx(ctx, func(tx *sql.Tx) error {
		var doc string
		err := tx.QueryRowContext(ctx, `SELECT failing FROM service_compliance WHERE cluster = $1 AND service = $2 AND digest = $3`,
			cluster, service, digest).Scan(&doc)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		had := err == nil
		var before []FindingRef
		if had {
			if err := json.Unmarshal([]byte(doc), &before); err != nil {
				return err
			}
		}
		image := c.opts.Registry + "/" + repository + "@" + digest
		detail := ComplianceDetail{Cluster: cluster, Service: service, ImageDigest: digest, Image: image, Summary: j.Summary,
			Tasks: tasks, Policy: j.Policy, Action: "none", NewFindings: []FindingRef{}}
		if j.Passed {
			if !had {
				return nil
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM service_compliance WHERE cluster = $1 AND service = $2 AND digest = $3`, cluster, service, digest); err != nil {
				return err
			}
			detail.EventName = EventServiceCompliantAgain
			if err := c.serviceEvent(ctx, tx, cluster, service, "INFO", EventServiceCompliantAgain, "runs "+digest+", which the policy allows again."); err != nil {
				return err
			}
			return c.publish(ctx, tx, DetailTypeServiceComplianceChange, []string{serviceResource(cluster, service), image}, detail)
		}
		seen := map[string]bool{}
		for _, f := range before {
			seen[findingKey(f)] = true
		}
		for _, f := range j.Failing {
			if !seen[findingKey(f)] {
				detail.NewFindings = append(detail.NewFindings, f)
			}
		}
		if len(detail.NewFindings) == 0 {
			return nil
		}
		failing, err := json.Marshal(j.Failing)
		if err != nil {
			return err
		}
		now := c.opts.Now().UTC()
		var stopAt any
		if j.StopAfter > 0 {
			at := now.Add(j.StopAfter)
			stopAt = formatTime(at)
			detail.Action = "its tasks stop at " + at.Format(time.RFC3339) + " unless a new image is deployed"
			// The full reconcile would see it within a minute; this is
			// sooner (and a restarted server sees it at its first pass).
			time.AfterFunc(j.StopAfter, c.Trigger)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO service_compliance (cluster, service, digest, failing, summary, since, stop_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (cluster, service, digest) DO UPDATE SET failing = excluded.failing,
			summary = excluded.summary`, cluster, service, digest, string(failing), j.Summary, formatTime(now), stopAt); err != nil {
			return err
		}
		detail.EventName = EventServiceNoncompliant
		names := make([]string, 0, len(detail.NewFindings))
		for _, f := range detail.NewFindings {
			names = append(names, f.String())
		}
		slices.Sort(names)
		msg := fmt.Sprintf("runs %s, which now has findings its policy does not allow: %s (%s)", digest, strings.Join(names, "; "), detail.Action)
		if err := c.serviceEvent(ctx, tx, cluster, service, "WARN", EventServiceNoncompliant, msg); err != nil {
			return err
		}
		return c.publish(ctx, tx, DetailTypeServiceComplianceChange, []string{serviceResource(cluster, service), image}, detail)
	})
}

// noncompliantPastDeadline reports why digest may no longer run in the
// service: the policy's stop-after passed since re-evaluation found it
// noncompliant.
func (c *Controller) noncompliantPastDeadline(ctx context.Context, q querier, cluster, service, digest string) (string, error) {
	var summary, since string
	var stopAt sql.NullString
	err := q.QueryRowContext(ctx, `SELECT summary, since, stop_at FROM service_compliance WHERE cluster = $1 AND service = $2 AND digest = $3`,
		cluster, service, digest).Scan(&summary, &since, &stopAt)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && (!stopAt.Valid || c.opts.Now().Before(parseTime(stopAt.String)))) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("has been noncompliant since %s (%s) and its policy stops it after %s", parseTime(since).Format(time.RFC3339), summary,
		parseTime(stopAt.String).Sub(parseTime(since)).Round(time.Second)), nil
}
