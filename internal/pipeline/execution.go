package pipeline

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/scangate/scangate/internal/events"
	"github.com/scangate/scangate/internal/source"
)

// States of executions, stages and the approval action, as CodePipeline
// names them.
const (
	StatePending    = "Pending"
	StateInProgress = "InProgress"
	StateSucceeded  = "Succeeded"
	StateFailed     = "Failed"
	StateStopped    = "Stopped"
	StateSuperseded = "Superseded"
	StateSkipped    = "Skipped"
	StateApproved   = "Approved"
	StateRejected   = "Rejected"
	StateExpired    = "Expired"
)

// Stage names, in order.
const (
	StageSource   = "Source"
	StageBuild    = "Build"
	StageApproval = "Approval"
	StageDeploy   = "Deploy"
)

var stageOrder = []string{StageSource, StageBuild, StageApproval, StageDeploy}

// Trigger says what started an execution.
type Trigger struct {
	Kind   string `json:"kind"` // push, poll, webhook, manual
	Commit string `json:"commit"`
	Ref    string `json:"ref"`
	// By is the token that pushed the commit or started the execution,
	// "" when scangate cannot tell (polls and forge webhooks).
	By string `json:"by,omitempty"`
}

// Execution is one run of a pipeline.
type Execution struct {
	ID          string     `json:"id"`
	Pipeline    string     `json:"pipeline"`
	Version     int        `json:"version"`
	Status      string     `json:"status"`
	Trigger     string     `json:"trigger"`
	Commit      string     `json:"commit"`
	Ref         string     `json:"ref"`
	StartedBy   string     `json:"startedBy,omitempty"`
	Reason      string     `json:"reason,omitempty"`
	ImageDigest string     `json:"imageDigest,omitempty"`
	ImageURI    string     `json:"imageUri,omitempty"`
	StartedAt   time.Time  `json:"startedAt"`
	EndedAt     *time.Time `json:"endedAt,omitempty"`
	Stages      []Stage    `json:"stages,omitempty"`
	Approval    *Approval  `json:"approval,omitempty"`
}

// Stage is one stage of an execution.
type Stage struct {
	Name      string     `json:"name"`
	Status    string     `json:"status"`
	Message   string     `json:"message,omitempty"`
	StartedAt *time.Time `json:"startedAt,omitempty"`
	EndedAt   *time.Time `json:"endedAt,omitempty"`
}

// ErrNoExecution reports an execution that does not exist.
var ErrNoExecution = errors.New("no such execution")

// ErrNotRunning reports an execution that has ended.
var ErrNotRunning = errors.New("the execution is not in progress")

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Start begins an execution of the pipeline's latest version for a commit
// and queues its build, in one transaction, and returns its id.
func (s *Service) Start(ctx context.Context, name string, t Trigger) (string, error) {
	var id string
	err := s.st.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		id, err = s.start(ctx, tx, name, t)
		return err
	})
	return id, err
}

