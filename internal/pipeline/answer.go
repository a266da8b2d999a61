package pipeline

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"github.com/scangate/scangate/internal/events"
	"github.com/scangate/scangate/internal/policy"
	"github.com/scangate/scangate/internal/scan"
)

// What a person may answer to an approval request.
const (
	ActionApprove  = "approve"
	ActionReject   = "reject"
	ActionOverride = "override"
)

// Errors of a person's answer.
var (
	// ErrPolicyDecides refuses a person's approval where the policy
	// decides, or has not passed the image yet.
	ErrPolicyDecides = errors.New("the policy decides")
	// ErrTwoPerson refuses the answer of the token that started the
	// execution, in a pipeline with the two-person rule.
	ErrTwoPerson = errors.New("the two-person rule")
	// ErrNoOverride refuses an override of something other than a policy's
	// rejection of the latest image to reach approval.
	ErrNoOverride = errors.New("cannot override")
	// ErrBadAnswer is an answer that is not well formed.
	ErrBadAnswer = errors.New("bad answer")
)

// Answer is a person's answer to the approval an execution waits for (or,
// for an override, was rejected at): it presents the request's token, as
// CodePipeline's PutApprovalResult does, so that an answer meant for one
// request cannot decide another.
type Answer struct {
	Action  string // ActionApprove, ActionReject or ActionOverride
	Token   string // the request's token (ApprovalFor)
	By      string // who answers: a token's name
	Comment string // why; an override must say
	// Expires ends an override's acceptance (zero: it does not end).
	Expires time.Time
}

// ApprovalFor returns the approval of an execution with its token, for
// someone who may answer it: a person through the CLI or the console, or
// an external approver (a chat bot, a ticket system).
func (s *Service) ApprovalFor(ctx context.Context, executionID string) (*Approval, error) {
	a, err := s.approvalOf(ctx, s.st.Reader(), executionID)
	if err != nil {
		return nil, err
	}
	a.Token = s.token(a.ID)
	return a, nil
}

// Respond records a person's answer to the approval of execution
// executionID and returns the approval as it stands.
func (s *Service) Respond(ctx context.Context, executionID string, ans Answer) (*Approval, error) {
	if ans.By == "" {
		return nil, fmt.Errorf("%w: say who answers", ErrBadAnswer)
	}
	var id string
	err := s.st.InTx(ctx, func(tx *sql.Tx) error {
		a, err := s.approvalOf(ctx, tx, executionID)
		if err != nil {
			return err
		}
		id = a.ID
		if err := checkToken(ctx, tx, a.ID, ans.Token); err != nil {
			return err
		}
		ex, err := loadExecution(ctx, tx, executionID)
		if err != nil {
			return err
		}
		def, err := getDefinition(ctx, tx, ex.Pipeline, ex.Version)
		if err != nil {
			return err
		}
		// Rejecting one's own change lets nothing through: the rule is on
		// what lets an image go on.
		if def.Approval.TwoPerson && ans.Action != ActionReject && ex.StartedBy != "" && ex.StartedBy == ans.By {
			return fmt.Errorf("%w: %s started execution %s (commit %s) and may not let its image through; another approver must",
				ErrTwoPerson, ans.By, ex.ID, shortSHA(ex.Commit))
		}
		summary := "Rejected by " + ans.By
		switch ans.Action {
		case ActionReject:
		case ActionApprove:
			if a.Status != StatePending {
				return fmt.Errorf("approval %s: %w (%s)", a.ID, ErrDecided, a.Status)
			}
			switch {
			case a.Mode == ModePolicy:
				return fmt.Errorf("%w: pipeline %s's approvals are decided by its policy; a person may reject, or override a rejection (with a comment)",
					ErrPolicyDecides, ex.Pipeline)
			case a.Policy == nil:
				return fmt.Errorf("%w: the scan of %s has not finished; the findings are not known yet", ErrPolicyDecides, a.ImageDigest)
			case a.Mode == ModePolicyPerson && a.Policy.Result != VerdictPassed:
				return fmt.Errorf("%w: the policy has not passed the image: %s", ErrPolicyDecides, a.Policy.Summary)
			}
			summary = "Approved by " + ans.By
		case ActionOverride:
			return s.override(ctx, tx, a, ex, def, ans)
		default:
			return fmt.Errorf("%w: action %q: want approve, reject or override", ErrBadAnswer, ans.Action)
		}
		return s.decide(ctx, tx, a.ID, ans.Token, Decision{Approve: ans.Action == ActionApprove, By: ans.By, Comment: ans.Comment, Summary: summary})
	})
	if err != nil {
		return nil, err
	}
	return loadApproval(ctx, s.st.Reader(), id)
}

