package pipeline

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riversqlite"

	"github.com/scangate/scangate/internal/events"
	"github.com/scangate/scangate/internal/policy"
	"github.com/scangate/scangate/internal/scan"
	"github.com/scangate/scangate/internal/scanner"
)

// Deployer deploys approved images to services (package deploy, wired at
// the composition root).
type Deployer interface {
	// Deploy asks, in tx, for a new deployment of the image; asked again
	// for the same execution it answers with the same deployment.
	Deploy(ctx context.Context, tx *sql.Tx, r DeployRequest) (DeployResult, error)
	// Trigger tells the deployer that a request was committed.
	Trigger()
}

// DeployRequest is a deploy stage's request.
type DeployRequest struct {
	ExecutionID, Cluster, Service, Container, Image, By string
}

// DeployResult names the deployment a request made.
type DeployResult struct {
	DeploymentID   string
	TaskDefinition string // family:revision
}

// Deployment outcomes the deployer reports in its Deployment State Change
// events (ECS's event names).
const (
	DeploymentCompleted  = "SERVICE_DEPLOYMENT_COMPLETED"
	DeploymentFailed     = "SERVICE_DEPLOYMENT_FAILED"
	DeploymentSuperseded = "SERVICE_DEPLOYMENT_SUPERSEDED"
)

// DeploymentPattern routes the deployer's outcomes to the deploy stages.
const DeploymentPattern = `{"source": ["scangate.deploy"], "detail-type": ["Deployment State Change"],
	"detail": {"eventName": ["SERVICE_DEPLOYMENT_COMPLETED", "SERVICE_DEPLOYMENT_FAILED", "SERVICE_DEPLOYMENT_SUPERSEDED"], "executionId": [{"exists": true}]}}`

// DeployHandlerName is the deploy stages' built-in handler.
const DeployHandlerName = "pipeline-deploy-stage"

type deployArgs struct {
	ExecutionID string `json:"execution_id"`
}

func (deployArgs) Kind() string { return "pipeline_deploy" }

