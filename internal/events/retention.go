package events

import (
	"context"
	"fmt"
	"time"

	"github.com/scangate/scangate/internal/store"
)

// PruneLog deletes the events logged before cutoff, except those a dead
// letter names (a replay reads the event from the log), and returns how
// many it deleted. A delivery still being retried reads its event from the
// log too: cutoff must be older than the delivery retry window (the server
// checks it is). A replay of a time range before the cutoff finds nothing.
func PruneLog(ctx context.Context, st *store.Store, cutoff time.Time) (int64, error) {
	res, err := st.Writer().ExecContext(ctx, `DELETE FROM events WHERE time < $1
		AND id NOT IN (SELECT event_id FROM dead_letters)`, cutoff.UTC().Format(time.RFC3339))
	if err != nil {
		return 0, fmt.Errorf("prune the event log: %w", err)
	}
	return res.RowsAffected()
}

// PruneDeadLetters deletes the dead letters filed before cutoff, replayed
// or not, and returns how many it deleted.
func PruneDeadLetters(ctx context.Context, st *store.Store, cutoff time.Time) (int64, error) {
	res, err := st.Writer().ExecContext(ctx, `DELETE FROM dead_letters WHERE failed_at < $1`, cutoff.UTC().Format(time.RFC3339))
	if err != nil {
		return 0, fmt.Errorf("prune the dead letters: %w", err)
	}
	return res.RowsAffected()
}
