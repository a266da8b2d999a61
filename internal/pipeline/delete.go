package pipeline

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// ErrBusy reports a pipeline that has executions in progress: stop them
// first.
var ErrBusy = errors.New("the pipeline has executions in progress: stop them first")

// Delete removes the pipeline name and its versions. Its executions (their
// stages, approvals, artifacts and build logs) stay as history unless
// purge is set. A pipeline with an execution in progress is not deleted
// (ErrBusy): a build or an approval would end in a pipeline that no longer
// exists.
func (s *Service) Delete(ctx context.Context, name string, purge bool) error {
	err := s.st.InTx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM pipelines WHERE name = $1`, name).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return ErrNoPipeline
		}
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM executions WHERE pipeline = $1 AND status = $2`, name, StateInProgress).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%w (%d)", ErrBusy, n)
		}
		if purge {
			if _, err := tx.ExecContext(ctx, `DELETE FROM executions WHERE pipeline = $1`, name); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM pipelines WHERE name = $1`, name)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete pipeline %s: %w", name, err)
	}
	return nil
}