func (deployArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: 10, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

type deployWorker struct {
	river.WorkerDefaults[deployArgs]
	s *Service
}

func (w *deployWorker) Work(ctx context.Context, job *river.Job[deployArgs]) error {
	return w.s.deploy(ctx, job)
}

type deployTimeoutArgs struct {
	ExecutionID string `json:"execution_id"`
}

func (deployTimeoutArgs) Kind() string { return "pipeline_deploy_timeout" }

type deployTimeoutWorker struct {
	river.WorkerDefaults[deployTimeoutArgs]
	s *Service
}

func (w *deployTimeoutWorker) Work(ctx context.Context, job *river.Job[deployTimeoutArgs]) error {
	return w.s.endDeploy(ctx, job.Args.ExecutionID, StateFailed, "", func(d *Definition) string {
		return fmt.Sprintf("the deployment did not complete within %s (deploy.timeout)", time.Duration(d.Deploy.Timeout))
	})
}

// startDeploy enters the deploy stage of an approved execution, in tx.
func (s *Service) startDeploy(ctx context.Context, tx *sql.Tx, ex *Execution, d *Definition) error {
	if err := s.setStage(ctx, tx, ex, StageDeploy, StateInProgress, fmt.Sprintf("deploying %s to service %s in cluster %s",
		ex.ImageURI, d.Deploy.Service, d.Deploy.Cluster)); err != nil {
		return err
	}
	if _, err := s.jobs.InsertTx(ctx, tx, deployArgs{ExecutionID: ex.ID}, nil); err != nil {
		return err
	}
	timeout := time.Duration(d.Deploy.Timeout)
	if timeout == 0 {
		timeout = DefaultDeployTimeout
	}
	_, err := s.jobs.InsertTx(ctx, tx, deployTimeoutArgs{ExecutionID: ex.ID}, &river.InsertOpts{ScheduledAt: s.opts.Now().Add(timeout)})
	return err
}

// deploying reports whether ex is in progress at its Deploy stage.
func deploying(ctx context.Context, q querier, id string) (bool, error) {
	var status string
	err := q.QueryRowContext(ctx, `SELECT s.status FROM stages s JOIN executions e ON e.id = s.execution_id
		WHERE s.execution_id = $1 AND s.name = $2 AND e.status = $3`, id, StageDeploy, StateInProgress).Scan(&status)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return status == StateInProgress, err
}

// deploy re-checks the approved image against today's database, then asks
// the deployer for a deployment, in the transaction that completes the
// job: a retried job never deploys twice.
func (s *Service) deploy(ctx context.Context, job *river.Job[deployArgs]) error {
	if s.opts.Deployer == nil {
		return errors.New("this process cannot deploy")
	}
	var queued bool
	err := s.st.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := river.JobCompleteTx[*riversqlite.Driver](ctx, tx, job); err != nil {
			return err
		}
		ok, err := deploying(ctx, tx, job.Args.ExecutionID)
		if err != nil || !ok {
			return err
		}
		ex, err := loadExecution(ctx, tx, job.Args.ExecutionID)
		if err != nil {
			return err
		}
		d, err := getDefinition(ctx, tx, ex.Pipeline, ex.Version)
		if err != nil {
			return err
		}
		a, err := s.approvalOf(ctx, tx, ex.ID)
		if err != nil {
			return err
		}
		block, warning, err := s.recheck(ctx, tx, a, d)
		if err != nil {
			return err
		}
		if block != "" {
			return s.endExecution(ctx, tx, ex, StateFailed, StateFailed, block)
		}
		// A refused request leaves nothing behind (a revision registered
		// before the refusal), but the stage's failure is recorded.
		if _, err := tx.ExecContext(ctx, `SAVEPOINT deploy_request`); err != nil {
			return err
		}
		res, err := s.opts.Deployer.Deploy(ctx, tx, DeployRequest{ExecutionID: ex.ID, Cluster: d.Deploy.Cluster, Service: d.Deploy.Service,
			Container: d.Deploy.Container, Image: ex.ImageURI, By: "pipeline " + ex.Pipeline + " execution " + ex.ID})
		if err != nil {
			if _, rerr := tx.ExecContext(ctx, `ROLLBACK TO SAVEPOINT deploy_request`); rerr != nil {
				return errors.Join(err, rerr)
			}
			return s.endExecution(ctx, tx, ex, StateFailed, StateFailed, "deploy failed: "+err.Error())
		}
		if _, err := tx.ExecContext(ctx, `RELEASE SAVEPOINT deploy_request`); err != nil {
			return err
		}
		msg := fmt.Sprintf("deploying %s as %s to service %s in cluster %s (deployment %s)", ex.ImageURI, res.TaskDefinition,
			d.Deploy.Service, d.Deploy.Cluster, res.DeploymentID)
		if warning != "" {
			msg += "; " + warning
		}
		queued = true
		return s.setStage(ctx, tx, ex, StageDeploy, StateInProgress, msg)
	})
	if err == nil && queued {
		s.opts.Deployer.Trigger()
	}
	return err
}

// recheck weighs the approved image by today's database: findings over the
// policy that the approval did not see block the deploy (or warn, as the
// policy says).
func (s *Service) recheck(ctx context.Context, tx *sql.Tx, a *Approval, d *Definition) (block, warning string, err error) {
	r, ok, err := s.report(ctx, tx, a.Repository, a.ImageDigest)
	if err != nil || !ok {
		return "", "", err
	}
	pol, err := d.Policy()
	if err != nil {
		return "", "", err
	}
	dec := policy.Evaluate(r, pol, s.opts.Now())
	if dec.Passed {
		return "", "", nil
	}
	seen, err := approvalFindings(ctx, tx, a.ID)
	if err != nil {
		return "", "", err
	}
	var news []string
	for _, f := range failingFindings(r, &dec) {
		if !seen[findingID(r, f)] {
			news = append(news, findingText(r, f))
		}
	}
	if len(news) == 0 {
		return "", "", nil // the approval saw them all (a person accepted them)
	}
	slices.Sort(news)
	text := "new findings since the approval: " + strings.Join(news, "; ")
	grace := time.Duration(d.Approval.Policy.Grace)
	inGrace := a.DecidedAt != nil && grace > 0 && s.opts.Now().Sub(*a.DecidedAt) < grace
	if d.Approval.Policy.OnNewFindings == OnNewFindingsWarn || inGrace {
		why := "on-new-findings: warn"
		if inGrace {
			why = "within the approval's grace of " + grace.String()
		}
		return "", "warning: " + text + " (" + why + ")", nil
	}
	return "deploy blocked: " + text + " (" + dec.Summary() + ")", "", nil
}

