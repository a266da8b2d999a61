package pipeline

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/riverqueue/river"

	"github.com/scangate/scangate/internal/events"
	"github.com/scangate/scangate/internal/policy"
	"github.com/scangate/scangate/internal/scanner"
)

// Approval is an approval stage's request and its answer.
type Approval struct {
	ID          string     `json:"id"`
	ExecutionID string     `json:"executionId"`
	Pipeline    string     `json:"pipeline"`
	Stage       string     `json:"stage"`
	Action      string     `json:"action"`
	Repository  string     `json:"repository"`
	ImageDigest string     `json:"imageDigest"`
	Status      string     `json:"status"` // Pending, Approved, Rejected, Expired, Superseded, Stopped
	Mode        string     `json:"mode"`   // who decides: ModePolicy, ModePolicyPerson, ModePerson
	Summary     string     `json:"summary,omitempty"`
	Reasons     []string   `json:"reasons,omitempty"`
	DecidedBy   string     `json:"decidedBy,omitempty"`
	Comment     string     `json:"comment,omitempty"`
	CreatedAt   time.Time  `json:"createdAt"`
	ExpiresAt   time.Time  `json:"expiresAt"`
	DecidedAt   *time.Time `json:"decidedAt,omitempty"`
	// Policy is the evaluator's verdict on the image's scan, kept beside
	// a person's decision (and their override of it).
	Policy *PolicyVerdict `json:"policy,omitempty"`
	// Override is set when an approver let through an image the policy
	// rejected: DecidedBy and Comment say who and why.
	Override *Override `json:"override,omitempty"`
	// Token answers this request (Answer); it is shown only to those who
	// may decide (ApprovalFor), never stored, logged or published.
	Token string `json:"token,omitempty"`
}

// PolicyVerdict is the policy evaluator's view of an approval's image.
type PolicyVerdict struct {
	Result  string   `json:"result"` // VerdictPassed, VerdictFailed, VerdictScanFailed
	Summary string   `json:"summary"`
	Reasons []string `json:"reasons,omitempty"`
}

// Results of a PolicyVerdict.
const (
	VerdictPassed     = "Passed"
	VerdictFailed     = "Failed"
	VerdictScanFailed = "ScanFailed"
)

// Override is what an approver accepted when overriding a rejection.
type Override struct {
	// Accepted names the findings over the thresholds that were let
	// through: "CVE-2023-45853 in zlib1g (CRITICAL)".
	Accepted []string `json:"accepted"`
	// Expires ends the acceptance: after it, the image is refused again
	// wherever it would run.
	Expires *time.Time `json:"expires,omitempty"`
}

// The approval action's name, and who the evaluator is in decisions.
const (
	ActionName = "VulnerabilityGate"
	Evaluator  = "policy-evaluator"
)

// Errors of approvals.
var (
	ErrNoApproval = errors.New("no approval request")
	ErrDecided    = errors.New("the approval request is not pending")
	ErrBadToken   = errors.New("the token does not answer this approval request")
)

// KeyFile is the approval key's name in the data folder.
const KeyFile = "approval.key"

// LoadKey returns the key that derives approval tokens, making it on first
// use (readable by the owner only).
func LoadKey(dataDir string) ([]byte, error) {
	path := filepath.Join(dataDir, KeyFile)
	b, err := os.ReadFile(path)
	if err == nil && len(b) == 32 {
		return b, nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("approval key: %w", err)
	}
	if err == nil {
		return nil, fmt.Errorf("approval key %s: %d bytes, want 32", path, len(b))
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if errors.Is(err, os.ErrExist) { // made by another process just now
		return LoadKey(dataDir)
	}
	if err != nil {
		return nil, fmt.Errorf("approval key: %w", err)
	}
	_, err = f.Write(key)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("approval key: %w", err)
	}
	return key, nil
}

// token is the approval request's token: 256 bits no one can guess
// without the key.
func (s *Service) token(approvalID string) string {
	m := hmac.New(sha256.New, s.opts.Key)
	m.Write([]byte("approval:" + approvalID))
	return hex.EncodeToString(m.Sum(nil))
}

func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

