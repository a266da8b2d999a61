package pipeline

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/scangate/scangate/internal/lazyregexp"
)

var commitRe = lazyregexp.New(`^[0-9a-f]{40}([0-9a-f]{24})?$`)

const executionColumns = `id, pipeline, version, status, trigger, commit_sha, ref, started_by, reason, image_digest, image_uri, started_at, ended_at`

type rowScanner interface{ Scan(...any) error }

func scanExecution(r rowScanner) (*Execution, error) {
	var ex Execution
	var started string
	var ended sql.NullString
	if err := r.Scan(&ex.ID, &ex.Pipeline, &ex.Version, &ex.Status, &ex.Trigger, &ex.Commit, &ex.Ref, &ex.StartedBy, &ex.Reason,
		&ex.ImageDigest, &ex.ImageURI, &started, &ended); err != nil {
		return nil, err
	}
	ex.StartedAt, _ = time.Parse(time.RFC3339Nano, started)
	ex.EndedAt = parseTime(ended)
	return &ex, nil
}

func parseTime(s sql.NullString) *time.Time {
	if !s.Valid || s.String == "" {
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, s.String)
	if err != nil {
		return nil
	}
	return &t
}

func loadExecution(ctx context.Context, q querier, id string) (*Execution, error) {
	ex, err := scanExecution(q.QueryRowContext(ctx, `SELECT `+executionColumns+` FROM executions WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("execution %s: %w", id, ErrNoExecution)
	}
	if err != nil {
		return nil, fmt.Errorf("execution %s: %w", id, err)
	}
	return ex, nil
}

// Executions lists a pipeline's executions (every pipeline's if name is
// empty), newest first, at most limit.
func (s *Service) Executions(ctx context.Context, name string, limit int) ([]*Execution, error) {
	q := `SELECT ` + executionColumns + ` FROM executions`
	args := []any{}
	if name != "" {
		q += ` WHERE pipeline = $1`
		args = append(args, name)
	}
	q += fmt.Sprintf(` ORDER BY started_at DESC LIMIT %d`, max(limit, 1))
	rows, err := s.st.Reader().QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list executions: %w", err)
	}
	defer rows.Close()
	var out []*Execution
	for rows.Next() {
		ex, err := scanExecution(rows)
		if err != nil {
			return nil, fmt.Errorf("list executions: %w", err)
		}
		out = append(out, ex)
	}
	return out, rows.Err()
}

// Execution returns an execution with its stages and approval.
func (s *Service) Execution(ctx context.Context, id string) (*Execution, error) {
	ex, err := loadExecution(ctx, s.st.Reader(), id)
	if err != nil {
		return nil, err
	}
	rows, err := s.st.Reader().QueryContext(ctx, `SELECT name, status, message, started_at, ended_at FROM stages WHERE execution_id = $1 ORDER BY position`, id)
	if err != nil {
		return nil, fmt.Errorf("execution %s: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		var st Stage
		var started, ended sql.NullString
		if err := rows.Scan(&st.Name, &st.Status, &st.Message, &started, &ended); err != nil {
			return nil, err
		}
		st.StartedAt, st.EndedAt = parseTime(started), parseTime(ended)
		ex.Stages = append(ex.Stages, st)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	a, err := s.approvalOf(ctx, s.st.Reader(), id)
	if err != nil && !errors.Is(err, ErrNoApproval) {
		return nil, err
	}
	ex.Approval = a
	return ex, nil
}

// Artifact returns an execution's imagedefinitions.json.
func (s *Service) Artifact(ctx context.Context, id string) ([]byte, error) {
	var doc string
	err := s.st.Reader().QueryRowContext(ctx, `SELECT artifact FROM executions WHERE id = $1`, id).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("execution %s: %w", id, ErrNoExecution)
	}
	if err != nil {
		return nil, err
	}
	if doc == "" {
		return nil, fmt.Errorf("execution %s has no artifact yet", id)
	}
	return []byte(doc), nil
}

// BuildLog returns an execution's build log.
func (s *Service) BuildLog(ctx context.Context, id string) (string, error) {
	var log string
	err := s.st.Reader().QueryRowContext(ctx, `SELECT build_log FROM executions WHERE id = $1`, id).Scan(&log)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("execution %s: %w", id, ErrNoExecution)
	}
	return log, err
}