func (s *Service) start(ctx context.Context, tx *sql.Tx, name string, t Trigger) (string, error) {
	d, err := getDefinition(ctx, tx, name, 0)
	if err != nil {
		return "", err
	}
	if !commitRe.MatchString(t.Commit) {
		return "", fmt.Errorf("start %s: %q is not a full commit SHA", name, t.Commit)
	}
	id, now := newID(), s.now()
	if _, err := tx.ExecContext(ctx, `INSERT INTO executions (id, pipeline, version, status, trigger, commit_sha, ref, started_by, started_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, id, d.Name, d.Version, StateInProgress, t.Kind, t.Commit, t.Ref, t.By, now); err != nil {
		return "", fmt.Errorf("start %s: %w", name, err)
	}
	for i, stage := range stageOrder {
		status, started, ended := StatePending, any(nil), any(nil)
		switch stage {
		case StageSource:
			status, started, ended = StateSucceeded, now, now
		case StageBuild:
			status, started = StateInProgress, now
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO stages (execution_id, name, position, status, message, started_at, ended_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			id, stage, i, status, stageMessage(stage, t), started, ended); err != nil {
			return "", err
		}
	}
	if _, err := s.jobs.InsertTx(ctx, tx, buildArgs{ExecutionID: id}, nil); err != nil {
		return "", fmt.Errorf("start %s: %w", name, err)
	}
	ex := &Execution{ID: id, Pipeline: d.Name, Version: d.Version, Commit: t.Commit, Ref: t.Ref, Trigger: t.Kind, StartedBy: t.By}
	if err := s.publishExecution(ctx, tx, ex, ExecutionStarted, ""); err != nil {
		return "", err
	}
	for _, stage := range []string{StageSource, StageBuild} {
		state := StateSucceeded
		if stage == StageBuild {
			state = StateInProgress
		}
		if err := s.publishStage(ctx, tx, ex, stage, state, ""); err != nil {
			return "", err
		}
	}
	return id, nil
}

func stageMessage(stage string, t Trigger) string {
	if stage == StageSource {
		return fmt.Sprintf("%s %.12s (%s)", t.Ref, t.Commit, t.Kind)
	}
	return ""
}

// A Push is a branch moved to a commit in a pipeline source: a hosted
// repository (Repo) or an external one (URL).
type Push struct {
	Kind   string // push, poll, webhook, reconcile
	Repo   string
	URL    string
	Ref    string
	Commit string
	// Pusher is the token that pushed to a hosted repository.
	Pusher string
	// OnlyNew starts only pipelines that have not run for the commit, as a
	// server that starts again does for the pushes it may have missed.
	OnlyNew bool
}

// OnPush starts an execution of every pipeline whose source the push moved.
// A push from an external repository is told by polls and by webhooks,
// which a forge may deliver again, late, or which someone may replay: it
// starts nothing when the commit is no longer the branch's head (as a
// fetch finds it) or when the pipeline has run it already. A person who
// wants a commit run again starts it (Start).
func (s *Service) OnPush(ctx context.Context, p Push) ([]string, error) {
	defs, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, d := range defs {
		if !d.Source.matches(p) {
			continue
		}
		if p.URL != "" && s.opts.Source != nil {
			// Outside the transaction: a fetch may take a while, and the
			// database has one writer.
			head, err := s.opts.Source.Head(ctx, d.Source)
			if err != nil {
				return ids, fmt.Errorf("pipeline %s: the head of %s: %w", d.Name, d.Source.Branch, err)
			}
			if head != p.Commit {
				s.opts.Logger.Info("push ignored: the commit is not the branch's head", "pipeline", d.Name, "commit", p.Commit, "head", head, "trigger", p.Kind)
				continue
			}
		}
		var id string
		err := s.st.InTx(ctx, func(tx *sql.Tx) error {
			if p.OnlyNew || p.URL != "" {
				var seen int
				if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM executions WHERE pipeline = $1 AND commit_sha = $2`, d.Name, p.Commit).Scan(&seen); err != nil || seen > 0 {
					return err
				}
			}
			var err error
			id, err = s.start(ctx, tx, d.Name, Trigger{Kind: p.Kind, Commit: p.Commit, Ref: p.Ref, By: p.Pusher})
			return err
		})
		if err != nil {
			return ids, err
		}
		if id == "" {
			s.opts.Logger.Info("push ignored: the pipeline has run the commit", "pipeline", d.Name, "commit", p.Commit, "trigger", p.Kind)
			continue
		}
		s.opts.Logger.Info("execution started", "pipeline", d.Name, "execution", id, "commit", p.Commit, "trigger", p.Kind)
		ids = append(ids, id)
	}
	return ids, nil
}

func (src SourceSpec) matches(p Push) bool {
	if "refs/heads/"+src.Branch != p.Ref {
		return false
	}
	if p.URL != "" {
		return src.URL != "" && source.RepoKey(src.URL) == source.RepoKey(p.URL)
	}
	return src.Repository != "" && src.Repository == p.Repo
}

// HasExecution reports whether the pipeline has run for commit, so that a
// server starting again can tell which pushes it missed.
func (s *Service) HasExecution(ctx context.Context, pipeline, commit string) (bool, error) {
	var n int
	err := s.st.Reader().QueryRowContext(ctx, `SELECT count(*) FROM executions WHERE pipeline = $1 AND commit_sha = $2`, pipeline, commit).Scan(&n)
	return n > 0, err
}