const approvalColumns = `id, execution_id, pipeline, stage, action, repository, image_digest, status, mode, summary, reasons, decided_by, comment,
	created_at, expires_at, decided_at, verdict, verdict_summary, verdict_reasons, overridden, override_expires, accepted`

func scanApproval(r rowScanner) (*Approval, error) {
	var a Approval
	var reasons, created, expires, verdict, verdictSummary, verdictReasons, accepted string
	var decided, overrideExpires sql.NullString
	var overridden bool
	if err := r.Scan(&a.ID, &a.ExecutionID, &a.Pipeline, &a.Stage, &a.Action, &a.Repository, &a.ImageDigest, &a.Status, &a.Mode,
		&a.Summary, &reasons, &a.DecidedBy, &a.Comment, &created, &expires, &decided,
		&verdict, &verdictSummary, &verdictReasons, &overridden, &overrideExpires, &accepted); err != nil {
		return nil, err
	}
	_ = json.Unmarshal([]byte(reasons), &a.Reasons)
	a.CreatedAt, _ = time.Parse(time.RFC3339Nano, created)
	a.ExpiresAt, _ = time.Parse(time.RFC3339Nano, expires)
	a.DecidedAt = parseTime(decided)
	if verdict != "" {
		a.Policy = &PolicyVerdict{Result: verdict, Summary: verdictSummary}
		_ = json.Unmarshal([]byte(verdictReasons), &a.Policy.Reasons)
	}
	if overridden {
		a.Override = &Override{Expires: parseTime(overrideExpires)}
		_ = json.Unmarshal([]byte(accepted), &a.Override.Accepted)
	}
	return &a, nil
}

