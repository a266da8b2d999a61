package server

import (
	"context"
	"fmt"
	"time"

	"github.com/scangate/scangate/internal/events"
)

// Retention says how long the server keeps what piles up; zero values
// take the defaults.
type Retention struct {
	// Events is how long the event log keeps an event (90 days); events
	// that dead letters name stay with them. At least the delivery retry
	// window and a day, as a delivery being retried reads its event.
	Events time.Duration
	// Executions is how long an ended pipeline execution is kept (180
	// days); one whose approval decided stays, without its build log.
	Executions time.Duration
	// DeadLetters is how long a dead letter is kept (30 days).
	DeadLetters time.Duration
	// Every is how often the server prunes (1 hour); it also does at
	// start.
	Every time.Duration
}

func (r *Retention) defaults() {
	set := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	set(&r.Events, 90*24*time.Hour)
	set(&r.Executions, 180*24*time.Hour)
	set(&r.DeadLetters, 30*24*time.Hour)
	set(&r.Every, time.Hour)
}

func (r Retention) check(retryWindow time.Duration) error {
	if retryWindow <= 0 {
		retryWindow = 24 * time.Hour
	}
	if min := retryWindow + 24*time.Hour; r.Events < min {
		return fmt.Errorf("event retention %s: at least the delivery retry window and a day (%s), "+
			"as a delivery being retried reads its event from the log", r.Events, min)
	}
	return nil
}

// prune deletes, once, what is older than the retention allows; each
// table's owner does its own.
func (p *parts) prune(ctx context.Context) {
	r, log, now := p.cfg.Retention, p.cfg.Logger, time.Now()
	for _, step := range []struct {
		what string
		keep time.Duration
		run  func(context.Context, time.Time) (int64, error)
	}{
		{"events", r.Events, func(ctx context.Context, t time.Time) (int64, error) { return events.PruneLog(ctx, p.st, t) }},
		{"dead letters", r.DeadLetters, func(ctx context.Context, t time.Time) (int64, error) { return events.PruneDeadLetters(ctx, p.st, t) }},
		{"executions", r.Executions, p.pipes.PruneExecutions},
	} {
		n, err := step.run(ctx, now.Add(-step.keep))
		switch {
		case err != nil && ctx.Err() == nil:
			log.Error("retention", "what", step.what, "err", err)
		case n > 0:
			log.Info("retention: deleted what was older than its retention", "what", step.what, "deleted", n, "retention", step.keep.String())
		}
	}
}

// pruneEvery prunes at once, then every interval until ctx is done.
func (p *parts) pruneEvery(ctx context.Context) {
	t := time.NewTicker(p.cfg.Retention.Every)
	defer t.Stop()
	for {
		p.prune(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