// report is the image's current scan report; ok is false without one.
func (s *Service) report(ctx context.Context, q querier, repository, digest string) (*scan.Report, bool, error) {
	r, ok, err := scanner.ReadResult(ctx, q, repository, digest)
	if err != nil || !ok || r.Outcome != scanner.Complete {
		return nil, false, err
	}
	return r.Report, true, nil
}

// failingFindings are the findings that count against the policy's
// violated thresholds.
func failingFindings(r *scan.Report, dec *policy.Decision) []*scan.Finding {
	over := map[string]bool{}
	for _, c := range dec.Violations() {
		over[c.Severity] = true
	}
	var out []*scan.Finding
	for i := range r.Findings {
		f := &r.Findings[i]
		if f.Suppressed == nil && over[f.Severity] {
			out = append(out, f)
		}
	}
	return out
}

func findingID(r *scan.Report, f *scan.Finding) string {
	if f.Package >= 0 && f.Package < len(r.Packages) {
		return f.ID + " " + r.Packages[f.Package].Name
	}
	return f.ID
}

func findingText(r *scan.Report, f *scan.Finding) string {
	s := f.Severity + " " + f.ID
	if f.Package >= 0 && f.Package < len(r.Packages) {
		p := r.Packages[f.Package]
		s += " in " + p.Name + " " + p.Version
	}
	if len(f.Fixed) > 0 {
		s += " (fixed in " + f.Fixed[0] + ")"
	}
	return s
}

// reportFindings are the keys of every finding of a report, kept with a
// decision.
func reportFindings(r *scan.Report) []string {
	out := make([]string, 0, len(r.Findings))
	for i := range r.Findings {
		out = append(out, findingID(r, &r.Findings[i]))
	}
	return out
}

func approvalFindings(ctx context.Context, q querier, id string) (map[string]bool, error) {
	var doc string
	if err := q.QueryRowContext(ctx, `SELECT findings FROM approvals WHERE id = $1`, id).Scan(&doc); err != nil {
		return nil, err
	}
	var keys []string
	if err := json.Unmarshal([]byte(doc), &keys); err != nil {
		return nil, err
	}
	seen := make(map[string]bool, len(keys))
	for _, k := range keys {
		seen[k] = true
	}
	return seen, nil
}

// HandleDeployment is the deploy stages' built-in handler: the outcome of
// an execution's deployment ends its deploy stage.
func (s *Service) HandleDeployment(ctx context.Context, e events.Envelope) error {
	var detail struct {
		ExecutionID    string `json:"executionId"`
		EventName      string `json:"eventName"`
		Reason         string `json:"reason"`
		TaskDefinition string `json:"taskDefinition"`
		Service        string `json:"serviceName"`
		Cluster        string `json:"clusterName"`
		RolledBackTo   string `json:"rolledBackTo"`
	}
	if err := json.Unmarshal(e.Detail, &detail); err != nil {
		return fmt.Errorf("deployment event %s: %w", e.ID, err)
	}
	if detail.ExecutionID == "" {
		return nil
	}
	where := fmt.Sprintf("%s to service %s in cluster %s", detail.TaskDefinition, detail.Service, detail.Cluster)
	switch detail.EventName {
	case DeploymentCompleted:
		return s.endDeploy(ctx, detail.ExecutionID, StateSucceeded, "deployed "+where, nil)
	case DeploymentFailed:
		msg := "the deployment of " + where + " failed: " + strings.TrimPrefix(detail.Reason, "deployment failed: ")
		if detail.RolledBackTo != "" && !strings.Contains(msg, "rolling back") {
			msg += "; rolled back to " + detail.RolledBackTo
		}
		return s.endDeploy(ctx, detail.ExecutionID, StateFailed, msg, nil)
	case DeploymentSuperseded:
		return s.endDeploy(ctx, detail.ExecutionID, StateSuperseded, "the deployment of "+where+" was "+detail.Reason, nil)
	}
	return nil
}

// endDeploy ends an execution at its deploy stage, if it is still there.
func (s *Service) endDeploy(ctx context.Context, id, state, message string, msgOf func(*Definition) string) error {
	return s.st.InTx(ctx, func(tx *sql.Tx) error {
		ok, err := deploying(ctx, tx, id)
		if err != nil || !ok {
			return err
		}
		ex, err := loadExecution(ctx, tx, id)
		if err != nil {
			return err
		}
		if msgOf != nil {
			d, err := getDefinition(ctx, tx, ex.Pipeline, ex.Version)
			if err != nil {
				return err
			}
			message = msgOf(d)
		}
		return s.endExecution(ctx, tx, ex, state, state, message)
	})
}

