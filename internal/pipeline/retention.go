package pipeline

import (
	"context"
	"fmt"
	"time"
)

// PruneExecutions deletes the executions that ended before cutoff, with
// their stages and approvals, and returns how many it deleted. An
// execution whose approval decided (Approved or Rejected) is kept, without
// its build log: that decision is the gate's verdict on an image, which
// admission reads (Verdict), and deleting a newer Rejected would let an
// older Approved speak for the image again.
func (s *Service) PruneExecutions(ctx context.Context, cutoff time.Time) (deleted int64, err error) {
	at := formatTime(cutoff)
	const decided = `SELECT execution_id FROM approvals WHERE status IN ('Approved', 'Rejected')`
	res, err := s.st.Writer().ExecContext(ctx, `DELETE FROM executions WHERE ended_at IS NOT NULL AND ended_at < $1
		AND id NOT IN (`+decided+`)`, at)
	if err != nil {
		return 0, fmt.Errorf("prune executions: %w", err)
	}
	if deleted, err = res.RowsAffected(); err != nil {
		return 0, fmt.Errorf("prune executions: %w", err)
	}
	if _, err := s.st.Writer().ExecContext(ctx, `UPDATE executions SET build_log = '' WHERE ended_at IS NOT NULL AND ended_at < $1
		AND build_log != ''`, at); err != nil {
		return deleted, fmt.Errorf("prune executions' build logs: %w", err)
	}
	return deleted, nil
}