func (s *Service) approvalOf(ctx context.Context, q querier, executionID string) (*Approval, error) {
	a, err := scanApproval(q.QueryRowContext(ctx, `SELECT `+approvalColumns+` FROM approvals WHERE execution_id = $1 ORDER BY created_at DESC LIMIT 1`, executionID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("execution %s: %w", executionID, ErrNoApproval)
	}
	return a, err
}

func loadApproval(ctx context.Context, q querier, id string) (*Approval, error) {
	a, err := scanApproval(q.QueryRowContext(ctx, `SELECT `+approvalColumns+` FROM approvals WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("approval %s: %w", id, ErrNoApproval)
	}
	return a, err
}

// requestApproval enters the approval stage for a built image: an older
// execution of the pipeline still waiting for approval is superseded (and
// ex is, if a newer execution has reached the stage before it), the
// request is made, its evaluation and its expiry are queued, and
// Approval Requested is published, all in tx.
func (s *Service) requestApproval(ctx context.Context, tx *sql.Tx, ex *Execution, d *Definition, repository, digest string) error {
	// Builds run side by side: a newer execution whose build ended first
	// may be at the approval stage already. The older one must not wait
	// there beside it, to be approved after it: it is superseded.
	var newer, newerCommit string
	err := tx.QueryRowContext(ctx, `SELECT e.id, e.commit_sha FROM approvals a JOIN executions e ON e.id = a.execution_id
		WHERE a.pipeline = $1 AND e.started_at > $2 ORDER BY e.started_at DESC LIMIT 1`, ex.Pipeline, formatTime(ex.StartedAt)).
		Scan(&newer, &newerCommit)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	if newer != "" {
		msg := "superseded by execution " + newer + " (" + shortSHA(newerCommit) + "), which reached the approval stage first"
		if err := s.setStage(ctx, tx, ex, StageApproval, StateSuperseded, msg); err != nil {
			return err
		}
		return s.endExecution(ctx, tx, ex, StateSuperseded, StateSuperseded, msg)
	}
	if err := s.supersede(ctx, tx, ex); err != nil {
		return err
	}
	now := s.opts.Now().UTC()
	a := &Approval{ID: newID(), ExecutionID: ex.ID, Pipeline: ex.Pipeline, Stage: StageApproval, Action: ActionName, Mode: d.Approval.Mode,
		Repository: repository, ImageDigest: digest, Status: StatePending, CreatedAt: now, ExpiresAt: now.Add(time.Duration(d.Approval.Timeout))}
	if _, err := tx.ExecContext(ctx, `INSERT INTO approvals (id, execution_id, pipeline, stage, action, token_hash, repository, image_digest, status, mode, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`, a.ID, a.ExecutionID, a.Pipeline, a.Stage, a.Action, hashToken(s.token(a.ID)),
		a.Repository, a.ImageDigest, a.Status, a.Mode, formatTime(now), formatTime(a.ExpiresAt)); err != nil {
		return fmt.Errorf("approval request of %s: %w", ex.ID, err)
	}
	if err := s.setStage(ctx, tx, ex, StageApproval, StateInProgress, "waiting for the scan of "+digest); err != nil {
		return err
	}
	// The scan may be done already; if not, its Scan event decides.
	if _, err := s.jobs.InsertTx(ctx, tx, evaluateArgs{ApprovalID: a.ID}, nil); err != nil {
		return err
	}
	if _, err := s.jobs.InsertTx(ctx, tx, expireArgs{ApprovalID: a.ID}, &river.InsertOpts{ScheduledAt: a.ExpiresAt}); err != nil {
		return err
	}
	e, err := events.New(events.SourcePipeline, events.DetailTypeApprovalRequested, []string{"pipeline/" + ex.Pipeline, ex.ImageURI}, ApprovalRequestedDetail{
		Pipeline: ex.Pipeline, ExecutionID: ex.ID, Stage: a.Stage, Action: a.Action, ApprovalID: a.ID,
		RepositoryName: repository, ImageDigest: digest, ImageURI: ex.ImageURI, Commit: ex.Commit,
		Expires: a.ExpiresAt.Format(time.RFC3339), Notify: d.Approval.Notify,
		Mode: a.Mode, AnswerWith: "scangate approval get " + ex.ID + "; then approve, reject or override it with --comment",
	})
	if err != nil {
		return err
	}
	return s.bus.Publish(ctx, tx, e)
}

// supersede ends the older executions of ex's pipeline that wait at the
// approval stage: the newer commit replaces them, as in CodePipeline.
func (s *Service) supersede(ctx context.Context, tx *sql.Tx, ex *Execution) error {
	rows, err := tx.QueryContext(ctx, `SELECT a.id, a.execution_id FROM approvals a JOIN executions e ON e.id = a.execution_id
		WHERE a.pipeline = $1 AND a.status = 'Pending' AND e.started_at < $2`, ex.Pipeline, formatTime(ex.StartedAt))
	if err != nil {
		return err
	}
	type old struct{ approval, execution string }
	var olds []old
	for rows.Next() {
		var o old
		if err := rows.Scan(&o.approval, &o.execution); err != nil {
			rows.Close()
			return err
		}
		olds = append(olds, o)
	}
	rows.Close()
	for _, o := range olds {
		if _, err := tx.ExecContext(ctx, `UPDATE approvals SET status = $1, decided_at = $2, summary = $3 WHERE id = $4`,
			StateSuperseded, s.now(), "superseded by execution "+ex.ID, o.approval); err != nil {
			return err
		}
		older, err := loadExecution(ctx, tx, o.execution)
		if err != nil {
			return err
		}
		if err := s.endExecution(ctx, tx, older, StateSuperseded, StateSuperseded, "superseded by execution "+ex.ID+" ("+shortSHA(ex.Commit)+")"); err != nil {
			return err
		}
	}
	return nil
}

func shortSHA(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}

// Decision is an answer to an approval request.
type Decision struct {
	Approve bool
	By      string
	Comment string
	Summary string
	Reasons []string
}

// Decide answers approval request id, whose token must be given. Only a
// pending request can be answered, once: the answer and the state it
// checks are one transaction, so the evaluator and a person, or two
// evaluations, cannot both decide.
func (s *Service) Decide(ctx context.Context, id, token string, d Decision) error {
	return s.st.InTx(ctx, func(tx *sql.Tx) error { return s.decide(ctx, tx, id, token, d) })
}

// checkToken reports whether token answers approval id.
func checkToken(ctx context.Context, tx *sql.Tx, id, token string) error {
	var hash string
	if err := tx.QueryRowContext(ctx, `SELECT token_hash FROM approvals WHERE id = $1`, id).Scan(&hash); err != nil {
		return err
	}
	if !hmac.Equal([]byte(hash), []byte(hashToken(token))) {
		return fmt.Errorf("approval %s: %w", id, ErrBadToken)
	}
	return nil
}

func (s *Service) decide(ctx context.Context, tx *sql.Tx, id, token string, d Decision) error {
	a, err := loadApproval(ctx, tx, id)
	if err != nil {
		return err
	}
	if err := checkToken(ctx, tx, id, token); err != nil {
		return err
	}
	if a.Status != StatePending {
		return fmt.Errorf("approval %s: %w (%s)", id, ErrDecided, a.Status)
	}
	status := StateRejected
	if d.Approve {
		status = StateApproved
	}
	reasons, err := json.Marshal(d.Reasons)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE approvals SET status = $1, summary = $2, reasons = $3, decided_by = $4, comment = $5, decided_at = $6 WHERE id = $7`,
		status, d.Summary, string(reasons), d.By, d.Comment, s.now(), id); err != nil {
		return err
	}
	ex, err := loadExecution(ctx, tx, a.ExecutionID)
	if err != nil {
		return err
	}
	message := d.Summary
	if d.By != Evaluator {
		message = fmt.Sprintf("%s by %s", status, d.By)
		if d.Comment != "" {
			message += ": " + d.Comment
		}
	}
	if !d.Approve {
		return s.endExecution(ctx, tx, ex, StateFailed, StateFailed, message)
	}
	return s.approved(ctx, tx, a, ex, message)
}

// approved goes on from an approval: the findings it saw are kept, the
// image is promoted, and the deploy stage starts or the execution ends.
func (s *Service) approved(ctx context.Context, tx *sql.Tx, a *Approval, ex *Execution, message string) error {
	// The findings the approval saw: the deploy stage's re-check tells
	// new ones from them.
	if r, ok, err := s.report(ctx, tx, a.Repository, a.ImageDigest); err != nil {
		return err
	} else if ok {
		doc, err := json.Marshal(reportFindings(r))
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE approvals SET findings = $1 WHERE id = $2`, string(doc), a.ID); err != nil {
			return err
		}
	}
	if err := s.setStage(ctx, tx, ex, StageApproval, StateSucceeded, message); err != nil {
		return err
	}
	def, err := getDefinition(ctx, tx, ex.Pipeline, ex.Version)
	if err != nil {
		return err
	}
	if _, err := s.jobs.InsertTx(ctx, tx, promoteArgs{ApprovalID: a.ID, Tag: def.Approval.Promote}, nil); err != nil {
		return err
	}
	if def.Deploy != nil {
		return s.startDeploy(ctx, tx, ex, def)
	}
	// No deploy stage: the execution ends with its artifact ready.
	return s.endExecution(ctx, tx, ex, StateSucceeded, StateSucceeded, message)
}

// Evaluate weighs approval request id by the pipeline's policy if its
// image's scan has finished, and does nothing if it has not (the Scan
// event will) or if the request was answered already. The verdict is kept
// with the request; whether it decides depends on the approval's mode:
// in policy mode it does, in policy+person mode only a rejection does,
// and in person mode only a scan that failed does (a person cannot weigh
// findings no scan found).
func (s *Service) Evaluate(ctx context.Context, id string) error {
	return s.st.InTx(ctx, func(tx *sql.Tx) error {
		a, err := loadApproval(ctx, tx, id)
		if err != nil || a.Status != StatePending {
			return err
		}
		d, v, ok, err := s.evaluate(ctx, tx, a)
		if err != nil || !ok {
			return err
		}
		if a.Policy != nil && a.Policy.Result == v.Result && a.Policy.Summary == v.Summary {
			return nil // weighed already: a Scan event and the request's own evaluation both come
		}
		reasons, err := json.Marshal(v.Reasons)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE approvals SET verdict = $1, verdict_summary = $2, verdict_reasons = $3 WHERE id = $4`,
			v.Result, v.Summary, string(reasons), id); err != nil {
			return err
		}
		switch {
		case a.Mode == ModePolicy, v.Result == VerdictScanFailed, a.Mode == ModePolicyPerson && !d.Approve:
			return s.decide(ctx, tx, a.ID, s.token(a.ID), d)
		}
		ex, err := loadExecution(ctx, tx, a.ExecutionID)
		if err != nil {
			return err
		}
		msg := "the policy passed the image (" + v.Summary + "); waiting for a person with the approver role"
		if a.Mode == ModePerson {
			msg = "waiting for a person with the approver role: " + v.Summary
		}
		return s.setStage(ctx, tx, ex, StageApproval, StateInProgress, msg)
	})
}

// evaluate applies the pipeline's policy to the scan of the approval's
// image; ok is false while there is no scan. The verdict names every
// suppression the policy relied on.
func (s *Service) evaluate(ctx context.Context, tx *sql.Tx, a *Approval) (Decision, PolicyVerdict, bool, error) {
	res, scanned, err := scanner.ReadResult(ctx, tx, a.Repository, a.ImageDigest)
	if err != nil || !scanned {
		return Decision{}, PolicyVerdict{}, false, err
	}
	d := Decision{By: Evaluator}
	if res.Outcome != scanner.Complete {
		d.Summary = "Rejected: the scan failed: " + res.Error
		d.Reasons = []string{"the scan of " + a.ImageDigest + " failed: " + res.Error}
		return d, PolicyVerdict{Result: VerdictScanFailed, Summary: d.Summary, Reasons: d.Reasons}, true, nil
	}
	r := res.Report
	ex, err := loadExecution(ctx, tx, a.ExecutionID)
	if err != nil {
		return Decision{}, PolicyVerdict{}, false, err
	}
	def, err := getDefinition(ctx, tx, ex.Pipeline, ex.Version)
	if err != nil {
		return Decision{}, PolicyVerdict{}, false, err
	}
	pol, err := def.Policy()
	if err != nil {
		return Decision{}, PolicyVerdict{}, false, err
	}
	dec := policy.Evaluate(r, pol, s.opts.Now())
	d.Approve, d.Summary = dec.Passed, dec.Summary()
	if len(pol.Thresholds) == 0 {
		// A person decides (mode person): show them what was found.
		d.Summary = fmt.Sprintf("findings: %s (%d fixable)", policy.CountsText(r.Summary), r.Fixable.Total)
	}
	if n := len(dec.Suppressions); n > 0 {
		d.Summary += fmt.Sprintf(" (relied on %d suppression%s)", n, map[bool]string{true: "", false: "s"}[n == 1])
	}
	d.Reasons = append(slices.Clone(dec.Reasons), dec.Suppressions...)
	v := PolicyVerdict{Result: VerdictFailed, Summary: d.Summary, Reasons: d.Reasons}
	if d.Approve {
		v.Result = VerdictPassed
	}
	return d, v, true, nil
}

// HandleScan is the evaluator's built-in handler: a Scan event decides
// the pending approvals of its image.
func (s *Service) HandleScan(ctx context.Context, e events.Envelope) error {
	var detail scanner.ScanDetail
	if err := json.Unmarshal(e.Detail, &detail); err != nil {
		return fmt.Errorf("scan event %s: %w", e.ID, err)
	}
	rows, err := s.st.Reader().QueryContext(ctx, `SELECT id FROM approvals WHERE image_digest = $1 AND repository = $2 AND status = 'Pending'`,
		detail.ImageDigest, detail.RepositoryName)
	if err != nil {
		return err
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		ids = append(ids, id)
	}
	rows.Close()
	for _, id := range ids {
		if err := s.Evaluate(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

// expire fails an approval still pending at its expiry.
func (s *Service) expire(ctx context.Context, id string) error {
	return s.st.InTx(ctx, func(tx *sql.Tx) error {
		a, err := loadApproval(ctx, tx, id)
		if err != nil || a.Status != StatePending {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE approvals SET status = $1, decided_at = $2, summary = $3 WHERE id = $4`,
			StateExpired, s.now(), "no decision by "+a.ExpiresAt.Format(time.RFC3339), id); err != nil {
			return err
		}
		ex, err := loadExecution(ctx, tx, a.ExecutionID)
		if err != nil {
			return err
		}
		return s.endExecution(ctx, tx, ex, StateFailed, StateFailed, "approval expired: no decision by "+a.ExpiresAt.Format(time.RFC3339))
	})
}