// Verdict is the gate's latest word on an image.
type Verdict struct {
	Scanned   bool
	ScanError string
	// Decision is Approved, Rejected, or "" when no approval decided.
	Decision  string
	Summary   string
	DecidedBy string
	DecidedAt time.Time
}

// Verdict is the latest decision of an approval on repository@digest.
func (s *Service) Verdict(ctx context.Context, repository, digest string) (Verdict, error) {
	var v Verdict
	q := s.st.Reader()
	res, scanned, err := scanner.ReadResult(ctx, q, repository, digest)
	if err != nil {
		return v, err
	}
	v.Scanned = scanned
	if scanned && res.Outcome != scanner.Complete {
		v.ScanError = res.Error
	}
	var decided, overrideExpires sql.NullString
	err = q.QueryRowContext(ctx, `SELECT status, summary, decided_by, decided_at, override_expires FROM approvals WHERE repository = $1 AND image_digest = $2
		AND status IN ('Approved', 'Rejected') ORDER BY decided_at DESC LIMIT 1`, repository, digest).Scan(&v.Decision, &v.Summary, &v.DecidedBy, &decided, &overrideExpires)
	if errors.Is(err, sql.ErrNoRows) {
		return v, nil
	}
	if err != nil {
		return v, err
	}
	if t := parseTime(decided); t != nil {
		v.DecidedAt = *t
	}
	// An override lets a rejected image through until it expires; after
	// that, the policy's rejection stands again.
	if t := parseTime(overrideExpires); t != nil && !s.opts.Now().Before(*t) {
		v.Decision = StateRejected
		v.Summary = fmt.Sprintf("the override by %s expired on %s; the policy's rejection stands", v.DecidedBy, t.UTC().Format(time.RFC3339))
	}
	return v, nil
}

// Judgement is an approved image weighed by today's database under the
// policy of the pipeline that approved it.
type Judgement struct {
	Passed    bool
	Summary   string
	Failing   []FailingFinding
	StopAfter time.Duration
	Policy    string
}

// FailingFinding is a finding over a policy's thresholds.
type FailingFinding struct {
	ID, Package, Version, Severity, Fixed string
}

// Judge weighs repository@digest by the policy of the latest approval
// that approved it; ok is false when none did or it has no scan.
func (s *Service) Judge(ctx context.Context, repository, digest string) (Judgement, bool, error) {
	q := s.st.Reader()
	var execID string
	err := q.QueryRowContext(ctx, `SELECT execution_id FROM approvals WHERE repository = $1 AND image_digest = $2 AND status = 'Approved'
		ORDER BY decided_at DESC LIMIT 1`, repository, digest).Scan(&execID)
	if errors.Is(err, sql.ErrNoRows) {
		return Judgement{}, false, nil
	}
	if err != nil {
		return Judgement{}, false, err
	}
	ex, err := loadExecution(ctx, q, execID)
	if err != nil {
		return Judgement{}, false, err
	}
	d, err := getDefinition(ctx, q, ex.Pipeline, ex.Version)
	if err != nil {
		return Judgement{}, false, err
	}
	r, ok, err := s.report(ctx, q, repository, digest)
	if err != nil || !ok {
		return Judgement{}, false, err
	}
	pol, err := d.Policy()
	if err != nil {
		return Judgement{}, false, err
	}
	dec := policy.Evaluate(r, pol, s.opts.Now())
	j := Judgement{Passed: dec.Passed, Summary: dec.Summary(), Policy: fmt.Sprintf("pipeline %s version %d", d.Name, d.Version)}
	j.StopAfter, _ = d.Approval.Policy.StopAfter()
	for _, f := range failingFindings(r, &dec) {
		ff := FailingFinding{ID: f.ID, Severity: f.Severity}
		if f.Package >= 0 && f.Package < len(r.Packages) {
			ff.Package, ff.Version = r.Packages[f.Package].Name, r.Packages[f.Package].Version
		}
		if len(f.Fixed) > 0 {
			ff.Fixed = f.Fixed[0]
		}
		j.Failing = append(j.Failing, ff)
	}
	return j, true, nil
}
