// Package jobs runs scangate's durable work on River, in the same database
// as the state the work changes: a job is inserted in the transaction that
// records why it exists, so a crash can lose neither.
//
// On SQLite, scangate runs as one server process per data directory (the
// server holds a lock on it), so a job found running at start belongs to a
// process that died: Recover makes it available again at once instead of
// waiting for River's stuck-job rescuer, which must assume another process
// may still be working on it. On PostgreSQL several replicas share the
// database, a running job may be another replica's, and River's rescuer
// with each worker's timeout brings back the jobs of a replica that died.
//
// River's database/sql drivers (riversqlite, riverdatabasesql) both keep
// *sql.Tx as the transaction type, so the store's code is the same on
// either database; on PostgreSQL River also listens for new jobs
// (LISTEN/NOTIFY) instead of waiting for its next poll.
package jobs

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"

	"github.com/scangate/scangate/internal/store"
)

// Client is River's client over the store's writer connection.
type Client = river.Client[*sql.Tx]

// driver is River's driver for the store's database.
func driver(st *store.Store) riverdriver.Driver[*sql.Tx] {
	if st.Dialect() == store.Postgres {
		return riverdatabasesql.NewWithPgxListener(st.Writer(), st.Listener())
	}
	return riversqlite.New(st.Writer())
}

// Migrate brings River's tables to the version this build expects.
func Migrate(ctx context.Context, st *store.Store) error {
	m, err := rivermigrate.New(driver(st), &rivermigrate.Config{Logger: quiet()})
	if err != nil {
		return fmt.Errorf("job tables: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("job tables: %w", err)
	}
	return nil
}

// Recover makes the jobs that were running when the last server stopped
// available again, and returns how many there were. It also ends the dead
// server's leadership, whose lease would keep scheduled and retried jobs
// waiting for about 15 s. Call it only while no River client works on the
// database. On PostgreSQL, shared by replicas, it does nothing: another
// replica's running jobs are not dead, and River's rescuer brings back
// those of a replica that is.
func Recover(ctx context.Context, st *store.Store) (int64, error) {
	if st.Dialect() != store.SQLite {
		return 0, nil
	}
	if _, err := st.Writer().ExecContext(ctx, `DELETE FROM river_leader`); err != nil {
		return 0, fmt.Errorf("recover jobs: %w", err)
	}
	res, err := st.Writer().ExecContext(ctx,
		`UPDATE river_job SET state = 'available', scheduled_at = datetime('now', 'subsec') WHERE state = 'running'`)
	if err != nil {
		return 0, fmt.Errorf("recover jobs: %w", err)
	}
	return res.RowsAffected()
}

// Config is how many workers each queue runs and how the client logs.
type Config struct {
	Queues map[string]int
	Logger *slog.Logger
	// ID names this client in the jobs it runs (river_job.attempted_by):
	// the server's lease holder, so that RequeueOrphans can tell the jobs
	// of a server that died. Empty: River's own.
	ID string
	// Poll is how often idle queues look for new jobs; SQLite has no
	// LISTEN/NOTIFY, so this bounds the delay of a job inserted by another
	// process. (On PostgreSQL River is told of new jobs at once.)
	Poll time.Duration
}

// New returns a client that works the queues in cfg with workers. With no
// queues it only inserts, as the CLI does.
func New(st *store.Store, workers *river.Workers, cfg Config) (*Client, error) {
	rc := &river.Config{
		Workers:           workers,
		FetchPollInterval: cfg.Poll,
		FetchCooldown:     10 * time.Millisecond,
		JobTimeout:        -1, // each worker sets its own Timeout
		ID:                cfg.ID,
	}
	rc.Logger = quiet()
	if cfg.Logger != nil {
		// River reports every producer's job counts at info level.
		rc.Logger = slog.New(atLeast{Handler: cfg.Logger.Handler(), min: slog.LevelWarn})
	}
	if rc.FetchPollInterval == 0 {
		rc.FetchPollInterval = 200 * time.Millisecond
	}
	if len(cfg.Queues) > 0 {
		rc.Queues = map[string]river.QueueConfig{}
		for q, n := range cfg.Queues {
			rc.Queues[q] = river.QueueConfig{MaxWorkers: n}
		}
	}
	c, err := river.NewClient(driver(st), rc)
	if err != nil {
		return nil, fmt.Errorf("job client: %w", err)
	}
	return c, nil
}

// RequeueOrphans makes the running jobs of clients not in live available
// again: on PostgreSQL, where servers share the jobs, those of a server
// that died (its presence lease expired) would otherwise wait for River's
// rescuer, an hour. The last client that attempted a job is the one
// running it. A job attempted in the last 30 s is left: its server may be
// starting, its presence not yet written. SQLite has Recover at start
// instead; it returns 0 there.
func RequeueOrphans(ctx context.Context, st *store.Store, live []string) (int64, error) {
	if st.Dialect() != store.Postgres || len(live) == 0 {
		return 0, nil
	}
	res, err := st.Writer().ExecContext(ctx, `UPDATE river_job SET state = 'available', scheduled_at = now()
		WHERE state = 'running' AND cardinality(attempted_by) > 0
		AND NOT (attempted_by[cardinality(attempted_by)] = ANY($1))
		AND attempted_at < now() - interval '30 seconds'`, live)
	if err != nil {
		return 0, fmt.Errorf("requeue the jobs of stopped servers: %w", err)
	}
	return res.RowsAffected()
}

// WaitingStates are the states of a job still to be done. A unique job
// unique in these states is not queued twice while one waits or runs, and
// can be queued again once it is done.
var WaitingStates = []rivertype.JobState{
	rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
	rivertype.JobStateRunning, rivertype.JobStateScheduled,
}

// Pending counts the jobs waiting to run or to be retried, per kind.
func Pending(ctx context.Context, st *store.Store) (map[string]int, error) {
	rows, err := st.Reader().QueryContext(ctx,
		`SELECT kind, count(*) FROM river_job WHERE state IN ('available', 'scheduled', 'retryable', 'running') GROUP BY kind`)
	if err != nil {
		return nil, fmt.Errorf("pending jobs: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var kind string
		var n int
		if err := rows.Scan(&kind, &n); err != nil {
			return nil, err
		}
		out[kind] = n
	}
	return out, rows.Err()
}

func quiet() *slog.Logger {
	return slog.New(slog.DiscardHandler)
}

// atLeast drops records below min.
type atLeast struct {
	slog.Handler
	min slog.Level
}

func (h atLeast) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h atLeast) WithAttrs(as []slog.Attr) slog.Handler {
	return atLeast{h.Handler.WithAttrs(as), h.min}
}

func (h atLeast) WithGroup(name string) slog.Handler {
	return atLeast{h.Handler.WithGroup(name), h.min}
}