// Stop stops an execution in progress: its running stage and any pending
// approval end Stopped.
func (s *Service) Stop(ctx context.Context, id, reason string) error {
	return s.st.InTx(ctx, func(tx *sql.Tx) error {
		ex, err := loadExecution(ctx, tx, id)
		if err != nil {
			return err
		}
		if ex.Status != StateInProgress {
			return fmt.Errorf("stop %s: %w (%s)", id, ErrNotRunning, ex.Status)
		}
		if reason == "" {
			reason = "stopped"
		}
		if _, err := tx.ExecContext(ctx, `UPDATE approvals SET status = $1, decided_at = $2 WHERE execution_id = $3 AND status = 'Pending'`,
			StateStopped, s.now(), id); err != nil {
			return err
		}
		return s.endExecution(ctx, tx, ex, StateStopped, StateStopped, reason)
	})
}

// endExecution ends an execution: its running stage takes stageState with
// message, later stages are skipped, and the execution takes state.
func (s *Service) endExecution(ctx context.Context, tx *sql.Tx, ex *Execution, state, stageState, message string) error {
	now := s.now()
	var running string
	err := tx.QueryRowContext(ctx, `SELECT name FROM stages WHERE execution_id = $1 AND status = 'InProgress'`, ex.ID).Scan(&running)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	if running != "" {
		if err := s.setStage(ctx, tx, ex, running, stageState, message); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE stages SET status = $1 WHERE execution_id = $2 AND status = 'Pending'`, StateSkipped, ex.ID); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE executions SET status = $1, reason = $2, ended_at = $3 WHERE id = $4`, state, message, now, ex.ID); err != nil {
		return err
	}
	ex.Status, ex.Reason = state, message
	return s.publishExecution(ctx, tx, ex, execEventState(state), message)
}

// setStage records a stage's new state and publishes it.
func (s *Service) setStage(ctx context.Context, tx *sql.Tx, ex *Execution, stage, state, message string) error {
	now := s.now()
	q := `UPDATE stages SET status = $1, message = $2, ended_at = $3 WHERE execution_id = $4 AND name = $5`
	args := []any{state, message, now, ex.ID, stage}
	if state == StateInProgress {
		q = `UPDATE stages SET status = $1, message = $2, started_at = $3 WHERE execution_id = $4 AND name = $5`
	}
	if _, err := tx.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("stage %s of %s: %w", stage, ex.ID, err)
	}
	return s.publishStage(ctx, tx, ex, stage, state, message)
}

// execEventState names an execution state as CodePipeline's events do.
func execEventState(state string) string {
	switch state {
	case StateSucceeded:
		return ExecutionSucceeded
	case StateFailed:
		return ExecutionFailed
	case StateStopped:
		return ExecutionStopped
	case StateSuperseded:
		return ExecutionSuperseded
	}
	return ExecutionStarted
}

func (s *Service) publishExecution(ctx context.Context, tx *sql.Tx, ex *Execution, state, reason string) error {
	e, err := events.New(events.SourcePipeline, events.DetailTypePipelineExecutionStateChange, []string{"pipeline/" + ex.Pipeline}, ExecutionDetail{
		Pipeline: ex.Pipeline, ExecutionID: ex.ID, Version: ex.Version, State: state,
		Commit: ex.Commit, Ref: ex.Ref, Reason: reason,
	})
	if err != nil {
		return err
	}
	return s.bus.Publish(ctx, tx, e)
}

func (s *Service) publishStage(ctx context.Context, tx *sql.Tx, ex *Execution, stage, state, message string) error {
	e, err := events.New(events.SourcePipeline, events.DetailTypeStageStateChange, []string{"pipeline/" + ex.Pipeline}, StageDetail{
		Pipeline: ex.Pipeline, ExecutionID: ex.ID, Version: ex.Version, Stage: stage, State: state, Message: message,
	})
	if err != nil {
		return err
	}
	return s.bus.Publish(ctx, tx, e)
}