// override lets through an image the policy rejected: the approval is
// Approved, recorded as an override (who, when, why, which findings were
// accepted and until when), and the execution goes on from its approval
// stage, as CodePipeline's retry of a failed stage does.
func (s *Service) override(ctx context.Context, tx *sql.Tx, a *Approval, ex *Execution, def *Definition, ans Answer) error {
	if strings.TrimSpace(ans.Comment) == "" {
		return fmt.Errorf("%w: an override must say why (a comment)", ErrBadAnswer)
	}
	now := s.opts.Now()
	if !ans.Expires.IsZero() && !ans.Expires.After(now) {
		return fmt.Errorf("%w: the override's expiry %s is past", ErrBadAnswer, ans.Expires.Format(time.RFC3339))
	}
	if a.Status != StateRejected || a.DecidedBy != Evaluator || a.Policy == nil || a.Policy.Result != VerdictFailed {
		what := a.Status
		if a.Status == StateRejected && a.Policy != nil && a.Policy.Result == VerdictScanFailed {
			what = "rejected because the scan failed; there are no findings to accept"
		} else if a.Status == StateRejected {
			what = "rejected by " + a.DecidedBy + ", not by the policy"
		}
		return fmt.Errorf("%w: approval %s is %s; only a policy's rejection can be overridden", ErrNoOverride, a.ID, what)
	}
	if !now.Before(a.ExpiresAt) {
		return fmt.Errorf("%w: approval %s expired at %s", ErrNoOverride, a.ID, a.ExpiresAt.Format(time.RFC3339))
	}
	// Only the newest image to reach approval may go on: an older one
	// would deploy over it.
	var newer string
	err := tx.QueryRowContext(ctx, `SELECT e.id FROM approvals a JOIN executions e ON e.id = a.execution_id
		WHERE a.pipeline = $1 AND e.started_at > $2 LIMIT 1`, ex.Pipeline, formatTime(ex.StartedAt)).Scan(&newer)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	if newer != "" {
		return fmt.Errorf("%w: execution %s of a newer commit has reached approval since", ErrNoOverride, newer)
	}
	accepted, err := s.overLimit(ctx, tx, a, def)
	if err != nil {
		return err
	}
	acceptedDoc, err := json.Marshal(accepted)
	if err != nil {
		return err
	}
	var expires any
	if !ans.Expires.IsZero() {
		expires = formatTime(ans.Expires.UTC())
	}
	if _, err := tx.ExecContext(ctx, `UPDATE approvals SET status = $1, decided_by = $2, comment = $3, decided_at = $4, overridden = 1,
		override_expires = $5, accepted = $6, summary = $7 WHERE id = $8`,
		StateApproved, ans.By, ans.Comment, s.now(), expires, string(acceptedDoc), "Overridden by "+ans.By+": "+a.Summary, a.ID); err != nil {
		return err
	}
	// The execution goes on: the stages its rejection skipped wait again.
	if _, err := tx.ExecContext(ctx, `UPDATE executions SET status = $1, reason = '', ended_at = NULL WHERE id = $2`, StateInProgress, ex.ID); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE stages SET status = $1, message = '', started_at = NULL, ended_at = NULL
		WHERE execution_id = $2 AND status = $3`, StatePending, ex.ID, StateSkipped); err != nil {
		return err
	}
	ex.Status, ex.Reason = StateInProgress, ""
	message := fmt.Sprintf("Overridden by %s: %s (accepted: %s", ans.By, ans.Comment, strings.Join(accepted, ", "))
	if !ans.Expires.IsZero() {
		message += "; until " + ans.Expires.UTC().Format(time.RFC3339)
	}
	message += ")"
	if err := s.publishExecution(ctx, tx, ex, ExecutionResumed, message); err != nil {
		return err
	}
	detail := ApprovalOverriddenDetail{
		Pipeline: ex.Pipeline, ExecutionID: ex.ID, ApprovalID: a.ID, RepositoryName: a.Repository,
		ImageDigest: a.ImageDigest, Commit: ex.Commit, OverriddenBy: ans.By, Comment: ans.Comment,
		PolicySummary: a.Policy.Summary, Accepted: accepted,
	}
	if !ans.Expires.IsZero() {
		detail.Expires = ans.Expires.UTC().Format(time.RFC3339)
	}
	e, err := events.New(events.SourcePipeline, events.DetailTypeApprovalOverridden, []string{"pipeline/" + ex.Pipeline, ex.ImageURI}, detail)
	if err != nil {
		return err
	}
	if err := s.bus.Publish(ctx, tx, e); err != nil {
		return err
	}
	s.opts.Logger.Info("audit: approval overridden", "token", ans.By, "pipeline", ex.Pipeline, "execution", ex.ID,
		"digest", a.ImageDigest, "comment", ans.Comment, "accepted", strings.Join(accepted, ", "), "expires", detail.Expires)
	return s.approved(ctx, tx, a, ex, message)
}

// overLimit names the findings of a's image that count against the
// policy's thresholds: what an override accepts.
func (s *Service) overLimit(ctx context.Context, tx *sql.Tx, a *Approval, def *Definition) ([]string, error) {
	r, ok, err := s.report(ctx, tx, a.Repository, a.ImageDigest)
	if err != nil || !ok {
		return nil, err
	}
	pol, err := def.Policy()
	if err != nil {
		return nil, err
	}
	// What the policy suppresses (exceptions, VEX) is not accepted by the
	// override: it was let through already, and says why.
	policy.Evaluate(r, pol, s.opts.Now())
	failing := map[string]bool{}
	for sev, max := range pol.Thresholds {
		if r.Summary.Of(strings.ToUpper(sev)) > max {
			failing[strings.ToUpper(sev)] = true
		}
	}
	var out []string
	seen := map[string]bool{}
	for i := range r.Findings {
		f := &r.Findings[i]
		sev := scan.Bucket(f.Severity)
		if f.Suppressed != nil || !failing[sev] {
			continue
		}
		name := "unknown package"
		if f.Package >= 0 && f.Package < len(r.Packages) {
			name = r.Packages[f.Package].Name
		}
		item := fmt.Sprintf("%s in %s (%s)", f.ID, name, sev)
		if !seen[item] {
			seen[item] = true
			out = append(out, item)
		}
	}
	return out, nil
}

// promoteArgs moves the pipeline's promote tag to an approved image.
type promoteArgs struct {
	ApprovalID string `json:"approval_id"`
	Tag        string `json:"tag"`
}

func (promoteArgs) Kind() string { return "pipeline_promote" }

type promoteWorker struct {
	river.WorkerDefaults[promoteArgs]
	s *Service
}

// Work tags the approved image, unless a later approval of the pipeline
// has been promoted since: a retried job must not move the tag back.
func (w *promoteWorker) Work(ctx context.Context, job *river.Job[promoteArgs]) error {
	if w.s.opts.Promoter == nil {
		return fmt.Errorf("%w: this process cannot tag images", ErrRetry)
	}
	a, err := loadApproval(ctx, w.s.st.Reader(), job.Args.ApprovalID)
	if err != nil {
		return err
	}
	var latest string
	err = w.s.st.Reader().QueryRowContext(ctx, `SELECT id FROM approvals WHERE pipeline = $1 AND repository = $2 AND status = 'Approved'
		ORDER BY decided_at DESC LIMIT 1`, a.Pipeline, a.Repository).Scan(&latest)
	if err != nil {
		return err
	}
	if latest != a.ID {
		w.s.opts.Logger.Info("promotion skipped: a later approval was promoted", "approval", a.ID, "later", latest)
		return nil
	}
	if err := w.s.opts.Promoter.Tag(ctx, a.Repository, a.ImageDigest, job.Args.Tag); err != nil {
		return fmt.Errorf("promote %s@%s to %s: %w", a.Repository, a.ImageDigest, job.Args.Tag, err)
	}
	w.s.opts.Logger.Info("image promoted", "repository", a.Repository, "digest", a.ImageDigest, "tag", job.Args.Tag)
	return nil
}
